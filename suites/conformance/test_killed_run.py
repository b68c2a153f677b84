"""A conformance run killed with SIGKILL mid-step leaves its history up to the last completed
step on disk, and the cleanup sweep then leaves nothing of it running on this machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.conformance

SCENARIO = Path(__file__).parent / "killable" / "scenario_killed.py"


def test_sigkilled_run_keeps_its_completed_steps_and_leaves_nothing(tmp_path, configured_host_url):
    artifacts = tmp_path / "artifacts"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SCENARIO)]
    argv += ["--host", configured_host_url, "--artifacts", str(artifacts)]
    child = subprocess.Popen(
        argv,
        cwd=Path(__file__).parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    histories: list[Path] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            histories = list(artifacts.glob("tests/*/history.json"))
            if histories and len(json.loads(histories[0].read_text())["steps"]) >= 3:
                break
            time.sleep(0.5)
        assert child.poll() is None, "the scenario ended before it could be killed"
        time.sleep(1.0)  # into the sleeping command
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    steps = json.loads(histories[0].read_text())["steps"]
    assert [step["verdict"] for step in steps] == ["pass", "pass", "pass"]
    assert steps[0]["observed"]["state"], "each step records what snapd held"

    swept = subprocess.run(
        [sys.executable, "-m", "snapconform.hosts.cleanup"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert swept.returncode == 0, swept.stdout + swept.stderr
    from snapconform.hosts.cleanup import leftovers

    left = leftovers(child.pid)
    left.pop("orphaned_loop_devices")  # any run's, not told apart (see cleanup.leftovers)
    assert all(not items for items in left.values()), left
