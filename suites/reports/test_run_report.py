"""The run report, made from an artifacts directory in the exact shape a conformance run leaves
(histories from ConformanceRun.history_json over real StepRecords and Mismatches, a state
machine's summary and reproducer from the real writers), then opened in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from snapconform.conformance.compare import Mismatch
from snapconform.conformance.known import KNOWN_DIVERGENCES
from snapconform.conformance.operations import InstallFile, Refresh, Revert, SetSystem
from snapconform.conformance.reproducer import write_reproducers
from snapconform.conformance.session import ConformanceRun, StepRecord
from snapconform.model import snapd as model
from snapconform.reports.pytest_run import build_record
from snapconform.reports.run_report import write_run_report
from snapconform.reports.runs import load_run

HOST = {
    "url": "nspawn://bookworm",
    "kind": "nspawn",
    "release": "bookworm",
    "mode": "privileged",
    "snapd": "snap    2.57.6-1+deb12u1\nsnapd   2.57.6-1+deb12u1\nseries  16",
    "snapd_build": "testkeys 2.57.6-1+deb12u1",
    "image": "bookworm-4f2a",
}
KNOWN = KNOWN_DIVERGENCES[0]


def remote(snap: model.SnapFile) -> str:
    return f"/var/tmp/snapconform/snaps/{snap.name}_{snap.version}_0123456789ab.snap"


def step(index, operation, *, why, ok=True, error=None, kind=None, hooks=(), **observed):
    record = StepRecord(
        index=index,
        operation=operation.to_json(),
        command=operation.shell(remote),
        expected_ok=ok,
        expected_kind=kind,
        expected_error=error,
        expected_why=why,
        expected_hooks=[list(hook) for hook in hooks],
    )
    record.observed_exit_code = observed.get("exit_code", 0 if ok else 1)
    record.observed_output = observed.get("output", "")
    record.observed_error = observed.get("error", error)
    record.observed_hooks = [list(hook) for hook in observed.get("hooks", hooks)]
    record.observed_changes = observed.get("changes", [])
    record.mismatches = observed.get("mismatches", [])
    record.verdict = observed.get("verdict", "divergence" if record.mismatches else "pass")
    record.known = observed.get("known", [])
    record.duration = observed.get("duration", 0.8)
    for name in ("observed_state", "observed_store_requests"):  # fields a history may carry
        if name.removeprefix("observed_") in observed and hasattr(record, name):
            setattr(record, name, observed[name.removeprefix("observed_")])
    return record


def history(records) -> dict:
    """What ConformanceRun.save_history writes, by ConformanceRun's own code."""
    run = SimpleNamespace(
        session=SimpleNamespace(describe=lambda: HOST, snapd_version=(2, 57)), history=records
    )
    return ConformanceRun.history_json(run)  # type: ignore[arg-type]


def transcript(records) -> str:
    """A transcript.log as the framed shell writes it: observations between the steps."""
    lines = []
    for number, record in enumerate(records):
        stamp = f"2026-12-01T08:00:{number:02d}.000Z"
        lines += [
            f"[{stamp}] $ python3 /var/tmp/snapconform/observer.py --since 4",
            '  | {"instances": {}}',
            "[exit 0, 0.120 s]",
            "",
            f"[{stamp}] $ {record.command} </dev/null 2>&1 | cat; (exit ${{PIPESTATUS[0]}})",
            *(f"  | {line}" for line in (record.observed_output or "").splitlines()),
            f"[exit {record.observed_exit_code}, 0.800 s]",
            "",
        ]
    return "\n".join(lines) + "\n"


def save(directory: Path, records, *, journal: str | None = None) -> None:
    directory.mkdir(parents=True)
    (directory / "history.json").write_text(json.dumps(history(records), indent=2))
    (directory / "transcript.log").write_text(transcript(records))
    if journal:
        (directory / "snapd-journal.txt").write_text(journal)


A = model.SnapFile("sc-ab121", "1.0")
A2 = model.SnapFile("sc-ab121", "2.0", epoch_yaml="1*")
B = model.SnapFile("sc-ab122", "1.0", hooks=(model.HookPlan("post-refresh"),))
B2 = model.SnapFile("sc-ab122", "2.0", hooks=(model.HookPlan("post-refresh"),))
P = model.SnapFile("sc-ab123", "1.0", hooks=(model.HookPlan("post-refresh"),))

PASSING = [
    step(1, InstallFile(A), why="installs sc-ab121 as x1", output="sc-ab121 1.0 installed"),
    step(
        2,
        InstallFile(A2),
        why="refreshed sc-ab121 x1 to x2: its SNAP_DATA copied to x2",
        output="sc-ab121 2.0 installed",
        state={"sc-ab121": {"installed": True, "sequence": ["x1", "x2"], "current": "x2"}},
        store_requests=[{"method": "POST", "path": "/v2/snaps/refresh", "status": 200}],
    ),
    step(3, Revert("sc-ab121"), why="reverts sc-ab121 to x1", output="sc-ab121 reverted to 1.0"),
]
DIVERGING = [
    step(1, SetSystem("refresh.retain", "2"), why="sets refresh.retain=2"),
    step(2, InstallFile(B), why="installs sc-ab122 as x1", hooks=()),
    step(
        3,
        InstallFile(B2),
        why="refreshed sc-ab122 x1 to x2: post-refresh in x2; refresh.retain=2 kept x1",
        hooks=[("sc-ab122", "post-refresh", "x2")],
        mismatches=[
            Mismatch("sc-ab122.sequence", ("x1", "x2"), ("x2",)),
            Mismatch(
                "sc-ab122.data_dirs",
                frozenset({"x1", "x2", "common", "current"}),
                frozenset({"x2", "common", "current"}),
            ),
        ],
        state={
            "sc-ab122": {
                "installed": True,
                "sequence": ["x2"],
                "current": "x2",
                "data": {"x2": ["marker"]},
                "common": [],
                "trash": [],
            }
        },
    ),
]
KNOWN_HIT = [
    step(1, SetSystem("experimental.parallel-instances", "true"), why="enables parallel"),
    step(2, InstallFile(P, name="sc-ab123_k1"), why="installs sc-ab123_k1 as x1"),
    step(
        3,
        Refresh("sc-ab123_k1", "x1"),
        why="refresh to x1 runs post-refresh in x1",
        ok=True,
        verdict="known-divergence",
        known=[KNOWN.key],
        mismatches=[Mismatch("error", None, "cannot perform the following tasks: ...")],
        exit_code=1,
        error="cannot perform the following tasks: ...",
    ),
]
MINIMAL = [
    step(1, InstallFile(A), why="installs sc-ab121 as x1"),
    step(
        2,
        Revert("sc-ab121", "x9"),
        why="reverts sc-ab121 to x9",
        ok=False,
        error='cannot find revision x9 of snap "sc-ab121"',
        mismatches=[Mismatch("error", 'cannot find revision x9 of snap "sc-ab121"', "no.")],
        exit_code=1,
    ),
]
NODES = {
    "passing": "suites/conformance/test_revisions.py::test_refresh_and_revert",
    "diverging": "suites/conformance/test_seed000_rollback.py::test_retain_keeps_previous",
    "known": "suites/conformance/test_parallel_instances.py::test_undone_revision",
    "skipped": "suites/conformance/test_remote_hosts.py::test_ssh",
    "machine": "suites/conformance/test_state_machine.py::TestSnapdFollowsTheModel::runTest",
}


def safe(nodeid: str) -> str:  # conftest.py's _safe_name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]


@pytest.fixture
def artifacts(tmp_path) -> Path:
    base = tmp_path / "artifacts"
    stale = base / "tests" / "left_by_an_earlier_run"
    save(stale, PASSING)
    old = time.time() - 3600
    os.utime(stale / "history.json", (old, old))
    started = time.time() - 5
    (base / "host.json").write_text(json.dumps(HOST))
    save(base / "tests" / safe(NODES["passing"]), PASSING)
    save(
        base / "tests" / safe(NODES["diverging"]),
        DIVERGING,
        journal="Dec 01 08:00:03 host snapd[310]: taskrunner.go: change 7 done\n",
    )
    save(base / "tests" / safe(NODES["known"]), KNOWN_HIT)
    machine = base / "state-machine"
    machine.mkdir()
    (machine / "summary.json").write_text(
        json.dumps(
            {
                "host": HOST,
                "profile": "ci",
                "steps": 240,
                "minutes": 6.5,
                "steps_per_minute": 36.9,
                "labels": {"epoch-crossing refresh": 31, f"known divergence: {KNOWN.key}": 2},
                "failures": 1,
            }
        )
    )
    minimal = history(MINIMAL)
    (machine / "minimal-failure.json").write_text(json.dumps(minimal))
    write_reproducers(minimal, machine / "reproducer", "snapconform: minimal divergence")
    outcomes = {
        "passing": ("passed", ""),
        "diverging": ("failed", "Divergence: snapd and the model disagree at step 3"),
        "known": ("xfailed", f"step 3 shows a known divergence: {KNOWN.key}"),
        "skipped": ("skipped", "no ssh host"),
        "machine": ("failed", "Falsifying example: ..."),
    }
    record = build_record(
        started=started,
        exit_status=1,
        interrupted=False,
        profile="ci",
        seed="derandomized (the same examples on every run)",
        arguments=["suites/conformance"],
        tests=[
            {
                "nodeid": NODES[key],
                "outcome": outcome,
                "duration": 12.5,
                "message": message,
                "artifacts": f"tests/{safe(NODES[key])}",
            }
            for key, (outcome, message) in outcomes.items()
        ],
    )
    (base / "run.json").write_text(json.dumps(record))
    return base


def test_the_run_as_data(artifacts):
    run = load_run(artifacts)
    assert run.snapd_build == "testkeys 2.57.6-1+deb12u1"
    assert [t.nodeid for t in run.tests] == list(NODES.values())  # the stale one is left out
    assert run.totals == {
        "passed": 1,
        "failed": 2,
        "xfailed": 1,
        "xpassed": 0,
        "error": 0,
        "skipped": 1,
        "interrupted": 0,
        "not run": 0,
    }
    diverging = run.tests[1]
    assert diverging.reproducer is not None and not diverging.reproducer.shrunk
    assert diverging.reproducer.text.startswith("#!/bin/bash")
    assert diverging.steps[2].mismatched == {"state"}
    assert diverging.steps[2].state_marks == {"sc-ab122": {"sequence", "data_dirs"}}
    assert diverging.journal_href == f"tests/{safe(NODES['diverging'])}/snapd-journal.txt"
    # every step found its command in the transcript, after the observation before it
    assert [s.transcript_href.rsplit("#", 1)[1] for s in diverging.steps] == ["L5", "L12", "L19"]
    assert run.tests[2].reproducer is not None  # a known divergence is snapd's: reproduce it
    assert run.tests[0].reproducer is None
    assert [k.key for k in run.known] == [KNOWN.key]
    assert run.known[0].seen_in == [f"{NODES['known']}, step 3", "state machine (2x)"]
    assert run.machine is not None and run.machine.histories[0].reproducer is not None
    assert run.machine.histories[0].reproducer.shrunk
    assert run.problems == []


def test_missing_and_broken_files_degrade(tmp_path):
    base = tmp_path / "artifacts"
    (base / "tests" / "partial").mkdir(parents=True)
    (base / "tests" / "partial" / "history.json").write_text(
        json.dumps({"steps": [{"step": 1, "command": "snap install x"}, {"verdict": "pass"}]})
    )
    (base / "tests" / "broken").mkdir()
    (base / "tests" / "broken" / "history.json").write_text("{not json")
    page = write_run_report(base).read_text()
    run = load_run(base)
    assert [len(t.steps) for t in run.tests] == [0, 2]
    assert any("broken/history.json" in problem for problem in run.problems)
    assert "No run.json" in page and "not recorded" in page


def test_an_interrupted_run_says_so(artifacts):
    record = json.loads((artifacts / "run.json").read_text())
    record.update(interrupted=True, exit_status=2)
    (artifacts / "run.json").write_text(json.dumps(record))
    assert 'id="interrupted"' in write_run_report(artifacts).read_text()


def test_text_from_snapd_is_escaped(tmp_path):
    base = tmp_path / "artifacts"
    save(
        base / "tests" / "t",
        [step(1, InstallFile(A), why="<script>alert(1)</script>", output="<b>&</b>")],
    )
    page = write_run_report(base).read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def count(pattern: str, dom: str) -> int:
    return len(re.findall(pattern, dom))


def test_the_report_in_a_browser(artifacts, chromium):
    report = write_run_report(artifacts)
    page = chromium.load(report, "run-report.png", size=(1400, 3200))
    assert page.console == [], page.console
    assert page.requests == []
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page.dom)
    # rows: one per test in the summary, one per step in every history shown
    assert count(r'<tr class="test-row"', page.dom) == len(NODES)
    steps = len(PASSING) + len(DIVERGING) + len(KNOWN_HIT) + len(MINIMAL)
    assert count(r'<tr class="step ', page.dom) == steps
    assert count(r'<tr class="mismatch"', page.dom) == 2 + 1 + 1
    assert count(r'class="total [a-z]+" data-outcome="failed"><b>2</b>', page.dom) == 1
    assert count(r'<tr class="known-entry"', page.dom) == 1
    # the divergence, the known divergence and the state machine's shrunk one
    assert count(r'<pre id="[^"]+-repro" class="reproducer">#!/bin/bash', page.dom) == 3
    assert "testkeys 2.57.6-1+deb12u1" in page.dom and "derandomized" in page.dom
    assert 'class="hl"' in page.dom
    assert "POST /v2/snaps/refresh" in page.dom
    # a step's transcript link lands on its command's line
    name = safe(NODES["diverging"])
    assert f'href="tests/{name}/transcript.html#L12"' in page.dom
    shown = chromium.load(artifacts / "tests" / name / "transcript.html", "transcript.png")
    assert shown.console == [] and shown.requests == []
    assert 'id="L12" class="command stepstart"' in shown.dom
    assert count(r'<tr id="L\d+"', shown.dom) == len(transcript(DIVERGING).splitlines())
