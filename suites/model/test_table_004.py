"""Seed 004's "Epoch transitions" table, every cell, as the acceptance test of the store model.

The rows below are transcribed literally from the page (seed 004), which already carries the
correction its comments asked for: at step 6 user 2 gets R6 ("Should step 6 of the second user
... be indicating R6, not R4?" -- "You're absolutely right!"), and user 3 gets R6 too ("If user 3
installed it from candidate, shouldn't line 6 make it go to R6" -- "You are absolutely right").
Columns: step, stable releases, candidate releases, stable for user 1, candidate for user 2,
candidate for user 3. A 1* revision is written E1* where released and E1 in a user's cell.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snapconform.model.epoch import Epoch
from snapconform.model.plan import cell_text, evaluate, parse_plan, released_text, render_markdown
from snapconform.model.store import Store

DOCUMENT_ROWS = """\
1 R1E0 - R1E0 R1E0 -
2 R2E0 - R2E0 R2E0 -
3 - R3E1 R2E0 R2E0 (!) R3E1
4 R4E0 - R4E0 R4E0 (!) R3E1
5 R5E1 - R4E0 R4E0 R3E1 (!)
6 - R6E1* R4E0 R6E1 R6E1
7 R6E1* - R6E1 R6E1 R6E1
8 - R7E1 R6E1 R7E1 R7E1
"""
USERS = ("user1", "user2", "user3")
PLAN = Path(__file__).parents[1] / "plans" / "epochs-004.yaml"
SEED = Path(__file__).parents[3] / "shared" / "seeds" / "004_b2128189ca7d66a9.txt"


def document_cells() -> list[list[str]]:
    """Each row's cells: a "(!)" belongs to the cell before it."""
    rows = []
    for line in DOCUMENT_ROWS.splitlines():
        cells: list[str] = []
        for token in line.split():
            if token == "(!)":
                cells[-1] += " (!)"
            else:
                cells.append(token)
        rows.append(cells)
    return rows


@pytest.fixture(scope="module")
def table():
    return evaluate(parse_plan(PLAN.read_text(), PLAN.name))


def model_cells(table) -> list[list[str]]:
    rows = []
    for row in table.rows:
        released = [
            released_text(row.step) if row.step.channel == c else "-"
            for c in ("stable", "candidate")
        ]
        rows.append([str(row.step.number), *released, *(cell_text(row.cells[u]) for u in USERS)])
    return rows


def test_transcription_is_the_documents():
    if not SEED.exists():
        pytest.skip(f"seed document not found at {SEED}")
    text = SEED.read_text(encoding="utf-8")
    for line in DOCUMENT_ROWS.splitlines():
        assert line in text.splitlines()
    assert "(!) is used to show the influence of epochs on locally installed revisions." in text


def test_plan_is_004s_plan(table):
    assert [u.name for u in table.plan.users] == list(USERS)
    assert [(u.channel, u.start) for u in table.plan.users] == [
        ("stable", 1),
        ("candidate", 1),
        ("candidate", 3),
    ]
    assert table.plan.channels == ("stable", "candidate")


@pytest.mark.parametrize("step", range(1, 9))
def test_every_cell_of_the_row(table, step):
    assert model_cells(table)[step - 1] == document_cells()[step - 1]


def test_whole_table(table):
    assert model_cells(table) == document_cells()


def test_marks_are_exactly_004s(table):
    marks = {
        (row.step.number, u)
        for row in table.rows
        for u in USERS
        if row.cells[u] and row.cells[u].marked
    }
    assert marks == {(3, "user2"), (4, "user2"), (5, "user3")}


def test_the_correction_step_6_user_2_gets_r6(table):
    cell = table.rows[5].cells["user2"]
    assert cell.revision == 6 and cell.epoch == Epoch.parse_yaml("1*")
    assert cell.why == "candidate's R6 (epoch 1*) can read epoch 0"


def test_unmarked_epoch_hiding_step_5_user_1(table):
    # "Why do steps 5 and 6 not give user 1 R5? ... R5 isn't a backwards compatible (i.e. E1*)"
    cell = table.rows[4].cells["user1"]
    assert (cell.revision, cell.marked, cell.changed) == (4, False, False)
    assert "stable's R5 (epoch 1) cannot read epoch 0" in cell.why


def test_user_3_stays_in_candidate_at_step_5(table):
    cell = table.rows[4].cells["user3"]
    assert cell.why == (
        "candidate's R3 (epoch 1) can read epoch 1, so stable's R5 (epoch 1) is not offered:"
        " less risky channels are asked only when candidate has nothing that can"
    )


def test_user_2_is_served_by_stable_while_candidate_cannot_read(table):
    assert table.rows[3].cells["user2"].why == (
        "candidate's R3 (epoch 1) cannot read epoch 0; stable's R4 (epoch 0) can"
    )
    assert table.rows[3].cells["user2"].channel == "stable"


def test_markdown_rows_match_the_document(table):
    lines = render_markdown(table).splitlines()
    body = [line for line in lines if line.startswith("| ") and not line.startswith("| step")]
    rendered = []
    for line in body:
        cells = [c.strip() for c in line.strip("|").split("|")]
        # drop the footnote numbers, which 004 does not have
        rendered.append([c.split(" [")[0] for c in cells])
    assert rendered == document_cells()


def test_footnotes_give_one_reason_per_changed_or_marked_cell(table):
    text = render_markdown(table)
    notes = [line for line in text.splitlines() if line[:1].isdigit() and ". step " in line]
    changed = sum(
        1
        for row in table.rows
        for u in USERS
        if row.cells[u] and (row.cells[u].changed or row.cells[u].marked)
    )
    assert len(notes) == changed == 14
    assert notes[4] == (
        "5. step 3, user2: candidate's R3 (epoch 1) cannot read epoch 0; stable's R2 (epoch 0) can"
    )


def test_json_shape(table):
    from snapconform.model.plan import render_json

    data = json.loads(render_json(table))
    first = data["steps"][0]
    assert first["step"] == 1
    assert first["released"] == {"channel": "stable", "revision": 1, "epoch": "0"}
    assert first["users"]["user3"] is None
    assert first["users"]["user1"]["revision"] == 1 and first["users"]["user1"]["epoch"] == "0"
    assert data["steps"][6]["released"] == {"channel": "stable", "revision": 6, "epoch": "1*"}


def test_cli_reproduces_the_table():
    result = subprocess.run(
        [sys.executable, "-m", "snapconform", "table", str(PLAN), "--format", "markdown"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "| 5 | R5E1 | - | R4E0 | R4E0 | R3E1 (!) [9] |" in result.stdout


# -- seed 000, post #8 --------------------------------------------------------------------------


def test_seed_000_8_bounce_through_a_1_star_in_the_channel_history():
    # "If a user is on beta (with epoch: 0) and tries to do snap refresh --candidate to something
    # that has epoch: 1 and there is an epoch: 1* somewhere in the channel history to bounce
    # through, the refresh will end up on that revision"
    s = Store()
    s = s.release("beta", 10, Epoch.parse_yaml("0"))
    s = s.release("candidate", 11, Epoch.parse_yaml("1*"))
    s = s.release("candidate", 12, Epoch.parse_yaml("1"))
    first = s.refresh("candidate", 10, Epoch.parse_yaml("0"))
    assert (first.revision, first.channel) == (11, "candidate")
    assert first.why == (
        "candidate's R12 (epoch 1) cannot read epoch 0; R11 (epoch 1*), released to candidate"
        " earlier, is the only one that can"
    )
    # "... and then a later auto-refresh (or a manual snap refresh) will get them to the wanted
    # revision": asking again from the bridge's epoch.
    assert s.refresh("candidate", 11, Epoch.parse_yaml("1*")).revision == 12
    # snapd 2.38+ re-refreshes after the epoch changed, so one `snap refresh` takes both hops.
    path = s.refresh_path("candidate", 10, Epoch.parse_yaml("0"))
    assert [hop.revision for hop in path.hops] == [11, 12]
