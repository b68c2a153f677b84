"""What conftest.py calls: at the start of a session, the progress ticker; at its end (also when
interrupted), the session's record (run.json) and the run report (report.html).

A report is written for sessions that ran conformance tests (marked `conformance`). Nothing here
may fail a run: conftest.py turns any exception into a warning.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from snapconform.reports.progress import DEFAULT_INTERVAL, SAMPLE_EVERY, ProgressTicker
from snapconform.reports.run_report import write_run_report
from snapconform.reports.runs import RUN_RECORD

# seconds between two progress lines (default 30)
PROGRESS_SECONDS = "SNAPCONFORM_PROGRESS_SECONDS"
_TICKER_KEY = pytest.StashKey[ProgressTicker]()
_STARTED_KEY = pytest.StashKey[float]()
# pytest's exit statuses that mean the session did not run to its end
_INTERRUPTED = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)


def terminal_line_writer(config: pytest.Config) -> Callable[[str], None] | None:
    """A function writing one line to the terminal, past pytest's output capture (as pytest's
    live logging does), or None when there is no terminal reporter."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return write


def session_started(session: pytest.Session) -> None:
    session.stash[_STARTED_KEY] = time.time()
    write = terminal_line_writer(session.config)
    if write is not None:
        interval = float(os.environ.get(PROGRESS_SECONDS, DEFAULT_INTERVAL))
        ticker = ProgressTicker(write, interval=interval, sample_every=min(SAMPLE_EVERY, interval))
        session.stash[_TICKER_KEY] = ticker.start()


def _outcome(reports: list[pytest.TestReport]) -> tuple[str, str, float]:
    """A test's outcome from its setup/call/teardown reports, the message, and the duration."""
    outcome, message = "passed", ""
    duration = sum(report.duration for report in reports)
    for report in reports:
        text = report.longreprtext if report.longrepr is not None else ""
        if report.when != "call" and report.failed:
            return "error", text, duration
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
            message = str(report.wasxfail) or text
        elif report.when == "call" and report.failed:
            outcome, message = "failed", text
        elif report.skipped and outcome == "passed":
            outcome = "skipped"
            longrepr = report.longrepr
            message = str(longrepr[2]) if isinstance(longrepr, tuple) else text
    if outcome == "passed" and not any(report.when == "call" for report in reports):
        outcome = "interrupted"  # set up, then the session stopped inside it
    return outcome, message, duration


def _reports(config: pytest.Config) -> dict[str, list[pytest.TestReport]]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    grouped: dict[str, list[pytest.TestReport]] = {}
    for reports in getattr(reporter, "stats", {}).values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                grouped.setdefault(report.nodeid, []).append(report)
    return grouped


def hypothesis_seed(config: pytest.Config, profile: str) -> str:
    seed = config.getoption("hypothesis_seed", None)
    if seed is not None:
        return str(seed)
    try:
        derandomized = settings.get_profile(profile).derandomize
    except Exception:  # an unknown profile is conftest's error to report, not ours
        derandomized = False
    if derandomized:
        return "derandomized (the same examples on every run)"
    return "random (failures are replayed from Hypothesis' example database)"


def build_record(
    *,
    started: float,
    exit_status: int,
    interrupted: bool,
    profile: str,
    seed: str,
    arguments: list[str],
    tests: list[dict[str, Any]],
) -> dict[str, Any]:
    """run.json: the session as the report reads it (tests: nodeid, outcome, duration,
    message, artifacts)."""
    return {
        "started_at": started,
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "exit_status": exit_status,
        "interrupted": interrupted,
        "hypothesis_profile": profile,
        "hypothesis_seed": seed,
        "arguments": arguments,
        "tests": tests,
    }


def session_record(
    session: pytest.Session,
    exitstatus: int,
    test_dir: Callable[[str], str],
) -> dict[str, Any]:
    config = session.config
    grouped = _reports(config)
    items: Iterable[str] = [item.nodeid for item in getattr(session, "items", [])]
    if hasattr(config, "workerinput"):  # a pytest -n worker collects every test, runs its share
        items = [nodeid for nodeid in items if nodeid in grouped]
    tests = []
    for nodeid in dict.fromkeys([*items, *grouped]):
        reports = grouped.get(nodeid, [])
        outcome, message, duration = _outcome(reports) if reports else ("not run", "", 0.0)
        tests.append(
            {
                "nodeid": nodeid,
                "outcome": outcome,
                "duration": round(duration, 3),
                "message": message[-20000:],
                "artifacts": f"tests/{test_dir(nodeid)}",
            }
        )
    profile = os.environ.get("HYPOTHESIS_PROFILE", "dev")
    return build_record(
        started=session.stash.get(_STARTED_KEY, time.time()),
        exit_status=int(exitstatus),
        interrupted=exitstatus in _INTERRUPTED or bool(session.shouldstop),
        profile=profile,
        seed=hypothesis_seed(config, profile),
        arguments=list(config.invocation_params.args),
        tests=tests,
    )


def ran_conformance_tests(session: pytest.Session) -> bool:
    return any(item.get_closest_marker("conformance") for item in getattr(session, "items", []))


def stop_progress(session: pytest.Session) -> None:
    ticker = session.stash.get(_TICKER_KEY, None)
    if ticker is not None:
        ticker.stop()


def session_finished(
    session: pytest.Session, exitstatus: int, artifacts: Path, test_dir: Callable[[str], str]
) -> Path | None:
    """Stop the ticker; for a conformance session write run.json and report.html."""
    stop_progress(session)
    if not ran_conformance_tests(session):
        return None
    artifacts.mkdir(parents=True, exist_ok=True)
    record = session_record(session, exitstatus, test_dir)
    (artifacts / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    report = write_run_report(artifacts)
    write = terminal_line_writer(session.config)
    if write is not None:
        write(f"snapconform run report: {report}")
    return report
