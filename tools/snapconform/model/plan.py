"""Release plans (YAML) and the transition table they produce, rendered as 004 prints it.

A plan names its channels (least risky first), its users (the channel each tracks and the step
each installs at) and its steps. A step is what the publisher does:

    - {revision: 6, epoch: 1*, channel: candidate}   # release (a known revision: a promotion)
    - {close: candidate}                              # close a channel
    - {unrelease: candidate}                          # the channel's tip goes back one release

and users may do more than refresh:

    user2: {channel: candidate, from: 1,
            switch: {5: beta},        # at step 5, before refreshing: snap switch --channel=beta
            revert: [7],              # at step 7, before refreshing: snap revert
            offline: [3, 4]}          # at steps 3 and 4: no refresh

After step i's store event, users whose `from` is i install (`snap install --channel=C`; with
nothing to install they try again at the next step) and every user installed earlier switches
and reverts as planned, then refreshes as an auto-refresh would (`snap refresh`), unless
offline. Each user is one machine: `evaluate` plays the plan through the snapd model
(snapconform.model.snapd: store_install, switch_channel, revert, refresh_all) against a store
catalog (snapconform.model.store_catalog), so the table shows what snapd does, re-refreshes and
blocked reverted-from revisions included; the footnotes give the store's reasons.

`replay_steps(table)` lists, per step, the store events and each user's snapd operations, for
replaying the plan on real snapd (`table PLAN --host URL`). Pure: YAML text in, table and text
out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from snapconform.model.epoch import Epoch, EpochError
from snapconform.model.snapd import revert
from snapconform.model.snapd_state import Outcome, SnapdState, SnapFile, StoreRequest, new_state
from snapconform.model.snapd_store import refresh_all, store_install, switch_channel
from snapconform.model.store import DEFAULT_RISKS, Answer, Policies, RefreshPath, Store, StoreError
from snapconform.model.store_catalog import StoreCatalog, StoreResult

__all__ = [
    "MARK",
    "PLAN_SNAP",
    "Cell",
    "Plan",
    "PlanError",
    "ReplayStep",
    "Row",
    "Step",
    "StoreEvent",
    "Table",
    "User",
    "UserOperation",
    "evaluate",
    "parse_plan",
    "render",
    "render_json",
    "render_markdown",
    "render_text",
    "replay_steps",
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
_USER_OPTIONAL = ("offline", "switch", "revert")
_STEP_KEYS = ("revision", "epoch", "channel")
_STEP_OPTIONAL = ("close", "unrelease")
_DECIMAL = re.compile(r"[1-9][0-9]*")
# The snap a plan's store holds (the model needs a name; real replays use their own fixtures).
PLAN_SNAP = "plan-snap"


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
    offline: frozenset[int] = frozenset()  # steps at which the user does not refresh
    switches: tuple[tuple[int, str], ...] = ()  # (step, channel): snap switch before refreshing
    reverts: frozenset[int] = frozenset()  # steps at which the user runs snap revert first

    def switch_at(self, step: int) -> str | None:
        return next((channel for number, channel in self.switches if number == step), None)


@dataclass(frozen=True)
class Step:
    """One publisher event. A release has its revision and epoch; an unrelease names the
    release it withdraws (revision and epoch); a close has neither."""

    number: int  # 1-based
    channel: str
    revision: int | None
    epoch: Epoch | None
    action: str = "release"  # "release", "close" or "unrelease"


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
    offline: bool = False  # the user did not refresh at this step
    actions: tuple[str, ...] = ()  # what the user did besides refreshing: "switch beta", "revert"


@dataclass(frozen=True)
class UserOperation:
    """One snapd operation of a user at a step, in order: kind "install" (channel: the one
    tracked), "switch" (channel: the new one), "revert" or "refresh" (`snap refresh`, as an
    auto-refresh would)."""

    user: str
    kind: str
    channel: str | None = None


@dataclass(frozen=True)
class StoreEvent:
    """What the publisher does to the store at a step (`catalog.release/close/unrelease`)."""

    kind: str  # "release", "close" or "unrelease"
    channel: str
    revision: int | None = None  # release: the revision released
    epoch: Epoch | None = None


@dataclass(frozen=True)
class Row:
    step: Step
    cells: dict[str, Cell | None] = field(default_factory=dict)  # None: not installed yet
    operations: tuple[UserOperation, ...] = ()  # what the users did at this step, in order


@dataclass(frozen=True)
class ReplayStep:
    """A step to replay on real snapd: first the store events, then the users' operations."""

    number: int
    store_events: tuple[StoreEvent, ...]
    operations: tuple[UserOperation, ...]


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

    def mapping(
        self,
        node: yaml.Node,
        entry: str | None,
        keys: Sequence[str],
        optional: Sequence[str] = (),
        optional_joint: str = "optionally",
    ) -> dict:
        if not isinstance(node, yaml.MappingNode):
            what = "must be" if entry else "the plan must be"
            raise self.fail(entry, f"{what} a mapping with {', '.join(keys)}")
        found: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, entry, "a key")
            if key not in keys and key not in optional:
                more = f", {optional_joint} {', '.join(optional)}" if optional else ""
                raise self.fail(entry, f"unknown key {_q(key)} (expected {', '.join(keys)}){more}")
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
    running = store  # the store as the steps so far left it, to check closes and unreleases
    for index, item in enumerate(node.value):
        number = index + 1
        entry = f"steps[{index}] (step {number})"
        fields = reader.mapping(item, entry, _STEP_KEYS, _STEP_OPTIONAL, "or one of")
        events = [key for key in _STEP_OPTIONAL if key in fields]
        if events:
            step, running = _parse_event(reader, fields, events, entry, number, running)
            steps.append(step)
            continue
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
            epoch = earlier.epoch if earlier and earlier.epoch else Epoch()
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
        running = running.release(channel, revision, epoch)
        steps.append(step)
    return tuple(steps)


def _parse_event(
    reader: _Reader,
    fields: dict[str, yaml.Node],
    events: list[str],
    entry: str,
    number: int,
    running: Store,
) -> tuple[Step, Store]:
    """A `close: C` or `unrelease: C` step, checked against the store the steps so far made."""
    others = [key for key in fields if key != events[0]]
    if others:
        raise reader.fail(
            entry,
            "a step releases a revision (revision, epoch, channel), closes a channel"
            f" (close: CHANNEL) or unreleases one (unrelease: CHANNEL), not {' and '.join(fields)}",
        )
    kind = events[0]
    channel = _channel(reader, fields[kind], entry, running)
    if kind == "close":
        try:
            running = running.close(channel)
        except StoreError:
            raise reader.fail(entry, f"cannot close {_q(channel)}: it is closed already") from None
        return Step(number, channel, None, None, "close"), running
    tip = running.tip(channel)
    if tip is None:
        raise reader.fail(
            entry, f"cannot unrelease {_q(channel)}: it is closed, there is nothing to unrelease"
        )
    return Step(number, channel, tip.revision, tip.epoch, "unrelease"), running.unrelease(channel)


def _step_numbers(
    reader: _Reader, node: yaml.Node, entry: str, user_start: int, step_count: int
) -> frozenset[int]:
    if not isinstance(node, yaml.SequenceNode):
        raise reader.fail(entry, "must be a list of step numbers")
    numbers: set[int] = set()
    for item in node.value:
        number = _user_step(reader, item, entry, user_start, step_count)
        if number in numbers:
            raise reader.fail(entry, f"step {number} is listed twice")
        numbers.add(number)
    return frozenset(numbers)


def _user_step(
    reader: _Reader, node: yaml.Node, entry: str, user_start: int, step_count: int
) -> int:
    text = reader.scalar(node, entry, "a step")
    if not _DECIMAL.fullmatch(text) or int(text) > step_count:
        raise reader.fail(
            entry, f"step {_q(text)} is not a step number (the steps are 1..{step_count})"
        )
    if int(text) <= user_start:
        raise reader.fail(
            entry, f"step {text} is not after the user's install at step {user_start}"
        )
    return int(text)


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
        fields = reader.mapping(value_node, entry, _USER_KEYS, _USER_OPTIONAL)
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
        start = int(start_text)
        offline = frozenset[int]()
        reverts = frozenset[int]()
        switches: list[tuple[int, str]] = []
        if "offline" in fields:
            offline = _step_numbers(
                reader, fields["offline"], f"{entry}.offline", start, step_count
            )
        if "revert" in fields:
            reverts = _step_numbers(reader, fields["revert"], f"{entry}.revert", start, step_count)
        if "switch" in fields:
            where = f"{entry}.switch"
            node_switch = fields["switch"]
            if not isinstance(node_switch, yaml.MappingNode):
                raise reader.fail(where, "must be a mapping of step number to channel")
            for step_node, channel_node in node_switch.value:
                number = _user_step(reader, step_node, where, start, step_count)
                if any(number == seen for seen, _ in switches):
                    raise reader.fail(where, f"step {number} is given twice")
                switches.append((number, _channel(reader, channel_node, where, store)))
        users.append(User(name, channel, start, offline, tuple(sorted(switches)), reverts))
    return tuple(users)


# -- playing ---------------------------------------------------------------------------------


def _file(revision: int, epoch: Epoch) -> SnapFile:
    """The plan's revision as a store file: no hooks, its epoch as snap.yaml text."""
    return SnapFile(PLAN_SNAP, str(revision), epoch_yaml=str(epoch))


def _apply(catalog: StoreCatalog, step: Step) -> StoreCatalog:
    if step.action == "close":
        return catalog.close(PLAN_SNAP, step.channel)
    if step.action == "unrelease":
        return catalog.unrelease(PLAN_SNAP, step.channel)
    assert step.revision is not None and step.epoch is not None
    return catalog.release(PLAN_SNAP, step.channel, step.revision, _file(step.revision, step.epoch))


class _Recorder:
    """The honest store, remembering each result it gave (the footnotes are its reasons)."""

    def __init__(self, catalog: StoreCatalog) -> None:
        self.catalog = catalog
        self.results: list[StoreResult] = []

    def __call__(self, request: StoreRequest) -> tuple[StoreResult, ...]:
        results = self.catalog.answer(request)
        self.results += results
        return results


def _answer(result: StoreResult) -> Answer:
    return Answer(result.revision, result.epoch, result.effective_channel, result.why)


@dataclass
class _Machine:
    """One user's machine: its snapd state and the channel it tracks (a model name)."""

    state: SnapdState
    tracking: str


def evaluate(plan: Plan, policies: Policies | None = None) -> Table:
    """Play the plan through the snapd model, each user on a machine of their own."""
    catalog = StoreCatalog(risks=plan.channels, policies=policies or Policies())
    machines: dict[str, _Machine] = {}
    current: dict[str, Cell] = {}
    rows: list[Row] = []
    for step in plan.steps:
        catalog = _apply(catalog, step)
        store = catalog.store_of(PLAN_SNAP)
        cells: dict[str, Cell | None] = {}
        operations: list[UserOperation] = []
        for user in plan.users:
            if user.start > step.number:
                cells[user.name] = None
                continue
            before = current.get(user.name)
            if before is None:
                operations.append(UserOperation(user.name, "install", user.channel))
                cell, machine = _install(catalog, user)
                if machine is not None:
                    machines[user.name] = machine
            else:
                cell = _step_user(
                    catalog, store, user, step, before, machines[user.name], operations
                )
            if cell is not None:
                current[user.name] = cell
            cells[user.name] = cell
        rows.append(Row(step, cells, tuple(operations)))
    return Table(plan, tuple(rows))


def _install(catalog: StoreCatalog, user: User) -> tuple[Cell | None, _Machine | None]:
    recorder = _Recorder(catalog)
    outcome = store_install(new_state(), catalog, PLAN_SNAP, channel=user.channel, store=recorder)
    if not outcome.ok:
        return None, None  # nothing to install yet: the user tries again at the next step
    result = recorder.results[-1]
    assert result.revision is not None and result.epoch is not None
    # New users are never marked: they always get the latest epoch, and 004 marks none.
    channel = result.effective_channel or user.channel
    cell = Cell(result.revision, result.epoch, channel, result.why, True, False)
    return cell, _Machine(outcome.state, user.channel)


def _step_user(
    catalog: StoreCatalog,
    store: Store,
    user: User,
    step: Step,
    before: Cell,
    machine: _Machine,
    operations: list[UserOperation],
) -> Cell:
    """A user after the step's store event: switch, revert, then refresh unless offline."""
    actions: list[str] = []
    said: list[str] = []
    state = machine.state
    switch_to = user.switch_at(step.number)
    if switch_to is not None:
        operations.append(UserOperation(user.name, "switch", switch_to))
        state = _ok(switch_channel(state, PLAN_SNAP, switch_to))
        machine.tracking = switch_to
        actions.append(f"switch {switch_to}")
        said.append(f"switched to {switch_to}")
    if step.number in user.reverts:
        operations.append(UserOperation(user.name, "revert"))
        reverted = revert(state, PLAN_SNAP)
        actions.append("revert")
        if reverted.ok:
            state = reverted.state
            said.append(f"reverted to R{_current(state)} (snap revert)")
        else:
            said.append("snap revert had nothing to revert to")
    revision, epoch = _current(state), _current_epoch(state)
    if step.number in user.offline:
        machine.state = state
        why = "; ".join([*said, "offline, so no refresh"])
        return Cell(
            revision,
            epoch,
            before.channel,
            why,
            revision != before.revision,
            False,
            offline=True,
            actions=tuple(actions),
        )
    operations.append(UserOperation(user.name, "refresh"))
    recorder = _Recorder(catalog)
    outcome = refresh_all(state, catalog, store=recorder)
    if outcome.error is not None and outcome.error.exit_code != 0:
        raise PlanError(f"the model cannot play this plan: {outcome.error.message}")
    machine.state = outcome.state
    after = outcome.state.instance(PLAN_SNAP)
    assert after is not None
    path = _path(recorder.results, revision, int(after.current))
    final = path.final
    why = path.why
    if not path.hops and final.revision is not None and str(final.revision) in _blocked(state):
        why += (
            f"; but the user reverted from R{final.revision}, and a refresh of all snaps does not"
            " take a reverted-from revision back"
        )
    if said:
        why = "; then ".join([*said, why])
    served_by = final.channel if final.found else None
    new_revision = int(after.current)
    return Cell(
        new_revision,
        after.current_revision.epoch,
        served_by or before.channel,
        why,
        changed=new_revision != before.revision,
        marked=step.action == "release"
        and _epochs_let_less_risky_decide(store, machine.tracking, step, before, served_by),
        hops=tuple(h.revision for h in path.hops if h.revision is not None),
        actions=tuple(actions),
    )


def _ok(outcome: Outcome) -> SnapdState:
    if outcome.error is not None:
        raise PlanError(f"the model cannot play this plan: {outcome.error.message}")
    return outcome.state


def _current(state: SnapdState) -> int:
    inst = state.instance(PLAN_SNAP)
    assert inst is not None
    return int(inst.current)


def _current_epoch(state: SnapdState) -> Epoch:
    inst = state.instance(PLAN_SNAP)
    assert inst is not None
    return inst.current_revision.epoch


def _blocked(state: SnapdState) -> tuple[str, ...]:
    inst = state.instance(PLAN_SNAP)
    return inst.blocked if inst else ()


def _path(results: list[StoreResult], start: int, end: int) -> RefreshPath:
    """The store answers snapd acted on: each but the last was followed by a re-refresh
    request, so it moved the snap; the last moved it if the snap ended there."""
    hops: list[Answer] = []
    here = start
    for index, result in enumerate(results):
        moved = index + 1 < len(results) or (result.revision == end and end != here)
        if moved and result.revision is not None:
            hops.append(_answer(result))
            here = result.revision
    final = hops[-1] if hops else _answer(results[0])
    return RefreshPath(tuple(hops), final)


def _epochs_let_less_risky_decide(
    store: Store, tracking: str, step: Step, before: Cell, served_by: str | None
) -> bool:
    """004's (!): this step set the user's channel against a less risky one and epochs decided.

    Either the step released to the channel the user follows a revision that cannot read their
    data, and a less risky channel serves them instead (004 step 3, user 2); or it released to a
    less risky channel a revision that can read their data and that they do not have: they take
    it when their own channel has nothing readable (step 4, user 2), else they stay (step 5,
    user 3). An epoch merely hiding a release in the user's own channel, with nothing less risky
    to turn to, is not marked (004 step 5, user 1).
    """
    followed = store.follows(tracking)
    if followed is None or step.epoch is None:
        return False
    less_risky = store.less_risky(followed)
    readable = step.epoch.can_read(before.epoch)
    if step.channel == followed:
        return not readable and served_by in less_risky
    return step.channel in less_risky and readable and step.revision != before.revision


def replay_steps(table: Table) -> tuple[ReplayStep, ...]:
    """Per step, what to do on real snapd: the store events, then each user's operations in the
    order the model played them (an install is repeated while nothing could be installed)."""
    steps = []
    for row in table.rows:
        step = row.step
        event = StoreEvent(
            step.action,
            step.channel,
            step.revision if step.action == "release" else None,
            step.epoch if step.action == "release" else None,
        )
        steps.append(ReplayStep(step.number, (event,), row.operations))
    return tuple(steps)


# -- rendering -------------------------------------------------------------------------------


def released_text(step: Step) -> str:
    """A release as 004 writes it: R3E1, R6E1*; a close "closed", an unrelease "R7E1 unreleased"."""
    if step.action == "close":
        return "closed"
    text = f"R{step.revision}E{step.epoch}"
    return f"{text} unreleased" if step.action == "unrelease" else text


def cell_text(cell: Cell | None) -> str:
    """A user as 004 writes them: R6E1 for a user on R6E1* (the epoch of the data they have)."""
    if cell is None:
        return "-"
    data = ",".join(map(str, cell.epoch.write))
    text = f"R{cell.revision}E{data}"
    if cell.offline:
        text += " (offline)"
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
            users[user.name] = None if cell is None else _cell_json(cell)
        released: dict[str, object] = {"channel": row.step.channel}
        if row.step.action != "release":
            released["event"] = row.step.action
        if row.step.revision is not None:
            released["revision"] = row.step.revision
            released["epoch"] = str(row.step.epoch)
        steps.append({"step": row.step.number, "released": released, "users": users})
    return json.dumps({"steps": steps}, indent=2, ensure_ascii=False) + "\n"


def _cell_json(cell: Cell) -> dict[str, object]:
    data: dict[str, object] = {
        "revision": cell.revision,
        "epoch": str(cell.epoch),
        "channel": cell.channel,
        "why": cell.why,
        "changed": cell.changed,
        "marked": cell.marked,
        "hops": list(cell.hops),
    }
    if cell.offline:
        data["offline"] = True
    if cell.actions:
        data["actions"] = list(cell.actions)
    return data


def render(table: Table, fmt: str) -> str:
    renderers = {"text": render_text, "markdown": render_markdown, "json": render_json}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return renderers[fmt](table)
