"""Seed 004's table replayed on real snapd behind the served store, through the command a
publisher runs: `python -m snapconform table suites/plans/epochs-004.yaml --host URL --format
json`. Every cell must be confirmed by snapd and be the corrected table's (step 6: user 2 gets
R6), and every real step must pass its model check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "suites" / "plans" / "epochs-004.yaml"
# The page's table as its comments corrected it (suites/model/test_table_004.py): per step,
# what users 1, 2 and 3 hold, written as the table writes a cell ("-": not installed yet).
CORRECTED = {
    1: ("R1E0", "R1E0", "-"),
    2: ("R2E0", "R2E0", "-"),
    3: ("R2E0", "R2E0", "R3E1"),
    4: ("R4E0", "R4E0", "R3E1"),
    5: ("R4E0", "R4E0", "R3E1"),
    6: ("R4E0", "R6E1", "R6E1"),
    7: ("R6E1", "R6E1", "R6E1"),
    8: ("R6E1", "R7E1", "R7E1"),
}
USERS = ("user1", "user2", "user3")
NO_HOST = "no host to replay on: "


def _model_text(cell: dict | None) -> str:
    if cell is None:
        return "-"
    write = cell["epoch"].rstrip("*")  # 1* writes epoch 1 data
    return f"R{cell['revision']}E{write}"


def test_004_every_cell_confirmed_on_real_snapd(configured_host_url: str, test_artifacts: Path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snapconform",
            "table",
            str(PLAN),
            "--host",
            configured_host_url,
            "--format",
            "json",
            "--artifacts",
            str(test_artifacts / "replay"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,  # a first run builds the test-keys snapd (~6 minutes) and its image
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    (test_artifacts / "table-stderr.log").write_text(done.stderr)
    (test_artifacts / "table.json").write_text(done.stdout)
    if done.returncode == 3 and NO_HOST in done.stderr:
        reason = done.stderr.split(NO_HOST, 1)[1].strip().splitlines()[0]
        pytest.skip(f"no store-tier host to replay on: {reason}")
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    facts = data["replay"]
    assert facts["verdict"] == "confirmed"
    assert facts["snapd_build"].startswith("testkeys ")
    assert facts["cells_diverged"] == 0 and facts["steps_diverged"] == 0
    assert facts["cells_confirmed"] == len(CORRECTED) * len(USERS)
    assert facts["snapd_build"] in done.stderr  # which snapd ran is printed
    assert [step["step"] for step in data["steps"]] == list(CORRECTED)
    for step in data["steps"]:
        expected = CORRECTED[step["step"]]
        model = tuple(_model_text(step["users"][user]) for user in USERS)
        observed = tuple(step["observed"][user]["text"] for user in USERS)
        assert model == expected, f"step {step['step']}: the model's table"
        assert observed == expected, f"step {step['step']}: what snapd held"
        assert all(step["observed"][user]["status"] == "confirmed" for user in USERS)
        assert step["checked"]["verdict"] == "pass"
        # step 1 only installs; nobody is offline in 004, so later steps run `snap refresh`
        assert step["checked"]["refresh"] == ("none" if step["step"] == 1 else "all")
    # step 6, the page's correction: user 2 (candidate) gets R6, epoch 1*, from snapd itself
    six = data["steps"][5]["observed"]["user2"]
    assert (six["revision"], six["epoch"], six["tracking"]) == (6, "1*", "latest/candidate")
    history = json.loads(Path(facts["history"]).read_text())
    assert history["steps"] and all(s["verdict"] == "pass" for s in history["steps"])
