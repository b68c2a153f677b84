"""The store model: its fixed rules, and every named policy next to what its alternative changes.

Each policy test plays 004's table (suites/plans/epochs-004.yaml, the corrected table) or the
seed 000 #8 scenario with the alternative and names the cells that move. The default policies
reproducing 004 exactly is test_table_004.py's job.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from snapconform.model.epoch import Epoch
from snapconform.model.plan import evaluate, parse_plan
from snapconform.model.store import (
    DEFAULT_RISKS,
    EpochOrder,
    FreshInstall,
    History,
    Policies,
    Store,
    StoreError,
    TieBreak,
    Unreadable,
)

PLAN_004 = Path(__file__).parents[1] / "plans" / "epochs-004.yaml"
E = Epoch.parse_yaml


def outcomes(policies: Policies) -> dict[tuple[int, str], int | None]:
    """(step, user) -> the revision the user has after that step of 004's plan."""
    table = evaluate(parse_plan(PLAN_004.read_text(), PLAN_004.name), policies)
    return {
        (row.step.number, name): None if cell is None else cell.revision
        for row in table.rows
        for name, cell in row.cells.items()
    }


def moved_cells(**change: object) -> dict[tuple[int, str], tuple[int | None, int | None]]:
    """The 004 cells the alternative policy changes: cell -> (default, alternative)."""
    default = outcomes(Policies())
    other = outcomes(replace(Policies(), **change))  # type: ignore[arg-type]
    return {key: (default[key], other[key]) for key in default if default[key] != other[key]}


def store(*releases: tuple[str, int, str], **policy: object) -> Store:
    result = Store(policies=replace(Policies(), **policy))  # type: ignore[arg-type]
    for channel, revision, epoch in releases:
        result = result.release(channel, revision, E(epoch))
    return result


def test_defaults_are_the_documented_ones():
    assert Policies() == Policies(
        epoch_order=EpochOrder.WRITTEN,
        tie_break=TieBreak.RELEASE_ORDER,
        history=History.ALL_RELEASES,
        unreadable=Unreadable.LESS_RISKY,
        re_refresh=True,
        fresh_install=FreshInstall.LATEST_EPOCH,
    )


# -- fixed rules -----------------------------------------------------------------------------


def test_risks_default_least_risky_first():
    assert DEFAULT_RISKS == ("stable", "candidate", "beta", "edge")
    assert Store().less_risky("edge") == ("beta", "candidate", "stable")


def test_closed_channel_follows_next_less_risky_open_one():
    s = store(("stable", 1, "0"), ("candidate", 2, "0"))
    assert s.follows("edge") == "candidate"  # beta and edge closed: candidate, not stable
    answer = s.fresh_install("edge")
    assert (answer.revision, answer.channel) == (2, "candidate")
    assert answer.why.startswith("edge is closed, so it follows candidate")


def test_nothing_open_means_no_answer():
    s = store(("edge", 1, "0"))
    assert not s.fresh_install("stable").found
    assert not s.refresh("candidate", 1, E("0")).found


def test_tracks_fall_back_within_their_track():
    s = store(("stable", 1, "0"), ("2.0/stable", 5, "0"))
    assert s.channel("latest/stable") == "stable"
    assert s.follows("2.0/edge") == "2.0/stable"
    assert s.fresh_install("2.0/candidate").revision == 5


def test_unknown_channel_and_changed_epoch_are_refused():
    with pytest.raises(StoreError, match="unknown channel"):
        Store(risks=("stable", "candidate")).release("beta", 1, E("0"))
    with pytest.raises(StoreError, match="revision 1 has epoch 0, not 1"):
        store(("stable", 1, "0")).release("candidate", 1, E("1"))


def test_greatest_epoch_then_most_recent_among_readable():
    s = store(("stable", 1, "0"), ("stable", 2, "1*"), ("stable", 3, "1"), ("stable", 4, "0"))
    # Epoch 0 data: R1, R2 (1*) and R4 can read it; R2's epoch is the greatest.
    answer = s.refresh("stable", 1, E("0"))
    assert answer.revision == 2
    assert "R2" in answer.why and "greatest epoch" in answer.why


def test_a_refresh_answer_can_be_the_installed_revision():
    s = store(("stable", 1, "0"), ("stable", 2, "1"))
    answer = s.refresh("stable", 1, E("0"))
    assert answer.revision == 1
    assert answer.why == (
        "stable's R2 (epoch 1) cannot read epoch 0; R1 (epoch 0), released to stable earlier,"
        " is the only one that can"
    )
    assert s.refresh_path("stable", 1, E("0")).hops == ()


def test_why_is_one_sentence_naming_the_rule():
    s = store(("stable", 1, "0"), ("candidate", 3, "1"), ("stable", 4, "0"))
    answer = s.refresh("candidate", 1, E("0"))
    assert answer.why == "candidate's R3 (epoch 1) cannot read epoch 0; stable's R4 (epoch 0) can"
    s = s.release("candidate", 5, E("1"))
    assert s.refresh("candidate", 1, E("0")).why == (
        "candidate's R5 (epoch 1) cannot read epoch 0 and no earlier candidate release can;"
        " stable's R4 (epoch 0) can"
    )


def test_refresh_path_records_each_hop():
    s = store(("beta", 1, "0"), ("candidate", 2, "1*"), ("candidate", 3, "1"))
    path = s.refresh_path("candidate", 1, E("0"))
    assert [hop.revision for hop in path.hops] == [2, 3]
    assert path.final.revision == 3
    assert "snapd asked again" in path.why


# -- policy: epoch_order -------------------------------------------------------------------------


def test_epoch_order_bridges_last_holds_user_3_on_r3_at_step_6():
    # 004's comments: "why doesn't user 3 get R6 in step 6 - the table shows they're held back
    # to R3" -- the correction needs 1* and 1 to rank equal. Ranking a bridge below the plain
    # epoch also sends everyone who crossed on R6E1* back to an older plain epoch-1 revision
    # (re-refresh), which 004 never shows.
    assert moved_cells(epoch_order=EpochOrder.BRIDGES_LAST) == {
        (6, "user2"): (6, 3),
        (6, "user3"): (6, 3),
        (7, "user1"): (6, 5),
        (7, "user2"): (6, 3),
        (7, "user3"): (6, 3),
        (8, "user1"): (6, 5),
    }


def test_epoch_order_ignored_lets_an_old_epoch_release_win_over_a_bridge():
    releases = (("stable", 1, "0"), ("stable", 2, "1*"), ("stable", 3, "0"))
    assert store(*releases).refresh("stable", 1, E("0")).revision == 2
    assert (
        store(*releases, epoch_order=EpochOrder.IGNORED).refresh("stable", 1, E("0")).revision == 3
    )
    assert moved_cells(epoch_order=EpochOrder.IGNORED) == {}


# -- policy: tie_break ---------------------------------------------------------------------------


def test_tie_break_revision_number_ignores_a_rollback():
    releases = (("stable", 1, "0"), ("stable", 2, "0"), ("stable", 1, "0"))  # R1 re-released
    assert store(*releases).refresh("stable", 2, E("0")).revision == 1
    by_number = store(*releases, tie_break=TieBreak.REVISION_NUMBER)
    assert by_number.refresh("stable", 2, E("0")).revision == 2
    assert moved_cells(tie_break=TieBreak.REVISION_NUMBER) == {}  # 004's revisions only grow


# -- policy: history ---------------------------------------------------------------------------

SEED_000_8 = (("beta", 1, "0"), ("candidate", 2, "1*"), ("candidate", 3, "1"))


def test_history_tip_only_loses_seed_000_8s_bounce():
    # #8: "there is an epoch: 1* somewhere in the channel history to bounce through"
    assert store(*SEED_000_8).refresh("candidate", 1, E("0")).revision == 2
    assert not store(*SEED_000_8, history=History.TIP_ONLY).refresh("candidate", 1, E("0")).found
    assert moved_cells(history=History.TIP_ONLY) == {}


def test_history_counts_a_revision_once_at_its_latest_release():
    s = store(("stable", 1, "0"), ("stable", 2, "0"), ("stable", 1, "0"))
    assert [r.revision for r in s.candidates("stable")] == [2, 1]


# -- policy: unreadable --------------------------------------------------------------------------


def test_unreadable_stay_keeps_user_2_off_stable_at_steps_4_and_5():
    assert moved_cells(unreadable=Unreadable.STAY) == {(4, "user2"): (4, 2), (5, "user2"): (4, 2)}


def test_unreadable_pool_gives_user_3_stables_r5_at_step_5():
    assert moved_cells(unreadable=Unreadable.POOL) == {(5, "user3"): (3, 5)}


# -- policy: re_refresh --------------------------------------------------------------------------


def test_re_refresh_off_stops_at_the_bridge_as_seed_000_8_describes():
    one_hop = store(*SEED_000_8, re_refresh=False)
    first = one_hop.refresh_path("candidate", 1, E("0"))
    assert [hop.revision for hop in first.hops] == [2]
    # "... and then a later auto-refresh (or a manual snap refresh) will get them there"
    assert one_hop.refresh_path("candidate", 2, E("1*")).final.revision == 3
    assert moved_cells(re_refresh=False) == {}


# -- policy: fresh_install -----------------------------------------------------------------------


def test_fresh_install_channel_tip_gives_new_users_an_old_epoch_maintenance_release():
    # 004: "You can still push updates to users of the old epoch by specifying epoch: 0" and
    # "new users ... always get the latest epoch with a fresh installation".
    releases = (("stable", 1, "0"), ("stable", 2, "1"), ("stable", 3, "0"))
    latest = store(*releases).fresh_install("stable")
    assert latest.revision == 2
    assert "not the tip R3" in latest.why
    assert (
        store(*releases, fresh_install=FreshInstall.CHANNEL_TIP).fresh_install("stable").revision
        == 3
    )
    assert moved_cells(fresh_install=FreshInstall.CHANNEL_TIP) == {}
