"""A release plan's table as one flow per user: the revision and epoch the user holds after each
step, what moved them, and the footnote giving the reason (numbered as `table` numbers them).

A cell may carry what real snapd showed for it (`table --host` plays the plan on a host): pass
`observations` keyed by (step number, user name); confirmed cells and divergences are drawn
apart. Pure: a Table in, data out (drawn by snapconform.reports.diagrams).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from snapconform.model.plan import MARK, Cell, Step, Table, User, cell_text, released_text

CONFIRMED = "confirmed"
DIVERGENCE = "divergence"


@dataclass(frozen=True)
class CellObservation:
    """What real snapd did for one cell: it held what the model predicts (confirmed), or not
    (divergence: `observed` says what it held instead, written as a cell is, e.g. "R4E0")."""

    status: Literal["confirmed", "divergence"]
    observed: str | None = None
    detail: str = ""  # e.g. the host and snapd version, or the mismatch

    def __post_init__(self) -> None:
        if self.status not in (CONFIRMED, DIVERGENCE):
            raise ValueError(f"an observation is {CONFIRMED} or {DIVERGENCE}, not {self.status!r}")


# (step number, user name) -> what snapd showed for that cell
Observations = Mapping[tuple[int, str], CellObservation]


@dataclass(frozen=True)
class Footnote:
    number: int
    step: int
    user: str
    text: str  # "step 3, user2: candidate's R3 (epoch 1) cannot read epoch 0; ..."


@dataclass(frozen=True)
class FlowNode:
    """A user after a step (cell None: not installed, or nothing to install yet); step 0 is the
    flow's start (the user, before the first step)."""

    id: str  # unique in a page: USER-sSTEP, safe for ids and graphviz names
    user: str
    channel: str  # the channel the user tracks
    step: int
    cell: Cell | None
    holds: str  # as the table writes it: R6E1 (the epoch of the data), "-" when not installed
    footnote: Footnote | None
    observation: CellObservation | None
    before_install: bool  # the user installs at a later step

    @property
    def start(self) -> bool:
        return self.step == 0

    @property
    def marked(self) -> bool:
        return self.cell is not None and self.cell.marked

    @property
    def detail(self) -> str:
        """The revision's own epoch and the channel that served it: "revision 6, epoch 1*,
        from candidate"."""
        if self.start:
            return f"tracks {self.channel}"
        if self.cell is None:
            return "not installed yet" if self.before_install else "nothing to install yet"
        return f"revision {self.cell.revision}, epoch {self.cell.epoch}, from {self.cell.channel}"


@dataclass(frozen=True)
class FlowEdge:
    source: FlowNode
    target: FlowNode
    release: str  # what the step released: "stable gets R4E0"
    kind: Literal["install", "refresh", "stay", "wait"]
    via: tuple[int, ...]  # revisions a refresh moved through before its last one

    @property
    def label(self) -> str:
        what = {
            "install": "installs",
            "refresh": "refreshes",
            "stay": "stays",
            "wait": "not installed yet" if self.target.before_install else "nothing to install",
        }[self.kind]
        cell = self.target.cell
        if cell is not None and cell.offline:
            what = "offline, no refresh"
        if self.via:
            what += " via " + ", ".join(f"R{revision}" for revision in self.via)
        if cell is not None and cell.actions:  # the user's own operations before refreshing
            what = ", ".join(cell.actions) + ", " + what
        # the step's number is on the node the arrow leads to ("after step N")
        return f"{self.release} · {what}"


@dataclass(frozen=True)
class UserFlow:
    user: User
    nodes: tuple[FlowNode, ...]
    edges: tuple[FlowEdge, ...]

    @property
    def caption(self) -> str:
        return f"{self.user.name}: tracks {self.user.channel}, installs at step {self.user.start}"


@dataclass(frozen=True)
class Flows:
    table: Table
    users: tuple[UserFlow, ...]
    footnotes: tuple[Footnote, ...]


def footnotes(table: Table) -> dict[tuple[int, str], Footnote]:
    """The table's footnotes by (step, user), numbered as `table` prints them: row by row, a
    note for each cell that changed or is marked."""
    notes: dict[tuple[int, str], Footnote] = {}
    for row in table.rows:
        for user in table.plan.users:
            cell = row.cells[user.name]
            if cell is not None and (cell.changed or cell.marked):
                number = len(notes) + 1
                text = f"step {row.step.number}, {user.name}: {cell.why}"
                notes[(row.step.number, user.name)] = Footnote(
                    number, row.step.number, user.name, text
                )
    return notes


def holds_text(cell: Cell | None) -> str:
    """The cell as the table writes it, without the (!) (drawn as a mark of its own)."""
    return cell_text(cell).removesuffix(f" {MARK}")


def release_text(step: Step) -> str:
    """What the publisher did at a step: "stable gets R4E0", "beta closes", "candidate
    unreleases R7E1"."""
    action = getattr(step, "action", "release")
    if action == "close":
        return f"{step.channel} closes"
    if action == "unrelease":
        return f"{step.channel} unreleases R{step.revision}E{step.epoch}"
    return f"{step.channel} gets {released_text(step)}"


def _node_id(user: str, step: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '_', user)}-s{step}"


def user_flows(table: Table, observations: Observations | None = None) -> Flows:
    observations = observations or {}
    notes = footnotes(table)
    flows = []
    for user in table.plan.users:
        start = FlowNode(
            id=_node_id(user.name, 0),
            user=user.name,
            channel=user.channel,
            step=0,
            cell=None,
            holds=user.name,
            footnote=None,
            observation=None,
            before_install=True,
        )
        nodes: list[FlowNode] = [start]
        edges: list[FlowEdge] = []
        for row in table.rows:
            number = row.step.number
            cell = row.cells[user.name]
            node = FlowNode(
                id=_node_id(user.name, number),
                user=user.name,
                channel=user.channel,
                step=number,
                cell=cell,
                holds=holds_text(cell),
                footnote=notes.get((number, user.name)),
                observation=observations.get((number, user.name)),
                before_install=number < user.start,
            )
            before = nodes[-1]
            kind: Literal["install", "refresh", "stay", "wait"]
            if cell is None:
                kind = "wait"
            elif before.cell is None:
                kind = "install"
            elif cell.revision != before.cell.revision:
                kind = "refresh"
            else:
                kind = "stay"
            via = cell.hops[:-1] if cell is not None and kind == "refresh" else ()
            release = release_text(row.step)
            edges.append(FlowEdge(before, node, release, kind, via))
            nodes.append(node)
        flows.append(UserFlow(user, tuple(nodes), tuple(edges)))
    return Flows(table, tuple(flows), tuple(notes.values()))
