"""ssh:// end to end against an sshd we start on 127.0.0.1 (a free port, a throwaway key).

The sshd listens on loopback only, accepts only the key made here, and is stopped (with every
session process it forked, by PID) when the module's tests are done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapconform.harness.shell import CommandTimeout, HostFault, Shell
from snapconform.hosts.base import HostError, HostUnavailable, open_host
from snapconform.hosts.ssh import SshHost

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class Sshd:
    port: int
    key: Path
    known_hosts: Path
    pid: int

    def url(self, user: str = "root") -> str:
        return f"ssh://{user}@127.0.0.1:{self.port}"

    def host(self) -> SshHost:
        host = open_host(self.url(), identity=self.key, known_hosts=self.known_hosts)
        assert isinstance(host, SshHost)
        return host


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """PIDs whose parent chain leads to pid (sshd's per-connection processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if os.geteuid() != 0:
        pytest.skip("an sshd that accepts root logins needs root here")
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None or not shutil.which("ssh"):
        pytest.skip("openssh-server/openssh-client not installed (apt-get install openssh-server)")
    work = tmp_path_factory.mktemp("sshd")
    work.chmod(0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)], check=True
        )
    (work / "authorized_keys").write_text((work / "client_key.pub").read_text())
    port = free_loopback_port()
    config = work / "sshd_config"
    config.write_text(
        "ListenAddress 127.0.0.1\n"
        f"Port {port}\n"
        f"HostKey {work / 'host_key'}\n"
        f"AuthorizedKeysFile {work / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "PidFile none\n"
    )
    created_privsep = not PRIVSEP_DIR.exists()
    if created_privsep:
        PRIVSEP_DIR.mkdir(mode=0o755)
    log = (work / "sshd.log").open("w")
    server = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while "Server listening" not in (work / "sshd.log").read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"sshd did not start: {(work / 'sshd.log').read_text().strip()}")
            time.sleep(0.05)
        yield Sshd(port, work / "client_key", work / "known_hosts", server.pid)
    finally:
        for child in descendants(server.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        if created_privsep:
            with contextlib.suppress(OSError):
                PRIVSEP_DIR.rmdir()


@pytest.fixture
def ssh_shell(sshd: Sshd, tmp_path: Path) -> Iterator[Shell]:
    with Shell(sshd.host(), transcript=tmp_path / "t.log", default_timeout=30) as shell:
        yield shell


def test_sshd_is_bound_to_loopback_only(sshd: Sshd) -> None:
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    ours = [line.split()[1] for line in listening if line.split()[1].endswith(f":{sshd.port:04X}")]
    assert ours == [f"0100007F:{sshd.port:04X}"]


@pytest.mark.skipif(os.path.exists("/run/snapd.socket"), reason="snapd runs here")
def test_start_without_snapd_says_what_is_missing(sshd: Sshd) -> None:
    host = sshd.host()
    with pytest.raises(HostUnavailable) as unavailable:
        host.start()
    assert str(unavailable.value) == (
        f"{sshd.url()}: /run/snapd.socket does not exist (snapd is not running on that host)"
    )


def test_wrong_key_cannot_connect(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    host = open_host(sshd.url(), identity=other, known_hosts=sshd.known_hosts)
    with pytest.raises(HostUnavailable, match=r"ssh cannot connect: .*Permission denied"):
        host.start()


def test_missing_identity_file(sshd: Sshd, tmp_path: Path) -> None:
    host = open_host(sshd.url(), identity=tmp_path / "absent")
    with pytest.raises(HostUnavailable, match=r"identity file .* does not exist"):
        host.start()


def test_closed_port_cannot_connect(sshd: Sshd) -> None:
    host = open_host(
        f"ssh://root@127.0.0.1:{free_loopback_port()}",
        identity=sshd.key,
        known_hosts=sshd.known_hosts,
    )
    with pytest.raises(HostUnavailable, match="Connection refused"):
        host.start()


def test_commands_over_ssh(ssh_shell: Shell) -> None:
    assert ssh_shell.run("id -u").output == "0"
    assert ssh_shell.run('[ -n "$SSH_CONNECTION" ] && echo via-ssh').output == "via-ssh"
    assert ssh_shell.run("echo out; echo err >&2; exit 3").exit_code == 3
    assert ssh_shell.run("echo out; echo err >&2").output == "out\nerr"
    text = 'it\'s "here"\nEOF\n$(no)'
    assert ssh_shell.run(f"cat <<'EOF2'\n{text}\nEOF2").output == text
    assert ssh_shell.run("printf %s " + "y" * 10000 + " | wc -c").output == "10000"
    for index in range(50):
        assert ssh_shell.run(f"echo {index}").output == str(index)


def test_timeout_over_ssh(ssh_shell: Shell) -> None:
    with pytest.raises(CommandTimeout) as timed_out:
        ssh_shell.run("echo begun; sleep 1000", timeout=2)
    assert timed_out.value.output == "begun"
    assert ssh_shell.run("echo after").output == "after"


def test_files_over_ssh(ssh_shell: Shell, tmp_path: Path) -> None:
    remote = tmp_path / "pushed" / "dir" / "file.txt"
    ssh_shell.put_text(str(remote), "über\nline\n")
    assert remote.read_text() == "über\nline\n"
    assert ssh_shell.read_text(str(remote)) == "über\nline\n"
    assert ssh_shell.read_text(str(tmp_path / "missing")) is None
    assert not list(remote.parent.glob("*.sc-partial"))


def test_lost_connection_is_a_host_fault(sshd: Sshd) -> None:
    shell = Shell(sshd.host(), default_timeout=30)
    shell.start()
    try:
        client = shell.pid
        assert client is not None
        os.kill(client, signal.SIGKILL)  # the local ssh client we spawned
        with pytest.raises(HostFault):
            shell.run("echo never")
        assert not shell.running
    finally:
        shell.close()


def test_reset_without_snap_is_a_host_error(sshd: Sshd) -> None:
    if os.path.exists("/usr/bin/snap"):
        pytest.skip("the snap command is installed here")
    with pytest.raises(HostError, match=r"`snap list` failed: .*snap: command not found"):
        sshd.host().reset()


def test_describe(sshd: Sshd) -> None:
    facts = sshd.host().describe()
    assert facts["kind"] == "ssh"
    assert facts["target"] == "root@127.0.0.1"
    assert facts["port"] == str(sshd.port)


@pytest.mark.skipif(os.path.exists("/run/snapd.socket"), reason="snapd runs here")
def test_cli_check_over_ssh_without_snapd(sshd: Sshd) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "snapconform", "hosts", "check", sshd.url()),
            *("--identity", str(sshd.key), "--known-hosts", str(sshd.known_hosts)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"snapconform hosts: {sshd.url()}: /run/snapd.socket does not exist "
        "(snapd is not running on that host)\n"
    )
