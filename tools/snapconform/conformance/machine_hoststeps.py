"""State-machine rules for host steps: an app of the snap kept running during a step, and
something already where an install mounts its new revision.

`HostStepRules` is mixed into conformance.machine.SnapdMachine (it uses the machine's `do`,
`snap`, `installed`, `moved_epoch`, `recorder`, `name` and `run`). While an app runs, a local
refresh is refused (refresh-app-awareness), one with `--ignore-running` goes through, and a
remove (of a revision or of the whole snap) is neither refused nor delayed
(model/snapd_hoststeps.py); the blocked mount point is a regular file or a non-empty directory
at /snap/NAME/REV or a file at /snap/NAME. Every rule counts a coverage label.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from snapconform.conformance.operations import InstallFile, Operation, Remove
from snapconform.conformance.ops_host import InstallBlocked, InstallIgnoringRunning, WhileAppRuns
from snapconform.model import snapd as model
from snapconform.model import snapd_hoststeps as hoststeps

# What runs while the app does (simplest first).
STEPS_WHILE_RUNNING = ("refresh", "refresh --ignore-running", "remove revision", "remove")


class HostStepRules:
    """Rules on host steps (see the module doc)."""

    name: str
    recorder: Any
    state: model.SnapdState
    do: Any
    snap: Any
    installed: Any
    moved_epoch: Any

    def _runnable(self) -> bool:
        found = self.installed(self.name)
        return found is not None and found.active

    @precondition(lambda self: self._runnable())
    @rule(what=st.sampled_from(STEPS_WHILE_RUNNING), version=st.sampled_from(("1.0", "2.0")))
    def while_an_app_runs(self, what: str, version: str) -> None:
        found = self.installed(self.name)
        assert found is not None
        epoch = self.moved_epoch(self.name, "same", None)
        step: Operation
        if what == "refresh":
            step = InstallFile(self.snap(version, epoch, ()))
        elif what == "refresh --ignore-running":
            step = InstallIgnoringRunning(self.snap(version, epoch, ()))
        elif what == "remove revision" and len(found.sequence) > 1:
            inactive = next(r.revision for r in found.sequence if r.revision != found.current)
            step = Remove(self.name, revision=inactive)
        else:
            what, step = "remove", Remove(self.name)
        self.recorder.count(f"{what} while an app runs")
        # the app blocks on a FIFO it finds at SNAP_DATA/MARKER: one the revision has not got
        taken = found.data_of(found.current)
        marker = next(m for m in (f"held{n}" for n in range(len(taken) + 1)) if m not in taken)
        self.do(WhileAppRuns(step, marker=marker))

    @precondition(lambda self: self.installed(self.name) is None)
    @rule(
        blocker=st.sampled_from(hoststeps.BLOCKERS),
        version=st.sampled_from(("1.0", "2.0")),
    )
    def install_over_a_blocked_mount_point(self, blocker: str, version: str) -> None:
        self.recorder.count(f"install over a blocked mount point ({blocker})")
        self.do(InstallBlocked(self.snap(version, None, ()), blocker))
