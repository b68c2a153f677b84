"""Release plans (YAML) and the transition table they produce, rendered as 004 prints it.

A plan names its channels (least risky first), its users (the channel each tracks and the step
each installs at) and its steps (each releases one revision to one channel; re-releasing a known
revision is a promotion). After step i's release, users whose `from` is i install and every user
installed earlier refreshes. Pure: YAML text in, table and text out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from snapconform.model.epoch import Epoch, EpochError
from snapconform.model.store import DEFAULT_RISKS, Answer, Policies, Store, StoreError

__all__ = [
    "MARK",
    "Cell",
    "Plan",
    "PlanError",
    "Row",
    "Step",
    "Table",
    "User",
    "evaluate",
    "parse_plan",
    "render",
    "render_json",
    "render_markdown",
    "render_text",
]

MARK = "(!)"
MARK_LEGEND = (
    f"{MARK} marks where epochs let a less risky channel decide for a user: a release they "
    "cannot read went to their channel and a less risky one serves them instead, or a release "
    "they can read went to a less risky channel (taken only if their channel has none)."
)
FORMATS = ("text", "markdown", "json")

_TOP_KEYS = ("channels", "users", "steps")
_USER_KEYS = ("channel", "from")
_STEP_KEYS = ("revision", "epoch", "channel")
_DECIMAL = re.compile(r"[1-9][0-9]*")


def _q(text: str) -> str:
    """Quote a name or value from the plan for a message."""
    return json.dumps(text, ensure_ascii=False)


class PlanError(ValueError):
    """A plan that cannot be played; str() is one line naming the file, the entry, the problem."""


@dataclass(frozen=True)
class User:
    name: str
    channel: str
    start: int  # the step the user installs at (1-based)


@dataclass(frozen=True)
class Step:
    number: int  # 1-based
    channel: str
    revision: int
    epoch: Epoch


@dataclass(frozen=True)
class Plan:
    channels: tuple[str, ...]
    users: tuple[User, ...]
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Cell:
    """A user after a step: the revision they have and why."""

    revision: int
    epoch: Epoch
    channel: str
    why: str
    changed: bool  # installed or moved at this step
    marked: bool  # epochs changed the outcome (see MARK_LEGEND)
    hops: tuple[int, ...] = ()  # revisions snapd moved through in this refresh, in order


@dataclass(frozen=True)
class Row:
    step: Step
    cells: dict[str, Cell | None] = field(default_factory=dict)  # None: not installed yet


@dataclass(frozen=True)
class Table:
    plan: Plan
    rows: tuple[Row, ...]


# -- parsing ---------------------------------------------------------------------------------


class _Reader:
    """Walks the composed YAML, turning each problem into one PlanError line."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename

    def fail(self, entry: str | None, problem: str) -> PlanError:
        where = f"{entry}: " if entry else ""
        line = f"{self.filename}: {where}{problem}"
        return PlanError(" ".join(line.split()))  # always one line

    def source(self, node: yaml.Node) -> str:
        """The text of a node as written (for messages)."""
        return self.text[node.start_mark.index : node.end_mark.index].strip()

    def mapping(self, node: yaml.Node, entry: str | None, keys: Sequence[str]) -> dict:
        if not isinstance(node, yaml.MappingNode):
            what = "must be" if entry else "the plan must be"
            raise self.fail(entry, f"{what} a mapping with {', '.join(keys)}")
        found: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, entry, "a key")
            if key not in keys:
                raise self.fail(entry, f"unknown key {_q(key)} (expected {', '.join(keys)})")
            if key in found:
                raise self.fail(entry, f"{_q(key)} is given twice")
            found[key] = value_node
        return found

    def scalar(self, node: yaml.Node, entry: str | None, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null"):
            raise self.fail(entry, f"{what} must be a plain value, not {_q(self.source(node))}")
        return str(node.value)

    def number(self, node: yaml.Node, entry: str, what: str) -> int:
        text = self.scalar(node, entry, what)
        if not _DECIMAL.fullmatch(text):
            raise self.fail(entry, f"{what} must be a positive whole number, not {_q(text)}")
        return int(text)


def parse_plan(text: str, filename: str) -> Plan:
    """A plan from its YAML text; `filename` is only used in messages."""
    reader = _Reader(text, filename)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise reader.fail(where, f"malformed YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise reader.fail(None, f"malformed YAML: {exc}") from None
    if root is None:
        raise reader.fail(None, "the plan is empty (it needs users and steps)")
    top = reader.mapping(root, None, _TOP_KEYS)
    for key in ("users", "steps"):
        if key not in top:
            raise reader.fail(None, f"no {_q(key)} (a plan needs users and steps)")

    channels = _parse_channels(reader, top.get("channels"))
    try:
        store = Store(risks=channels)
    except StoreError as exc:
        raise reader.fail("channels", str(exc)) from None
    steps = _parse_steps(reader, top["steps"], store)
    users = _parse_users(reader, top["users"], store, len(steps))
    return Plan(channels, users, steps)


def _parse_channels(reader: _Reader, node: yaml.Node | None) -> tuple[str, ...]:
    if node is None:
        return DEFAULT_RISKS
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise reader.fail("channels", "must be a non-empty list of risks, least risky first")
    names: list[str] = []
    for index, item in enumerate(node.value):
        entry = f"channels[{index}]"
        name = reader.scalar(item, entry, "a channel")
        if not name or "/" in name:
            raise reader.fail(entry, f"a channel is a plain risk name, not {_q(name)}")
        if name in names:
            raise reader.fail(entry, f"channel {_q(name)} is listed twice")
        names.append(name)
    return tuple(names)


def _channel(reader: _Reader, node: yaml.Node, entry: str, store: Store) -> str:
    name = reader.scalar(node, entry, "channel")
    try:
        channel = store.channel(name)
    except StoreError:
        channel = None
    # A plan's table has a column per channel: other tracks have no place in it.
    if channel is None or channel not in store.risks:
        known = ", ".join(store.risks)
        raise reader.fail(entry, f"unknown channel {_q(name)} (channels: {known})")
    return channel


def _parse_steps(reader: _Reader, node: yaml.Node, store: Store) -> tuple[Step, ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise reader.fail("steps", "must be a non-empty list of {revision, epoch, channel}")
    steps: list[Step] = []
    first_release: dict[int, Step] = {}
    for index, item in enumerate(node.value):
        number = index + 1
        entry = f"steps[{index}] (step {number})"
        fields = reader.mapping(item, entry, _STEP_KEYS)
        for key in ("revision", "channel"):
            if key not in fields:
                raise reader.fail(entry, f"no {_q(key)}")
        revision = reader.number(fields["revision"], entry, "revision")
        channel = _channel(reader, fields["channel"], entry, store)
        earlier = first_release.get(revision)
        epoch_node = fields.get("epoch")
        if epoch_node is None:
            # Omitted: a promotion keeps the revision's epoch; a new revision is epoch 0, as a
            # snap.yaml without `epoch:` is.
            epoch = earlier.epoch if earlier else Epoch()
        else:
            try:
                epoch = Epoch.from_yaml_node(epoch_node)
            except EpochError as exc:
                written = reader.source(epoch_node)
                raise reader.fail(entry, f"invalid epoch {_q(written)}: {exc}") from None
            if earlier is not None and earlier.epoch != epoch:
                written = reader.source(epoch_node)
                shown = written if written[:1] in ("'", '"') else _q(written or "null")
                raise reader.fail(
                    entry,
                    f"revision {revision} was released with epoch {earlier.epoch} at step"
                    f" {earlier.number}, not {shown}",
                )
        step = Step(number, channel, revision, epoch)
        first_release.setdefault(revision, step)
        steps.append(step)
    return tuple(steps)


def _parse_users(
    reader: _Reader, node: yaml.Node, store: Store, step_count: int
) -> tuple[User, ...]:
    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise reader.fail("users", "must be a mapping of user name to {channel, from}")
    users: list[User] = []
    for key_node, value_node in node.value:
        name = reader.scalar(key_node, "users", "a user name")
        entry = f"users.{name}"
        if any(user.name == name for user in users):
            raise reader.fail(entry, "is given twice")
        fields = reader.mapping(value_node, entry, _USER_KEYS)
        if "channel" not in fields:
            raise reader.fail(entry, "no channel (the channel this user tracks)")
        if "from" not in fields:
            raise reader.fail(entry, 'no "from" (the step this user installs at)')
        channel = _channel(reader, fields["channel"], entry, store)
        start_text = reader.scalar(fields["from"], entry, "from")
        if not re.fullmatch(r"[0-9]+", start_text):
            raise reader.fail(entry, f"from must be a step number, not {_q(start_text)}")
        if not _DECIMAL.fullmatch(start_text) or int(start_text) > step_count:
            raise reader.fail(
                entry, f"from {start_text} is out of range (the steps are 1..{step_count})"
            )
        users.append(User(name, channel, int(start_text)))
    return tuple(users)


# -- playing ---------------------------------------------------------------------------------


def evaluate(plan: Plan, policies: Policies | None = None) -> Table:
    """Play the plan against the store model: one row per step."""
    store = Store(risks=plan.channels, policies=policies or Policies())
    current: dict[str, Cell] = {}
    rows: list[Row] = []
    for step in plan.steps:
        store = store.release(step.channel, step.revision, step.epoch)
        cells: dict[str, Cell | None] = {}
        for user in plan.users:
            if user.start > step.number:
                cells[user.name] = None
                continue
            before = current.get(user.name)
            cell = _install(store, user) if before is None else _refresh(store, user, step, before)
            if cell is not None:
                current[user.name] = cell
            cells[user.name] = cell
        rows.append(Row(step, cells))
    return Table(plan, tuple(rows))


def _install(store: Store, user: User) -> Cell | None:
    answer = store.fresh_install(user.channel)
    if answer.revision is None or answer.epoch is None or answer.channel is None:
        return None  # nothing to install yet: the user tries again at the next step
    # New users are never marked: they always get the latest epoch, and 004 marks none.
    return Cell(answer.revision, answer.epoch, answer.channel, answer.why, True, False)


def _refresh(store: Store, user: User, step: Step, before: Cell) -> Cell:
    path = store.refresh_path(user.channel, before.revision, before.epoch)
    final: Answer = path.final
    if path.hops:
        assert final.revision is not None and final.epoch is not None
        revision, epoch = final.revision, final.epoch
    else:
        revision, epoch = before.revision, before.epoch
    served_by = final.channel if final.found else None
    return Cell(
        revision,
        epoch,
        served_by or before.channel,
        path.why,
        changed=revision != before.revision,
        marked=_epochs_let_less_risky_decide(store, user, step, before, served_by),
        hops=tuple(h.revision for h in path.hops if h.revision is not None),
    )


def _epochs_let_less_risky_decide(
    store: Store, user: User, step: Step, before: Cell, served_by: str | None
) -> bool:
    """004's (!): this step set the user's channel against a less risky one and epochs decided.

    Either the step released to the channel the user follows a revision that cannot read their
    data, and a less risky channel serves them instead (004 step 3, user 2); or it released to a
    less risky channel a revision that can read their data and that they do not have: they take
    it when their own channel has nothing readable (step 4, user 2), else they stay (step 5,
    user 3). An epoch merely hiding a release in the user's own channel, with nothing less risky
    to turn to, is not marked (004 step 5, user 1).
    """
    followed = store.follows(user.channel)
    if followed is None:
        return False
    less_risky = store.less_risky(followed)
    readable = step.epoch.can_read(before.epoch)
    if step.channel == followed:
        return not readable and served_by in less_risky
    return step.channel in less_risky and readable and step.revision != before.revision


# -- rendering -------------------------------------------------------------------------------


def released_text(step: Step) -> str:
    """A release as 004 writes it: R3E1, R6E1*."""
    return f"R{step.revision}E{step.epoch}"


def cell_text(cell: Cell | None) -> str:
    """A user as 004 writes them: R6E1 for a user on R6E1* (the epoch of the data they have)."""
    if cell is None:
        return "-"
    data = ",".join(map(str, cell.epoch.write))
    text = f"R{cell.revision}E{data}"
    return f"{text} {MARK}" if cell.marked else text


def _grid(table: Table) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows of cell texts (with footnote numbers), and the footnotes."""
    plan = table.plan
    header = ["step"]
    header += [f"{channel} releases" for channel in plan.channels]
    header += [f"{user.channel} for {user.name}" for user in plan.users]
    notes: list[str] = []
    lines: list[list[str]] = []
    for row in table.rows:
        line = [str(row.step.number)]
        line += [released_text(row.step) if row.step.channel == c else "-" for c in plan.channels]
        for user in plan.users:
            cell = row.cells[user.name]
            text = cell_text(cell)
            if cell is not None and (cell.changed or cell.marked):
                notes.append(f"step {row.step.number}, {user.name}: {cell.why}")
                text += f" [{len(notes)}]"
            line.append(text)
        lines.append(line)
    return header, lines, notes


def render_text(table: Table) -> str:
    header, lines, notes = _grid(table)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    out = [
        "  ".join(t.ljust(w) for t, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *lines]
    ]
    out += ["", MARK_LEGEND, ""]
    out += [f"[{n}] {note}" for n, note in enumerate(notes, 1)]
    return "\n".join(out) + "\n"


def render_markdown(table: Table) -> str:
    header, lines, notes = _grid(table)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    out += ["", MARK_LEGEND, ""]
    out += [f"{n}. {note}" for n, note in enumerate(notes, 1)]
    return "\n".join(out) + "\n"


def render_json(table: Table) -> str:
    steps = []
    for row in table.rows:
        users: dict[str, dict | None] = {}
        for user in table.plan.users:
            cell = row.cells[user.name]
            users[user.name] = (
                None
                if cell is None
                else {
                    "revision": cell.revision,
                    "epoch": str(cell.epoch),
                    "channel": cell.channel,
                    "why": cell.why,
                    "changed": cell.changed,
                    "marked": cell.marked,
                    "hops": list(cell.hops),
                }
            )
        released = {
            "channel": row.step.channel,
            "revision": row.step.revision,
            "epoch": str(row.step.epoch),
        }
        steps.append({"step": row.step.number, "released": released, "users": users})
    return json.dumps({"steps": steps}, indent=2, ensure_ascii=False) + "\n"


def render(table: Table, fmt: str) -> str:
    renderers = {"text": render_text, "markdown": render_markdown, "json": render_json}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return renderers[fmt](table)
