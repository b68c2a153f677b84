"""A long run's progress on the terminal: at most one line per interval, only while the step
count moves, and the line reaches the terminal through pytest's output capture."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from snapconform.reports.progress import ProgressLines, ProgressTicker, Sample, describe

ROOT = Path(__file__).parents[2]


def test_a_line_per_interval_while_steps_move():
    lines = ProgressLines(interval=30)
    seen = []
    for second in range(0, 301, 2):  # ten minutes... of five, sampled every 2 s: 1 step/s
        line = lines.line(Sample(steps=second, labels={"refused refresh": second // 10}), second)
        if line:
            seen.append((second, line))
    assert [second for second, _ in seen] == list(range(32, 301, 30))
    assert seen[0][1] == (
        "snapconform progress: 32 steps in 0.5 min (64.0 steps/min); labels: refused refresh 3"
    )


def test_no_line_when_nothing_moves_or_nothing_runs():
    lines = ProgressLines(interval=30)
    assert lines.line(None, 0) is None
    assert lines.line(Sample(0, {}), 100) is None
    assert lines.line(Sample(5, {}), 200) is None  # the start: the first line is due at 230
    assert lines.line(Sample(5, {}), 400) is None  # a stalled counter prints nothing
    assert lines.line(Sample(6, {}), 401) is not None


def test_a_new_counter_starts_over():
    lines = ProgressLines(interval=30)
    lines.line(Sample(50, {}), 0)
    assert lines.line(Sample(80, {}), 40) is not None
    assert lines.line(Sample(3, {}), 41) is None  # the next state-machine test
    assert lines.line(Sample(9, {}), 60) is None  # not 30 s into it yet
    assert "10 steps in 0.5 min" in (lines.line(Sample(10, {}), 71) or "")


def test_describe_without_labels():
    assert describe(Sample(0, {}), 0) == (
        "snapconform progress: 0 steps in 0.0 min (0.0 steps/min); labels: none yet"
    )


def test_the_ticker_thread_writes_through_its_writer():
    clock = iter(range(0, 10_000, 20))
    steps = iter(range(1, 1000))
    written: list[str] = []
    ticker = ProgressTicker(
        written.append,
        sample=lambda: Sample(next(steps), {"x-number reuse": 1}),
        interval=30,
        clock=lambda: float(next(clock)),
    )
    for _ in range(5):
        ticker.tick()
    assert len(written) == 2 and all("x-number reuse 1" in line for line in written)


INNER_TEST = """
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


def test_progress_lines_pass_pytest_capture_and_the_session_writes_a_report(tmp_path):
    """A real pytest session with this project's conftest.py: the progress lines reach the
    terminal while the test's own output stays captured, and the session writes report.html."""
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    conformance: real snapd\n")
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    artifacts = tmp_path / "artifacts"
    env = dict(os.environ, SNAPCONFORM_PROGRESS_SECONDS="0.5", HYPOTHESIS_PROFILE="ci")
    env["SNAPCONFORM_CACHE"] = str(tmp_path / "cache")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--artifacts", str(artifacts)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    progress = [line for line in result.stdout.splitlines() if "snapconform progress:" in line]
    assert 2 <= len(progress) <= 6, result.stdout
    assert "epoch-crossing refresh" in progress[-1]
    assert "captured, not shown" not in result.stdout
    assert (artifacts / "report.html").is_file()
    assert f"snapconform run report: {artifacts / 'report.html'}" in result.stdout
