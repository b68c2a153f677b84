"""``lxd://NAME``: an LXD instance where snapd runs, reached with the ``lxc`` client.

The framed shell is ``lxc exec NAME -- bash`` (lxc gives it a terminal because pexpect's is one);
files go in with ``lxc file push``. start() checks that ``lxc`` exists and the instance is
running before the shared snapd check; reset is the shared "remove the suite's snaps".
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from snapconform.hosts.base import HostError, HostSpec, HostUnavailable
from snapconform.hosts.local import BorrowedSnapdHost, last_line

# LXD instance names: a hostname label (letters, digits, hyphens; not starting with a digit or
# hyphen, not ending with a hyphen; at most 63 characters).
INSTANCE_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def parse_lxc_status(lxc_info_output: str) -> str | None:
    """The ``Status:`` value of `lxc info NAME` (e.g. ``RUNNING``), upper-cased; None if absent."""
    for line in lxc_info_output.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "status" and value.strip():
            return value.strip().upper()
    return None


class LxdHost(BorrowedSnapdHost):
    """A borrowed host in an LXD container or VM on this machine's LXD."""

    def __init__(self, spec: HostSpec, **options: object) -> None:
        # urlsplit lower-cases the host part; LXD names keep their case, so read the raw URL.
        name = urlsplit(spec.raw).netloc if spec.raw else spec.hostname
        if not name:
            raise ValueError(f"host URL {spec.raw!r}: lxd:// needs an instance name, e.g. lxd://c1")
        if spec.path not in ("", "/"):
            raise ValueError(f"host URL {spec.raw!r}: lxd:// takes no path ({spec.path!r})")
        if not INSTANCE_NAME.fullmatch(name):
            raise ValueError(
                f"host URL {spec.raw!r}: {name!r} is not an LXD instance name "
                "(letters, digits and hyphens, starting with a letter)"
            )
        super().__init__(spec, **options)
        self.instance = name
        self.where = f"instance {name}"

    def shell_argv(self) -> list[str]:
        return ["lxc", "exec", self.instance, "--", "bash", "--noprofile", "--norc", "-i"]

    def command_argv(self, script: str) -> list[str]:
        # lxc exec passes argv through unchanged: no remote shell parses it again.
        return ["lxc", "exec", self.instance, "--", "bash", "--noprofile", "--norc", "-c", script]

    def preflight(self) -> None:
        if shutil.which("lxc") is None:
            raise HostUnavailable(
                f"{self.url}: the lxc client is not installed here "
                "(snap install lxd, or apt-get install lxd-client)"
            )
        try:
            info = subprocess.run(
                ["lxc", "info", self.instance],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise HostUnavailable(f"{self.url}: `lxc info {self.instance}` did not answer") from exc
        if info.returncode != 0:
            reason = last_line(info.stderr or info.stdout)
            if "not found" in reason.lower():
                raise HostUnavailable(
                    f"{self.url}: LXD instance {self.instance!r} does not exist ({reason})"
                )
            raise HostUnavailable(f"{self.url}: `lxc info {self.instance}` failed: {reason}")
        status = parse_lxc_status(info.stdout)
        if status != "RUNNING":
            raise HostUnavailable(
                f"{self.url}: LXD instance {self.instance!r} is {status or 'in an unknown state'}, "
                f"not running (lxc start {self.instance})"
            )

    def put_file(self, local: Path, remote: str) -> None:
        if not remote.startswith("/"):
            raise ValueError(f"remote path {remote!r} is not absolute")
        argv = ["lxc", "file", "push", "--create-dirs", str(local), f"{self.instance}{remote}"]
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=600,
                check=False,
            )
        except FileNotFoundError as exc:
            raise HostUnavailable(f"{self.url}: the lxc client is not installed here") from exc
        except subprocess.TimeoutExpired as exc:
            raise HostError(f"{self.url}: `lxc file push` to {remote} did not finish") from exc
        if result.returncode != 0:
            raise HostError(f"{self.url}: cannot write {remote}: {last_line(result.stderr)}")

    def describe(self) -> dict[str, str]:
        facts = super().describe()
        facts["instance"] = self.instance
        return facts


BACKEND = LxdHost
