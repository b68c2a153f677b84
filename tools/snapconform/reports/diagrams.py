"""A release plan drawn as one flow per user: SVG laid out by Graphviz's dot (through the
`graphviz` binding), an HTML page embedding one SVG per user with the footnotes, and Mermaid
flowchart text (which code-hosting sites render).

In every drawing a node is what the user holds after a step, an arrow is that step (what it
released and whether the user refreshed, stayed, or installed), a node's [n] links to footnote n
(the rule that decided it), (!) cells are filled amber, and cells real snapd confirmed or
contradicted (`observations`, see snapconform.reports.flows) get a green or red border and a
line saying so.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import graphviz

from snapconform.model.plan import MARK, MARK_LEGEND, Table, cell_text, released_text
from snapconform.reports.flows import (
    CONFIRMED,
    DIVERGENCE,
    FlowEdge,
    FlowNode,
    Flows,
    Observations,
    UserFlow,
    user_flows,
)

FORMATS = ("html", "svg", "mermaid")
FONT = "DejaVu Sans"  # Debian's fonts-dejavu-core: dot measures with it, browsers draw with it

COLOURS = {
    "ink": "#1d2430",
    "soft": "#5b6575",
    "line": "#9aa3af",
    "changed": "#e8f0fe",
    "marked": "#fff3d6",
    "marked_line": "#8a5a00",
    "confirmed": "#1f7a3d",
    "divergence": "#b3261e",
    "refresh": "#1f5fbf",
    "install": "#1f7a3d",
    "start": "#eef0f3",
}


class DiagramError(Exception):
    """A diagram cannot be drawn here (str() is one line saying what is missing)."""


# -- graphviz --------------------------------------------------------------------------------


def _node_classes(node: FlowNode) -> list[str]:
    classes = ["flow-node"]
    if node.start:
        classes.append("start")
    elif node.cell is None:
        classes.append("absent")
    else:
        classes.append("holds")
        if node.cell.changed:
            classes.append("changed")
    if node.marked:
        classes.append("marked")
    if node.observation is not None:
        classes.append(node.observation.status)
    return classes


def _observation_line(node: FlowNode) -> str | None:
    seen = node.observation
    if seen is None:
        return None
    if seen.status == CONFIRMED:
        text = "✓ confirmed by snapd"
    else:
        text = f"✗ snapd held {seen.observed}" if seen.observed else "✗ snapd diverged"
    if seen.detail:
        text += f" ({seen.detail})"
    return text


def _node_label(node: FlowNode) -> str:
    """An HTML-like graphviz label (escaped: plan names and reasons are text)."""
    e = html.escape
    if node.start:
        return f'<<B>{e(node.holds)}</B><BR/><FONT POINT-SIZE="10">{e(node.detail)}</FONT>>'
    soft = COLOURS["soft"]
    rows = [f'<FONT POINT-SIZE="10" COLOR="{soft}">after step {node.step}</FONT>']
    if node.cell is None:
        rows.append(f'<FONT COLOR="{soft}">{e(node.detail)}</FONT>')
    else:
        main = f'<B><FONT POINT-SIZE="15">{e(node.holds)}</FONT></B>'
        if node.marked:
            main += f' <B><FONT COLOR="{COLOURS["marked_line"]}">{e(MARK)}</FONT></B>'
        if node.footnote is not None:
            main += f' <FONT COLOR="{COLOURS["refresh"]}">[{node.footnote.number}]</FONT>'
        rows.append(main)
        rows.append(f'<FONT POINT-SIZE="10" COLOR="{soft}">{e(node.detail)}</FONT>')
    seen = _observation_line(node)
    if seen is not None:
        colour = COLOURS[node.observation.status] if node.observation else soft
        rows.append(f'<FONT POINT-SIZE="10" COLOR="{colour}"><B>{e(seen)}</B></FONT>')
    return "<" + "<BR/>".join(rows) + ">"


def _node_attributes(node: FlowNode, link: Callable[[int], str] | None) -> dict[str, str]:
    attributes = {
        "id": node.id,
        "class": " ".join(_node_classes(node)),
        "label": _node_label(node),
        "shape": "box",
        "style": "rounded,filled",
        "fillcolor": "white",
        "color": COLOURS["line"],
        "fontcolor": COLOURS["ink"],
    }
    if node.start:
        attributes.update(style="rounded,filled", fillcolor=COLOURS["start"], penwidth="0")
    elif node.cell is None:
        attributes.update(style="rounded,dashed", fontcolor=COLOURS["soft"])
    elif node.marked:
        attributes.update(fillcolor=COLOURS["marked"], color=COLOURS["marked_line"], penwidth="1.6")
    elif node.cell.changed:
        attributes.update(fillcolor=COLOURS["changed"])
    if node.observation is not None:
        attributes.update(color=COLOURS[node.observation.status], penwidth="3")
        if node.observation.status == DIVERGENCE:
            attributes["style"] += ",bold"
    if node.footnote is not None:
        attributes["tooltip"] = f"[{node.footnote.number}] {node.footnote.text}"
        if link is not None:
            attributes["URL"] = link(node.footnote.number)
    else:
        attributes["tooltip"] = f"{node.user}: {node.detail}"
    return attributes


def _edge_attributes(edge: FlowEdge) -> dict[str, str]:
    attributes = {
        "id": f"{edge.source.id}--{edge.target.id}",
        "class": f"flow-edge {edge.kind}",
        "label": f" {edge.label} ",
        "fontsize": "10",
        "fontcolor": COLOURS["soft"],
        "color": COLOURS["line"],
    }
    if edge.kind == "refresh":
        attributes.update(color=COLOURS["refresh"], penwidth="2.2", fontcolor=COLOURS["refresh"])
    elif edge.kind == "install":
        attributes.update(color=COLOURS["install"], penwidth="2.2", fontcolor=COLOURS["install"])
    elif edge.kind == "stay":
        attributes.update(style="dashed")
    else:
        attributes.update(style="dotted")
    return attributes


def _add_flow(graph: graphviz.Digraph, flow: UserFlow, link: Callable[[int], str] | None) -> None:
    for node in flow.nodes:
        graph.node(node.id, **_node_attributes(node, link))
    for edge in flow.edges:
        graph.edge(edge.source.id, edge.target.id, **_edge_attributes(edge))


def _graphviz() -> object:
    """The binding, imported on first drawing: the CLI loads this module on hosts that only
    replay histories (local://, ssh://) and need not have it."""
    try:
        import graphviz as binding
    except ImportError:
        raise DiagramError(
            "drawing needs the graphviz Python package (pip install graphviz)"
        ) from None
    return binding


def _graph(name: str) -> graphviz.Digraph:
    binding = _graphviz()
    graph = binding.Digraph(name=name)  # type: ignore[attr-defined]
    graph.attr(
        "graph", rankdir="TB", fontname=FONT, nodesep="0.3", ranksep="0.32", bgcolor="transparent"
    )
    graph.attr("graph", id=name)
    graph.attr("node", fontname=FONT, fontsize="12", margin="0.14,0.06", width="2.3")
    graph.attr("edge", fontname=FONT, arrowsize="0.8")
    return graph


def footnote_anchor(number: int) -> str:
    return f"fn-{number}"


def user_graph(flow: UserFlow, link: Callable[[int], str] | None = None) -> graphviz.Digraph:
    """One user's flow as its own graph."""
    graph = _graph(f"flow-{flow.nodes[0].id.removesuffix('-s0')}")
    _add_flow(graph, flow, link)
    return graph


def plan_graph(flows: Flows, title: str = "") -> graphviz.Digraph:
    """All users' flows in one graph, side by side (a cluster each; the steps line up, every
    flow being one node per step), with the footnotes underneath."""
    graph = _graph("flows")
    if title:
        graph.attr("graph", label=title, labelloc="t", fontsize="16")
    for flow in flows.users:
        with graph.subgraph(name=f"cluster_{flow.nodes[0].id.removesuffix('-s0')}") as cluster:
            cluster.attr(label=flow.caption, fontsize="13", color=COLOURS["line"], style="rounded")
            _add_flow(cluster, flow, lambda number: f"#{footnote_anchor(number)}")
    rows = [f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{_wrapped(MARK_LEGEND)}</TD></TR>']
    for note in flows.footnotes:
        rows.append(
            f'<TR><TD ALIGN="LEFT" BALIGN="LEFT" ID="{footnote_anchor(note.number)}">'
            f"{_wrapped(f'[{note.number}] {note.text}')}</TD></TR>"
        )
    graph.node(
        "footnotes",
        label='<<TABLE BORDER="0" CELLSPACING="2">' + "".join(rows) + "</TABLE>>",
        shape="plain",
        fontsize="11",
        id="footnotes",
    )
    for flow in flows.users:
        graph.edge(flow.nodes[-1].id, "footnotes", style="invis", weight="0")
    return graph


def _wrapped(text: str, width: int = 110) -> str:
    """Escaped text for an HTML-like label, broken into lines (dot does not wrap)."""
    return "<BR/>".join(html.escape(line) for line in textwrap.wrap(text, width)) or " "


_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)


def svg_of(graph: graphviz.Digraph) -> str:
    binding = _graphviz()
    try:
        return graph.pipe(format="svg", encoding="utf-8")
    except binding.ExecutableNotFound:  # type: ignore[attr-defined]
        raise DiagramError(
            "drawing needs Graphviz's dot, which is not installed (apt-get install graphviz)"
        ) from None
    except binding.CalledProcessError as exc:  # type: ignore[attr-defined]
        raise DiagramError(f"Graphviz's dot failed: {exc.stderr or exc}") from None


def inline_svg(graph: graphviz.Digraph) -> str:
    """The SVG element alone (no XML prolog or doctype), to embed in an HTML page."""
    return _PROLOG.sub("", svg_of(graph), count=1)


# -- pages -----------------------------------------------------------------------------------


def render_svg(table: Table, observations: Observations | None = None, title: str = "") -> str:
    return svg_of(plan_graph(user_flows(table, observations), title))


def _table_rows(flows: Flows) -> list[dict]:
    """The transition table as cells for the page (the same texts `table` prints)."""
    plan = flows.table.plan
    notes = {(note.step, note.user): note for note in flows.footnotes}
    observed = {
        (node.step, node.user): node.observation
        for flow in flows.users
        for node in flow.nodes
        if node.observation is not None
    }
    rows = []
    for row in flows.table.rows:
        released = [
            released_text(row.step) if row.step.channel == c else "-" for c in plan.channels
        ]
        cells = []
        for user in plan.users:
            key = (row.step.number, user.name)
            cell = row.cells[user.name]
            cells.append(
                {
                    "text": cell_text(cell),
                    "marked": cell is not None and cell.marked,
                    "note": notes.get(key),
                    "node": f"{re.sub(r'[^A-Za-z0-9_-]+', '_', user.name)}-s{row.step.number}",
                    "observation": observed.get(key),
                }
            )
        rows.append({"step": row.step.number, "released": released, "cells": cells})
    return rows


def render_html(table: Table, observations: Observations | None = None, title: str = "") -> str:
    flows = user_flows(table, observations)
    figures = [
        {
            "flow": flow,
            "svg": inline_svg(user_graph(flow, lambda n: f"#{footnote_anchor(n)}")),
        }
        for flow in flows.users
    ]
    # Loaded here, not at import: the CLI imports this module on hosts without Jinja2.
    from snapconform.reports.pages import render_page

    return render_page(
        "plan_flows.html.j2",
        title=f"what each user gets: {title}" if title else "what each user gets",
        plan_title=title,
        flows=flows,
        figures=figures,
        rows=_table_rows(flows),
        mark=MARK,
        mark_legend=MARK_LEGEND,
        observed=bool(observations),
        footnote_anchor=footnote_anchor,
    )


# -- mermaid ---------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: quotes and markup characters as entity codes."""
    replacements = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "#": "#35;", ";": "#59;"}
    return "".join(replacements.get(char, char) for char in text)


def _mermaid_id(node: FlowNode) -> str:
    return node.id.replace("-", "_")


def render_mermaid(table: Table, observations: Observations | None = None, title: str = "") -> str:
    flows = user_flows(table, observations)
    lines = []
    if title:
        lines += ["---", f"title: {_mermaid_text(title)}", "---"]
    # Side by side, in the plan's order (the invisible ~~~ links), each flow top to bottom.
    lines.append("flowchart LR")
    classes: dict[str, list[str]] = {}
    for flow in flows.users:
        cluster = _mermaid_id(flow.nodes[0]).removesuffix("_s0") + "_flow"
        lines.append(f'  subgraph {cluster}["{_mermaid_text(flow.caption)}"]')
        lines.append("    direction TB")
        for node in flow.nodes:
            if node.start:
                text = f"{_mermaid_text(node.holds)}<br/>{_mermaid_text(node.detail)}"
                lines.append(f'    {_mermaid_id(node)}(["{text}"])')
                continue
            parts = [f"after step {node.step}"]
            if node.cell is None:
                parts.append(node.detail)
            else:
                main = node.holds
                if node.marked:
                    main += f" {MARK}"
                if node.footnote is not None:
                    main += f" [{node.footnote.number}]"
                parts += [main, node.detail]
            seen = _observation_line(node)
            if seen is not None:
                parts.append(seen)
            label = "<br/>".join(_mermaid_text(part) for part in parts)
            lines.append(f'    {_mermaid_id(node)}["{label}"]')
            names = set(_node_classes(node))
            fill = next((n for n in ("marked", "changed", "absent") if n in names), None)
            for name in (fill, node.observation and node.observation.status):
                if name:
                    classes.setdefault(name, []).append(_mermaid_id(node))
        for edge in flow.edges:
            arrow = {"refresh": "==>", "install": "==>", "stay": "-.->", "wait": "-.->"}[edge.kind]
            source, target = _mermaid_id(edge.source), _mermaid_id(edge.target)
            lines.append(f'    {source} {arrow}|"{_mermaid_text(edge.label)}"| {target}')
        lines.append("  end")
    clusters = [_mermaid_id(flow.nodes[0]).removesuffix("_s0") + "_flow" for flow in flows.users]
    if len(clusters) > 1:
        lines.append("  " + " ~~~ ".join(clusters))
    styles = {
        "absent": f"fill:#fff,stroke:{COLOURS['line']},stroke-dasharray:4 3,"
        f"color:{COLOURS['soft']}",
        "changed": f"fill:{COLOURS['changed']},stroke:{COLOURS['line']}",
        "marked": f"fill:{COLOURS['marked']},stroke:{COLOURS['marked_line']},stroke-width:2px",
        CONFIRMED: f"stroke:{COLOURS['confirmed']},stroke-width:3px",
        DIVERGENCE: f"stroke:{COLOURS['divergence']},stroke-width:3px",
    }
    for name, nodes in classes.items():
        lines.append(f"  classDef {name} {styles[name]}")
        lines.append(f"  class {','.join(nodes)} {name}")
    lines.append(f"%% {MARK_LEGEND}")
    lines += [f"%% [{note.number}] {note.text}" for note in flows.footnotes]
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[..., str]] = {
    "html": render_html,
    "svg": render_svg,
    "mermaid": render_mermaid,
}


def render_diagram(
    table: Table, fmt: str, observations: Observations | None = None, title: str = ""
) -> str:
    """The plan drawn in ``fmt`` (html, svg or mermaid); DiagramError when it cannot be."""
    if fmt not in RENDERERS:
        raise ValueError(f"unknown diagram format {fmt!r} (one of {', '.join(FORMATS)})")
    return RENDERERS[fmt](table, observations, title)
