"""A run killed with SIGKILL leaves a record; the sweep removes its container and nothing else.

Needs root and systemd-nspawn (skips otherwise); boots one bookworm container in a child
process, kills that process, then sweeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapconform.hosts import cleanup
from snapconform.hosts.nspawn import unavailable_reason
from snapconform.hosts.nspawn_records import STATE_ROOT, cgroup_pids, same_process

RELEASE = os.environ.get("SNAPCONFORM_TEST_NSPAWN_RELEASE", "bookworm")

CONTROLLER = """
import sys, time
from snapconform.hosts.base import open_host
host = open_host(sys.argv[1])
host.start()
print(host.container.state, host.container.pid1, flush=True)
time.sleep(600)
"""


def _start_controller(url: str) -> tuple[subprocess.Popen[str], Path, int]:
    process = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        pytest.fail("the controller did not start a container: " + process.stderr.read())
    record, pid1 = line.split()
    return process, Path(record), int(pid1)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_is_cleaned_up(signum: int) -> None:
    reason = unavailable_reason(f"nspawn://{RELEASE}")
    if reason:
        pytest.skip(reason)
    process, record, pid1 = _start_controller(f"nspawn://{RELEASE}")
    start_time = int(Path(f"/proc/{pid1}/stat").read_text().rsplit(")", 1)[1].split()[19])
    groups = [Path(line) for line in (record / "cgroups").read_text().split()]
    process.send_signal(signum)
    process.wait(timeout=30)
    # The supervisor kills the container when its controller dies, whatever the signal.
    deadline = time.monotonic() + 10
    while same_process(pid1, start_time) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not same_process(pid1, start_time)
    if signum == signal.SIGTERM:
        assert not record.exists()  # the controller's own handler cleaned up
        return
    assert record.exists()  # SIGKILL: only the record and empty cgroups are left
    actions = cleanup.sweep()
    assert f"removed {record}" in actions
    assert not record.exists()
    for group in groups:
        assert not group.exists() and not cgroup_pids(group)
    assert cleanup.sweep() == [] or all(record.name not in a for a in cleanup.sweep())


def test_sweep_leaves_live_runs_alone() -> None:
    reason = unavailable_reason(f"nspawn://{RELEASE}")
    if reason:
        pytest.skip(reason)
    process, record, pid1 = _start_controller(f"nspawn://{RELEASE}")
    try:
        actions = cleanup.sweep()
        assert not any(record.name in action for action in actions)
        assert record.exists()
        assert Path(f"/proc/{pid1}").exists()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not record.exists()
    assert not any(
        p.name == record.name for p in (STATE_ROOT.iterdir() if STATE_ROOT.exists() else [])
    )


def test_cleanup_command_needs_root_or_reports() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "snapconform.hosts.cleanup"],
        capture_output=True,
        text=True,
        check=False,
    )
    if os.geteuid() != 0:
        assert done.returncode == 2 and "needs root" in done.stdout
    else:
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip()
