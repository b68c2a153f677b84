"""Shrink a diverging history to a minimal one by replaying candidates on real snapd.

Hypothesis shrinks by re-running examples; on real snapd each run costs seconds, and its fixed
five-minute shrink budget gets through too few of them. This shrinker works on operations
instead: delta debugging (drop chunks, then single steps), then simplifying each fixture snap
(drop hooks, drop the epoch), each candidate replayed under fresh snap names so runs stay
independent. A candidate is kept when it still diverges the same way: the same fields and,
for a refusal, the same texts (compare.detailed_signature).
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
from snapconform.conformance.session import (
    ConformanceRun,
    Divergence,
    HostFaultVerdict,
    HostSession,
    NameAllocator,
)


@dataclass
class ShrinkResult:
    operations: list[Operation]  # as last replayed (the snap names of `history`)
    history: dict[str, Any]  # the saved history of the last failing replay
    trials: int
    seconds: float


def snap_names(operations: Sequence[Operation]) -> list[str]:
    names: list[str] = []
    for operation in operations:
        for instance in operation.instances:
            name = instance.split("_", 1)[0]
            if name not in names:
                names.append(name)
    return names


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
        for index, operation in enumerate(current):
            if not isinstance(operation, InstallFile):
                continue
            for simpler in (
                replace(operation.snap, hooks=()),
                replace(operation.snap, epoch_yaml=None),
            ):
                if simpler == current[index].snap or self._out_of_budget():  # type: ignore[attr-defined]
                    continue
                candidate = list(current)
                candidate[index] = replace(current[index], snap=simpler)  # type: ignore[arg-type]
                if still_fails(candidate):
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


def diverging_prefix(history: dict[str, Any]) -> tuple[list[Operation], frozenset[str]]:
    """The operations up to the first diverging step, and that divergence's signature."""
    operations: list[Operation] = []
    for step in history.get("steps", []):
        operations.append(operation_from_json(step["operation"]))
        if step.get("verdict") == "divergence":
            found = [(m["field"], m["expected"], m["observed"]) for m in step.get("mismatches", [])]
            return operations, detailed_signature(found, snap_names(operations))
    raise ValueError("the history has no diverging step")


def python_program(operations: Sequence[Operation]) -> str:
    """The minimal sequence as a program a developer can paste into a conformance test."""
    lines = [
        "from snapconform.conformance.operations import "
        "InstallFile, Refresh, Remove, Revert, RunApp, SetSystem",
        "from snapconform.model.snapd import HookPlan, SnapFile",
        "",
        "def test_minimal_divergence(conformance):",
        "    conformance.run([",
    ]
    lines += [f"        {operation!r}," for operation in operations]
    lines.append("    ])")
    return "\n".join(lines) + "\n"
