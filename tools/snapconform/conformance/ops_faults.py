"""An interrupted step: a local install, refresh, revert or remove whose change snapd is killed in
(or the whole host, a power cut) at a kill point, judged against the outcomes the model allows
(snapconform.model.faults): completed as predicted, or undone to the state before the step.

`Interrupted(step, point)` wraps any of those operations; it round-trips through JSON (kind
"interrupted"), so histories, shrinking by replay and reproducers carry the kill point.
ConformanceRun.step calls its `perform_in_run` (a power cut needs the session: the shells die
with the host) and its `judge` (the allowed-outcomes comparison) instead of the plain ones.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

from snapconform.conformance.compare import Mismatch, compare_step
from snapconform.conformance.operations import (
    FileLocator,
    InstallFile,
    Operation,
    Refresh,
    Remove,
    Revert,
    operation_from_json,
    register_operation,
)
from snapconform.conformance.store_steps import StoreOperation, StoreWorld
from snapconform.harness.faults import (
    FAULTS_PATH,
    FaultInjector,
    InterruptedResult,
    fault_command,
    interruption_of,
    program_text,
    result_of,
)
from snapconform.harness.observe import Observation
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.hosts.base import HostError, HostUnavailable
from snapconform.model import faults as model_faults
from snapconform.model import snapd as model
from snapconform.model.faults import KillPoint

INTERRUPTIBLE = (InstallFile, Refresh, Revert, Remove)
# store step kinds -> the model's step kinds (model.faults.step_kind)
STEP_KINDS = {"store-install": "install", "store-refresh": "refresh"}


def interruptible(operation: Operation) -> bool:
    """Operations that make a change of one instance (refusals make none: then nothing is
    killed and the step is compared as usual)."""
    return isinstance(operation, INTERRUPTIBLE)


@dataclass(frozen=True)
class Judgement:
    mismatches: list[Mismatch]
    outcome: model.Outcome  # the allowed outcome snapd matched (or came closest to)
    record: dict[str, Any]  # what the history keeps of the interruption
    anomaly: str | None = None  # the known divergence the matched outcome is (model.faults)


class Judged:
    """The allowed-outcomes comparison of an interrupted step (`step`, `point`), for the local
    steps (Interrupted) and the store's (InterruptedStore)."""

    step: Any
    point: KillPoint
    # Whether the run compares the store requests snapd sent with the predicted ones: a
    # restarted snapd runs its tasks again and asks again, so not after a kill; a store that
    # was down for a while sees the same requests (the retries are downloads, not queries).
    compare_store_requests: ClassVar[bool] = False

    # -- the comparison ----------------------------------------------------------------------
    def judge(
        self,
        before: model.SnapdState,
        outcome: model.Outcome,
        result: SnapCommandResult,
        observation: Observation,
        instances: list[str],
    ) -> Judgement:
        interruption = result.interruption if isinstance(result, InterruptedResult) else None
        if interruption is None:
            raise HostError("an interrupted step's result carries no interruption")
        record = interruption.to_json()
        if not interruption.started:
            mismatches = compare_step(outcome, result, observation, instances)
            record["allowed"], record["matched"] = ["no change"], "no change"
            return Judgement(mismatches, outcome, record)
        instance = self.step.instances[0]
        kind = model_faults.step_kind(
            before, STEP_KINDS.get(self.step.kind, self.step.kind), instance
        )
        ran = _once_each(
            [
                model.HookRun(line.instance, line.hook, line.revision)
                for line in observation.hooks
                if line.instance == instance
            ]
        )
        record["hook_reruns"] = sum(
            1 for line in observation.hooks if line.instance == instance
        ) - len(ran)
        alternatives = model_faults.allowed_outcomes(
            before, outcome, instance, kind, ran, interruption.unfinished
        )
        record["allowed"] = [alternative.name for alternative in alternatives]
        best: tuple[list[Mismatch], model_faults.Allowed] | None = None
        for alternative in alternatives:
            mismatches = self._compare(alternative, result, observation, instances, interruption)
            if not mismatches:
                record["matched"] = alternative.name
                return Judgement([], alternative.outcome, record, alternative.anomaly)
            if best is None or len(mismatches) < len(best[0]):
                best = (mismatches, alternative)
        assert best is not None
        record["matched"] = None
        record["closest"] = best[1].name
        return Judgement(best[0], best[1].outcome, record)

    def _compare(
        self,
        alternative: model_faults.Allowed,
        result: SnapCommandResult,
        observation: Observation,
        instances: list[str],
        interruption: Any,
    ) -> list[Mismatch]:
        mismatches: list[Mismatch] = []
        if not interruption.settled:
            mismatches.append(Mismatch("change.settled", True, False))
        if interruption.final_status not in alternative.change_statuses:
            mismatches.append(
                Mismatch("change.status", alternative.change_statuses, interruption.final_status)
            )
        # everything compare_step compares (result, instances, services, users' data, ...)
        # but the hooks, which may have run again (below)
        mismatches += [
            mismatch
            for mismatch in compare_step(alternative.outcome, result, observation, instances)
            if mismatch.field != "hooks"
        ]
        mismatches += self._compare_mounts(alternative.outcome.state, instances, interruption)
        mismatches += self._compare_hooks(
            alternative.outcome,
            observation,
            interruption.rerunnable,
            prefix=alternative.name == "undone",
        )
        return mismatches

    @staticmethod
    def _compare_mounts(
        state: model.SnapdState, instances: list[str], interruption: Any
    ) -> list[Mismatch]:
        """Every revision in the sequence is mounted, and nothing else of the instance."""
        mismatches: list[Mismatch] = []
        for name in instances:
            expected = state.instance(name)
            revisions = frozenset(() if expected is None else expected.revisions)
            mounted = interruption.mounted(name)
            if mounted != revisions:
                mismatches.append(Mismatch(f"{name}.mounts", revisions, mounted))
        return mismatches

    def _compare_hooks(
        self,
        outcome: model.Outcome,
        observation: Observation,
        rerunnable: frozenset[str],
        *,
        prefix: bool,
    ) -> list[Mismatch]:
        expected = [(run.instance, run.hook, run.revision) for run in outcome.hooks_run]
        observed = [(line.instance, line.hook, line.revision) for line in observation.hooks]
        if model_faults.hooks_allowed(expected, observed, rerunnable, prefix=prefix):
            return []
        return [Mismatch("hooks", tuple(expected), tuple(observed))]


@dataclass(frozen=True)
class Interrupted(Judged, Operation):
    kind: ClassVar[str] = "interrupted"
    step: Operation
    point: KillPoint

    def __post_init__(self) -> None:
        if not interruptible(self.step):
            raise ValueError(f"{self.step.kind!r} cannot be interrupted")

    # -- the three views ---------------------------------------------------------------------
    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return self.step.predict(state, locate)

    def argv(self, locate: FileLocator) -> list[str]:
        return shlex.split(self.step.shell(locate))

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        if self.point.how != "snapd":
            raise HostUnavailable("a power cut needs the run (perform_in_run)")
        injector = FaultInjector(client.shell)
        point = self.point
        return injector.interrupt(self.argv(locate), point.task, point.status, point.delay_ms)

    def perform_in_run(self, run: Any, client: SnapClient) -> SnapCommandResult:
        if self.point.how == "snapd":
            return self.perform(client, run.locate)
        return self._power_cut(run, client)

    def _power_cut(self, run: Any, client: SnapClient) -> SnapCommandResult:
        session = run.session
        power_cut = getattr(session.host, "power_cut", None)
        if power_cut is None:
            raise HostUnavailable(f"{session.url} cannot cut its own power (no power_cut)")
        argv = self.argv(run.locate)
        for snap in self.step.snap_files():
            run.locate(snap)  # uploaded before the cut
        point = self.point
        started = time.monotonic()
        report = FaultInjector(client.shell).freeze_at(
            argv, point.task, point.status, point.delay_ms
        )
        if not report.get("started"):
            # No change to interrupt: snapd is not frozen, nothing is cut.
            interruption = interruption_of(report, "power", None)
            return result_of(argv, report, interruption, time.monotonic() - started)
        old_client, old_observer = run.client, run.observer
        power_cut()
        session.attach()  # new shell, client and observer on the booted host
        assert session.client is not None and session.observer is not None
        session.client._uploaded = old_client._uploaded  # the same disk holds them
        session.observer.last_change = old_observer.last_change
        session.observer.store_log = old_observer.store_log
        session.observer.store_log_offset = old_observer.store_log_offset
        run.client, run.observer = session.client, session.observer
        settle = FaultInjector(session.client.shell).settle(str(report["change"]))
        interruption = interruption_of(report, "power", settle)
        return result_of(argv, report, interruption, time.monotonic() - started)

    def shell(self, locate: FileLocator) -> str:
        point = self.point
        command = fault_command(self.argv(locate), point.task, point.status, point.delay_ms)
        if point.how == "power":
            return f"{command}  # a power cut in the run; this kills snapd only"
        return command

    @property
    def instances(self) -> tuple[str, ...]:
        return self.step.instances

    def snap_files(self) -> tuple[model.SnapFile, ...]:
        return self.step.snap_files()

    def to_json(self) -> dict[str, Any]:
        return {"op": self.kind, "step": self.step.to_json(), "point": asdict(self.point)}

    def __str__(self) -> str:
        return f"{self.step} [{self.point.describe()}]"


STORE_DOWN_SECONDS = 5.0  # within snapd's download retries (7 tries, 0.5 s x 2.5, 90 s at most)


@dataclass(frozen=True)
class InterruptedStore(Judged, StoreOperation):
    """A store user step (install or refresh of one instance) interrupted at a kill point:
    snapd killed, or the served store down for STORE_DOWN_SECONDS from the point on."""

    kind: ClassVar[str] = "interrupted-store"
    step: StoreOperation
    point: KillPoint

    def __post_init__(self) -> None:
        if self.step.publishes or len(self.step.instances) != 1:
            raise ValueError(f"{self.step.kind!r} is not a store step of one instance")
        if self.point.how == "power":
            raise ValueError("a power cut would take the served store with it")

    @property
    def compare_store_requests(self) -> bool:  # type: ignore[override]
        return self.point.how == "store"

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        return self.step.predict_store(state, world)

    def argv(self) -> list[str]:
        return self.step.argv()

    def perform_store(self, client: SnapClient) -> SnapCommandResult:
        point = self.point
        if point.how != "snapd":
            raise HostUnavailable("the store going down needs the run (perform_in_run)")
        injector = FaultInjector(client.shell)
        return injector.interrupt(self.argv(), point.task, point.status, point.delay_ms)

    def perform_in_run(self, run: Any, client: SnapClient) -> SnapCommandResult:
        if self.point.how == "snapd":
            return self.perform_store(client)
        carrier = run.session.served_store().carrier
        argv, point = self.argv(), self.point
        injector = FaultInjector(client.shell)
        started = time.monotonic()
        report = injector.freeze_at(argv, point.task, point.status, point.delay_ms)
        if not report.get("started"):
            interruption = interruption_of(report, "store", None)
            return result_of(argv, report, interruption, time.monotonic() - started)
        carrier.down()
        injector.thaw()
        time.sleep(STORE_DOWN_SECONDS)
        carrier.restart()
        settle = injector.settle(str(report["change"]))
        interruption = interruption_of(report, "store", settle)
        return result_of(argv, report, interruption, time.monotonic() - started)

    def shell(self, locate: FileLocator) -> str:
        point = self.point
        command = fault_command(self.argv(), point.task, point.status, point.delay_ms)
        if point.how == "store":
            return f"{command}  # the run took the store down instead; this kills snapd"
        return command

    @property
    def instances(self) -> tuple[str, ...]:
        return self.step.instances

    def to_json(self) -> dict[str, Any]:
        return {"op": self.kind, "step": self.step.to_json(), "point": asdict(self.point)}

    def __str__(self) -> str:
        return f"{self.step} [{self.point.describe()}]"


def _once_each(runs: list[model.HookRun]) -> list[model.HookRun]:
    """Hook runs with immediate repeats dropped (a hook re-run after the restart)."""
    kept: list[model.HookRun] = []
    for run in runs:
        if not kept or kept[-1] != run:
            kept.append(run)
    return kept


def _interrupted_from_json(data: dict[str, Any]) -> dict[str, Any]:
    return {"step": operation_from_json(data["step"]), "point": KillPoint(**data["point"])}


register_operation(Interrupted, _interrupted_from_json)
register_operation(InterruptedStore, _interrupted_from_json)


# -- reproducers -----------------------------------------------------------------------------


def uses_faults(operations: list[Operation]) -> bool:
    return any(isinstance(operation, Interrupted | InterruptedStore) for operation in operations)


def reproducer_lines(operations: list[Operation]) -> list[str]:
    """Shell lines that put the fault program where interrupted steps' commands run it."""
    if not uses_faults(operations):
        return []
    return [
        "# The fault program: an interrupted step starts its snap command with --no-wait, waits",
        "# for the kill point (a task of the change reaching a status), kills snapd.service and",
        "# waits for the change to settle. A power cut of the run is a kill of snapd here.",
        f"mkdir -p {shlex.quote(str(PurePosixPath(FAULTS_PATH).parent))}",
        f"cat > {shlex.quote(FAULTS_PATH)} <<'SNAPCONFORM_FAULTS'",
        *program_text().splitlines(),
        "SNAPCONFORM_FAULTS",
        "",
    ]


def spread_files(operations: list[Operation]) -> tuple[dict[str, str], list[str]]:
    """The fault program beside a spread task, and the prepare line that installs it."""
    if not uses_faults(operations):
        return {}, []
    line = f"install -D -m 0755 faults.py {shlex.quote(FAULTS_PATH)}  # kills snapd at kill points"
    return {"faults.py": program_text()}, [line]


def program_imports(operations: Sequence[Operation]) -> list[str]:
    """The import lines a pasted program (shrink.python_program) needs for interrupted steps."""
    kinds = {type(operation).__name__ for operation in operations}
    names = sorted(kinds & {"Interrupted", "InterruptedStore"})
    if not names:
        return []
    return [
        f"from snapconform.conformance.ops_faults import {', '.join(names)}",
        "from snapconform.model.faults import KillPoint",
    ]
