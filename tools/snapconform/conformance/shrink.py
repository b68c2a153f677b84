"""Shrink a diverging history to a minimal one by replaying candidates on real snapd.

Hypothesis shrinks by re-running examples; on real snapd each run costs seconds, and its fixed
five-minute shrink budget gets through too few of them. This shrinker works on operations
instead: delta debugging (drop chunks, then single steps), then simplifying each fixture snap
(drop hooks, drop the epoch), each candidate replayed under fresh snap names so runs stay
independent. A candidate is kept when it still diverges the same way: the same fields and,
for a refusal, the same texts (compare.detailed_signature).

Store histories shrink the same way: snap names are renamed inside the publisher steps too
(Release's file, CloseChannel, Unrelease, Misbehave, RefreshAll.watch), every release of one
store revision is simplified together (a revision's file is fixed once released), a candidate
the model refuses to build (e.g. a close of a channel whose release was dropped) does not
diverge, and every replay leaves no snap installed (later store requests would carry it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from snapconform.conformance.compare import detailed_signature
from snapconform.conformance.operations import (
    InstallFile,
    Operation,
    operation_from_json,
)
from snapconform.conformance.ops_faults import program_imports
from snapconform.conformance.session import (
    ConformanceRun,
    Divergence,
    HostFaultVerdict,
    HostSession,
    NameAllocator,
)
from snapconform.conformance.store_steps import (
    CloseChannel,
    Misbehave,
    Misbehaviour,
    Release,
    StoreOperation,
    Unrelease,
)
from snapconform.model import snapd as model


@dataclass
class ShrinkResult:
    operations: list[Operation]  # as last replayed (the snap names of `history`)
    history: dict[str, Any]  # the saved history of the last failing replay
    trials: int
    seconds: float


def misbehaving_snaps(misbehaviour: Misbehaviour) -> list[str]:
    """The snap names a misbehaviour is about."""
    return [
        *(name for name, _ in misbehaviour.offer_unreadable),
        *(name for name, _, _ in misbehaviour.report_epoch),
        *misbehaviour.wrong_sha3,
        *(name for name, _, _ in misbehaviour.tampered),
    ]


def operation_snap_names(operation: Operation) -> list[str]:
    """Every snap name a step names: its instances', its files' and a publisher step's."""
    found = [instance.split("_", 1)[0] for instance in operation.instances]
    found += [snap.name for snap in operation.snap_files()]
    if isinstance(operation, CloseChannel | Unrelease):
        found.append(operation.name)
    if isinstance(operation, Misbehave):
        found += misbehaving_snaps(operation.misbehaviour)
    return found


def snap_names(operations: Sequence[Operation]) -> list[str]:
    names: list[str] = []
    for operation in operations:
        for name in operation_snap_names(operation):
            if name not in names:
                names.append(name)
    return names


def is_store_history(operations: Sequence[Operation]) -> bool:
    return any(isinstance(operation, StoreOperation) for operation in operations)


def remove_installed(run: ConformanceRun) -> bool:
    """Remove (purge) every instance the run touched, whatever the model or snapd holds
    (`ConformanceRun.close`, which also clears the trash of the known divergence
    rerefresh-leaves-trash-remove-fails); False when something is left (the session is then
    marked broken: the next run gets a fresh host)."""
    run.close()
    return not run.session.broken


def rename(operations: Sequence[Operation], mapping: dict[str, str]) -> list[Operation]:
    """The same operations on other snap names (instance keys kept)."""

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in mapping.items():
                if value == old or value.startswith(old + "_"):
                    return new + value[len(old) :]
            return value
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [swap(item) for item in value]
        return value

    return [operation_from_json(swap(json.loads(json.dumps(op.to_json())))) for op in operations]


class HistoryShrinker:
    def __init__(
        self,
        session: HostSession,
        *,
        max_trials: int = 60,
        max_seconds: float = 600.0,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.session = session
        self.max_trials = max_trials
        self.max_seconds = max_seconds
        self.log = log
        self.names = NameAllocator("sc")
        self.trials = 0
        self.started = 0.0
        self.last_history: dict[str, Any] = {}
        self.last_operations: list[Operation] = []

    def _out_of_budget(self) -> bool:
        return self.trials >= self.max_trials or time.monotonic() - self.started > self.max_seconds

    def replay(self, operations: Sequence[Operation]) -> frozenset[str] | None:
        """Replay under fresh names; the divergence's signature, or None when it passes."""
        self.trials += 1
        originals = snap_names(operations)
        fresh = {name: self.names.fresh() for name in originals}
        renamed = rename(operations, fresh)
        run = ConformanceRun(self.session)
        try:
            run.run(renamed)
        except Divergence as divergence:
            self.last_history = run.history_json()
            self.last_operations = renamed
            found = [(m.field, m.expected, m.observed) for m in divergence.record.mismatches]
            return detailed_signature(found, list(fresh.values()))
        except HostFaultVerdict as fault:
            self.log(f"  trial {self.trials}: host fault, treated as passing: {fault}")
            return None
        except ValueError as refused:  # StoreError, ModelGap, CatalogError: not a history
            self.log(f"  trial {self.trials}: not a valid history ({refused}), treated as passing")
            return None
        finally:
            if is_store_history(renamed) and not remove_installed(run):
                self.session.broken = True
        return None

    def shrink(self, operations: Sequence[Operation], target: frozenset[str]) -> ShrinkResult:
        """Smallest sequence found that still diverges with signature ``target``."""
        self.started = time.monotonic()
        current = list(operations)

        def still_fails(candidate: list[Operation]) -> bool:
            if not candidate or self._out_of_budget():
                return False
            found = self.replay(candidate)
            ok = found == target
            self.log(
                f"  trial {self.trials}: {len(candidate)} steps -> {'diverges' if ok else 'no'}"
            )
            return ok

        # Delta debugging over steps: drop chunks, halving their size.
        chunks = 2
        while len(current) >= 2 and not self._out_of_budget():
            size = max(1, len(current) // chunks)
            reduced = False
            for start in range(0, len(current), size):
                candidate = current[:start] + current[start + size :]
                if still_fails(candidate):
                    current, reduced = candidate, True
                    chunks = max(chunks - 1, 2)
                    break
            if not reduced:
                if size == 1:
                    break
                chunks = min(len(current), chunks * 2)

        # Simplify fixture snaps: no hooks, then no epoch, where the divergence survives it.
        # A store revision's releases (promotions) change together: its file is fixed.
        simplifications: tuple[Callable[[model.SnapFile], model.SnapFile], ...] = (
            lambda snap: replace(snap, hooks=()),
            lambda snap: replace(snap, epoch_yaml=None),
        )
        for index in range(len(current)):
            for simplify in simplifications:
                operation = current[index]
                if not isinstance(operation, InstallFile | Release) or self._out_of_budget():
                    break
                candidate = _with_file(current, index, simplify(operation.snap))
                if candidate != current and still_fails(candidate):
                    current = candidate

        # The history of the minimal sequence, replayed once more if the last trial was another.
        if self.replay(current) != target:
            self.log("  the minimal sequence did not diverge again: reporting it anyway")
        return ShrinkResult(
            self.last_operations or current,
            self.last_history,
            self.trials,
            time.monotonic() - self.started,
        )


def _with_file(operations: list[Operation], index: int, simpler: model.SnapFile) -> list[Operation]:
    """`operations` with step `index`'s file made `simpler` (for a release: every release of
    that revision)."""
    chosen = operations[index]
    changed = list(operations)
    if isinstance(chosen, InstallFile):
        changed[index] = replace(chosen, snap=simpler)
        return changed
    assert isinstance(chosen, Release)
    for position, operation in enumerate(operations):
        if (
            isinstance(operation, Release)
            and operation.snap.name == chosen.snap.name
            and operation.revision == chosen.revision
        ):
            changed[position] = replace(operation, snap=simpler)
    return changed


def diverging_prefix(history: dict[str, Any]) -> tuple[list[Operation], frozenset[str]]:
    """The operations up to the first diverging step, and that divergence's signature."""
    operations: list[Operation] = []
    for step in history.get("steps", []):
        operations.append(operation_from_json(step["operation"]))
        if step.get("verdict") == "divergence":
            found = [(m["field"], m["expected"], m["observed"]) for m in step.get("mismatches", [])]
            return operations, detailed_signature(found, snap_names(operations))
    raise ValueError("the history has no diverging step")


STORE_STEP_NAMES = (
    "CloseChannel",
    "Misbehave",
    "Misbehaviour",
    "RefreshAll",
    "Release",
    "StoreInstall",
    "StoreRefresh",
    "Switch",
    "Unrelease",
)


def python_program(operations: Sequence[Operation]) -> str:
    """The minimal sequence as a program a developer can paste into a conformance test; a store
    history runs on the store tier (the `store_run` fixture)."""
    fixture = "store_run" if is_store_history(operations) else "conformance"
    lines = [
        "from snapconform.conformance.operations import "
        "InstallFile, Refresh, Remove, Revert, RunApp, SetSystem",
    ]
    if fixture == "store_run":
        lines.append(
            f"from snapconform.conformance.store_steps import {', '.join(STORE_STEP_NAMES)}"
        )
    lines += program_imports(operations)  # interrupted steps (ops_faults)
    lines += [
        "from snapconform.model.snapd import HookPlan, SnapFile",
        "",
        f"def test_minimal_divergence({fixture}):",
        f"    {fixture}.run([",
    ]
    lines += [f"        {operation!r}," for operation in operations]
    lines.append("    ])")
    return "\n".join(lines) + "\n"
