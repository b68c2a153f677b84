"""Seed 000 ("How to cause a snap rollback?") as executable claims on the snapd model.

#4: the pre-refresh hook runs in the previous snap, not the new one, and cannot know which
revision is coming; a failure in post-refresh marks the new revision bad (it is undone).
The epochs page (seed 004) adds: $SNAP_COMMON is not rolled back, and revert does not bring it
back. Facts §§5, 7 give the details these tests pin.
"""

from __future__ import annotations

from dataclasses import replace

from snapconform.model.snapd import (
    HookPlan,
    HookRun,
    Outcome,
    SnapdState,
    SnapFile,
    install,
    new_state,
    refresh_revision,
    revert,
    run_app,
)

NAME = "hookapp"
GOOD_HOOKS = tuple(
    HookPlan(hook) for hook in ("install", "configure", "pre-refresh", "post-refresh", "remove")
)


def app(version: str, *failing: tuple[str, str], epoch: str | None = None) -> SnapFile:
    """All five hooks present; the named ones fail with the given text."""
    fails = dict(failing)
    hooks = tuple(HookPlan(h.name, fails.get(h.name)) for h in GOOD_HOOKS)
    return SnapFile(NAME, version, epoch_yaml=epoch, hooks=hooks)


def ok(outcome: Outcome) -> SnapdState:
    assert outcome.ok, outcome.error
    return outcome.state


def runs(outcome: Outcome) -> list[tuple[str, str]]:
    return [(run.hook, run.revision) for run in outcome.hooks_run]


def installed_with_data() -> SnapdState:
    state = ok(install(new_state(), app("1.0")))
    return ok(run_app(state, NAME, "written-by-x1"))


def test_failing_post_refresh_restores_the_old_revision_with_its_data() -> None:
    before = installed_with_data()
    outcome = install(before, app("2.0", ("post-refresh", "cannot migrate the qemu snapshots")))

    assert outcome.error is not None
    assert outcome.error.kind == "hook-failed"
    assert outcome.error.message == (
        "cannot perform the following tasks:\n"
        '- Run post-refresh hook of "hookapp" snap if present '
        '(run hook "post-refresh": cannot migrate the qemu snapshots)'
    )
    # Root's ~/snap/NAME/current stays where the last hook's `snap run` put it (userdata).
    assert replace(outcome.state, user_dirs=before.user_dirs) == before
    instance = outcome.state.instance(NAME)
    assert instance is not None
    assert (instance.revisions, instance.current) == (("x1",), "x1")
    assert instance.data_of("x1") == {"written-by-x1"}
    # post-refresh ran in the new revision, then nothing more (configure never ran).
    assert runs(outcome) == [("pre-refresh", "x1"), ("post-refresh", "x2")]
    assert outcome.discarded == ()


def test_rolled_back_revision_number_comes_back_on_the_next_try() -> None:
    before = installed_with_data()
    failed = install(before, app("2.0", ("post-refresh", "no")))
    retried = install(failed.state, app("2.1"))
    assert ok(retried).instance(NAME).revisions == ("x1", "x2")  # type: ignore[union-attr]


def test_pre_refresh_runs_in_the_old_revision_only() -> None:
    before = installed_with_data()
    outcome = install(before, app("2.0"))
    pre = [run for run in outcome.hooks_run if run.hook == "pre-refresh"]
    assert pre == [HookRun(NAME, "pre-refresh", "x1")]
    assert runs(outcome) == [("pre-refresh", "x1"), ("post-refresh", "x2"), ("configure", "x2")]


def test_pre_refresh_cannot_know_which_revision_is_coming() -> None:
    """Whatever the target (new file, other epoch, a present revision), pre-refresh is the same."""
    state = ok(install(installed_with_data(), app("2.0")))
    state = ok(revert(state, NAME))
    targets = [
        install(state, app("3.0")),
        install(state, app("3.0", epoch="1*")),
        refresh_revision(state, NAME, "x2"),
    ]
    first_runs = [outcome.hooks_run[0] for outcome in targets]
    assert first_runs == [HookRun(NAME, "pre-refresh", "x1")] * 3


def test_failing_pre_refresh_changes_nothing() -> None:
    # pre-refresh does not run on a first install, so the failing hook can be installed.
    before = ok(install(new_state(), app("1.0", ("pre-refresh", "please stop your instances"))))
    before = ok(run_app(before, NAME, "unsaved"))
    outcome = install(before, app("2.0"))

    assert outcome.error is not None
    assert outcome.error.message == (
        "cannot perform the following tasks:\n"
        '- Run pre-refresh hook of "hookapp" snap if present '
        '(run hook "pre-refresh": please stop your instances)'
    )
    assert outcome.state == before  # no new revision, no data copied, nothing discarded
    assert runs(outcome) == [("pre-refresh", "x1")]
    assert outcome.discarded == ()


def test_snap_common_writes_survive_a_rollback() -> None:
    before = installed_with_data()
    outcome = install(before, app("2.0", ("post-refresh", "boom")))
    instance = outcome.state.instance(NAME)
    assert instance is not None
    assert instance.common == {"written-by-x1"}


def test_revert_does_not_bring_snap_common_back() -> None:
    state = ok(install(installed_with_data(), app("2.0")))
    state = ok(run_app(state, NAME, "written-by-x2"))
    state = ok(revert(state, NAME))
    instance = state.instance(NAME)
    assert instance is not None
    assert instance.current == "x1"
    assert instance.common == {"written-by-x1", "written-by-x2"}  # shared: revert keeps it
    assert instance.data_of("x1") == {"written-by-x1"}  # SNAP_DATA: x1's own, as it was
    assert instance.data_of("x2") == {"written-by-x1", "written-by-x2"}


def test_rollback_of_a_refresh_to_a_present_revision_puts_its_own_data_back() -> None:
    """copy-snap-data trashes the target's data and its undo restores it (backend/snapdata.go)."""
    state = ok(install(new_state(), app("1.0", ("post-refresh", "x1 cannot come back"))))
    state = ok(run_app(state, NAME, "a"))
    state = ok(install(state, app("2.0")))  # x2 gets {a}; x1's post-refresh never runs here
    state = ok(run_app(state, NAME, "b"))
    outcome = refresh_revision(state, NAME, "x1")

    assert outcome.error is not None and outcome.error.kind == "hook-failed"
    # Root's ~/snap/NAME/current stays where the last hook's `snap run` put it (userdata).
    assert replace(outcome.state, user_dirs=state.user_dirs) == state
    instance = outcome.state.instance(NAME)
    assert instance is not None
    assert instance.data_of("x1") == {"a"}
    assert runs(outcome) == [("pre-refresh", "x2"), ("post-refresh", "x1")]
