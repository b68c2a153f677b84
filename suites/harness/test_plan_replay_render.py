"""Offline: a plan replayed on snapd, rendered from synthetic observations (`table --host`'s
output without a host): confirmed cells and divergences in text, markdown, json and the
drawings; instance keys for user names; plans snapd cannot hold; the exit-2 paths."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from snapconform.commands.table import observations_of
from snapconform.conformance.compare import Mismatch
from snapconform.conformance.plan_replay import (
    CONFIRMED,
    DIVERGENCE,
    CellVerdict,
    ObservedCell,
    Replay,
    StepCheck,
    check_replayable,
    instance_keys,
    render_observed,
)
from snapconform.conformance.session import StepRecord
from snapconform.model.epoch import Epoch
from snapconform.model.plan import PlanError, Table, evaluate, parse_plan
from snapconform.reports.diagrams import render_diagram

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "suites" / "plans" / "epochs-004.yaml"
HOST = {
    "url": "nspawn://bookworm?snapd=testkeys",
    "snapd": "snapd   2.57.6-1+deb12u1\nsnap    2.57.6-1+deb12u1",
    "snapd_build": "testkeys 2.57.6-1+deb12u1",
}
# The synthetic divergence: snapd held R3E1 where the table says R4E0 (step 4, user1).
WRONG = (4, "user1")


@pytest.fixture(scope="module")
def table() -> Table:
    return evaluate(parse_plan(PLAN.read_text(), str(PLAN)))


def _record(index: int, command: str, mismatches: list[Mismatch]) -> StepRecord:
    record = StepRecord(index, {"op": "store-refresh-all"}, command, True, None, None, "", [])
    record.mismatches = mismatches
    record.verdict = DIVERGENCE if mismatches else "pass"
    return record


def replay_of(table: Table, wrong: tuple[int, str] | None = WRONG) -> Replay:
    """A replay whose snapd held what the table says, but at `wrong`."""
    replay = Replay(table, HOST, "sc-plan-ab11", {}, {})
    replay.instances = {user.name: f"sc-plan-ab11_{user.name}" for user in table.plan.users}
    for row in table.rows:
        for user in table.plan.users:
            cell = row.cells[user.name]
            seen = ObservedCell(None)
            if cell is not None:
                seen = ObservedCell(cell.revision, cell.epoch, f"latest/{user.channel}")
            if (row.step.number, user.name) == wrong:
                seen = ObservedCell(3, Epoch.parse_yaml("1"), "latest/stable")
            replay.cells[(row.step.number, user.name)] = CellVerdict(
                row.step.number, user.name, cell, seen
            )
        check = StepCheck(row.step.number, refresh="all")
        check.records.append(_record(row.step.number, "snap refresh", []))
        replay.steps.append(check)
    return replay


def test_every_cell_confirmed_reads_as_the_table_with_ticks(table):
    text = render_observed(replay_of(table, wrong=None), "text")
    lines = text.splitlines()
    header = "step  stable releases  candidate releases  stable for user1  candidate for user2"
    assert lines[0] == header + "  candidate for user3"
    # step 6: user2 gets R6 (the corrected table), confirmed
    assert re.match(r"6\s+-\s+R6E1\*\s+R4E0 ✓\s+R6E1 ✓ \[10\]\s+R6E1 ✓ \[11\]$", lines[6])
    assert "-  ✓" not in text  # a user not installed yet carries no mark
    assert "✓ confirmed by snapd 2.57.6-1+deb12u1 (testkeys 2.57.6-1+deb12u1)" in text
    assert "24 of 24 cells confirmed by snapd, 0 diverged" in text
    assert text.rstrip().endswith("every cell and every checked step agrees with snapd")


def test_a_divergence_shows_both_values(table):
    replay = replay_of(table)
    assert replay.diverged and [c.step for c in replay.cell_divergences] == [4]
    text = render_observed(replay, "text")
    row = text.splitlines()[4]
    assert "R4E0 ≠ snapd R3E1 [7]" in row
    assert "verdict: DIVERGENCE: 1 cell(s) diverged (step 4 user1: R4E0 ≠ snapd R3E1)" in text
    markdown = render_observed(replay, "markdown")
    assert "| 4 | R4E0 | - | R4E0 ≠ snapd R3E1 [7] | R4E0 (!) ✓ [8] | R3E1 ✓ |" in markdown
    assert "- 23 of 24 cells confirmed by snapd, 1 diverged" in markdown


def test_same_text_other_epoch_is_told_apart(table):
    replay = replay_of(table, wrong=None)
    key = (6, "user2")  # the table: R6 with epoch 1*; snapd (synthetic): R6 with epoch 1
    cell = replay.cells[key]
    replay.cells[key] = CellVerdict(
        6, "user2", cell.expected, ObservedCell(6, Epoch.parse_yaml("1"))
    )
    assert replay.cells[key].status == DIVERGENCE
    assert "R6E1 ≠ snapd R6E1 (epoch 1) [10]" in render_observed(replay, "text")


def test_json_carries_what_snapd_held_per_cell_and_the_checked_steps(table):
    replay = replay_of(table)
    replay.steps[2].records.append(
        _record(9, "snap refresh", [Mismatch("sc-plan-ab11_user2.current", "2", "3")])
    )
    data = json.loads(render_observed(replay, "json"))
    step4 = data["steps"][3]
    assert step4["users"]["user1"]["revision"] == 4  # the model's table, as `table` prints it
    assert step4["observed"]["user1"] == {
        "status": DIVERGENCE,
        "installed": True,
        "revision": 3,
        "epoch": "1",
        "tracking": "latest/stable",
        "text": "R3E1",
    }
    assert data["steps"][0]["observed"]["user3"] == {
        "status": CONFIRMED,
        "installed": False,
        "text": "-",
    }
    assert data["steps"][2]["checked"]["verdict"] == DIVERGENCE
    assert data["steps"][2]["checked"]["commands"][1]["mismatches"] == [
        {"field": "sc-plan-ab11_user2.current", "expected": "2", "observed": "3"}
    ]
    facts = data["replay"]
    assert facts["snapd_build"] == "testkeys 2.57.6-1+deb12u1"
    assert facts["verdict"] == DIVERGENCE
    assert (facts["cells_confirmed"], facts["cells_diverged"], facts["steps_diverged"]) == (
        23,
        1,
        1,
    )
    assert facts["instances"]["user2"] == "sc-plan-ab11_user2"


def test_offline_steps_say_snap_refresh_name_was_used(table):
    replay = replay_of(table, wrong=None)
    replay.steps[4].refresh = "each"
    text = render_observed(replay, "text")
    assert "at step(s) 5 some installed user was offline" in text
    assert "takes a reverted-from revision back" in text


def test_drawings_get_the_observations(table):
    replay = replay_of(table)
    observations = observations_of(replay)
    assert (1, "user3") not in observations  # neither the model nor snapd has it
    assert observations[WRONG].status == DIVERGENCE and observations[WRONG].observed == "R3E1"
    assert observations[(6, "user2")].status == CONFIRMED
    mermaid = render_diagram(table, "mermaid", observations)
    assert re.search(r"class [^\n]*user1_s4[^\n]* divergence", mermaid)
    assert "✗ snapd held R3E1 (the model says R4E0)" in mermaid
    assert mermaid.count("✓ confirmed by snapd") == len(observations) - 1


def test_instance_keys_keep_valid_names_and_map_the_others():
    keys, mapped = instance_keys(["user1", "Alice-Stable", "bob", "---", "a" * 12, "BOB"])
    assert keys == {
        "user1": "user1",
        "Alice-Stable": "alicestabl",
        "bob": "bob",
        "---": "u4",
        "a" * 12: "a" * 10,
        "BOB": "u6",  # "bob" is taken by the user named so
    }
    assert set(mapped) == {"Alice-Stable", "---", "a" * 12, "BOB"}
    for key in keys.values():
        assert re.fullmatch(r"[a-z0-9]{1,10}", key)


def test_channels_snapd_cannot_hold_are_refused_in_one_line(table):
    check_replayable(table, "p.yaml")
    odd = evaluate(
        parse_plan(
            "channels: [stable, edge, beta]\nusers: {u: {channel: stable, from: 1}}\n"
            "steps: [{revision: 1, channel: stable}]\n",
            "odd.yaml",
        )
    )
    with pytest.raises(PlanError) as raised:
        check_replayable(odd, "odd.yaml")
    assert str(raised.value).startswith("odd.yaml: channels: snapd knows only the risks")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--host", "bogus://x"], "unknown scheme 'bogus'"),
        (["--host", "nspawn://bookworm?snapd=nope"], "snapd='nope' is not allowed"),
    ],
)
def test_bad_input_with_a_host_exits_2_before_any_host_starts(arguments, message):
    done = subprocess.run(
        [sys.executable, "-m", "snapconform", "table", str(PLAN), *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
