"""Release plans with what publishers and users do besides releasing and refreshing (issue 7 §6):
close and unrelease steps, users who switch channel, revert or stay offline. Bad entries get one
line naming the file, the entry and the problem, as every bad plan does (test_plan_errors.py).

The table is played through the snapd model, so the rules checked here are snapd's and the
store's, each named: a closed channel follows the next less risky one (snapcraft docs, facts §3),
a reverted-from revision is not taken back by a refresh of all snaps (snapmgr.go Block), an
offline user does not refresh.
"""

from __future__ import annotations

import json

import pytest

from snapconform.model.plan import (
    PlanError,
    StoreEvent,
    UserOperation,
    cell_text,
    evaluate,
    parse_plan,
    released_text,
    render_json,
    render_text,
    replay_steps,
)

TWO = "channels: [stable, candidate]\n"


def plan(users: str, *steps: str) -> str:
    return TWO + "users:\n" + users + "steps:\n" + "".join(f"  - {{{s}}}\n" for s in steps)


def cells(text: str) -> list[dict[str, str]]:
    table = evaluate(parse_plan(text, "plan.yaml"))
    return [{user: cell_text(cell) for user, cell in row.cells.items()} for row in table.rows]


def test_closing_a_channel_forwards_its_users_and_a_release_reopens_it():
    text = plan(
        "  u: {channel: candidate, from: 1}\n",
        "revision: 1, channel: stable",
        "revision: 2, channel: candidate",
        "close: candidate",
        "revision: 3, channel: candidate",
    )
    assert [row["u"] for row in cells(text)] == ["R1E0", "R2E0", "R1E0", "R3E0"]
    table = evaluate(parse_plan(text, "plan.yaml"))
    assert released_text(table.rows[2].step) == "closed"
    assert table.rows[2].cells["u"].why.startswith("candidate is closed, so it follows stable")  # type: ignore[union-attr]


def test_unrelease_takes_users_back_to_the_previous_tip():
    text = plan(
        "  u: {channel: stable, from: 1}\n",
        "revision: 1, channel: stable",
        "revision: 2, channel: stable",
        "unrelease: stable",
    )
    table = evaluate(parse_plan(text, "plan.yaml"))
    assert [cell_text(row.cells["u"]) for row in table.rows] == ["R1E0", "R2E0", "R1E0"]
    assert released_text(table.rows[2].step) == "R2E0 unreleased"


def test_a_reverted_user_is_not_refreshed_back_by_an_auto_refresh():
    # snapmgr.go SnapState.Block: revisions after current are blocked for refreshes of all snaps.
    text = plan(
        "  u: {channel: stable, from: 1, revert: [3]}\n",
        "revision: 1, channel: stable",
        'revision: 2, epoch: "1*", channel: stable',
        "revision: 9, channel: candidate",
        'revision: 3, epoch: "1", channel: stable',
    )
    table = evaluate(parse_plan(text, "plan.yaml"))
    assert [cell_text(row.cells["u"]) for row in table.rows] == ["R1E0", "R2E1", "R1E0", "R1E0"]
    why = table.rows[2].cells["u"].why  # type: ignore[union-attr]
    assert why.startswith("reverted to R1 (snap revert); then ")
    assert "does not take a reverted-from revision back" in why
    # R3 (epoch 1) cannot read the epoch-0 data of R1, and R2 stays blocked
    assert table.rows[3].cells["u"].revision == 1  # type: ignore[union-attr]


def test_an_offline_user_keeps_what_they_have_then_catches_up_in_one_refresh():
    text = plan(
        "  u: {channel: stable, from: 1, offline: [2, 3]}\n",
        "revision: 1, channel: stable",
        'revision: 2, epoch: "1*", channel: stable',
        'revision: 3, epoch: "1", channel: stable',
        "revision: 4, channel: candidate",
    )
    table = evaluate(parse_plan(text, "plan.yaml"))
    assert [cell_text(row.cells["u"]) for row in table.rows] == [
        "R1E0",
        "R1E0 (offline)",
        "R1E0 (offline)",
        "R3E1",
    ]
    assert table.rows[3].cells["u"].hops == (2, 3)  # type: ignore[union-attr]


def test_a_switch_changes_what_the_user_follows():
    text = plan(
        "  u: {channel: stable, from: 1, switch: {2: candidate}}\n",
        "revision: 1, channel: stable",
        "revision: 2, channel: candidate",
    )
    table = evaluate(parse_plan(text, "plan.yaml"))
    cell = table.rows[1].cells["u"]
    assert cell is not None and cell.revision == 2 and cell.actions == ("switch candidate",)
    assert cell.why.startswith("switched to candidate; then ")
    data = json.loads(render_json(table))
    assert data["steps"][1]["users"]["u"]["actions"] == ["switch candidate"]


def test_replay_steps_list_store_events_then_each_users_operations():
    text = plan(
        "  a: {channel: stable, from: 1, revert: [3], offline: [4]}\n"
        "  b: {channel: candidate, from: 2, switch: {3: stable}}\n",
        "revision: 1, channel: stable",
        "revision: 2, channel: candidate",
        "close: candidate",
        "unrelease: stable",
    )
    steps = replay_steps(evaluate(parse_plan(text, "plan.yaml")))
    assert [step.store_events for step in steps] == [
        (StoreEvent("release", "stable", 1, steps[0].store_events[0].epoch),),
        (StoreEvent("release", "candidate", 2, steps[1].store_events[0].epoch),),
        (StoreEvent("close", "candidate"),),
        (StoreEvent("unrelease", "stable"),),
    ]
    assert [step.operations for step in steps] == [
        (UserOperation("a", "install", "stable"),),
        (UserOperation("a", "refresh"), UserOperation("b", "install", "candidate")),
        (
            UserOperation("a", "revert"),
            UserOperation("a", "refresh"),
            UserOperation("b", "switch", "stable"),
            UserOperation("b", "refresh"),
        ),
        (UserOperation("b", "refresh"),),
    ]


def test_a_user_who_cannot_install_yet_installs_again_at_the_next_step():
    text = plan(
        "  u: {channel: stable, from: 1}\n",
        "revision: 1, channel: candidate",
        "revision: 2, channel: stable",
    )
    steps = replay_steps(evaluate(parse_plan(text, "plan.yaml")))
    assert [step.operations for step in steps] == [
        (UserOperation("u", "install", "stable"),),
        (UserOperation("u", "install", "stable"),),
    ]


def test_text_rendering_marks_offline_cells_and_event_steps():
    text = plan(
        "  u: {channel: stable, from: 1, offline: [3]}\n",
        "revision: 1, channel: stable",
        "revision: 2, channel: candidate",
        "close: candidate",
    )
    rendered = render_text(evaluate(parse_plan(text, "plan.yaml")))
    assert "R1E0 (offline)" in rendered and "closed" in rendered


USER = "  u: {channel: stable, from: 1}\n"
BAD_PLANS = [
    (
        "close-and-release",
        plan(USER, "revision: 1, channel: stable", "close: stable, revision: 2"),
        "steps[1] (step 2)",
        "a step releases a revision (revision, epoch, channel), closes a channel",
    ),
    (
        "close-closed",
        plan(USER, "revision: 1, channel: stable", "close: candidate"),
        "steps[1] (step 2)",
        'cannot close "candidate": it is closed already',
    ),
    (
        "unrelease-closed",
        plan(USER, "revision: 1, channel: stable", "unrelease: candidate"),
        "steps[1] (step 2)",
        'cannot unrelease "candidate": it is closed, there is nothing to unrelease',
    ),
    (
        "close-unknown-channel",
        plan(USER, "revision: 1, channel: stable", "close: edge"),
        "steps[1] (step 2)",
        'unknown channel "edge" (channels: stable, candidate)',
    ),
    (
        "step-unknown-key",
        plan(USER, "revision: 1, channel: stable, colour: red"),
        "steps[0] (step 1)",
        'unknown key "colour" (expected revision, epoch, channel), or one of close, unrelease',
    ),
    (
        "offline-not-a-list",
        plan("  u: {channel: stable, from: 1, offline: 2}\n", "revision: 1, channel: stable"),
        "users.u.offline",
        "must be a list of step numbers",
    ),
    (
        "offline-out-of-range",
        plan("  u: {channel: stable, from: 1, offline: [5]}\n", "revision: 1, channel: stable"),
        "users.u.offline",
        'step "5" is not a step number (the steps are 1..1)',
    ),
    (
        "offline-before-install",
        plan(
            "  u: {channel: stable, from: 2, offline: [1]}\n",
            "revision: 1, channel: stable",
            "revision: 2, channel: stable",
        ),
        "users.u.offline",
        "step 1 is not after the user's install at step 2",
    ),
    (
        "revert-twice",
        plan(
            "  u: {channel: stable, from: 1, revert: [2, 2]}\n",
            "revision: 1, channel: stable",
            "revision: 2, channel: stable",
        ),
        "users.u.revert",
        "step 2 is listed twice",
    ),
    (
        "switch-not-a-mapping",
        plan(
            "  u: {channel: stable, from: 1, switch: [2]}\n",
            "revision: 1, channel: stable",
            "revision: 2, channel: stable",
        ),
        "users.u.switch",
        "must be a mapping of step number to channel",
    ),
    (
        "switch-unknown-channel",
        plan(
            "  u: {channel: stable, from: 1, switch: {2: edge}}\n",
            "revision: 1, channel: stable",
            "revision: 2, channel: stable",
        ),
        "users.u.switch",
        'unknown channel "edge"',
    ),
    (
        "user-unknown-key",
        plan("  u: {channel: stable, from: 1, colour: red}\n", "revision: 1, channel: stable"),
        "users.u",
        'unknown key "colour" (expected channel, from), optionally offline, switch, revert',
    ),
]


@pytest.mark.parametrize(
    ("text", "entry", "problem"),
    [case[1:] for case in BAD_PLANS],
    ids=[case[0] for case in BAD_PLANS],
)
def test_bad_entries_are_one_line_naming_file_entry_and_problem(text, entry, problem):
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"plan.yaml: {entry}: "), message
    assert problem in message, message
