"""Interrupting snapd mid-change on a host: start a snap command without waiting, wait for one of
its change's tasks to reach a status, kill snapd (or freeze it for a power cut), wait for the
change to settle, and say what was seen. The waiting runs ON the host (fault_program.py), so the
kill lands within a poll (2 ms) of the point, not a shell round trip later.

snapd.service on Debian (bookworm 2.57.6, trixie, sid) has `Restart=always` and `KillMode=process`:
after `systemctl kill -s KILL snapd.service` (every process of the unit, a running hook
included) systemd starts it again by itself; should it not within 30 s (its start limit), the
program starts it and the report says so (`started_by_hand`).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from snapconform.harness.fixtures import HOST_WORK_DIR
from snapconform.harness.operations import SnapCommandResult
from snapconform.harness.shell import Shell
from snapconform.hosts.base import HostError

FAULTS_PATH = str(HOST_WORK_DIR / "faults.py")
SETTLE_SECONDS = 240.0  # the bound on snapd coming back and the change getting ready
COMMAND_MARGIN = 600.0  # the program's own waits (start, the point, the settle) fit in this

_HOOK_SUMMARY = re.compile(r"^Run (\S+) hook of ")


class FaultError(HostError):
    """The fault program failed (no JSON, a bad answer): a host fault, not a snapd verdict."""


@dataclass(frozen=True)
class TaskSeen:
    kind: str
    summary: str
    status: str

    @property
    def hook(self) -> str | None:
        """The hook a run-hook task runs (its summary names it; the health check's does not)."""
        if self.kind != "run-hook":
            return None
        if self.summary.startswith("Run health check"):
            return "check-health"
        found = _HOOK_SUMMARY.match(self.summary)
        return found.group(1) if found else None

    @property
    def label(self) -> str:
        return f"{self.kind}[{self.hook}]" if self.hook else self.kind

    def to_json(self) -> list[str]:
        return [self.kind, self.summary, self.status]


def _tasks(raw: list[dict[str, Any]] | None) -> tuple[TaskSeen, ...]:
    return tuple(
        TaskSeen(str(t.get("kind")), str(t.get("summary")), str(t.get("status"))) for t in raw or ()
    )


@dataclass(frozen=True)
class Interruption:
    """What one interrupted change showed: before the kill and after it settled."""

    how: str  # "snapd" (SIGKILL of snapd.service), "power" (the host killed and booted again),
    # "store" (the served store down at the point, back a few seconds later)
    started: bool  # False: snap refused before making a change (nothing to interrupt)
    change: str | None = None
    reached: bool = False  # the kill point was reached before the change was ready
    index: int | None = None  # the task the point names (its number modulo the task count)
    seen: tuple[TaskSeen, ...] = ()  # the last poll before the kill
    settled: bool = False
    final_status: str | None = None
    final_err: str | None = None
    final: tuple[TaskSeen, ...] = ()
    back: str = ""  # how snapd came back: systemd, started by hand, boot, not back
    killed_after: float = 0.0
    settle_seconds: float = 0.0
    mounts: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> TaskSeen | None:
        if self.index is None or self.index >= len(self.seen):
            return None
        return self.seen[self.index]

    @property
    def point_label(self) -> str:
        """The kill point as reached: the task's kind (and hook) and the status waited for."""
        target = self.target
        if not self.started:
            return "no change"
        if target is None:
            return "not reached"
        if not self.reached:
            return f"{target.label} {self.extra.get('status', '?')} (change ready first)"
        waited, seen = self.extra.get("status", "?"), target.status
        return f"{target.label} {waited}" + ("" if seen == waited else f" (seen {seen})")

    @property
    def rerunnable(self) -> frozenset[str]:
        """Hooks whose task had not finished at the kill: one of them may run twice."""
        if not self.started:
            return frozenset()
        return frozenset(t.hook for t in self.seen if t.hook and t.status in ("Do", "Doing"))

    @property
    def unfinished(self) -> frozenset[str]:
        """Kinds of the tasks that had not finished when snapd died (they run again after the
        restart); none when snapd was not killed (the store went down instead)."""
        if not self.started or self.how == "store":
            return frozenset()
        return frozenset(t.kind for t in self.seen if t.status in ("Do", "Doing"))

    def mounted(self, instance: str) -> frozenset[str]:
        prefix = f"/snap/{instance}/"
        return frozenset(m[len(prefix) :] for m in self.mounts if m.startswith(prefix))

    def to_json(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "started": self.started,
            "change": self.change,
            "reached": self.reached,
            "index": self.index,
            "point": self.point_label,
            "seen": [task.to_json() for task in self.seen],
            "settled": self.settled,
            "final_status": self.final_status,
            "final_err": self.final_err,
            "final": [task.to_json() for task in self.final],
            "back": self.back,
            "killed_after": self.killed_after,
            "settle_seconds": self.settle_seconds,
            "mounts": list(self.mounts),
            **self.extra,
        }


@dataclass(frozen=True)
class InterruptedResult(SnapCommandResult):
    """A snap command interrupted mid-change: its exit status and output are those the command
    would have given had it waited (0, or 1 with `error: ` and the change's error)."""

    interruption: Interruption | None = None


def fault_argv(
    argv: list[str], task: int, status: str, delay_ms: int, *, action: str, settle: float
) -> list[str]:
    program = ["python3", FAULTS_PATH, "interrupt", "--task", str(task), "--status", status]
    program += ["--delay-ms", str(delay_ms), "--action", action]
    if settle:
        program += ["--settle", f"{settle:g}"]
    return [*program, "--", *argv]


def fault_command(argv: list[str], task: int, status: str, delay_ms: int) -> str:
    """The shell text that runs `argv` killed at the point and waits for it (reproducers)."""
    return shlex.join(
        fault_argv(argv, task, status, delay_ms, action="kill", settle=SETTLE_SECONDS)
    )


def program_text() -> str:
    return (
        resources.files("snapconform.harness")
        .joinpath("fault_program.py")
        .read_text(encoding="utf-8")
    )


def _last_json(output: str) -> dict[str, Any]:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            try:
                document = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(document, dict):
                return document
    raise FaultError(f"the fault program printed no report: {output[-2000:]}")


def interruption_of(
    report: dict[str, Any], how: str, settle: dict[str, Any] | None
) -> Interruption:
    """The typed view of the program's report (`settle`: its settle part, for a power cut the
    second run's)."""
    if not report.get("started"):
        return Interruption(how=how, started=False)
    seen = report.get("seen") or {}
    settle = settle or {}
    back = "not back"
    if settle.get("snapd_back"):
        back = "started by hand" if settle.get("started_by_hand") else "systemd"
        if how == "power":
            back = "boot"
        elif how == "store":
            back = "never killed"
    point = report.get("point") or {}
    return Interruption(
        how=how,
        started=True,
        change=str(report.get("change")),
        reached=bool(seen.get("reached")),
        index=seen.get("index"),
        seen=_tasks(seen.get("tasks")),
        settled=bool(settle.get("settled")),
        final_status=settle.get("status"),
        final_err=settle.get("err"),
        final=_tasks(settle.get("tasks")),
        back=back,
        killed_after=float(report.get("killed_after") or 0.0),
        settle_seconds=float(settle.get("settle_seconds") or 0.0),
        mounts=tuple(settle.get("mounts") or ()),
        extra={
            "status": point.get("status"),
            "delay_ms": point.get("delay_ms"),
            "polls": seen.get("polls"),
            "restarts": (settle.get("unit") or {}).get("NRestarts"),
            "retries": list(settle.get("retries") or ()),
        },
    )


def result_of(
    argv: list[str], report: dict[str, Any], interruption: Interruption, duration: float
) -> InterruptedResult:
    """What the command would have returned had it waited for its change."""
    if not interruption.started:
        return InterruptedResult(
            tuple(argv),
            int(report.get("exit_code", 1)),
            str(report.get("output", "")),
            duration,
            interruption,
        )
    if interruption.final_status == "Done":
        return InterruptedResult(tuple(argv), 0, "", duration, interruption)
    err = interruption.final_err or f"change {interruption.change} is {interruption.final_status}"
    return InterruptedResult(tuple(argv), 1, f"error: {err}", duration, interruption)


class FaultInjector:
    """Runs the fault program through a host's framed shell."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            self.shell.put_text(FAULTS_PATH, program_text())
            self._installed = True

    def _run(self, argv: list[str]) -> tuple[dict[str, Any], float]:
        self.install()
        result = self.shell.run(shlex.join(argv), timeout=COMMAND_MARGIN)
        if result.exit_code != 0:
            raise FaultError(
                f"the fault program exited {result.exit_code}: {result.output[-2000:]}"
            )
        return _last_json(result.output), result.duration

    def interrupt(
        self, argv: list[str], task: int, status: str, delay_ms: int, settle: float = SETTLE_SECONDS
    ) -> InterruptedResult:
        """Start `argv`, SIGKILL snapd at the point, wait for the change to settle."""
        report, duration = self._run(
            fault_argv(argv, task, status, delay_ms, action="kill", settle=settle)
        )
        interruption = interruption_of(report, "snapd", report.get("settle"))
        return result_of(argv, report, interruption, duration)

    def freeze_at(self, argv: list[str], task: int, status: str, delay_ms: int) -> dict[str, Any]:
        """Start `argv` and stop every snapd process at the point (SIGSTOP): the host's power
        cut comes next, and nothing of snapd moves in between."""
        report, _ = self._run(fault_argv(argv, task, status, delay_ms, action="freeze", settle=0))
        return report

    def thaw(self) -> None:
        """Let a frozen snapd go on (SIGCONT to every process of the unit)."""
        result = self.shell.run("systemctl kill -s CONT snapd.service", timeout=60)
        if result.exit_code != 0:
            raise FaultError(f"cannot thaw snapd: {result.output[-500:]}")

    def settle(self, change: str, settle: float = SETTLE_SECONDS) -> dict[str, Any]:
        report, _ = self._run(
            ["python3", FAULTS_PATH, "settle", "--change", change, "--settle", f"{settle:g}"]
        )
        return report
