"""local://, lxd:// and qemu:// on this machine (which runs no snapd), and `snapconform hosts`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from snapconform.harness.shell import Shell
from snapconform.hosts.base import HostError, HostUnavailable, open_host
from snapconform.hosts.local import (
    SUITE_SNAP_PREFIX,
    LocalHost,
    parse_snap_version,
    suite_snap_names,
)
from snapconform.hosts.lxd import parse_lxc_status

NO_SNAPD = not os.path.exists("/run/snapd.socket")
needs_no_snapd = pytest.mark.skipif(not NO_SNAPD, reason="snapd runs here (/run/snapd.socket)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="local:// shell tests run as root")

SNAP_LIST = """\
Name            Version   Rev    Tracking       Publisher   Notes
core            16-2.57   1      -              -           core
sc-a1b2c1       1.0       x2     -              -           -
sc-a1b2c1_inst  1.0       x1     -              -           -
hello           2.10      42     latest/stable  canonical✓  -
scx-other       1.0       x1     -              -           -
"""


def test_suite_snap_names_picks_only_the_prefix() -> None:
    assert SUITE_SNAP_PREFIX == "sc-"
    assert suite_snap_names(SNAP_LIST) == ["sc-a1b2c1", "sc-a1b2c1_inst"]
    assert suite_snap_names("") == []
    assert suite_snap_names("No snaps are installed yet.") == []


def test_parse_snap_version() -> None:
    text = "snap    2.57.6\nsnapd   2.57.6\nseries  16\ndebian  12\nkernel  6.1.0-18-amd64\n"
    facts = parse_snap_version(text)
    assert facts["snapd"] == "2.57.6"
    assert facts["debian"] == "12"
    assert parse_snap_version("snap 2.57.6\nsnapd unavailable\n")["snapd"] == "unavailable"


def test_parse_lxc_status() -> None:
    assert parse_lxc_status("Name: c1\nStatus: RUNNING\nType: container\n") == "RUNNING"
    assert parse_lxc_status("Name: c1\nStatus: Stopped\n") == "STOPPED"
    assert parse_lxc_status("nothing here") is None


@needs_no_snapd
@needs_root
def test_local_start_without_snapd_says_what_is_missing() -> None:
    host = open_host("local://")
    with pytest.raises(HostUnavailable) as unavailable:
        host.start()
    assert str(unavailable.value) == (
        "local://: /run/snapd.socket does not exist (snapd is not running on this machine)"
    )
    host.stop()  # nothing started; still fine


@needs_root
def test_local_shell_is_a_real_root_shell(tmp_path: Path) -> None:
    host = open_host("local://")
    with Shell(host, transcript=tmp_path / "t.log") as shell:
        assert shell.run("id -u").output == "0"
        target = tmp_path / "deep" / "dir" / "f"
        shell.put_text(str(target), "payload\n")
        assert target.read_text() == "payload\n"
        assert shell.read_text(str(target)) == "payload\n"
    assert "id -u" in (tmp_path / "t.log").read_text()


def test_local_put_file_needs_an_absolute_path(tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_text("x")
    with pytest.raises(ValueError, match="not absolute"):
        open_host("local://").put_file(source, "relative/path")


def write_snap_stand_in(directory: Path, listing: str) -> Path:
    """A stand-in `snap` command (this machine has no snapd) that lists and logs removals."""
    log = directory / "calls.log"
    script = directory / "snap"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$1" in\n'
        f"  list) cat <<'EOF'\n{listing}EOF\n;;\n"
        '  remove) case "$3" in\n'
        '    sc-a1b2c1_inst) echo "error: cannot remove: busy"; exit 1;;\n'
        "  esac;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


@needs_root
def test_reset_removes_only_suite_snaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = write_snap_stand_in(tmp_path, SNAP_LIST)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    host = open_host("local://")
    assert isinstance(host, LocalHost)
    with pytest.raises(HostError) as failed:
        host.reset()
    assert str(failed.value) == (
        "local://: reset could not remove: sc-a1b2c1_inst (error: cannot remove: busy)"
    )
    calls = log.read_text().splitlines()
    assert calls == [
        "list --unicode=never --color=never",
        "remove --purge sc-a1b2c1",
        "remove --purge sc-a1b2c1_inst",
    ]


@needs_root
def test_reset_without_snap_is_a_clear_host_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if os.path.exists("/usr/bin/snap"):
        pytest.skip("the snap command is installed here")
    with pytest.raises(HostError, match=r"`snap list` failed: .*snap: command not found"):
        open_host("local://").reset()


def test_lxd_without_lxc_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no lxc
    with pytest.raises(HostUnavailable) as unavailable:
        open_host("lxd://c1").start()
    assert str(unavailable.value).startswith("lxd://c1: the lxc client is not installed here")


def test_qemu_without_qemu_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no qemu, no mmdebstrap
    host = open_host("qemu://bookworm")
    with pytest.raises(HostUnavailable) as unavailable:
        host.start()
    message = str(unavailable.value)
    assert message.startswith("qemu://bookworm needs ") or "needs root" in message
    if os.geteuid() == 0:
        assert "qemu-system-x86_64 (apt-get install qemu-system-x86)" in message
    with pytest.raises(HostError, match="is not running"):
        host.shell_argv()
    host.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapconform", "hosts", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("bogus", "has no scheme"),
        ("nope://x", "unknown scheme"),
        ("lxd://", "needs an instance name"),
        ("qemu://nope", "unknown release"),
    ],
)
def test_cli_bad_or_unavailable_host_exits_2_with_one_line(url: str, message: str) -> None:
    result = run_cli("check", url)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("snapconform hosts: ")
    assert message in result.stderr


@needs_no_snapd
@needs_root
def test_cli_local_without_snapd() -> None:
    result = run_cli("check", "local://")
    assert result.returncode == 2
    assert result.stderr == (
        "snapconform hosts: local://: /run/snapd.socket does not exist "
        "(snapd is not running on this machine)\n"
    )


def test_cli_rejects_ssh_options_for_local() -> None:
    result = run_cli("check", "local://", "--identity", "/nonexistent")
    assert result.returncode == 2
    assert "unknown option(s) identity" in result.stderr
