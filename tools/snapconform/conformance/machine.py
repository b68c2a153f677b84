"""A Hypothesis state machine whose rules are snapd operations on generated fixture snaps.

Each rule performs one operation through ConformanceRun.step, which predicts it with the model,
performs it on real snapd, observes and compares; a mismatch raises Divergence and Hypothesis
shrinks the sequence. Every example uses snap names never used on the host before and starts
from snapd's default system settings, so examples are independent without a host reset.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import Phase, event, note, reject, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from snapconform.conformance.machine_hoststeps import HostStepRules
from snapconform.conformance.machine_modes import ModesRules
from snapconform.conformance.machine_services import PLUG, ServicesRules
from snapconform.conformance.machine_userdata import UserDataRules
from snapconform.conformance.operations import (
    InstallFile,
    Operation,
    Refresh,
    Remove,
    Revert,
    RunApp,
    SetSystem,
)
from snapconform.conformance.reproducer import ReproducerError, write_reproducers
from snapconform.conformance.served import keys_dir_of
from snapconform.conformance.session import (
    ConformanceRun,
    Divergence,
    HostFaultVerdict,
    HostSession,
    KnownDivergenceFound,
    NameAllocator,
)
from snapconform.conformance.shrink import (
    HistoryShrinker,
    diverging_prefix,
    python_program,
    remove_installed,
)
from snapconform.hosts.base import HostUnavailable
from snapconform.model import snapd as model
from snapconform.model.epoch import Epoch
from snapconform.served_store.assertions import TestKeys, TestKeysError

# Epochs in snap.yaml form, simplest first (Hypothesis shrinks towards the first).
EPOCH_TEXTS = (
    None,
    "0",
    "1",
    "1*",
    "2",
    "2*",
    "{read: [1, 2]}",
    "{read: [0, 1, 2], write: [2]}",
    "{read: [2], write: [2, 3]}",
)
HOOK_NAMES = ("configure", "pre-refresh", "post-refresh", "install", "remove")
VERSIONS = ("1.0", "2.0", "3.0")
# How a refresh's epoch relates to the current one. Relative choices make long, successful
# epoch walks (0 -> 1* -> 1 -> 2* -> 2) likely; "fixed" draws any form from EPOCH_TEXTS.
EPOCH_MOVES = ("same", "same", "bridge", "next", "fixed")
INSTANCE_KEY = "k1"

hook_plans = st.lists(
    st.builds(
        model.HookPlan,
        name=st.sampled_from(HOOK_NAMES),
        # mostly succeeding hooks; a failing one is the interesting minority
        fails_with=st.sampled_from((None, None, None, None, None, "planned failure")),
        # a marker follows a hook's writes through copies, reverts and rollbacks
        marker=st.sampled_from((None, "hooked")),
        # a hook may read configuration key k (and refuse a value starting with "bad")
        reads_config=st.sampled_from(((), ("k",))),
    ),
    max_size=3,
    unique_by=lambda hook: hook.name,
).map(lambda hooks: tuple(sorted(hooks, key=lambda hook: hook.name)))

REFRESH_ARGUMENTS = {
    "index": st.integers(0, 1),
    "version": st.sampled_from(VERSIONS),
    "move": st.sampled_from(EPOCH_MOVES),
    "fixed": st.sampled_from(EPOCH_TEXTS),
    "hooks": hook_plans,
}


def moved_epoch(current: Epoch | None, move: str, fixed: str | None) -> str | None:
    """An epoch text relative to ``current``: "same"; "bridge" N* and "next" N past the highest
    epoch it writes; "settle" the plain N of a bridge N* (others stay the same); "fixed" (or no
    current epoch) is ``fixed`` as given."""
    if move == "fixed" or current is None:
        return fixed
    top = max(current.write)
    if move == "same" or (move == "settle" and min(current.read) >= top):
        return current.to_yaml()
    if move == "settle":
        return str(top)
    return f"{top + 1}*" if move == "bridge" else str(top + 1)


@dataclass
class FailureRecorder:
    """Saves the first failing history (before any shrinking) and the last one Hypothesis ran
    (its final replay); then shrinks that by replaying sub-histories on real snapd and writes
    the minimal one with its reproducers."""

    directory: Path
    session: HostSession | None = None
    first: Path | None = None
    last: Path | None = None
    failures: int = 0
    steps: int = 0
    publisher_steps: int = 0  # of `steps`: store steps that only change the store (no command)
    labels: dict[str, int] = field(default_factory=dict)

    def record(self, run: ConformanceRun) -> None:
        self.failures += 1
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.first is None:
            self.first = run.save_history(self.directory / "first-failure.json")
        self.last = run.save_history(self.directory / "hypothesis-failure.json")

    def finish(self, log: Callable[[str], None] = print) -> list[Path]:
        """After the test failed: shrink, then write the minimal history and reproducers."""
        if self.last is None:
            return []
        history = json.loads(self.last.read_text(encoding="utf-8"))
        try:
            operations, target = diverging_prefix(history)
        except ValueError:
            return []  # a host fault, not a divergence: nothing to shrink
        if self.session is not None:
            log(f"shrinking {len(operations)} steps by replay on {self.session.url} ...")
            result = HistoryShrinker(self.session, log=log).shrink(operations, target)
            log(
                f"shrunk to {len(result.operations)} steps in {result.trials} replays, "
                f"{result.seconds:.0f} s"
            )
            if result.history:
                history, operations = result.history, result.operations
        minimal = self.directory / "minimal-failure.json"
        minimal.write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
        program = self.directory / "reproducer" / "test_minimal.py"
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text(python_program(operations), encoding="utf-8")
        written = [minimal, program]
        try:
            written += write_reproducers(
                history,
                self.directory / "reproducer",
                "snapconform: minimal divergence",
                keys=self.signing_keys(),
                cache_dir=None if self.session is None else self.session.cache_dir,
            )
        except (ReproducerError, HostUnavailable, TestKeysError) as exc:
            log(f"no reproducer scripts: {exc}")
        return written

    def signing_keys(self) -> TestKeys | None:
        """The test keys of the session's snapd build (a store history's catalogs are signed
        with them), or None when the session is not on the store tier."""
        if self.session is None or self.session.served is None:
            return None
        return TestKeys.load(keys_dir_of(self.session.host))

    def count(self, label: str) -> None:
        self.labels[label] = self.labels.get(label, 0) + 1
        event(label)


def machine_settings(**counts: Any) -> settings:
    """The profile's settings for a state machine on real snapd (`counts` override its example
    and step counts). Each example costs seconds of snapd, so Hypothesis's own shrinker (a fixed
    five-minute budget) gets through few candidates: outside nightly runs it is left out and
    our replay shrinker (conformance.shrink) takes over from the first failing example."""
    nightly = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"
    phases = settings.default.phases if nightly else [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(settings.default, phases=phases, **counts)


@contextmanager
def recorded_machine(
    machine: type[MachineBase],
    session: HostSession,
    directory: Path,
    *,
    record_property: Callable[[str, Any], None],
    failed: Callable[[], bool],
    log: Callable[[str], None] = print,
) -> Iterator[FailureRecorder]:
    """Configure `machine` on `session` for one test; afterwards write `directory`/summary.json
    (host, profile, steps, minutes, steps a minute, labels, failures), record steps, rate and
    labels as junit properties, and when the test `failed()` shrink and write the reproducers."""
    recorder = FailureRecorder(directory, session=session)
    machine.configure(session, recorder)
    started = time.monotonic()
    yield recorder
    minutes = (time.monotonic() - started) / 60
    summary = {
        "host": session.describe(),
        "profile": os.environ.get("HYPOTHESIS_PROFILE", "dev"),
        "steps": recorder.steps,
        "minutes": round(minutes, 2),
        "steps_per_minute": round(recorder.steps / minutes, 1) if minutes else None,
        # steps that ran a command on the host (publisher steps only rewrite the store)
        "snapd_steps": recorder.steps - recorder.publisher_steps,
        "snapd_steps_per_minute": round((recorder.steps - recorder.publisher_steps) / minutes, 1)
        if minutes
        else None,
        "labels": recorder.labels,
        "failures": recorder.failures,
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for key in ("steps", "steps_per_minute", "labels"):
        record_property(key, summary[key])
    if failed():
        for path in recorder.finish(log):
            log(f"\n==> {path}\n{path.read_text()}" if path.is_file() else f"\n==> {path}/")
    log(f"\n{recorder.steps} steps checked against the model; labels: {recorder.labels}")


class MachineBase(RuleBasedStateMachine):
    """What every conformance state machine shares: one run per example on fresh snap names (a
    plain instance and, once parallel instances are on, `NAME_k1`), steps through
    `ConformanceRun.step`, coverage labels, and the rules that work on any installed instance
    (revert, remove, run the app, system settings). Subclasses add the rules that install and
    refresh. Configure with `Machine.configure(session, recorder)` before running it."""

    session: ClassVar[HostSession]
    recorder: ClassVar[FailureRecorder]
    names: ClassVar[NameAllocator] = NameAllocator("sc")

    @classmethod
    def configure(cls, session: HostSession, recorder: FailureRecorder) -> None:
        cls.session = session
        cls.recorder = recorder

    def __init__(self) -> None:
        super().__init__()
        self.run = self.new_run()
        self.name = self.names.fresh()
        self.parallel_name = f"{self.name}_{INSTANCE_KEY}"
        self.used_revisions: dict[str, set[str]] = {}  # per instance: ever in the sequence
        self.gone_revisions: dict[str, set[str]] = {}  # per instance: left it since

    def new_run(self) -> ConformanceRun:
        """The run this example's steps go through (one per example)."""
        return ConformanceRun(self.session)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def state(self) -> model.SnapdState:
        return self.run.state

    def installed(self, instance: str) -> model.InstanceState | None:
        return self.state.instance(instance)

    def instance_names(self) -> list[str]:
        names = [self.name]
        if self.state.parallel_instances:
            names.append(self.parallel_name)
        return names

    def pick_instance(self, index: int, *, installed: bool) -> str | None:
        candidates = [
            name
            for name in self.instance_names()
            if (self.installed(name) is not None) == installed
        ]
        return candidates[index % len(candidates)] if candidates else None

    def do(self, operation: Operation) -> None:
        before = self.state
        operation = self.armed(operation)
        note(f"step {len(self.run.history) + 1}: {operation}")
        self.recorder.steps += 1
        try:
            record = self.run.step(operation)
        except KnownDivergenceFound as found:
            for entry in found.known:
                self.recorder.count(f"known divergence: {entry.key}")
            reject()  # snapd and the model no longer share a state to compare further steps
        except (Divergence, HostFaultVerdict):
            self.recorder.record(self.run)
            raise
        self.label(operation, before, record.expected_ok)

    def armed(self, operation: Operation) -> Operation:
        """The step to run for `operation` (machine_faults.FaultRules wraps it in a kill point)."""
        return operation

    def is_refresh(self, operation: Operation) -> bool:
        """Whether `operation` refreshes an installed instance (for the labels)."""
        return isinstance(operation, InstallFile | Refresh)

    def label(self, operation: Operation, before: model.SnapdState, ok: bool) -> None:
        """Coverage labels (Hypothesis events) for what this step exercised."""
        record = self.run.history[-1]
        for name in operation.instances:
            old, new = before.instance(name), self.state.instance(name)
            if "_" in name:
                self.recorder.count("parallel instance")
            self._note_revisions(name, new)
            if old is None or new is None:
                continue
            refresh = self.is_refresh(operation)
            if refresh and record.expected_kind == "epoch-refused":
                self.recorder.count("refused refresh")
            if refresh and record.expected_kind == "hook-failed":
                failed_in = record.expected_hooks[-1][1] if record.expected_hooks else ""
                self.recorder.count(
                    "refresh aborted by pre-refresh"
                    if failed_in == "pre-refresh"
                    else "rollback by failing hook"
                )
            epoch_moved = old.current_revision.epoch != new.current_revision.epoch
            if refresh and ok and epoch_moved:
                self.recorder.count("epoch-crossing refresh")
            if isinstance(operation, Revert) and ok and epoch_moved:
                self.recorder.count("revert across epochs")
            kept = {revision.revision for revision in new.sequence}
            if refresh and ok and any(r.revision not in kept for r in old.sequence):
                self.recorder.count("garbage collection discard")

    def _note_revisions(self, name: str, instance: model.InstanceState | None) -> None:
        """Count a revision number that comes back after it left the sequence (x-number reuse
        for local revisions; a store revision downloaded again)."""
        present = {revision.revision for revision in instance.sequence} if instance else set()
        seen = self.used_revisions.setdefault(name, set())
        gone = self.gone_revisions.setdefault(name, set())
        back = present & gone
        if any(revision.startswith("x") for revision in back):
            self.recorder.count("x-number reuse")
        if any(not revision.startswith("x") for revision in back):
            self.recorder.count("store revision back after it left")
        gone |= seen - present
        gone -= present
        seen |= present

    def any_installed(self) -> bool:
        return any(self.installed(name) is not None for name in self.instance_names())

    def any_missing(self) -> bool:
        return any(self.installed(name) is None for name in self.instance_names())

    # -- rules on any installed instance ---------------------------------------------------
    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), choice=st.one_of(st.none(), st.integers(0, 20)))
    def revert(self, index: int, choice: int | None) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        sequence = self.installed(instance).sequence  # type: ignore[union-attr]
        revision = None if choice is None else sequence[choice % len(sequence)].revision
        self.do(Revert(instance, revision))

    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), choice=st.integers(0, 20))
    def remove_revision(self, index: int, choice: int) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        sequence = self.installed(instance).sequence  # type: ignore[union-attr]
        self.do(Remove(instance, sequence[choice % len(sequence)].revision))

    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), purge=st.booleans())
    def remove(self, index: int, purge: bool) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        self.do(Remove(instance, purge=purge))

    @precondition(lambda self: self.any_installed())
    @rule(host_snap=st.sampled_from(("core", "snapd")))
    def remove_host_snap(self, host_snap: str) -> None:
        """Remove a snap the host had: snapd's in-use refusal (model/snapd_host.py). Only while
        the model predicts a refusal: from 2.62 an unused core goes, and offline it cannot
        come back."""
        try:
            refused = model.remove(self.state, host_snap).error is not None
        except model.ModelGap:
            return
        if self.installed(host_snap) is not None and refused:
            self.do(Remove(host_snap))
            self.recorder.count("host snap removal refused")

    @rule(value=st.sampled_from(("2", "3", "1", "21", "two")))
    def set_retain(self, value: str) -> None:
        self.do(SetSystem("refresh.retain", value))

    @precondition(lambda self: not self.state.parallel_instances)
    @rule()
    def enable_parallel_instances(self) -> None:
        self.do(SetSystem("experimental.parallel-instances", "true"))

    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), marker=st.sampled_from(("m1", "m2", "m3")))
    def run_app(self, index: int, marker: str) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        self.do(RunApp(instance, marker))

    def teardown(self) -> None:
        # Leave nothing of this example behind that a later one could trip over: what the
        # model holds and what snapd was last seen holding (they differ after a divergence).
        if not remove_installed(self.run):
            self.session.broken = True


class SnapdMachine(HostStepRules, ModesRules, ServicesRules, UserDataRules, MachineBase):
    """Local snaps: installs and refreshes of generated fixture files (`--dangerous`), with
    services, disable/enable and a content connection (machine_services.ServicesRules), users'
    data and configuration (machine_userdata.UserDataRules), confinement flags and `snap try`
    (machine_modes.ModesRules), and host steps: an app kept running, a blocked mount point
    (machine_hoststeps.HostStepRules)."""

    def snap(
        self, version: str, epoch: str | None, hooks: tuple[model.HookPlan, ...]
    ) -> model.SnapFile:
        # Every generated revision has the content plug, so `snap connect` is possible as soon
        # as the producer is there (a soak of 900 steps never got there otherwise); revisions
        # without it come from install_or_refresh_with_services(plug=False).
        return model.SnapFile(
            self.name, version, epoch_yaml=epoch, hooks=hooks, content_plugs=(PLUG,)
        )

    def moved_epoch(self, instance: str, move: str, fixed: str | None) -> str | None:
        """The epoch text a refresh of ``instance`` uses, relative to its current epoch."""
        found = self.installed(instance)
        return moved_epoch(None if found is None else found.current_revision.epoch, move, fixed)

    # -- rules -----------------------------------------------------------------------------
    @initialize(
        version=st.sampled_from(VERSIONS), epoch=st.sampled_from(EPOCH_TEXTS), hooks=hook_plans
    )
    def start(self, version: str, epoch: str | None, hooks: Any) -> None:
        """Every example starts by installing its snap: the interesting rules need one."""
        note(f"snap name {self.name}")
        self.do(InstallFile(self.snap(version, epoch, hooks)))

    @precondition(lambda self: self.any_missing())
    @rule(
        index=st.integers(0, 1),
        version=st.sampled_from(VERSIONS),
        epoch=st.sampled_from(EPOCH_TEXTS),
        hooks=hook_plans,
    )
    def install_fresh(self, index: int, version: str, epoch: str | None, hooks: Any) -> None:
        instance = self.pick_instance(index, installed=False)
        assert instance is not None
        name = None if instance == self.name else instance
        self.do(InstallFile(self.snap(version, epoch, hooks), name=name))

    @precondition(lambda self: self.any_installed())
    @rule(**REFRESH_ARGUMENTS)
    def refresh_local_file(
        self, index: int, version: str, move: str, fixed: str | None, hooks: Any
    ) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        name = None if instance == self.name else instance
        epoch = self.moved_epoch(instance, move, fixed)
        self.do(InstallFile(self.snap(version, epoch, hooks), name=name))

    # Local refreshes are what epochs, retain and garbage collection are about: a second rule
    # doubles their share of the steps (Hypothesis picks among enabled rules uniformly).
    @precondition(lambda self: self.any_installed())
    @rule(**REFRESH_ARGUMENTS)
    def refresh_local_file_again(
        self, index: int, version: str, move: str, fixed: str | None, hooks: Any
    ) -> None:
        self.refresh_local_file(index, version, move, fixed, hooks)

    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), choice=st.integers(0, 20))
    def refresh_to_revision(self, index: int, choice: int) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        sequence = self.installed(instance).sequence  # type: ignore[union-attr]
        self.do(Refresh(instance, sequence[choice % len(sequence)].revision))
