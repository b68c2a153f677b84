"""A `pytest -n N` run's pages. Each worker drives its own host and keeps its own artifacts
directory, `ARTIFACTS/gwN/` (host.json, run.json, report.html, tests/..., leftovers.json,
worker.json), written by the worker itself. At the end the controller, which saw every test's
outcome, writes the page over them all, `ARTIFACTS/report.html` (the workers with their hosts,
snapd and totals, then every test with the worker that ran it, linked into that worker's
report), and `ARTIFACTS/workers.json` (the same as data). A worker that died (killed, crashed)
wrote no run.json: the controller writes it from what it saw, and that worker's report.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from snapconform.reports.pages import render_page
from snapconform.reports.pytest_run import (
    _STARTED_KEY,
    _outcome,
    _reports,
    build_record,
    hypothesis_seed,
    stop_progress,
)
from snapconform.reports.run_report import _write, write_run_report
from snapconform.reports.runs import OUTCOMES, REPORT_NAME, RUN_RECORD, anchor_for, load_run

WORKERS_RECORD = "workers.json"
WORKER_RECORD = "worker.json"  # conftest.py: the worker's id, PID, slot and host


def worker_of(report: Any) -> str | None:
    """The xdist worker a report came from: its `worker_id`, or for the controller's report of
    a crashed worker, that worker's gateway id."""
    worker = getattr(report, "worker_id", None)
    if worker:
        return str(worker)
    gateway = getattr(getattr(report, "node", None), "gateway", None)
    return str(gateway.id) if gateway is not None else None


def combined_record(
    tests: list[dict[str, Any]], workers: list[dict[str, Any]], exit_status: int, started: float
) -> dict[str, Any]:
    """workers.json: every worker (host, snapd, totals, its report) and every test (nodeid,
    worker, outcome, duration, the link to it in its worker's report)."""
    totals = dict.fromkeys(OUTCOMES, 0)
    for test in tests:
        totals[test["outcome"]] = totals.get(test["outcome"], 0) + 1
    return {
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "exit_status": exit_status,
        "totals": totals,
        "workers": workers,
        "tests": tests,
    }


def _read(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _worker_entry(directory: Path, worker: str, crashed: bool) -> dict[str, Any]:
    run = load_run(directory)
    facts = _read(directory / WORKER_RECORD)
    leftovers = _read(directory / "leftovers.json")
    left = sorted(
        kind
        for kind, items in leftovers.items()
        if isinstance(items, list) and items and kind != "orphaned_loop_devices"
    )
    return {
        "worker": worker,
        "pid": facts.get("pid"),
        "host": run.host.get("url") or facts.get("host"),
        "snapd": run.snapd_version,
        "snapd_build": run.snapd_build,
        "cpu": run.host.get("cpu"),
        "died": crashed,
        "left_behind": left,
        "totals": {k: v for k, v in run.totals.items() if v},
        "report": f"{worker}/{REPORT_NAME}",
    }


def workers_finished(
    session: pytest.Session, exitstatus: int, root: Path, test_dir: Callable[[str], str]
) -> Path | None:
    """(the xdist controller, at the session's end) Each worker's report, written for a worker
    that died, then the combined report.html and workers.json under ``root``."""
    stop_progress(session)
    config = session.config
    started = session.stash.get(_STARTED_KEY, time.time())
    grouped = _reports(config)
    tests: list[dict[str, Any]] = []
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for nodeid, reports in grouped.items():
        worker = next((w for w in map(worker_of, reports) if w), "unknown")
        outcome, message, duration = _outcome(reports)
        record = {
            "nodeid": nodeid,
            "outcome": outcome,
            "duration": round(duration, 3),
            "message": message[-20000:],
            "artifacts": f"tests/{test_dir(nodeid)}",
        }
        by_worker.setdefault(worker, []).append(record)
        tests.append(
            {
                "nodeid": nodeid,
                "worker": worker,
                "outcome": outcome,
                "duration": round(duration, 3),
                "href": f"{worker}/{REPORT_NAME}#{anchor_for(nodeid)}",
            }
        )
    if not tests:
        return None
    workers = []
    profile = os.environ.get("HYPOTHESIS_PROFILE", "dev")
    for worker in sorted(by_worker, key=_worker_order):
        directory = root / worker
        if worker == "unknown" or not directory.is_dir():
            continue
        run_json = directory / RUN_RECORD
        crashed = not run_json.is_file() or run_json.stat().st_mtime < started - 1
        if crashed:  # it died before writing its own: what the controller saw of it
            record = build_record(
                started=started,
                exit_status=int(exitstatus),
                interrupted=True,
                profile=profile,
                seed=hypothesis_seed(config, profile),
                arguments=list(config.invocation_params.args),
                tests=by_worker[worker],
            )
            run_json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            write_run_report(directory)
        workers.append(_worker_entry(directory, worker, crashed))
    combined = combined_record(tests, workers, int(exitstatus), started)
    (root / WORKERS_RECORD).write_text(json.dumps(combined, indent=2) + "\n", encoding="utf-8")
    page = render_page(
        "workers.html.j2",
        title=f"snapconform run report: {len(workers)} workers",
        record=combined,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = root / REPORT_NAME
    _write(path, page)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"snapconform run report: {path} (one per worker: {root}/gw*/)")
    return path


def _worker_order(worker: str) -> tuple[int, str]:
    digits = worker.removeprefix("gw")
    return (int(digits), worker) if digits.isdigit() else (1 << 30, worker)
