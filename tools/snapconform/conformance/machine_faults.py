"""The state machine's fault rule: "the next step is killed at point P" (issue 10 §3).

`FaultRules` is a mixin for a MachineBase machine: its rule arms a kill point (a task number,
the status it waits for, a delay inside the task, and now and then a power cut of the whole
host when the host can cut its own power); the next step that makes a change (a local install,
refresh, revert or remove) then runs as `Interrupted(step, point)` and is judged against the
outcomes the model allows. So faults combine with every other rule: epochs, hooks, parallel
instances, rollbacks, garbage collection. The history keeps the wrapped step (JSON kind
"interrupted"), so shrinking by replay and the reproducers carry the kill point.

Coverage labels: `kill point: KIND[HOOK] STATUS` for each point reached (the task's kind as the
change listed it), `interrupted outcome: completed|undone|no change`, `hook ran again after a
kill`, `snapd started by hand after a kill` (systemd gave up: its start limit).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RULE_MARKER, RuleBasedStateMachine, precondition, rule

from snapconform.conformance.machine import MachineBase, SnapdMachine
from snapconform.conformance.operations import Operation
from snapconform.conformance.ops_faults import Interrupted, interruptible
from snapconform.model.faults import KILL_STATUSES, KillPoint

# Delays (ms) after the task reached the status: mostly the boundary itself; 150-400 ms into
# a run-hook task often lands inside the hook (the hook then runs twice).
FAULT_DELAYS = (0, 0, 0, 30, 150, 250, 400)
MAX_TASK = 24  # a local refresh that collects two revisions has 22 tasks
POWER_SHARE = 8  # one armed fault in POWER_SHARE cuts the host's power, where it can


class FaultRules:
    """Mixin: the fault rule and the wrapping of the next step (see the module's text)."""

    pending_fault: KillPoint | None = None
    session: Any
    recorder: Any

    @precondition(lambda self: self.pending_fault is None)
    @rule(
        task=st.integers(0, MAX_TASK),
        status=st.sampled_from(KILL_STATUSES),
        delay=st.sampled_from(FAULT_DELAYS),
        power=st.integers(0, POWER_SHARE - 1),
    )
    def kill_next_step(self, task: int, status: str, delay: int, power: int) -> None:
        can_cut = hasattr(self.session.host, "power_cut")
        how = "power" if can_cut and power == 0 else "snapd"
        self.pending_fault = KillPoint(task, status, delay, how)

    # A second copy doubles the rule's share of the steps (Hypothesis picks among enabled rules
    # uniformly, and the services and other rules are many).
    @precondition(lambda self: self.pending_fault is None)
    @rule(
        task=st.integers(0, MAX_TASK),
        status=st.sampled_from(KILL_STATUSES),
        delay=st.sampled_from(FAULT_DELAYS),
        power=st.integers(0, POWER_SHARE - 1),
    )
    def kill_next_step_again(self, task: int, status: str, delay: int, power: int) -> None:
        self.kill_next_step(task, status, delay, power)

    def armed(self, operation: Operation) -> Operation:
        """The next step that makes a change, killed at the armed point."""
        if self.pending_fault is None or not interruptible(operation):
            return operation
        point, self.pending_fault = self.pending_fault, None
        return Interrupted(operation, point)

    def label(self, operation: Operation, before: Any, ok: bool) -> None:
        if isinstance(operation, Interrupted):
            record = self.run.history[-1]  # type: ignore[attr-defined]
            seen = record.interruption or {}
            how = "power cut" if seen.get("how") == "power" else "kill point"
            self.recorder.count(f"{how}: {seen.get('point')}")
            self.recorder.count(f"interrupted outcome: {seen.get('matched')}")
            if seen.get("hook_reruns"):
                self.recorder.count("hook ran again after a kill")
            if seen.get("back") == "started by hand":
                self.recorder.count("snapd started by hand after a kill")
            operation = operation.step
        super().label(operation, before, ok)  # type: ignore[misc]


class FaultySnapdMachine(FaultRules, SnapdMachine):
    """SnapdMachine's own rules (local installs and refreshes, epochs, hooks, parallel
    instances, reverts, removes, rollbacks, retain) with the fault rule:
    `suites/conformance/test_faults_machine.py`. The rules SnapdMachine takes from other
    areas' mixins (services, users' data, host snaps: MIXIN_RULES_LEFT_OUT) are left out, so
    the fault rule gets a fair share of the steps; those areas' own machines cover them."""


def _mixin_rules(machine: type) -> list[str]:
    """Rules SnapdMachine gets from mixins other than MachineBase."""
    own = {SnapdMachine, MachineBase, RuleBasedStateMachine, object}
    names = []
    for base in SnapdMachine.__mro__:
        if base in own:
            continue
        names += [name for name, value in vars(base).items() if hasattr(value, RULE_MARKER)]
    return sorted(set(names))


# ... and the host snaps' rule (MachineBase's remove_host_snap: a refusal, no change to kill)
MIXIN_RULES_LEFT_OUT = [*_mixin_rules(FaultySnapdMachine), "remove_host_snap"]
for _name in MIXIN_RULES_LEFT_OUT:
    setattr(FaultySnapdMachine, _name, None)  # not a rule any more (Hypothesis skips it)
