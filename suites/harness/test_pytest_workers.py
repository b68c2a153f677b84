"""Offline: `pytest -n N` and the hosts it gives its workers (conftest.py). Bad combinations
are one line before any worker starts; a run keeps each worker's artifacts apart and writes a
combined report, also when a worker dies. No host is made here (the real-snapd version is
suites/conformance/test_killed_worker.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist", reason="pytest -n needs pytest-xdist (pip install .[test])")

REPO = Path(__file__).parents[2]
SCENARIO = Path(__file__).parent / "workers_scenario" / "scenario_offline.py"


def _pytest(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["-n", "2", "--host", "lxd://c1"],
            "ERROR: pytest -n 2 gives each worker its own host, and lxd://c1 is one host: "
            "give 2 --host URLs (--host A --host B ...), or an nspawn:// URL",
        ),
        (
            ["--host", "nspawn://bookworm", "--host", "nspawn://sid"],
            "ERROR: 2 --host URLs need pytest -n 2 (one host per worker); for one whole run "
            "per host use `python -m snapconform matrix`",
        ),
        (
            ["-n", "3", "--host", "nspawn://bookworm", "--host", "nspawn://sid"],
            "ERROR: pytest -n 3 needs 3 --host URLs (one host per worker), or one nspawn:// "
            "URL; got 2",
        ),
        (
            ["-n", "2", "--host", "ssh://root@vm", "--host", "ssh://root@vm"],
            "ERROR: two workers would share ssh://root@vm: give each worker a host of its own",
        ),
    ],
)
def test_hosts_that_do_not_fit_the_workers_are_one_line(args, line):
    done = _pytest(*args, "suites/model/test_table_004.py")
    assert done.returncode == 4, done.stdout + done.stderr
    assert line in done.stderr.splitlines(), done.stderr


def test_each_worker_keeps_its_artifacts_and_a_dead_worker_still_gets_its_report(tmp_path):
    artifacts = tmp_path / "artifacts"
    done = _pytest("-n", "2", str(SCENARIO), "--artifacts", str(artifacts))
    assert done.returncode == 1, done.stdout + done.stderr
    combined = json.loads((artifacts / "workers.json").read_text())
    outcomes = {t["nodeid"].rsplit("::", 1)[1]: t for t in combined["tests"]}
    assert outcomes["test_writes_its_artifacts"]["outcome"] == "passed"
    assert outcomes["test_its_worker_dies"]["outcome"] == "error"
    survivor = outcomes["test_writes_its_artifacts"]["worker"]
    victim = outcomes["test_its_worker_dies"]["worker"]
    assert survivor != victim and {survivor, victim} <= {"gw0", "gw1"}
    # each worker's own directory: its record, its tests' artifacts, its report
    assert list((artifacts / survivor).glob("tests/*test_writes_its_artifacts*/history.json"))
    for worker in (survivor, victim):
        record = json.loads((artifacts / worker / "worker.json").read_text())
        assert record["worker"] == worker
        assert record["host"] == f"nspawn://bookworm?cpu={record['slot']}"
        assert (artifacts / worker / "report.html").is_file()
    dead = json.loads((artifacts / victim / "run.json").read_text())  # by the controller
    assert [t["outcome"] for t in dead["tests"]] == ["error"] and dead["interrupted"]
    assert "crashed while running" in dead["tests"][0]["message"]
    died = [w for w in combined["workers"] if w["died"]]
    assert [w["worker"] for w in died] == [victim]
    left = json.loads((artifacts / victim / "leftovers.json").read_text())
    assert left["worker"] == victim and not left["records"] and not left["processes"]
    page = (artifacts / "report.html").read_text()
    assert f'href="{victim}/report.html"' in page and "A worker died during the run" in page
    # a worker that replaces the dead one takes its slot (its host and CPU), not a live one's
    replacements = [
        json.loads(path.read_text())
        for path in artifacts.glob("gw*/worker.json")
        if path.parent.name not in ("gw0", "gw1")
    ]
    victim_slot = json.loads((artifacts / victim / "worker.json").read_text())["slot"]
    assert all(record["slot"] == victim_slot for record in replacements)
