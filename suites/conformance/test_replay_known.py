"""`python -m snapconform replay` on a history that hits a recorded known divergence: it reports
the entry (as the suites do), prints its summary and writes the whole history, with what snapd
held after every step, instead of dying with a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from snapconform.conformance.known import KNOWN_DIVERGENCES
from snapconform.conformance.operations import InstallFile, SetSystem
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance

ENTRY = "parallel-instance-hook-sees-undone-revision"


def test_replay_reports_a_known_divergence_and_writes_everything(
    host_session, names, tmp_path, configured_host_url
):
    name = names.fresh()
    instance = f"{name}_k1"
    steps = [
        SetSystem("experimental.parallel-instances", "true"),
        InstallFile(SnapFile(name, "1.0"), name=instance),
        InstallFile(
            SnapFile(name, "2.0", hooks=(HookPlan("post-refresh", "first failure"),)), name=instance
        ),
        InstallFile(
            SnapFile(name, "3.0", hooks=(HookPlan("post-refresh", "second failure"),)),
            name=instance,
        ),
    ]
    history = tmp_path / "history.json"
    history.write_text(json.dumps({"steps": [{"operation": op.to_json()} for op in steps]}))
    out = tmp_path / "replayed"
    argv = [sys.executable, "-m", "snapconform", "replay", str(history)]
    done = subprocess.run(
        [*argv, "--host", configured_host_url, "--artifacts", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    entry = next(e for e in KNOWN_DIVERGENCES if e.key == ENTRY)
    shows = entry.applies_to(host_session.snapd_version)
    lines = done.stdout.splitlines()
    if shows:
        assert f"known divergence {ENTRY}: 1 step(s)" in done.stdout, done.stdout
        assert lines[-1] == "3 passed, 0 failed", done.stdout
    else:
        assert lines[-1] == "4 passed, 0 failed", done.stdout
    assert done.returncode == 0, done.stdout + done.stderr

    written = json.loads((out / "history.json").read_text())
    assert [step["verdict"] for step in written["steps"]][:3] == ["pass"] * 3
    assert written["steps"][-1]["verdict"] == ("known-divergence" if shows else "pass")
    # every step records what snapd held, not only the mismatching ones
    for step in written["steps"][1:]:
        state = step["observed"]["state"][instance]
        assert state["installed"] is True
        assert state["sequence"] == ["x1"] and state["current"] == "x1"
        assert state["channel"] is None  # a sideload tracks no channel
        assert "x1" in state["data"]
