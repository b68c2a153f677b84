"""The model of an interrupted step (snapconform.model.faults): kill points, the two allowed
outcomes, where an undo keeps a hook's marks, and the one hook that may run twice."""

from __future__ import annotations

import pytest

from snapconform.model import snapd as model
from snapconform.model.faults import (
    COPY_RERUN_ANOMALY,
    KillPoint,
    allowed_outcomes,
    copy_rerun_leaves_target,
    hooks_allowed,
    step_kind,
    undone_state,
)

HOOKS = (
    model.HookPlan("pre-refresh", marker="saved"),
    model.HookPlan("post-refresh", marker="migrated"),
)


def _installed() -> model.SnapdState:
    state = model.install(model.new_state(), model.SnapFile("sc-f", "1.0", hooks=HOOKS)).state
    return model.run_app(state, "sc-f", "before").state


def test_kill_points_are_checked_and_described():
    assert KillPoint(3, "Done", 250, "power").describe() == "power cut when task #3 is Done +250 ms"
    for bad in (dict(task=-1), dict(task=0, status="Do"), dict(task=0, delay_ms=5000)):
        with pytest.raises(ValueError):
            KillPoint(**bad)
    with pytest.raises(ValueError, match="how"):
        KillPoint(0, how="reboot")


def test_a_successful_step_may_complete_or_be_undone_and_nothing_else():
    before = _installed()
    outcome = model.install(before, model.SnapFile("sc-f", "2.0", hooks=HOOKS))
    assert outcome.ok
    ran = [model.HookRun("sc-f", "pre-refresh", "x1")]
    completed, undone = allowed_outcomes(before, outcome, "sc-f", "refresh", ran)
    assert (completed.name, completed.outcome, completed.change_statuses) == (
        "completed",
        outcome,
        ("Done",),
    )
    assert undone.name == "undone" and undone.change_statuses == ("Undone", "Error")
    instance = undone.outcome.state.instance("sc-f")
    assert instance.revisions == ("x1",) and instance.current == "x1"
    # pre-refresh wrote into x1, the old current revision: its mark stays; the old data too
    assert instance.data_of("x1") == {"before", "saved"}
    assert instance.common == {"before", "saved"}


def test_an_undone_refresh_drops_the_marks_in_the_new_revision_but_not_in_common():
    before = _installed()
    outcome = model.install(before, model.SnapFile("sc-f", "2.0", hooks=HOOKS))
    ran = [model.HookRun("sc-f", "pre-refresh", "x1"), model.HookRun("sc-f", "post-refresh", "x2")]
    state = undone_state(before, outcome.state, "sc-f", "refresh", ran)
    instance = state.instance("sc-f")
    assert instance.revisions == ("x1",)
    assert instance.common == {"before", "saved", "migrated"}


def test_an_undone_revert_keeps_the_marks_in_the_revision_it_went_to():
    state = _installed()
    state = model.install(
        state, model.SnapFile("sc-f", "2.0", hooks=(model.HookPlan("configure", marker="conf"),))
    ).state
    outcome = model.revert(state, "sc-f", "x1")
    ran = [model.HookRun("sc-f", "configure", "x2")]
    undone = undone_state(state, outcome.state, "sc-f", "revert", ran).instance("sc-f")
    assert undone.current == "x2" and "conf" in undone.data_of("x2")


def test_an_undone_first_install_leaves_nothing():
    before = model.new_state()
    outcome = model.install(before, model.SnapFile("sc-f", "1.0", hooks=HOOKS))
    assert step_kind(before, "install", "sc-f") == "install"
    assert undone_state(before, outcome.state, "sc-f", "install", []) == before


def test_a_predicted_rollback_has_one_outcome():
    before = _installed()
    failing = (model.HookPlan("post-refresh", fails_with="no"),)
    outcome = model.install(before, model.SnapFile("sc-f", "2.0", hooks=failing))
    assert not outcome.ok
    (only,) = allowed_outcomes(before, outcome, "sc-f", "refresh", list(outcome.hooks_run))
    assert only.outcome == outcome and only.change_statuses == ("Error", "Undone")


def _rolled_back_with_copy_rerun() -> tuple[model.SnapdState, model.Outcome, tuple]:
    before = model.run_app(_installed(), "sc-f", "kept").state
    failing = (model.HookPlan("post-refresh", fails_with="no", marker="migrated"),)
    outcome = model.install(before, model.SnapFile("sc-f", "2.0", hooks=failing))
    allowed = allowed_outcomes(
        before, outcome, "sc-f", "refresh", list(outcome.hooks_run), frozenset({"copy-snap-data"})
    )
    return before, outcome, allowed


def test_a_rollback_whose_copy_ran_again_may_leave_the_first_copy():
    """backend/snapdata.go copySnapDataDirectory trashes what the new revision's dir holds
    before copying; copydata.go UndoCopySnapData removes that dir, then untrashes: a copy
    made before the kill comes back as x2, beside the sequence, in SNAP_DATA and root's home."""
    before, outcome, allowed = _rolled_back_with_copy_rerun()
    # snapDataDirs' order: the homes, root's, then SNAP_DATA; a kill may land after any of them
    assert [a.name for a in allowed] == [
        "completed",
        "completed, x2 copy restored",
        "completed, x2 copy restored (1 of 2 dirs)",
    ]
    # snapd promises to delete that data: the twins name the known divergence they are
    assert [a.anomaly for a in allowed] == [None, COPY_RERUN_ANOMALY, COPY_RERUN_ANOMALY]
    left = allowed[1].outcome.state
    instance = left.instance("sc-f")
    assert instance.revisions == ("x1",)
    assert dict(instance.stray_data) == {"x2": instance.data_of("x1")}
    home = {d.instance: dict(d.revisions) for d in left.user_dirs if d.user == "root"}
    assert home["sc-f"]["x2"] == home["sc-f"]["x1"]
    homes_only = allowed[2].outcome.state
    assert homes_only.instance("sc-f").stray_data == ()
    home = {d.instance: dict(d.revisions) for d in homes_only.user_dirs if d.user == "root"}
    assert "x2" in home["sc-f"]
    # not when copy-snap-data had finished before the kill, nor for a revert or a store-down
    assert len(allowed_outcomes(before, outcome, "sc-f", "refresh", list(outcome.hooks_run))) == 1
    reverted = model.revert(model.install(before, model.SnapFile("sc-f", "2.0")).state, "sc-f")
    assert copy_rerun_leaves_target(reverted.state, "sc-f", "x2") == reverted.state


def test_a_stray_dir_stays_through_rollbacks_and_goes_when_its_revision_is_installed():
    _, _, allowed = _rolled_back_with_copy_rerun()
    left = allowed[1].outcome.state
    failing = (model.HookPlan("post-refresh", fails_with="no"),)
    again = model.install(left, model.SnapFile("sc-f", "3.0", hooks=failing))
    assert (
        not again.ok and again.state.instance("sc-f").stray_data == left.instance("sc-f").stray_data
    ), "the undo puts the stray dir back from the trash"
    assert "stray dir put back" in again.why
    home = {d.instance: dict(d.revisions) for d in again.state.user_dirs if d.user == "root"}
    assert "x2" in home["sc-f"]
    works = model.install(left, model.SnapFile("sc-f", "3.0")).state.instance("sc-f")
    assert works.revisions == ("x1", "x2") and works.stray_data == ()
    assert "stray x2" in model.describe(left)


def test_one_hook_whose_task_had_not_finished_may_run_twice():
    a, b, c = ("i", "pre-refresh", "x1"), ("i", "post-refresh", "x2"), ("i", "configure", "x2")
    expected = [a, b, c]
    assert hooks_allowed(expected, [a, b, c], frozenset())
    assert hooks_allowed(expected, [a, b, b, c], frozenset({"post-refresh"}))
    assert not hooks_allowed(expected, [a, b, b, c], frozenset({"pre-refresh"}))
    assert not hooks_allowed(expected, [a, a, b, b, c], frozenset({"pre-refresh", "post-refresh"}))
    assert not hooks_allowed(expected, [a, b, b, b, c], frozenset({"post-refresh"}))
    assert not hooks_allowed(expected, [a, b], frozenset())
    assert hooks_allowed(expected, [a, b], frozenset(), prefix=True)
    assert hooks_allowed(expected, [a, a], frozenset({"pre-refresh"}), prefix=True)
    assert not hooks_allowed(expected, [b], frozenset(), prefix=True)


def test_step_kinds():
    state = _installed()
    assert step_kind(state, "install", "sc-f") == "refresh"
    assert step_kind(state, "revert", "sc-f") == "revert"
    with pytest.raises(ValueError):
        step_kind(state, "set", "sc-f")
