"""The epochs page's table drawn as one flow per user (what its readers asked for: "three
separate flow diagrams, one for each user" with "a footnote indicator to explain why each step
chose a particular revision"), checked against the corrected table and in headless Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from snapconform.model.plan import evaluate, parse_plan, render, render_text
from snapconform.reports.diagrams import render_html, render_mermaid, render_svg
from snapconform.reports.flows import CellObservation, footnotes, user_flows

ROOT = Path(__file__).parents[2]
PLAN = ROOT / "suites" / "plans" / "epochs-004.yaml"
# What each user holds after steps 1..8: the seed's corrected table (step 6: user 2 gets R6),
# with "(!)" where the page marks the cell and "-" before the user installs.
CORRECTED = {
    "user1": "R1E0 R2E0 R2E0 R4E0 R4E0 R4E0 R6E1 R6E1",
    "user2": "R1E0 R2E0 R2E0(!) R4E0(!) R4E0 R6E1 R6E1 R7E1",
    "user3": "- - R3E1 R3E1 R3E1(!) R6E1 R6E1 R7E1",
}
HOPS_PLAN = """\
channels: [stable, candidate]
users:
  late: {channel: candidate, from: 1}
steps:
  - {revision: 1, epoch: "0", channel: stable}
  - {revision: 2, epoch: "2*", channel: candidate}
  - {revision: 3, epoch: "1*", channel: stable}
"""


@pytest.fixture(scope="module")
def table():
    return evaluate(parse_plan(PLAN.read_text(), PLAN.name))


def test_each_users_flow_is_the_corrected_table(table):
    flows = user_flows(table)
    assert [flow.user.name for flow in flows.users] == list(CORRECTED)
    for flow in flows.users:
        steps = [node for node in flow.nodes if not node.start]
        drawn = " ".join(node.holds + ("(!)" if node.marked else "") for node in steps)
        assert drawn == CORRECTED[flow.user.name]
        assert len(flow.edges) == len(table.rows)  # the start, then an arrow per step
    user2 = flows.users[1]
    assert user2.edges[5].kind == "refresh" and user2.edges[5].label == (
        "candidate gets R6E1* · refreshes"
    )
    assert user2.nodes[6].detail == "revision 6, epoch 1*, from candidate"


def test_footnotes_are_numbered_as_the_table_prints_them(table):
    text = render_text(table)
    printed = dict(re.findall(r"^\[(\d+)\] (.*)$", text, re.MULTILINE))
    notes = footnotes(table)
    assert {str(note.number): note.text for note in notes.values()} == printed
    assert notes[(6, "user2")].text == "step 6, user2: candidate's R6 (epoch 1*) can read epoch 0"


def test_hops_label_the_arrow():
    hops = evaluate(parse_plan(HOPS_PLAN, "hops.yaml"))
    edge = user_flows(hops).users[0].edges[2]
    assert edge.kind == "refresh" and edge.via == (3,)
    assert edge.label == "stable gets R3E1* · refreshes via R3"
    assert "refreshes via R3" in render_mermaid(hops)


def count(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text, re.MULTILINE))


def test_the_html_page_in_a_browser(table, chromium, tmp_path):
    page = tmp_path / "epochs-004.html"
    page.write_text(render_html(table, title=PLAN.name))
    loaded = chromium.load(page, "plan-004.png", size=(1400, 1500))
    assert loaded.console == [], loaded.console
    assert loaded.requests == []
    dom = loaded.dom
    assert count(r'<figure class="flow"', dom) == 3
    for user, cells in CORRECTED.items():
        nodes = count(rf'<g id="{user}-s\d+" class="node flow-node', dom)
        assert nodes == 1 + len(cells.split())
        installed = [c for c in cells.split() if c != "-"]
        assert count(rf'<g id="{user}-s\d+" class="node flow-node holds', dom) == len(installed)
    assert count(r'class="node flow-node [^"]*\bmarked\b', dom) == 3
    # every footnote link in a drawing lands on a footnote
    links = set(re.findall(r'xlink:href="#(fn-\d+)"', dom)) | set(
        re.findall(r'href="#(fn-\d+)"', dom)
    )
    anchors = set(re.findall(r'<li id="(fn-\d+)"', dom))
    assert links == anchors and len(anchors) == 14
    assert count(r'<tr class="plan-row"', dom) == len(table.rows)
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", dom)


def test_observed_cells_are_marked(table, chromium, tmp_path):
    """A cell real snapd confirmed gets a green border; a divergence a red one and what snapd
    held (the hook `table --host` fills)."""
    observations = {(step, "user1"): CellObservation("confirmed") for step in range(1, 9)}
    observations[(6, "user2")] = CellObservation("divergence", "R4E0", "snapd 2.57.6")
    page = tmp_path / "observed.html"
    page.write_text(render_html(table, observations, title=PLAN.name))
    loaded = chromium.load(page, "plan-004-observed.png", size=(1400, 1500))
    assert loaded.console == [] and loaded.requests == []
    assert count(r'class="node flow-node [^"]*\bconfirmed\b', loaded.dom) == 8
    assert count(r'class="node flow-node [^"]*\bdivergence\b', loaded.dom) == 1
    assert "✗ snapd held R4E0 (snapd 2.57.6)" in loaded.dom
    assert "confirmed by real snapd" in loaded.dom  # the legend
    mermaid = render_mermaid(table, observations)
    assert "class user2_s6 divergence" in mermaid
    assert re.search(r"class (user1_s\d,){7}user1_s8 confirmed", mermaid)
    with pytest.raises(ValueError):
        CellObservation("maybe")  # type: ignore[arg-type]


def test_one_svg_with_every_flow(table, chromium, tmp_path):
    svg = render_svg(table, title=PLAN.name)
    tree = ET.fromstring(svg)  # well-formed XML
    groups = tree.iter("{http://www.w3.org/2000/svg}g")
    classes = [g.get("class", "") for g in groups]
    assert classes.count("cluster") == 3
    assert sum("flow-node" in c for c in classes) == 27
    assert sum(c.startswith("edge flow-edge") for c in classes) == 24
    page = tmp_path / "epochs-004.svg"
    page.write_text(svg)
    loaded = chromium.load(page, "plan-004-svg.png", size=(1500, 1500))
    assert loaded.console == [] and loaded.requests == []


def test_mermaid_text(table):
    text = render_mermaid(table, title=PLAN.name)
    lines = text.splitlines()
    assert "flowchart LR" in lines  # the flows side by side, each one top to bottom
    assert "  user1_flow ~~~ user2_flow ~~~ user3_flow" in lines
    assert count(r"^  subgraph user\d_flow\[", text) == 3
    assert count(r'^    user\d_s\d+(?:\["|\(\[")', text) == 27
    assert count(r"^    user\d_s\d+ (?:==>|-\.->)\|", text) == 24
    assert "class user2_s3,user2_s4,user3_s5 marked" in text
    assert count(r"^%% \[\d+\] step", text) == 14
    # inside labels a ; (Mermaid's statement separator) or " would end the label
    for label in re.findall(r'"([^"]*)"', "\n".join(line for line in lines if line[:2] != "%%")):
        assert ";" not in label.replace("#59;", "").replace("#quot;", "")


def run_table(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snapconform", "table", str(PLAN), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_command_draws_and_keeps_its_text_formats(table):
    for fmt in ("text", "markdown", "json"):
        result = run_table("--format", fmt)
        assert result.returncode == 0 and result.stdout == render(table, fmt)
    html = run_table("--format", "html")
    assert html.returncode == 0 and html.stdout.startswith("<!DOCTYPE html>")
    assert count(r'<figure class="flow"', html.stdout) == 3
    svg = run_table("--format", "svg")
    assert svg.returncode == 0 and "<svg" in svg.stdout
    mermaid = run_table("--format", "mermaid")
    assert mermaid.returncode == 0 and "flowchart LR" in mermaid.stdout


def test_without_dot_one_line_says_so(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no dot on it
    result = run_table("--format", "svg", env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "snapconform table: drawing needs Graphviz's dot, which is not installed "
        "(apt-get install graphviz)\n"
    )
    assert run_table("--format", "mermaid", env=env).returncode == 0  # Mermaid needs no dot


EVENTS_PLAN = """\
channels: [stable, beta]
users:
  ann: {channel: stable, from: 1, switch: {3: beta}, offline: [4]}
  bob: {channel: beta, from: 1, revert: [5]}
steps:
  - {revision: 1, epoch: "0", channel: stable}
  - {revision: 2, epoch: "0", channel: beta}
  - {revision: 3, epoch: "0", channel: beta}
  - {revision: 4, epoch: "0", channel: beta}
  - {unrelease: beta}
  - {close: beta}
"""


def test_closes_unreleases_and_the_users_own_operations_are_on_the_arrows(chromium, tmp_path):
    plan = evaluate(parse_plan(EVENTS_PLAN, "events.yaml"))
    ann, bob = user_flows(plan).users
    assert [edge.label for edge in ann.edges[2:]] == [
        "beta gets R3E0 · switch beta, refreshes",
        "beta gets R4E0 · offline, no refresh",
        "beta unreleases R4E0 · stays",
        "beta closes · refreshes",
    ]
    assert bob.edges[4].label == "beta unreleases R4E0 · revert, refreshes"
    page = tmp_path / "events.html"
    page.write_text(render_html(plan, title="events.yaml"))
    loaded = chromium.load(page, "plan-events.png", size=(1100, 1300))
    assert loaded.console == [] and loaded.requests == []
    assert count(r'<g id="(?:ann|bob)-s\d+" class="node flow-node', loaded.dom) == 2 * 7
    assert "beta closes · refreshes" in render_mermaid(plan)
