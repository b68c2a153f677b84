"""The snap CLI operations we drive, sent through the framed shell, and what they printed.

Commands run with stdout piped through `cat` so snap prints no progress bars (it only draws them
on a terminal) and their exit status is taken from the `snap` process itself.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from snapconform.harness.fixtures import HOST_WORK_DIR
from snapconform.harness.shell import Shell
from snapconform.hosts.base import HostError

REMOTE_SNAP_DIR = str(HOST_WORK_DIR / "snaps")
SNAP_OPERATION_TIMEOUT = 300.0  # hooks may take up to 10 min in snapd; ours take milliseconds
APP_TIMEOUT = 60.0


# Output that means the HOST failed, whatever snapd was asked: this kernel's intermittent
# failure to bind a snap's mount namespace when it is created on another CPU (hosts.md; CPU
# pinning prevents it). Seen in a command's output, it is a host fault, never a verdict.
HOST_FAULT_SIGNATURES = (
    re.compile(r"cannot preserve mount namespace of process \d+ as \S+: Invalid argument"),
)


class HostSideFailure(HostError):
    """A command failed for a reason of the host's (see HOST_FAULT_SIGNATURES)."""


def normalise_whitespace(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class SnapCommandResult:
    argv: tuple[str, ...]
    exit_code: int
    output: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def message(self) -> str:
        """What snap said, whitespace-normalised: the text after `error: ` when there is one
        (some refusals, e.g. removing what is not installed, print a message and exit 0)."""
        match = re.search(r"(?ms)^error: (.*)\Z", self.output)
        return normalise_whitespace(match.group(1) if match else self.output)

    @property
    def error(self) -> str | None:
        """snap's error message, whitespace-normalised; None on success."""
        return None if self.exit_code == 0 else self.message

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def snap_command(argv: list[str]) -> str:
    """Shell text that runs argv with no tty on stdout and keeps argv's own exit status."""
    return f"{shlex.join(argv)} </dev/null 2>&1 | cat; (exit ${{PIPESTATUS[0]}})"


class SnapClient:
    """`snap install/refresh/revert/remove/set` and the fixture app, on one host.

    ``time_limit`` (seconds), when set, caps every command's own timeout: a command still
    running then is interrupted (CommandTimeout), which a conformance run reports as a host fault.
    """

    def __init__(self, shell: Shell, time_limit: float | None = None) -> None:
        self.shell = shell
        self.time_limit = time_limit
        self._uploaded: dict[Path, str] = {}

    def limited_to(self, seconds: float) -> SnapClient:
        """This client (same shell, same uploads) with every command capped at ``seconds``."""
        limited = SnapClient(self.shell, time_limit=seconds)
        limited._uploaded = self._uploaded
        return limited

    def upload(self, local: Path) -> str:
        """Put a .snap on the host once (content-addressed names make reuse safe)."""
        remote = self._uploaded.get(local)
        if remote is None:
            remote = f"{REMOTE_SNAP_DIR}/{local.name}"
            self.shell.host.put_file(local, remote)
            self._uploaded[local] = remote
        return remote

    def forget_uploads(self) -> None:
        """After a host reset the uploaded files are gone with the overlay."""
        self._uploaded.clear()

    def _run(self, argv: list[str], timeout: float = SNAP_OPERATION_TIMEOUT) -> SnapCommandResult:
        if self.time_limit is not None:
            timeout = min(timeout, self.time_limit)
        result = self.shell.run(snap_command(argv), timeout=timeout)
        for signature in HOST_FAULT_SIGNATURES:
            found = signature.search(result.output)
            if found:
                raise HostSideFailure(f"{shlex.join(argv)}: {found.group(0)}")
        return SnapCommandResult(
            argv=tuple(argv),
            exit_code=result.exit_code,
            output=result.output,
            duration=result.duration,
        )

    def run_snap(self, argv: list[str]) -> SnapCommandResult:
        """Any `snap ...` command (argv[0] must be "snap"), with the same handling."""
        if not argv or argv[0] != "snap":
            raise ValueError(f"not a snap command: {argv!r}")
        return self._run(list(argv))

    def install_file(self, remote_path: str, name: str | None = None) -> SnapCommandResult:
        argv = ["snap", "install", "--dangerous", remote_path]
        if name is not None:
            argv += ["--name", name]
        return self._run(argv)

    def refresh(self, instance: str, revision: str | None = None) -> SnapCommandResult:
        argv = ["snap", "refresh"]
        if revision is not None:
            argv.append(f"--revision={revision}")
        return self._run([*argv, instance])

    def revert(self, instance: str, revision: str | None = None) -> SnapCommandResult:
        argv = ["snap", "revert", instance]
        if revision is not None:
            argv.append(f"--revision={revision}")
        return self._run(argv)

    def remove(
        self, instance: str, revision: str | None = None, purge: bool = False
    ) -> SnapCommandResult:
        argv = ["snap", "remove", instance]
        if revision is not None:
            argv.append(f"--revision={revision}")
        if purge:
            argv.append("--purge")
        return self._run(argv)

    def set_system(self, key: str, value: str) -> SnapCommandResult:
        return self._run(["snap", "set", "system", f"{key}={value}"])

    def run_as(self, user: str, argv: list[str]) -> SnapCommandResult:
        """A `snap ...` command as ``user`` (runuser, which sets HOME and USER from passwd;
        root runs it directly)."""
        if not argv or argv[0] != "snap":
            raise ValueError(f"not a snap command: {argv!r}")
        if user != "root":
            argv = ["runuser", "-u", user, "--", *argv]
        return self._run(argv, timeout=APP_TIMEOUT)

    def run_app(self, instance: str, marker: str) -> SnapCommandResult:
        # `snap run` rather than /snap/bin/NAME.mark: the same process either way, but for an
        # instance that is not installed snap itself answers (what the model predicts).
        return self._run(["snap", "run", f"{instance}.mark", marker], timeout=APP_TIMEOUT)

    def version(self) -> str:
        return self._run(["snap", "version"], timeout=60).output
