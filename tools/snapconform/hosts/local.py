"""``local://``: this machine, where snapd already runs; and what every such host shares.

A "borrowed" host (local, ssh, lxd) is a machine whose snapd we did not start and cannot make
pristine by rebooting an overlay. We only check that snapd answers, and a reset removes exactly
the snaps the suite installed, recognised by ``SUITE_SNAP_PREFIX``, leaving everything else alone.
The backends differ only in how a one-shot command reaches the machine (``command_argv``); the
check and the reset below are written once for all three.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from snapconform.hosts.base import Host, HostError, HostSpec, HostUnavailable

# Every snap (instance) name the suite installs starts with this, and nothing else's should:
# reset() on a borrowed host removes exactly these. The suite's name allocator uses "sc-<token><n>".
SUITE_SNAP_PREFIX = "sc-"

CHECK_TIMEOUT = 60.0  # seconds for the one-shot readiness check (ssh connect included)
REMOVE_TIMEOUT = 600.0  # seconds for one `snap remove` (hooks may run)

# Prints one `sc-check: WHAT` line when something is missing, else `snap version`'s output.
_CHECK_SCRIPT = """\
if [ "$(id -u)" != 0 ]; then echo 'sc-check: not-root'; exit 0; fi
if [ ! -e /run/snapd.socket ]; then echo 'sc-check: no-socket'; exit 0; fi
if [ ! -S /run/snapd.socket ]; then echo 'sc-check: not-a-socket'; exit 0; fi
if ! command -v snap >/dev/null 2>&1; then echo 'sc-check: no-snap-command'; exit 0; fi
snap version </dev/null 2>&1
"""


def parse_snap_version(text: str) -> dict[str, str]:
    """`snap version` output (``snap  2.57.6`` lines) as {field: value}."""
    facts: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and value.strip():
            facts[key] = value.strip()
    return facts


def suite_snap_names(snap_list_output: str, prefix: str = SUITE_SNAP_PREFIX) -> list[str]:
    """Instance names in `snap list` output (header line first) that the suite installed."""
    names: list[str] = []
    lines = snap_list_output.splitlines()
    if not lines or not lines[0].startswith("Name"):
        return names
    for line in lines[1:]:
        fields = line.split()
        if fields and fields[0].startswith(prefix) and fields[0] not in names:
            names.append(fields[0])
    return names


def last_line(text: str) -> str:
    """The last non-blank line of a tool's output, for one-line error messages."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


class BorrowedSnapdHost(Host):
    """A machine where snapd already runs: start checks it, reset removes the suite's snaps."""

    # How messages name the machine: "this machine", "that host", "that instance".
    where = "that host"

    def __init__(self, spec: HostSpec, **options: object) -> None:
        super().__init__(spec)
        if options:
            raise ValueError(
                f"{spec.raw or spec.scheme + '://'}: unknown option(s) "
                + ", ".join(sorted(options))
                + f" for {spec.scheme}://"
            )
        self.facts: dict[str, str] = {}

    # -- what a backend provides -------------------------------------------------------------
    def command_argv(self, script: str) -> list[str]:
        """argv that runs bash ``script`` once as root on the host, without a terminal."""
        raise NotImplementedError

    def preflight(self) -> None:
        """Check what the backend itself needs (a client tool, a reachable machine)."""

    # -- shared by all borrowed hosts --------------------------------------------------------
    def run_script(
        self, script: str, timeout: float = CHECK_TIMEOUT, stdin: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``script`` once on the host; HostError (or HostUnavailable) if it could not run."""
        argv = self.command_argv(script)
        try:
            with contextlib.ExitStack() as stack:
                source = stack.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
                result = subprocess.run(
                    argv,
                    stdin=source,
                    capture_output=True,
                    text=True,
                    errors="replace",
                    timeout=timeout,
                    check=False,
                )
        except FileNotFoundError as exc:
            raise HostUnavailable(f"{self.url}: {argv[0]} is not installed here") from exc
        except subprocess.TimeoutExpired as exc:
            raise HostError(f"{self.url}: no answer within {timeout:g} s from {argv[0]}") from exc
        self.check_transport(result)
        return result

    def start(self) -> None:
        self.preflight()
        result = self.run_script(_CHECK_SCRIPT)
        status = result.stdout.strip()
        problems = {
            "sc-check: not-root": "the shell there is not root (and sudo -n was not allowed)",
            "sc-check: no-socket": f"/run/snapd.socket does not exist (snapd is not running on "
            f"{self.where})",
            "sc-check: not-a-socket": "/run/snapd.socket is not a socket",
            "sc-check: no-snap-command": "the snap command is not installed "
            "(apt-get install snapd)",
        }
        if status in problems:
            raise HostUnavailable(f"{self.url}: {problems[status]}")
        if result.returncode != 0:
            raise HostUnavailable(
                f"{self.url}: `snap version` failed ({result.returncode}): {last_line(status)}"
            )
        facts = parse_snap_version(status)
        if facts.get("snapd", "unavailable") == "unavailable":
            raise HostUnavailable(
                f"{self.url}: snapd does not answer on /run/snapd.socket "
                f"(`snap version` says: {last_line(status)})"
            )
        self.facts = facts

    def check_transport(self, result: subprocess.CompletedProcess[str]) -> None:
        """Raise HostUnavailable if the transport (not the script) failed; ssh overrides this."""

    def reset(self) -> None:
        """Remove every snap whose name starts with SUITE_SNAP_PREFIX; leave the rest alone."""
        listing = self.run_script("snap list --unicode=never --color=never 2>&1")
        if listing.returncode != 0 and "No snaps are installed" not in listing.stdout:
            raise HostError(f"{self.url}: `snap list` failed: {last_line(listing.stdout)}")
        failures: list[str] = []
        for name in suite_snap_names(listing.stdout):
            # --purge: no automatic snapshot is kept of a snap the suite made up.
            removed = self.run_script(
                f"snap remove --purge {shlex.quote(name)} </dev/null 2>&1", timeout=REMOVE_TIMEOUT
            )
            if removed.returncode != 0:
                failures.append(f"{name} ({last_line(removed.stdout)})")
        if failures:
            raise HostError(f"{self.url}: reset could not remove: " + "; ".join(failures))

    def stop(self) -> None:
        """Nothing to stop: we did not start this snapd."""

    def describe(self) -> dict[str, str]:
        facts = super().describe()
        for key in ("snapd", "series", "kernel"):
            if key in self.facts:
                facts[key] = self.facts[key]
        for key, value in self.facts.items():
            if key not in ("snap", "snapd", "series", "kernel"):
                facts["distribution"] = f"{key} {value}"
        return facts


class LocalHost(BorrowedSnapdHost):
    """``local://``: this machine as root (directly, or through ``sudo -n``)."""

    where = "this machine"

    def __init__(self, spec: HostSpec, **options: object) -> None:
        if spec.hostname or spec.path not in ("", "/") or spec.user or spec.port:
            raise ValueError(f"host URL {spec.raw!r}: local:// takes nothing after the scheme")
        super().__init__(spec, **options)

    def _root_prefix(self) -> list[str]:
        if os.geteuid() == 0:
            return []
        if shutil.which("sudo") is None:
            raise HostUnavailable(f"{self.url}: not running as root and sudo is not installed")
        probe = subprocess.run(
            ["sudo", "-n", "true"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode != 0:
            raise HostUnavailable(
                f"{self.url}: not running as root and `sudo -n` is not allowed "
                f"({last_line(probe.stderr)})"
            )
        return ["sudo", "-n"]

    def shell_argv(self) -> list[str]:
        return [*self._root_prefix(), "bash", "--noprofile", "--norc", "-i"]

    def command_argv(self, script: str) -> list[str]:
        return [*self._root_prefix(), "bash", "--noprofile", "--norc", "-c", script]

    def put_file(self, local: Path, remote: str) -> None:
        if not remote.startswith("/"):
            raise ValueError(f"remote path {remote!r} is not absolute")
        prefix = self._root_prefix()
        if not prefix:
            target = Path(remote)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.sc-partial")
            shutil.copyfile(local, partial)
            partial.replace(target)
            return
        result = self.run_script(
            f"mkdir -p -- {shlex.quote(os.path.dirname(remote))} && cat > {shlex.quote(remote)}",
            stdin=Path(local),
        )
        if result.returncode != 0:
            raise HostError(f"{self.url}: cannot write {remote}: {last_line(result.stderr)}")

    def describe(self) -> dict[str, str]:
        facts = super().describe()
        facts["hostname"] = os.uname().nodename
        return facts


BACKEND = LocalHost
