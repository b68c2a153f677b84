"""A release plan replayed on real snapd behind the served store (`table PLAN --host URL`).

The plan's users become parallel instances `SNAP_KEY` of one fresh snap name on one snapd (the
store tier of the host), so one real snapd stands in for every user's machine. Each plan step
is replayed as: the publisher's store events (Release, CloseChannel, Unrelease), each user's own
operations in the order `replay_steps` lists them (install from their channel, switch,
revert), then the refresh: one `snap refresh` (RefreshAll, as an auto-refresh would) when
every installed user is online, else `snap refresh SNAP_KEY` for each online user.

Every real step goes through one ConformanceRun, so it is also predicted by the snapd model,
observed and compared (its verdict is kept per plan step), and the run's history is saved.
After each plan step every user's cell of the plan's table is compared with what snapd holds
(revision and epoch of the current revision): confirmed, or a divergence with both values.

`render_observed(replay, fmt)` writes the table with those marks (text, markdown, json);
drawings take `replay.cells` through the command (the reports room draws, conformance does not
import it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapconform.conformance.artifacts import RunArtifacts
from snapconform.conformance.operations import Operation, Revert, SetSystem
from snapconform.conformance.session import (
    ConformanceRun,
    HostSession,
    NameAllocator,
    StepRecord,
    store_tier_url,
)
from snapconform.conformance.store_steps import (
    CloseChannel,
    RefreshAll,
    Release,
    StoreInstall,
    StoreRefresh,
    Switch,
    Unrelease,
)
from snapconform.harness.observe import Observation
from snapconform.hosts.base import HostError
from snapconform.model.epoch import Epoch, EpochError
from snapconform.model.plan import (
    MARK_LEGEND,
    Cell,
    PlanError,
    ReplayStep,
    StoreEvent,
    Table,
    UserOperation,
    cell_text,
    released_text,
    replay_steps,
)
from snapconform.model.plan import (
    render_json as render_model_json,
)
from snapconform.model.snapd import SnapFile
from snapconform.model.store import DEFAULT_RISKS

__all__ = [
    "CONFIRMED",
    "DIVERGENCE",
    "FORMATS",
    "CellVerdict",
    "ObservedCell",
    "Replay",
    "StepCheck",
    "instance_keys",
    "render_observed",
    "replay_plan",
    "verdict_line",
]

CONFIRMED = "confirmed"
DIVERGENCE = "divergence"
FORMATS = ("text", "markdown", "json")
SNAP_PREFIX = "sc-plan"
# snap/validate.go: an instance key is 1 to 10 of a-z and 0-9.
INSTANCE_KEY = re.compile(r"[a-z0-9]{1,10}")
BLOCK_NOTE = (
    "`snap refresh NAME` takes a reverted-from revision back; only `snap refresh` with no "
    "names (and auto-refresh) leaves it out (snapd sets the refresh's Block only when "
    "refreshing all: overlord/snapstate/storehelpers.go), and the table assumes an "
    "auto-refresh, so a user who reverted may diverge at those steps"
)

Say = Callable[[str], None]


def _quiet(message: str) -> None:
    return None


@dataclass(frozen=True)
class ObservedCell:
    """What snapd holds for one user after a step (revision None: not installed)."""

    revision: int | None
    epoch: Epoch | None = None
    tracking: str | None = None

    @property
    def text(self) -> str:
        """Written as the table writes a cell: R6E1 (the epoch of the data), "-" when absent."""
        if self.revision is None or self.epoch is None:
            return "-"
        return f"R{self.revision}E{','.join(map(str, self.epoch.write))}"

    def to_json(self) -> dict[str, Any]:
        if self.revision is None:
            return {"installed": False, "text": self.text}
        return {
            "installed": True,
            "revision": self.revision,
            "epoch": str(self.epoch),
            "tracking": self.tracking,
            "text": self.text,
        }


@dataclass(frozen=True)
class CellVerdict:
    """One cell of the table against snapd: the model's value, snapd's, and whether they agree
    (same revision, same epoch; both absent also agrees)."""

    step: int
    user: str
    expected: Cell | None
    observed: ObservedCell

    @property
    def expected_text(self) -> str:
        return _plain_text(self.expected)

    @property
    def status(self) -> str:
        cell = self.expected
        if cell is None:
            return CONFIRMED if self.observed.revision is None else DIVERGENCE
        same = self.observed.revision == cell.revision and self.observed.epoch == cell.epoch
        return CONFIRMED if same else DIVERGENCE

    @property
    def confirmed(self) -> bool:
        return self.status == CONFIRMED

    @property
    def shown(self) -> str:
        """snapd's value, told apart from the model's even when both write the same text."""
        text = self.observed.text
        if text == self.expected_text and self.observed.epoch is not None:
            text += f" (epoch {self.observed.epoch})"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, **self.observed.to_json()}


@dataclass
class StepCheck:
    """The model-checked real steps one plan step took (store events, users' operations)."""

    number: int
    records: list[StepRecord] = field(default_factory=list)
    refresh: str = "none"  # "all" (snap refresh), "each" (snap refresh NAME), "none"

    @property
    def verdict(self) -> str:
        bad = [record.verdict for record in self.records if record.verdict != "pass"]
        return bad[0] if bad else "pass"

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "refresh": self.refresh,
            "verdict": self.verdict,
            "commands": [
                {
                    "command": record.command,
                    "verdict": record.verdict,
                    "mismatches": [mismatch.to_json() for mismatch in record.mismatches],
                    "duration": round(record.duration, 3),
                }
                for record in self.records
            ],
        }


@dataclass
class Replay:
    """A plan's table replayed on one host."""

    table: Table
    host: dict[str, str]
    snap: str
    instances: dict[str, str]  # user -> SNAP_KEY
    mapped: dict[str, str]  # users whose name is not a valid instance key -> the key used
    cells: dict[tuple[int, str], CellVerdict] = field(default_factory=dict)
    steps: list[StepCheck] = field(default_factory=list)
    setup: StepCheck = field(default_factory=lambda: StepCheck(0))  # parallel instances on
    history: Path | None = None
    seconds: float = 0.0

    @property
    def snapd(self) -> str:
        """Which snapd ran: its version and build (`archive`, `testkeys VERSION`)."""
        version = self.host.get("snapd", "?").splitlines()[0].split()
        shown = version[1] if len(version) > 1 else " ".join(version)
        build = self.host.get("snapd_build", "?")
        return f"snapd {shown} ({build}) on {self.host.get('url', '?')}"

    @property
    def each_steps(self) -> list[int]:
        return [check.number for check in self.steps if check.refresh == "each"]

    @property
    def cell_divergences(self) -> list[CellVerdict]:
        return [verdict for verdict in self.cells.values() if not verdict.confirmed]

    @property
    def records(self) -> list[StepRecord]:
        """Every real step, in order (the setup first)."""
        return [r for check in [self.setup, *self.steps] for r in check.records]

    @property
    def step_divergences(self) -> list[StepRecord]:
        return [record for record in self.records if record.verdict != "pass"]

    @property
    def diverged(self) -> bool:
        return bool(self.cell_divergences or self.step_divergences)

    def notes(self) -> list[str]:
        """What a reader needs to know about how the plan was replayed."""
        checked = len(self.records)
        lines = [
            f"replayed on {self.snapd}, served store inside the host; each user is a parallel "
            f"instance of {self.snap} on that one snapd: "
            + ", ".join(f"{user} = {instance}" for user, instance in self.instances.items()),
        ]
        for user, key in self.mapped.items():
            lines.append(
                f"user {user!r} is not a valid instance key (1-10 of a-z, 0-9: snap/validate.go),"
                f" so it runs as {self.snap}_{key}"
            )
        if self.each_steps:
            steps = ", ".join(map(str, self.each_steps))
            lines.append(
                f"at step(s) {steps} some installed user was offline, so each online user ran "
                f"`snap refresh {self.snap}_KEY` instead of `snap refresh`: " + BLOCK_NOTE
            )
        passed = checked - len(self.step_divergences)
        lines.append(
            f"{checked} real steps, each model-checked: {passed} pass, {checked - passed} not"
            + (f"; history: {self.history}" if self.history else "")
        )
        cells = len(self.cells)
        wrong = len(self.cell_divergences)
        lines.append(f"{cells - wrong} of {cells} cells confirmed by snapd, {wrong} diverged")
        return lines


def instance_keys(users: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(user -> instance key, users mapped to another key). A user named as a valid instance
    key keeps it; others get their letters and digits, lowercased (at most 10), or uN."""
    keys: dict[str, str] = {}
    mapped: dict[str, str] = {}
    taken = {user for user in users if INSTANCE_KEY.fullmatch(user)}
    for index, user in enumerate(users, 1):
        if INSTANCE_KEY.fullmatch(user):
            keys[user] = user
            continue
        key = re.sub(r"[^a-z0-9]", "", user.lower())[:10]
        number = index
        while not key or key in taken:
            key, number = f"u{number}", number + 1
        taken.add(key)
        keys[user] = mapped[user] = key
    return keys, mapped


def check_replayable(table: Table, filename: str) -> None:
    """A PlanError (one line) when real snapd cannot hold the plan's channels: snapd knows the
    risks stable, candidate, beta and edge, in that order (snap/channel/channel.go)."""
    channels = table.plan.channels
    positions = [DEFAULT_RISKS.index(c) if c in DEFAULT_RISKS else -1 for c in channels]
    if -1 in positions or positions != sorted(positions):
        raise PlanError(
            f"{filename}: channels: snapd knows only the risks {', '.join(DEFAULT_RISKS)}, least"
            f" risky first; {', '.join(channels)} cannot be replayed on a host"
        )


class _Replayer:
    def __init__(self, table: Table, run: ConformanceRun, snap: str, keys: dict[str, str]) -> None:
        self.table = table
        self.run = run
        self.snap = snap
        self.instances = {user: f"{snap}_{key}" for user, key in keys.items()}
        self.files: dict[int, SnapFile] = {}
        self.installed: set[str] = set()  # users snapd has the snap for (per the model)

    def file(self, revision: int, epoch: Epoch) -> SnapFile:
        """The plan's revision as a fixture: version N, its epoch as snap.yaml text."""
        found = self.files.get(revision)
        if found is None:
            found = self.files[revision] = SnapFile(self.snap, str(revision), str(epoch))
        return found

    def event(self, event: StoreEvent) -> Operation:
        if event.kind == "close":
            return CloseChannel(self.snap, event.channel)
        if event.kind == "unrelease":
            return Unrelease(self.snap, event.channel)
        assert event.revision is not None and event.epoch is not None
        return Release(self.file(event.revision, event.epoch), event.channel, event.revision)

    def user_operation(self, operation: UserOperation) -> Operation | None:
        instance = self.instances[operation.user]
        if operation.kind == "install":
            return StoreInstall(instance, channel=operation.channel)
        if operation.kind == "switch":
            assert operation.channel is not None
            return Switch(instance, operation.channel)
        if operation.kind == "revert":
            return Revert(instance)
        return None  # the refresh: decided for all users together

    def refreshes(self, online: list[str]) -> tuple[str, list[Operation]]:
        """`snap refresh` when every installed user refreshes, else one per online user."""
        if not online:
            return "none", []
        offline = self.installed - set(online)
        if not offline:
            watch = tuple(
                self.instances[user.name]
                for user in self.table.plan.users
                if user.name in self.installed or user.name in online
            )
            return "all", [RefreshAll(watch=watch)]
        return "each", [StoreRefresh(self.instances[user]) for user in online]

    def observe(self, row_number: int, observation: Observation | None) -> list[CellVerdict]:
        row = self.table.rows[row_number - 1]
        verdicts = []
        for user in self.table.plan.users:
            seen = _observed(observation, self.instances[user.name])
            verdicts.append(CellVerdict(row.step.number, user.name, row.cells[user.name], seen))
            if row.cells[user.name] is not None:
                self.installed.add(user.name)
        return verdicts


def _observed(observation: Observation | None, instance: str) -> ObservedCell:
    if observation is None or instance not in observation.instances:
        return ObservedCell(None)
    seen = observation.instances[instance]
    current = seen.current
    if not seen.installed or current is None:
        return ObservedCell(None)
    revision = seen.revision(current)
    text = revision.epoch_yaml if revision is not None else None
    try:
        epoch = Epoch() if text is None else Epoch.parse_yaml(text)
    except EpochError:
        epoch = None
    number = int(current) if current.isdigit() else None
    return ObservedCell(number, epoch, seen.tracking_channel)


def replay_plan(
    table: Table,
    host_url: str,
    artifacts: Path,
    *,
    cache_dir: Path | None = None,
    say: Say = _quiet,
) -> Replay:
    """Replay `table`'s plan on the store tier of `host_url`; the host is stopped on return
    (also on an exception or Ctrl-C). HostError: the host failed (never a verdict on snapd)."""
    url = store_tier_url(host_url)
    users = [user.name for user in table.plan.users]
    keys, mapped = instance_keys(users)
    snap = NameAllocator(SNAP_PREFIX).fresh()
    started = time.monotonic()
    session = HostSession(url, artifacts=artifacts, cache_dir=cache_dir)
    try:
        say(f"starting {url} (a test-keys snapd build and its image are made on first use)")
        session.start()
        session.served_store()  # the test keys and the carrier, or why there are none
        run = ConformanceRun(session, stop_on_divergence=False)
        recorder = RunArtifacts(session, artifacts)
        recorder.begin()
        replay = Replay(table, {}, snap, {}, mapped)
        replayer = _Replayer(table, run, snap, keys)
        replay.instances = dict(replayer.instances)
        try:
            say(f"{session.describe().get('snapd_build', '?')} snapd up; replaying as {snap}")
            setup = run.step(SetSystem("experimental.parallel-instances", "true"))
            replay.setup.records.append(setup)
            if setup.observed_exit_code != 0:
                raise HostError(f"cannot enable parallel instances: {setup.observed_output}")
            for planned in replay_steps(table):
                replay.steps.append(_replay_step(replayer, planned, replay, say))
        finally:
            replay.host = session.describe()
            recorder.finish(run, failed=replay.diverged)
            replay.history = artifacts / "history.json"
            if not session.broken:
                try:
                    run.close()
                    session.prepare_run()  # the host's own settings back (a borrowed host)
                except HostError:
                    pass
    finally:
        session.stop()
    replay.seconds = time.monotonic() - started
    return replay


def _replay_step(replayer: _Replayer, planned: ReplayStep, replay: Replay, say: Say) -> StepCheck:
    began = time.monotonic()
    check = StepCheck(planned.number)
    run = replayer.run
    for event in planned.store_events:
        check.records.append(run.step(replayer.event(event)))
    online: list[str] = []
    for operation in planned.operations:
        if operation.kind == "refresh":
            online.append(operation.user)
            continue
        step = replayer.user_operation(operation)
        if step is not None:
            check.records.append(run.step(step))
    check.refresh, refreshes = replayer.refreshes(online)
    for step in refreshes:
        check.records.append(run.step(step))
    for verdict in replayer.observe(planned.number, run.last_observation):
        replay.cells[(verdict.step, verdict.user)] = verdict
    row = replayer.table.rows[planned.number - 1]
    cells = [replay.cells[(row.step.number, user.name)] for user in replayer.table.plan.users]
    shown = ", ".join(
        f"{c.user} {c.observed.text}" + ("" if c.confirmed else f" (model {c.expected_text})")
        for c in cells
    )
    say(
        f"step {planned.number}/{len(replayer.table.rows)} {released_text(row.step)} to "
        f"{row.step.channel}: {shown}; checked {check.verdict} "
        f"({time.monotonic() - began:.1f} s)"
    )
    return check


# -- rendering -------------------------------------------------------------------------------


def _plain_text(cell: Cell | None) -> str:
    """A cell's value alone (no (!) mark or offline note): R6E1, "-" when not installed."""
    if cell is None:
        return "-"
    return f"R{cell.revision}E{','.join(map(str, cell.epoch.write))}"


def _cell_with_verdict(cell: Cell | None, verdict: CellVerdict | None) -> str:
    text = cell_text(cell)
    if verdict is None:
        return text
    if not verdict.confirmed:
        return f"{text} ≠ snapd {verdict.shown}"
    return text if cell is None else f"{text} ✓"


def _grid(replay: Replay) -> tuple[list[str], list[list[str]], list[str]]:
    """As model.plan's grid (the same footnote numbers), each cell marked with snapd's verdict."""
    plan = replay.table.plan
    header = ["step"]
    header += [f"{channel} releases" for channel in plan.channels]
    header += [f"{user.channel} for {user.name}" for user in plan.users]
    notes: list[str] = []
    lines: list[list[str]] = []
    for row in replay.table.rows:
        line = [str(row.step.number)]
        line += [released_text(row.step) if row.step.channel == c else "-" for c in plan.channels]
        for user in plan.users:
            cell = row.cells[user.name]
            text = _cell_with_verdict(cell, replay.cells.get((row.step.number, user.name)))
            if cell is not None and (cell.changed or cell.marked):
                notes.append(f"step {row.step.number}, {user.name}: {cell.why}")
                text += f" [{len(notes)}]"
            line.append(text)
        lines.append(line)
    return header, lines, notes


def _legend(replay: Replay) -> list[str]:
    return [
        f"✓ confirmed by {replay.snapd}; A ≠ snapd B: the model's table says A, snapd held B.",
        MARK_LEGEND,
    ]


def verdict_line(replay: Replay) -> str:
    if not replay.diverged:
        return "verdict: every cell and every checked step agrees with snapd"
    parts = []
    if replay.cell_divergences:
        each = set(replay.each_steps)
        cells = ", ".join(
            f"step {c.step} {c.user}: {c.expected_text} ≠ snapd {c.shown}"
            + (" after `snap refresh NAME`, see above" if c.step in each else "")
            for c in replay.cell_divergences
        )
        parts.append(f"{len(replay.cell_divergences)} cell(s) diverged ({cells})")
    if replay.step_divergences:
        steps = "; ".join(
            f"{r.command}: " + ", ".join(str(m) for m in r.mismatches) or r.verdict
            for r in replay.step_divergences
        )
        parts.append(f"{len(replay.step_divergences)} checked step(s) diverged ({steps})")
    return "verdict: DIVERGENCE: " + "; ".join(parts)


def render_text(replay: Replay) -> str:
    header, lines, notes = _grid(replay)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    out = [
        "  ".join(t.ljust(w) for t, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *lines]
    ]
    out += ["", *_legend(replay), ""]
    out += [f"[{n}] {note}" for n, note in enumerate(notes, 1)]
    out += ["", *replay.notes(), verdict_line(replay)]
    return "\n".join(out) + "\n"


def render_markdown(replay: Replay) -> str:
    header, lines, notes = _grid(replay)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    out += ["", *_legend(replay), ""]
    out += [f"{n}. {note}" for n, note in enumerate(notes, 1)]
    out += ["", *(f"- {line}" for line in [*replay.notes(), verdict_line(replay)])]
    return "\n".join(out) + "\n"


def render_json(replay: Replay) -> str:
    """The table's JSON (`table --format json`), each step with `observed` (per user: status,
    and what snapd held) and `checked` (the model check of the real steps it took)."""
    document = json.loads(render_model_json(replay.table))
    checks = {check.number: check for check in replay.steps}
    for step in document["steps"]:
        number = step["step"]
        step["observed"] = {
            user: replay.cells[(number, user)].to_json()
            for user in step["users"]
            if (number, user) in replay.cells
        }
        if number in checks:
            step["checked"] = checks[number].to_json()
    document["replay"] = {
        "host": replay.host,
        "snapd": replay.snapd,
        "snapd_build": replay.host.get("snapd_build"),
        "snap": replay.snap,
        "instances": replay.instances,
        "mapped_instance_keys": replay.mapped,
        "setup": replay.setup.to_json(),
        "refresh_each_at_steps": replay.each_steps,
        "notes": replay.notes(),
        "history": str(replay.history) if replay.history else None,
        "seconds": round(replay.seconds, 1),
        "cells_confirmed": len(replay.cells) - len(replay.cell_divergences),
        "cells_diverged": len(replay.cell_divergences),
        "steps_diverged": len(replay.step_divergences),
        "verdict": DIVERGENCE if replay.diverged else CONFIRMED,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_observed(replay: Replay, fmt: str) -> str:
    renderers = {"text": render_text, "markdown": render_markdown, "json": render_json}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return renderers[fmt](replay)
