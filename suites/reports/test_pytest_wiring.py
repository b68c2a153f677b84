"""conftest.py's hooks in real pytest sessions (a copy of this project's conftest.py in a
scratch directory): progress lines pass pytest's output capture, a conformance session writes
report.html (also when interrupted), and a report that cannot be written is a warning, never a
failed run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

LONG_RUN = """
import time

import pytest

from snapconform.conformance.machine import FailureRecorder, SnapdMachine


@pytest.mark.conformance
def test_a_long_state_machine_run(tmp_path):
    recorder = FailureRecorder(tmp_path)
    SnapdMachine.recorder = recorder
    print("captured, not shown")
    for _ in range(12):
        recorder.steps += 5
        recorder.labels["epoch-crossing refresh"] = recorder.steps // 5
        time.sleep(0.25)
"""
INTERRUPTED = """
import pytest


@pytest.mark.conformance
def test_first():
    pass


@pytest.mark.conformance
def test_interrupted():
    raise KeyboardInterrupt


@pytest.mark.conformance
def test_never_reached():
    pass
"""
OFFLINE_ONLY = """
def test_offline():
    pass
"""


def session(tmp_path: Path, test: str, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    conformance: real snapd\n")
    (tmp_path / "test_inner.py").write_text(test)
    environment = dict(os.environ, HYPOTHESIS_PROFILE="ci", **env)
    environment["SNAPCONFORM_CACHE"] = str(tmp_path / "cache")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *arguments],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_progress_lines_pass_pytest_capture_and_the_session_writes_a_report(tmp_path):
    artifacts = tmp_path / "artifacts"
    result = session(
        tmp_path, LONG_RUN, "--artifacts", str(artifacts), SNAPCONFORM_PROGRESS_SECONDS="0.5"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    progress = [line for line in result.stdout.splitlines() if "snapconform progress:" in line]
    assert 2 <= len(progress) <= 6, result.stdout
    assert "epoch-crossing refresh" in progress[-1]
    assert "captured, not shown" not in result.stdout
    assert (artifacts / "report.html").is_file()
    assert f"snapconform run report: {artifacts / 'report.html'}" in result.stdout


def test_an_interrupted_session_still_writes_its_report(tmp_path):
    artifacts = tmp_path / "artifacts"
    result = session(tmp_path, INTERRUPTED, "--artifacts", str(artifacts))
    assert result.returncode == 2, result.stdout + result.stderr  # pytest's "interrupted"
    record = json.loads((artifacts / "run.json").read_text())
    assert record["interrupted"] is True and record["exit_status"] == 2
    outcomes = {test["nodeid"].split("::")[1]: test["outcome"] for test in record["tests"]}
    assert outcomes == {
        "test_first": "passed",
        "test_interrupted": "interrupted",
        "test_never_reached": "not run",
    }
    assert 'id="interrupted"' in (artifacts / "report.html").read_text()


def test_a_report_that_cannot_be_written_is_a_warning(tmp_path):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory")
    result = session(
        tmp_path,
        INTERRUPTED.replace("raise KeyboardInterrupt", "pass"),
        "--artifacts",
        str(in_the_way),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed, 1 warning" in result.stdout
    assert "PytestWarning: no run report: FileExistsError" in result.stdout


def test_offline_sessions_write_no_report(tmp_path):
    artifacts = tmp_path / "artifacts"
    result = session(tmp_path, OFFLINE_ONLY, "--artifacts", str(artifacts))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (artifacts / "report.html").exists()
