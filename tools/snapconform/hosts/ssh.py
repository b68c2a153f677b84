"""``ssh://[user@]host[:port]``: a machine where snapd runs, reached with OpenSSH.

The framed shell is ``ssh -tt ... bash`` (a remote terminal, so ^C reaches the remote command).
One-shot commands (the readiness check, the reset, file copies) use ``ssh -T`` with the same
options. A user other than root gets ``sudo -n`` in front of every remote command.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from snapconform.hosts.base import HostError, HostSpec, HostUnavailable
from snapconform.hosts.local import BorrowedSnapdHost, last_line

SSH_TRANSPORT_FAILURE = 255  # ssh's own exit code when the connection (not the command) failed


class SshHost(BorrowedSnapdHost):
    """A borrowed host over ssh. Options: ``identity`` (key file), ``known_hosts`` (file),
    ``proxy_command`` (an ssh ProxyCommand, for a host with no route from here)."""

    where = "that host"

    def __init__(
        self,
        spec: HostSpec,
        identity: Path | str | None = None,
        known_hosts: Path | str | None = None,
        proxy_command: str | None = None,
        **options: object,
    ) -> None:
        if not spec.hostname:
            raise ValueError(f"host URL {spec.raw!r}: ssh:// needs a host, e.g. ssh://root@vm:22")
        if spec.path not in ("", "/"):
            raise ValueError(f"host URL {spec.raw!r}: ssh:// takes no path ({spec.path!r})")
        super().__init__(spec, **options)
        self.identity = None if identity is None else Path(identity)
        self.known_hosts = None if known_hosts is None else Path(known_hosts)
        self.proxy_command = proxy_command or None

    # -- argv --------------------------------------------------------------------------------
    @property
    def target(self) -> str:
        return f"{self.spec.user}@{self.spec.hostname}" if self.spec.user else self.spec.hostname

    def ssh_options(self) -> list[str]:
        options = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", "LogLevel=ERROR",  # no "Permanently added ..." lines in the shell's output
            "-o", "ConnectTimeout=20",
            "-o", "ServerAliveInterval=15",  # a dead host ends the session (EOF) within ~60 s
            "-o", "ServerAliveCountMax=4",
            "-e", "none",  # no ~ escapes: the input stream is ours, not a person's
        ]  # fmt: skip
        if self.identity is not None:
            options += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts is not None:
            options += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.proxy_command is not None:
            # ssh runs it with /bin/sh and expands %h, %p, %r and %% in it first.
            options += ["-o", f"ProxyCommand={self.proxy_command}"]
        if self.spec.port is not None:
            options += ["-p", str(self.spec.port)]
        return options

    def _as_root(self, command: str) -> str:
        if self.spec.user and self.spec.user != "root":
            return f"sudo -n {command}"
        return command

    def shell_argv(self) -> list[str]:
        remote = "exec " + self._as_root("bash --noprofile --norc -i")
        return ["ssh", "-tt", *self.ssh_options(), self.target, remote]

    def command_argv(self, script: str) -> list[str]:
        # ssh hands the remote login shell one string: quote the script for it.
        remote = self._as_root(f"bash --noprofile --norc -c {shlex.quote(script)}")
        return ["ssh", "-T", *self.ssh_options(), self.target, remote]

    # -- lifecycle ---------------------------------------------------------------------------
    def preflight(self) -> None:
        if shutil.which("ssh") is None:
            raise HostUnavailable(
                f"{self.url}: the ssh client is not installed here (apt-get install openssh-client)"
            )
        if self.identity is not None and not self.identity.is_file():
            raise HostUnavailable(f"{self.url}: identity file {self.identity} does not exist")

    def check_transport(self, result: subprocess.CompletedProcess[str]) -> None:
        if result.returncode == SSH_TRANSPORT_FAILURE:
            raise HostUnavailable(
                f"{self.url}: ssh cannot connect: {last_line(result.stderr or result.stdout)}"
            )

    # -- files -------------------------------------------------------------------------------
    def put_file(self, local: Path, remote: str) -> None:
        if not remote.startswith("/"):
            raise ValueError(f"remote path {remote!r} is not absolute")
        partial = f"{remote}.sc-partial"
        script = (
            f"mkdir -p -- {shlex.quote(os.path.dirname(remote))} && "
            f"cat > {shlex.quote(partial)} && mv -f -- {shlex.quote(partial)} {shlex.quote(remote)}"
        )
        result = self.run_script(script, timeout=600, stdin=Path(local))
        if result.returncode != 0:
            raise HostError(f"{self.url}: cannot write {remote}: {last_line(result.stderr)}")

    def describe(self) -> dict[str, str]:
        facts = super().describe()
        facts["target"] = self.target
        facts["port"] = str(self.spec.port or 22)
        if self.proxy_command is not None:
            facts["proxy"] = self.proxy_command
        return facts


BACKEND = SshHost
