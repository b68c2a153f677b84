"""`pytest -n 2` with one worker SIGKILLed mid-step: the other worker and its host go on, the
run still writes its reports, and nothing of the killed worker's container is left on this
machine when the run ends (the controller sweeps a dead worker's container records at once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapconform.hosts.cleanup import leftovers
from snapconform.hosts.nspawn import STATE_ROOT, unavailable_reason

pytestmark = pytest.mark.conformance

SCENARIO = Path(__file__).parent / "killable" / "scenario_workers.py"
REPO = Path(__file__).parents[2]


def _history_steps(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["steps"])
    except (OSError, ValueError, KeyError):
        return 0


def test_a_sigkilled_worker_leaves_nothing_and_the_other_goes_on(tmp_path, configured_host_url):
    pytest.importorskip("xdist", reason="pytest -n needs pytest-xdist (pip install .[test])")
    url = configured_host_url
    if not url.startswith("nspawn://"):
        pytest.skip(f"kills the worker of an nspawn container; this run drives {url}")
    reason = unavailable_reason(url)
    if reason:
        pytest.skip(reason)
    artifacts = tmp_path / "artifacts"
    marker = tmp_path / "killed"
    # the outer run may have pinned its own host (?cpu=N): the inner workers pin their own
    base = url.split("?", 1)[0]
    argv = [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider"]
    argv += [str(SCENARIO), "--host", base, "--artifacts", str(artifacts)]
    argv += ["--junitxml", str(artifacts / "junit.xml")]
    child = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SNAPCONFORM_KILLED": str(marker)},
        start_new_session=True,
    )
    victim: int | None = None
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and child.poll() is None and victim is None:
            for history in artifacts.glob("gw*/tests/*test_killed*/history.json"):
                if _history_steps(history) >= 2:
                    worker = history.parents[2]
                    victim = int(json.loads((worker / "worker.json").read_text())["pid"])
            time.sleep(0.3)
        assert victim is not None, "the scenario never reached the step it is killed in"
        ours = [r for r in STATE_ROOT.glob(f"{victim}-*") if r.is_dir()]
        assert ours, "the worker to kill has no container record"
        time.sleep(1.0)  # into the sleeping command
        os.kill(victim, signal.SIGKILL)
        marker.touch()
        output, _ = child.communicate(timeout=400)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGINT)
            child.communicate(timeout=60)
    assert child.returncode == 1, output  # the killed worker's test is a failure
    assert "crashed while running" in output and "test_killed" in output, output
    assert "1 passed" in output, output

    left = leftovers(victim)
    left.pop("orphaned_loop_devices")  # any run's, not told apart (see cleanup.leftovers)
    assert all(not items for items in left.values()), left
    combined = json.loads((artifacts / "workers.json").read_text())
    died = [w for w in combined["workers"] if w["died"]]
    assert [w["pid"] for w in died] == [victim], combined["workers"]
    victim_dir = artifacts / died[0]["worker"]
    recorded = json.loads((victim_dir / "leftovers.json").read_text())
    assert recorded["owner"] == victim and not any(
        recorded[kind] for kind in ("records", "processes", "cgroups", "mounts", "loop_devices")
    ), recorded
    assert (victim_dir / "report.html").is_file()
    assert (artifacts / "report.html").is_file()
    outcomes = {t["nodeid"].rsplit("::", 1)[1]: t["outcome"] for t in combined["tests"]}
    assert outcomes == {"test_killed": "error", "test_survives": "passed"}, outcomes
    # the killed test's completed steps are in its worker's history
    histories = list(victim_dir.glob("tests/*test_killed*/history.json"))
    assert histories and _history_steps(histories[0]) == 2
