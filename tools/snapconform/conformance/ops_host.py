"""Host steps: what the host, not snapd, does to a snap's files between snapd's steps.

`WriteData` puts a file of a given size into the current revision's SNAP_DATA, as a snap that
keeps much data has there: copy-snap-data of the next refresh then takes a while, long enough
for a kill point to land inside the copy (suites/conformance/test_faults.py).

Host steps snapd must cope with (model/snapd_hoststeps.py, suites/conformance/test_host_steps.py):
`WhileAppRuns(step, then=...)` keeps an app of the step's instance running while the steps run
(the fixture app blocked opening a FIFO the host made at SNAP_DATA/MARKER), then says whether
it still runs and kills it by PID, also when a step fails; `release_held_apps` kills any a
broken run left. `RemoveTerminate` is `snap remove --terminate`, `InstallIgnoringRunning` a
local refresh with `--ignore-running`. `InstallBlocked` puts a file or a directory where the
new revision of an install or local refresh mounts, installs, and says what is left there.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from snapconform.conformance.operations import (
    FileLocator,
    FileStep,
    InstallFile,
    InstanceCommand,
    Operation,
    Remove,
    file_step_from_json,
    operation_from_json,
    register_operation,
)
from snapconform.harness.fixtures import HOST_WORK_DIR
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.harness.shell import Shell
from snapconform.model import snapd as model
from snapconform.model import snapd_hoststeps as hoststeps

MAX_MEGABYTES = 4096


@dataclass(frozen=True)
class WriteData(Operation):
    """`head -c SIZE /dev/zero > /var/snap/INSTANCE/current/MARKER` (the model: MARKER in the
    current revision's SNAP_DATA; only SNAP_DATA, not SNAP_COMMON)."""

    kind: ClassVar[str] = "write-data"
    instance: str
    marker: str
    megabytes: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.megabytes <= MAX_MEGABYTES:
            raise ValueError(f"write-data size {self.megabytes} MiB: 0..{MAX_MEGABYTES}")

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.host_writes_data(state, self.instance, self.marker)

    def _script(self) -> str:
        target = shlex.quote(f"/var/snap/{self.instance}/current/{self.marker}")
        size = shlex.quote(f"{self.megabytes}M")
        return f"head -c {size} /dev/zero > {target} && sync"

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        started = time.monotonic()
        result = client.shell.run(self._script() + " 2>&1", timeout=300)
        return SnapCommandResult(
            ("write-data", self.instance, self.marker),
            result.exit_code,
            result.output,
            time.monotonic() - started,
        )

    def shell(self, locate: FileLocator) -> str:
        return self._script()

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


register_operation(WriteData)


# -- an app kept running during a step -------------------------------------------------------

HELD_DIR = str(HOST_WORK_DIR / "held")  # on the host under test
HELD_START_SECONDS = 30  # snap run to the app's own process (snap-confine, snap-exec, sh)
HELD_END_SECONDS = 5  # how long the step's end waits for the app to end by itself
_MARKER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _held_pid_file(instance: str, marker: str) -> str:
    return f"{HELD_DIR}/{instance}.{marker}.pid"


def _start_script(instance: str, marker: str) -> str:
    """mkfifo SNAP_DATA/MARKER, `snap run INSTANCE.mark MARKER` in its own session in the
    background (PID in HELD_DIR), then wait until the PID is the app's shell script."""
    fifo = shlex.quote(f"/var/snap/{instance}/current/{marker}")
    pid_file = shlex.quote(_held_pid_file(instance, marker))
    log = shlex.quote(f"{HELD_DIR}/{instance}.{marker}.log")
    app = shlex.quote(f"/snap/{instance}/")
    run = shlex.join(["snap", "run", f"{instance}.mark", marker])
    tries = HELD_START_SECONDS * 10
    return (
        f"mkdir -p {shlex.quote(HELD_DIR)} && mkfifo {fifo} && "
        f"{{ setsid {run} </dev/null >{log} 2>&1 & echo $! >{pid_file}; }} && "
        f"held_pid=$(cat {pid_file}) && held_up= && for _ in $(seq {tries}); do "
        f'tr "\\0" " " 2>/dev/null </proc/$held_pid/cmdline | grep -qF {app} && held_up=1 '
        f"&& break; sleep 0.1; done; "
        f'[ -n "$held_up" ] || {{ echo held app did not start; cat {log}; false; }}'
    )


def _end_script(instance: str, marker: str) -> str:
    """Wait up to HELD_END_SECONDS for the app to end, print `held app: STATUS`, then kill it
    by its PID (only while /proc/PID/cmdline is still the app's)."""
    pid_file = shlex.quote(_held_pid_file(instance, marker))
    app = shlex.quote(f"/snap/{instance}/")
    tries = HELD_END_SECONDS * 10
    return (
        f"held_pid=$(cat {pid_file}) && held_status={hoststeps.APP_ENDED} && "
        f"for _ in $(seq {tries}); do kill -0 $held_pid 2>/dev/null || break; sleep 0.1; done; "
        f"kill -0 $held_pid 2>/dev/null && held_status={hoststeps.APP_RUNNING}; "
        f'echo "held app: $held_status"; {_kill_script(pid_file, app)}'
    )


def _kill_script(pid_file: str, app: str) -> str:
    return (
        f'held_pid=$(cat {pid_file} 2>/dev/null); if [ -n "$held_pid" ] && tr "\\0" " " '
        f"2>/dev/null </proc/$held_pid/cmdline | grep -qF {app}; then kill -KILL $held_pid; fi; "
        f"rm -f {pid_file}"
    )


def release_held_apps(shell: Shell) -> None:
    """Kill every app a WhileAppRuns started and did not end (a run that broke mid-step), by
    the PIDs it recorded; a test's teardown calls it (a host reset kills them too)."""
    script = (
        f'for f in {shlex.quote(HELD_DIR)}/*.pid; do [ -e "$f" ] || continue; '
        f'held_pid=$(cat "$f"); tr "\\0" " " 2>/dev/null </proc/$held_pid/cmdline '
        f'| grep -q "/snap/" && kill -KILL "$held_pid"; rm -f "$f"; done'
    )
    shell.run(script, timeout=60)


def _step_kind(step: Operation) -> str:
    if isinstance(step, InstallIgnoringRunning):
        return hoststeps.STEP_LOCAL_REFRESH_IGNORING
    if isinstance(step, RemoveTerminate):
        return hoststeps.STEP_REMOVE_TERMINATE
    if isinstance(step, Remove):
        return hoststeps.STEP_REMOVE
    if isinstance(step, InstallFile):
        return hoststeps.STEP_LOCAL_REFRESH
    raise model.ModelGap(f"what {step.kind!r} does while an app runs is not in the model")


@dataclass(frozen=True)
class WhileAppRuns(Operation):
    """`step`, then each of `then` (removes, `remove --terminate` or local refreshes of one
    instance), while one app of that instance runs; prints `held app: running|ended` about
    it after the last, before what the steps printed. The steps stop at one that fails."""

    kind: ClassVar[str] = "while-app-runs"
    step: Operation
    marker: str = "held"
    then: tuple[Operation, ...] = ()

    def __post_init__(self) -> None:
        if not _MARKER.fullmatch(self.marker):
            raise ValueError(f"marker {self.marker!r} must be a plain file name")
        object.__setattr__(self, "then", tuple(self.then))
        for step in (self.step, *self.then):
            if step.instances != self.step.instances or len(step.instances) != 1:
                raise ValueError(f"{step}: every step must name the one instance of the first")

    @property
    def instance(self) -> str:
        return self.step.instances[0]

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        def bound(step: Operation) -> tuple[str, Callable[[model.SnapdState], model.Outcome]]:
            return _step_kind(step), lambda held: step.predict(held, locate)

        kind, first = bound(self.step)
        return hoststeps.while_app_runs(
            state, self.instance, self.marker, kind, first, [bound(s) for s in self.then]
        )

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        started = time.monotonic()
        shell = client.shell
        begun = shell.run(_start_script(self.instance, self.marker) + " 2>&1", timeout=120)
        if begun.exit_code != 0:
            shell.run(_kill_script(*self._kill_args()), timeout=60)
            return SnapCommandResult(
                ("while-app-runs", self.instance), begun.exit_code, begun.output, 0.0
            )
        ended = None
        outputs = []
        try:
            for step in (self.step, *self.then):
                result = step.perform(client, locate)
                outputs.append(result.output)
                if result.exit_code != 0:
                    break
            ended = shell.run(_end_script(self.instance, self.marker), timeout=120)
        finally:
            if ended is None:  # the step failed on the way: still no app left behind
                shell.run(_kill_script(*self._kill_args()), timeout=60)
        # The app's line first: an error's message is everything after `error: `.
        return SnapCommandResult(
            result.argv,
            result.exit_code,
            "\n".join([ended.output.strip(), *outputs]),
            time.monotonic() - started,
        )

    def _kill_args(self) -> tuple[str, str]:
        pid_file = shlex.quote(_held_pid_file(self.instance, self.marker))
        return pid_file, shlex.quote(f"/snap/{self.instance}/")

    def shell(self, locate: FileLocator) -> str:
        steps = [step.shell(locate) for step in (self.step, *self.then)]
        return "\n".join(
            [
                _start_script(self.instance, self.marker),
                *steps,
                _end_script(self.instance, self.marker),
            ]
        )

    @property
    def instances(self) -> tuple[str, ...]:
        return self.step.instances

    def snap_files(self) -> tuple[model.SnapFile, ...]:
        return tuple(snap for step in (self.step, *self.then) for snap in step.snap_files())

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.kind,
            "step": self.step.to_json(),
            "marker": self.marker,
            "then": [step.to_json() for step in self.then],
        }

    def __str__(self) -> str:
        steps = "; ".join(str(step) for step in (self.step, *self.then))
        return f"{steps} [while {self.instance}.mark runs]"


def _while_from_json(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "step": operation_from_json(data["step"]),
        "marker": data.get("marker", "held"),
        "then": tuple(operation_from_json(step) for step in data.get("then", ())),
    }


@dataclass(frozen=True)
class InstallIgnoringRunning(FileStep):
    """`snap install --dangerous --ignore-running FILE`: a local refresh that skips the
    running-apps check (alone, nothing runs: a plain install)."""

    kind: ClassVar[str] = "install-ignore-running"

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.install(state, self.snap, file_path=locate(self.snap))

    def _argv(self, locate: FileLocator) -> list[str]:
        return ["snap", "install", "--dangerous", "--ignore-running", locate(self.snap)]

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(self._argv(locate))

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(self._argv(locate))


@dataclass(frozen=True)
class RemoveTerminate(InstanceCommand):
    """`snap remove --terminate INSTANCE [--revision=R]` (2.65+: kills the snap's running
    apps; the daemon refuses it with a revision)."""

    kind: ClassVar[str] = "remove-terminate"
    revision: str | None = None

    def argv(self) -> list[str]:
        revision = [f"--revision={self.revision}"] if self.revision else []
        return ["snap", "remove", "--terminate", *revision, self.instance]

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return hoststeps.remove_terminate(state, self.instance, self.revision)


# -- a blocked mount point -------------------------------------------------------------------


def _blocker_script(name: str, blocker: str, revision: str) -> str:
    base = shlex.quote(f"/snap/{name}")
    mount_dir = shlex.quote(f"/snap/{name}/{revision}")
    if blocker == hoststeps.FILE_AT_REVISION:
        return f"mkdir -p {base} && echo blocked >{mount_dir}"
    if blocker == hoststeps.FILE_AT_SNAP_DIR:
        return f"mkdir -p /snap && echo blocked >{base}"
    return f"mkdir -p {mount_dir} && echo blocked >{mount_dir}/blocked"


def leftover_script(name: str) -> str:
    """Print `left at /snap/NAME: ENTRIES` (`-`: nothing there)."""
    base = shlex.quote(f"/snap/{name}")
    return (
        f"left=$(ls -A {base} 2>/dev/null | sort | tr '\\n' ' '); "
        f'echo "left at /snap/{name}: ${{left:--}}" | sed "s/ *$//"'
    )


@dataclass(frozen=True)
class InstallBlocked(FileStep):
    """`snap install --dangerous FILE` after the host put `blocker` (one of
    snapd_hoststeps.BLOCKERS) where the new revision `revision` mounts (/snap/NAME/REV);
    prints what is left at /snap/NAME."""

    kind: ClassVar[str] = "install-blocked"
    blocker: str
    revision: str = "x1"

    def __post_init__(self) -> None:
        if self.blocker not in hoststeps.BLOCKERS:
            raise ValueError(f"blocker {self.blocker!r}: one of {', '.join(hoststeps.BLOCKERS)}")
        model.check_revision(self.revision)

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return hoststeps.install_over_blocked(
            state, self.snap, self.blocker, locate(self.snap), self.revision
        )

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        started = time.monotonic()
        placed = client.shell.run(
            _blocker_script(self.snap.name, self.blocker, self.revision) + " 2>&1", 60
        )
        if placed.exit_code != 0:
            return SnapCommandResult(("install-blocked",), placed.exit_code, placed.output, 0.0)
        result = client.install_file(locate(self.snap))
        left = client.shell.run(leftover_script(self.snap.name), timeout=60)
        return SnapCommandResult(
            result.argv,
            result.exit_code,
            f"{left.output.strip()}\n{result.output}",
            time.monotonic() - started,
        )

    def shell(self, locate: FileLocator) -> str:
        install = shlex.join(["snap", "install", "--dangerous", locate(self.snap)])
        return "\n".join(
            [
                _blocker_script(self.snap.name, self.blocker, self.revision),
                install,
                leftover_script(self.snap.name),
            ]
        )


register_operation(WhileAppRuns, _while_from_json)
register_operation(InstallIgnoringRunning, file_step_from_json)
register_operation(RemoveTerminate)
register_operation(InstallBlocked, file_step_from_json)
