"""The release matrix, made from three hosts' artifacts directories in the exact shape a
conformance run leaves (histories from real StepRecords predicted by the real model, run.json
from the real record writer, each host's report.html from the real report writer), then read
as data (matrix.json), as text (matrix.md) and as a page in headless Chromium (matrix.html)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from snapconform.conformance.compare import Mismatch
from snapconform.conformance.known import KNOWN_DIVERGENCES
from snapconform.conformance.operations import InstallFile, Operation, Refresh, SetSystem
from snapconform.conformance.session import StepRecord
from snapconform.model import snapd as model
from snapconform.reports.matrix import (
    EXIT_CLEAN,
    EXIT_DIVERGENCE,
    EXIT_HOST_FAULT,
    HostRun,
    build_matrix,
    render_markdown,
    write_matrix,
)
from snapconform.reports.matrix_facts import model_facts
from snapconform.reports.pytest_run import build_record
from snapconform.reports.run_report import write_run_report
from snapconform.reports.runs import anchor_for, load_run

KNOWN = KNOWN_DIVERGENCES[0]
SNAP = model.SnapFile("sc-ab121", "1.0")
HOOKED = model.SnapFile("sc-ab123", "1.0", hooks=(model.HookPlan("post-refresh"),))
T_REFUSED = "suites/conformance/test_bad_input.py::test_instance_key_without_the_flag"
T_KNOWN = "suites/conformance/test_parallel_instances.py::test_undone_revision[instance-key]"
T_STORE = "suites/conformance/test_store_basics.py::test_install_refresh_switch"
TESTS = (T_REFUSED, T_KNOWN, T_STORE)
HOSTS = {  # url -> (snapd version text, (major, minor))
    "nspawn://bookworm": ("2.57.6-1+deb12u1", (2, 57)),
    "nspawn://trixie": ("2.68.3-3+deb13u1", (2, 68)),
    "nspawn://sid": ("2.77.1-2", (2, 77)),
}
LXD_HOST = {"lxd://c1": ("2.57.6-1+deb12u1", (2, 57))}  # bookworm's snapd in an LXD container
NO_STORE = "no store-tier host to drive: the mirror answered HTTP 404 for snapd_2.77.1-2.dsc"


def safe(nodeid: str) -> str:  # conftest.py's _safe_name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]


def records(operations: list[Operation], version: tuple[int, int]) -> list[StepRecord]:
    """What ConformanceRun records for steps snapd confirmed: the real model's predictions."""
    state = model.new_state(snapd_version=version)
    found = []
    for number, operation in enumerate(operations, 1):
        outcome = operation.predict(
            state, lambda snap: f"/var/tmp/snapconform/snaps/{snap.name}.snap"
        )
        record = StepRecord(
            index=number,
            operation=operation.to_json(),
            command=operation.shell(lambda snap: f"/var/tmp/snapconform/snaps/{snap.name}.snap"),
            expected_ok=outcome.error is None,
            expected_kind=None if outcome.error is None else outcome.error.kind,
            expected_error=None if outcome.error is None else outcome.error.message,
            expected_why=outcome.why,
            expected_hooks=[[r.instance, r.hook, r.revision] for r in outcome.hooks_run],
        )
        record.observed_exit_code = 0 if outcome.error is None else 1
        record.observed_error = record.expected_error
        record.verdict, record.duration = "pass", 0.9
        found.append(record)
        state = outcome.state
    return found


def save_history(directory: Path, url: str, steps: list[StepRecord], version) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    history = {
        "host": {"url": url},
        "snapd_version": list(version),
        "steps": [record.to_json() for record in steps],
    }
    (directory / "history.json").write_text(json.dumps(history, indent=2))


def make_host(
    base: Path, url: str, outcomes: dict[str, tuple[str, str]], *, build: str = "archive"
) -> HostRun:
    """A host's artifacts directory as `pytest --artifacts DIR --host URL` leaves it."""
    text, version = {**HOSTS, **LXD_HOST}[url]
    slug = url.replace("://", "-")
    directory = base / "hosts" / slug
    directory.mkdir(parents=True)
    host = {"url": url, "kind": "nspawn", "release": url.split("//")[1], "snapd_build": build}
    host["snapd"] = f"snap    {text}\nsnapd   {text}\nseries  16"
    (directory / "host.json").write_text(json.dumps(host))
    tests = []
    for nodeid, (outcome, message) in outcomes.items():
        test_dir = directory / "tests" / safe(nodeid)
        if nodeid == T_REFUSED and outcome == "passed":
            # an instance key with the flag off: its refusal's words changed in 2.74
            steps = records([InstallFile(SNAP), InstallFile(SNAP, name="sc-ab121_k1")], version)
            save_history(test_dir, url, steps, version)
        if nodeid == T_KNOWN and outcome in ("passed", "xfailed"):
            operations = [
                SetSystem("experimental.parallel-instances", "true"),
                InstallFile(HOOKED, name="sc-ab123_k1"),
                Refresh("sc-ab123_k1", "x1"),
            ]
            steps = records(operations, version)
            if outcome == "xfailed":
                steps[-1].verdict, steps[-1].known = "known-divergence", [KNOWN.key]
                steps[-1].mismatches = [Mismatch("error", None, "cannot perform ...")]
            save_history(test_dir, url, steps, version)
        if nodeid == T_STORE and outcome == "failed" and "disagree" in message:
            steps = records([InstallFile(SNAP)], version)
            steps[0].verdict = "divergence"
            steps[0].mismatches = [Mismatch("sc-ab121.sequence", ("x1",), ())]
            save_history(test_dir, url, steps, version)
        tests.append(
            {
                "nodeid": nodeid,
                "outcome": outcome,
                "duration": 12.5,
                "message": message,
                "artifacts": f"tests/{safe(nodeid)}",
            }
        )
    record = build_record(
        started=time.time() - 60,
        exit_status=0,
        interrupted=False,
        profile="ci",
        seed="derandomized (the same examples on every run)",
        arguments=["suites/conformance", "--host", url],
        tests=tests,
    )
    (directory / "run.json").write_text(json.dumps(record))
    write_run_report(directory)
    return HostRun(url, slug, directory, exit_status=0, seconds=80.0, run=load_run(directory))


KNOWN_MESSAGE = (
    f"step 3 (snap refresh sc-ab123_k1) shows a known divergence:\n  known divergence "
    f"{KNOWN.key}: the document says ..."
)


def three_hosts(base: Path, sid_store: tuple[str, str] = ("skipped", NO_STORE)) -> list[HostRun]:
    return [
        make_host(
            base,
            "nspawn://bookworm",
            {
                T_REFUSED: ("passed", ""),
                T_KNOWN: ("xfailed", KNOWN_MESSAGE),
                T_STORE: ("passed", ""),
            },
        ),
        make_host(
            base,
            "nspawn://trixie",
            {
                T_REFUSED: ("passed", ""),
                T_KNOWN: ("xfailed", KNOWN_MESSAGE),
                T_STORE: ("skipped", NO_STORE),
            },
        ),
        make_host(
            base,
            "nspawn://sid",
            {T_REFUSED: ("passed", ""), T_KNOWN: ("passed", ""), T_STORE: sid_store},
        ),
    ]


def test_the_matrix_as_data(tmp_path: Path) -> None:
    matrix = build_matrix(three_hosts(tmp_path), "-k 'parallel_instances or seed000'")
    assert matrix["tests"] == list(TESTS)
    assert len(matrix["cells"]) == 9
    cell = next(
        c for c in matrix["cells"] if c["test"] == T_KNOWN and c["host"] == "nspawn://trixie"
    )
    assert cell["snapd"] == {"version": "2.68.3-3+deb13u1", "build": "archive"}
    assert (cell["verdict"], cell["known"], cell["duration"]) == (
        "known-divergence",
        KNOWN.key,
        12.5,
    )
    assert cell["report"] == f"hosts/nspawn-trixie/report.html#{anchor_for(T_KNOWN)}"
    skipped = next(
        c for c in matrix["cells"] if c["test"] == T_STORE and c["host"] == "nspawn://sid"
    )
    assert skipped["verdict"] == "skipped" and skipped["reason"] == NO_STORE
    # the known divergence, with the versions it shows on and the one where the test passed
    (known,) = matrix["known_divergences"]
    assert known["name"] == KNOWN.key and known["recorded_for"] == "< 2.77"
    assert known["shown_on"] == ["2.57.6-1+deb12u1", "2.68.3-3+deb13u1"]
    assert known["not_shown_on"] == ["2.77.1-2"]
    assert [d["verdict"] for d in matrix["divergences"]] == ["known-divergence"]
    # every fact of the model; the 2.74 one seen on both sides of it by the refusal test
    assert [f["name"] for f in matrix["facts"]] == [f.name for f in model_facts()]
    wrap = next(f for f in matrix["facts"] if f["name"] == "FEATURE_FLAG_WRAP_SINCE")
    assert wrap["since"] == "2.74"
    assert wrap["seen_with"] == ["2.77.1-2"]
    assert wrap["seen_before"] == ["2.57.6-1+deb12u1", "2.68.3-3+deb13u1"]
    assert wrap["applies_on"] == ["2.77.1-2"]
    sid = next(h for h in wrap["hosts"] if h["host"] == "nspawn://sid")
    assert sid["confirmed"] == [f"{T_REFUSED} step 2"]
    assert matrix["summary"] == {
        "unexplained_divergences": 0,
        "known_divergences": 2,
        "host_faults": 0,
        "hosts_unavailable": [],
        "interrupted": False,
        "exit_status": EXIT_CLEAN,
    }
    text = render_markdown(matrix)
    assert "| `test_parallel_instances.py::test_undone_revision[instance-key]` | known: " in text
    assert f"- `{KNOWN.key}` (recorded for snapd < 2.77): shown on 2.57.6-1+deb12u1, 2.68.3" in text
    assert "not shown on 2.77.1-2 (the same tests passed)" in text


def test_two_hosts_of_one_snapd_version_name_it_once(tmp_path: Path) -> None:
    """nspawn://bookworm and an LXD container run the same 2.57.6: a known divergence shows on
    both hosts and on that version once, and each fact lists each version once."""
    hosts = three_hosts(tmp_path)
    outcomes = {T_REFUSED: ("passed", ""), T_KNOWN: ("xfailed", KNOWN_MESSAGE)}
    hosts.append(make_host(tmp_path, "lxd://c1", {**outcomes, T_STORE: ("passed", "")}))
    matrix = build_matrix(hosts)
    (known,) = matrix["known_divergences"]
    assert known["shown_on"] == ["2.57.6-1+deb12u1", "2.68.3-3+deb13u1"]
    assert known["shown_on_hosts"] == ["lxd://c1", "nspawn://bookworm", "nspawn://trixie"]
    wrap = next(f for f in matrix["facts"] if f["name"] == "FEATURE_FLAG_WRAP_SINCE")
    assert wrap["seen_before"] == ["2.57.6-1+deb12u1", "2.68.3-3+deb13u1"]
    assert wrap["before_on"] == ["2.57.6-1+deb12u1", "2.68.3-3+deb13u1"]
    assert [h["host"] for h in wrap["hosts"]][-1] == "lxd://c1"
    assert "| 2.77.1-2 / 2.57.6-1+deb12u1, 2.68.3-3+deb13u1 |" in render_markdown(matrix)


def test_an_unexplained_divergence_fails_the_matrix(tmp_path: Path) -> None:
    disagree = ("failed", "Divergence: snapd and the model disagree at step 1: snap install ...")
    matrix = build_matrix(three_hosts(tmp_path, sid_store=disagree))
    assert matrix["summary"]["exit_status"] == EXIT_DIVERGENCE
    (row,) = [d for d in matrix["divergences"] if d["verdict"] == "divergence"]
    assert row["versions"] == ["2.77.1-2"] and row["passed_on"] == ["2.57.6-1+deb12u1"]
    assert "snapd and the model disagree at step 1" in row["reason"]
    entry = "- `test_store_basics.py::test_install_refresh_switch` diverges on 2.77.1-2"
    assert f"## Divergences\n\n{entry}" in render_markdown(matrix)


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ("error", "HostError: nspawn://sid did not boot"),
        ("failed", "HostFaultVerdict: host fault at step 2 (snap refresh x), not a snapd verdict"),
    ],
)
def test_host_faults_are_not_divergences(tmp_path: Path, outcome: str, message: str) -> None:
    matrix = build_matrix(three_hosts(tmp_path, sid_store=(outcome, message)))
    cell = next(c for c in matrix["cells"] if c["test"] == T_STORE and c["host"] == "nspawn://sid")
    assert cell["verdict"] == "host-fault"
    assert matrix["summary"]["unexplained_divergences"] == 0
    assert matrix["summary"]["exit_status"] == EXIT_HOST_FAULT


def test_a_host_that_could_not_be_made(tmp_path: Path) -> None:
    hosts = three_hosts(tmp_path)
    reason = "no host to drive: snapd deb 2.68.3 cannot be installed: dpkg refused: ..."
    gone = make_host(
        tmp_path / "other",
        "nspawn://bookworm",
        {test: ("skipped", reason) for test in TESTS},
        build="deb",
    )
    never = HostRun("lxd://c1", "lxd-c1", tmp_path / "hosts/lxd-c1", exit_status=4, note="usage")
    matrix = build_matrix([hosts[2], gone, never])
    assert [h["status"] for h in matrix["hosts"]] == ["ran", "unavailable", "unavailable"]
    assert matrix["hosts"][1]["note"].startswith("no host to drive: snapd deb 2.68.3")
    assert matrix["summary"]["hosts_unavailable"] == ["nspawn://bookworm", "lxd://c1"]
    assert matrix["summary"]["exit_status"] == EXIT_HOST_FAULT
    assert {c["verdict"] for c in matrix["cells"] if c["host"] == "lxd://c1"} == {"not-run"}


def count(pattern: str, dom: str) -> int:
    return len(re.findall(pattern, dom))


def test_the_matrix_in_a_browser(tmp_path: Path, chromium) -> None:
    base = tmp_path / "matrix"
    matrix = write_matrix(base, three_hosts(base), "-k 'parallel_instances or seed000'")
    assert json.loads((base / "matrix.json").read_text()) == matrix
    assert (base / "matrix.md").read_text().startswith("# snapconform release matrix")
    page = chromium.load(base / "matrix.html", "matrix.png", size=(1400, 1800))
    assert page.console == [], page.console
    assert page.requests == []
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page.dom)
    # rows: one per scenario; cells: one per (scenario, host), coloured by verdict
    assert count(r'<tr class="scenario"', page.dom) == len(TESTS)
    assert count(r'<td class="cell ', page.dom) == len(TESTS) * len(HOSTS)
    assert count(r'<td class="cell known" data-verdict="known-divergence"', page.dom) == 2
    assert count(r'<td class="cell good" data-verdict="pass"', page.dom) == 5
    assert count(r'<td class="cell muted" data-verdict="skipped"', page.dom) == 2
    assert count(r'<tr class="host-row"', page.dom) == len(HOSTS)
    assert count(r'<tr class="fact-row"', page.dom) == len(model_facts())
    assert count(r'<tr class="known-entry"', page.dom) == 1
    assert 'data-exit="0"' in page.dom
    # each cell links to its test's place in that host's report, which is there
    anchor = anchor_for(T_KNOWN)
    assert f'href="hosts/nspawn-trixie/report.html#{anchor}"' in page.dom
    report = (base / "hosts/nspawn-trixie/report.html").read_text()
    assert f'id="{anchor}"' in report
    shown = chromium.load(base / "hosts/nspawn-trixie/report.html")
    assert shown.console == [] and shown.requests == []


def test_an_interrupted_matrix_says_so(tmp_path: Path) -> None:
    matrix = build_matrix(three_hosts(tmp_path), interrupted=True)
    assert matrix["summary"]["interrupted"] is True
    assert "interrupted: tests not run are not verdicts" in render_markdown(matrix)


def test_a_column_without_a_single_verdict_is_unavailable(tmp_path: Path) -> None:
    hosts = three_hosts(tmp_path)
    store_only = make_host(
        tmp_path / "other", "nspawn://sid", {T_STORE: ("skipped", NO_STORE)}, build="deb"
    )
    matrix = build_matrix([hosts[0], store_only])
    assert matrix["hosts"][1]["status"] == "unavailable"
    assert matrix["hosts"][1]["note"] == NO_STORE
    assert matrix["summary"]["exit_status"] == EXIT_HOST_FAULT
