"""Facts §§2, 4-8 of reference/snapd-behaviour.md as example tests of the snapd model.

Every error message is compared verbatim. Tests named `..._prediction` pin what the model
derives from snapd's source where the facts page is silent; real runs settle those.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from snapconform.model.snapd import (
    HookPlan,
    ModelGap,
    Outcome,
    SnapdState,
    SnapFile,
    describe,
    install,
    new_state,
    refresh,
    refresh_revision,
    remove,
    revert,
    run_app,
    set_config,
)

NAME = "hookapp"
HOOK_NAMES = ("install", "configure", "pre-refresh", "post-refresh", "remove")


def app(
    version: str = "1.0",
    epoch: str | None = None,
    failing: dict[str, str] | None = None,
    hooks: tuple[str, ...] = HOOK_NAMES,
    name: str = NAME,
) -> SnapFile:
    fails = failing or {}
    plans = tuple(HookPlan(hook, fails.get(hook)) for hook in hooks)
    return SnapFile(name, version, epoch_yaml=epoch, hooks=plans)


def ok(outcome: Outcome) -> SnapdState:
    assert outcome.ok, outcome.error
    return outcome.state


def refused(outcome: Outcome, before: SnapdState, kind: str, message: str) -> None:
    assert outcome.error is not None, outcome.why
    assert (outcome.error.kind, outcome.error.message) == (kind, message)
    assert outcome.state == before
    assert outcome.hooks_run == ()


def revisions(state: SnapdState, name: str = NAME) -> tuple[str, ...]:
    instance = state.instance(name)
    assert instance is not None
    return instance.revisions


def current(state: SnapdState, name: str = NAME) -> str:
    instance = state.instance(name)
    assert instance is not None
    return instance.current


def data(state: SnapdState, revision: str, name: str = NAME) -> frozenset[str]:
    instance = state.instance(name)
    assert instance is not None
    return instance.data_of(revision)


def runs(outcome: Outcome) -> list[tuple[str, str]]:
    return [(run.hook, run.revision) for run in outcome.hooks_run]


def installed(count: int, retain: int = 2, state: SnapdState | None = None) -> SnapdState:
    """NAME sideloaded `count` times (x1..xN as far as retain keeps them)."""
    state = state or new_state()
    if retain != 2:
        state = ok(set_config(state, "refresh.retain", str(retain)))
    for number in range(count):
        state = ok(install(state, app(f"1.{number}")))
    return state


# -- §2 epochs -----------------------------------------------------------------------------------


def test_local_refresh_to_an_unreadable_epoch_is_refused_verbatim() -> None:
    before = installed(1)
    refused(
        install(before, app("2.0", epoch="1")),
        before,
        "epoch-refused",
        'cannot install snap file: cannot refresh "hookapp" to local snap with epoch 1, '
        "because it can't read the current epoch of 0",
    )


def test_stepping_through_a_star_epoch_is_allowed() -> None:
    state = ok(install(installed(1), app("2.0", epoch="1*")))
    state = ok(install(state, app("3.0", epoch="1")))
    assert revisions(state) == ("x2", "x3")


def test_fresh_install_is_not_epoch_checked() -> None:
    assert revisions(ok(install(new_state(), app(epoch="5")))) == ("x1",)


def test_refresh_to_a_present_revision_is_epoch_checked() -> None:
    state = ok(install(installed(1), app("2.0", epoch="1*")))
    state = ok(install(state, app("3.0", epoch="1")))  # [x2 (1*), x3 (1)]
    state = ok(revert(state, NAME))  # back on 1*, no epoch check on revert
    state = ok(install(state, app("4.0", epoch="2*")))  # discards x3, [x2, x4 (2*)]
    assert revisions(state) == ("x2", "x4")
    refused(
        refresh_revision(state, NAME, "x2"),
        state,
        "epoch-refused",
        'cannot refresh "hookapp": cannot refresh "hookapp" to local snap with epoch 1*, '
        "because it can't read the current epoch of 2*",
    )


def test_revert_is_not_epoch_checked() -> None:
    state = ok(install(installed(1), app("2.0", epoch="1*")))
    state = ok(install(state, app("3.0", epoch="1")))
    state = ok(revert(state, NAME, "x2"))
    assert current(state) == "x2"


def test_invalid_epoch_in_the_file_is_refused_when_reading_it() -> None:
    before = new_state()
    refused(
        install(before, app(epoch="0*")),
        before,
        "invalid-epoch",
        "cannot read snap file: cannot parse snap.yaml: 0* is an invalid epoch",
    )
    refused(
        install(before, app(epoch="{read: [1, 2], write: [3]}")),
        before,
        "invalid-epoch",
        "cannot read snap file: cannot parse snap.yaml: "
        "epoch read and write lists must have a non-empty intersection",
    )


def test_yaml_type_error_in_the_epoch_names_its_line_prediction() -> None:
    outcome = install(new_state(), app(epoch="[1]"))
    assert outcome.error is not None
    assert outcome.error.message == (
        "cannot read snap file: cannot parse snap.yaml: yaml: unmarshal errors:\n"
        "  line 3: cannot unmarshal !!seq into snap.structuredEpoch"
    )


# -- §4 local revisions, sequence, garbage collection --------------------------------------------


def test_the_same_file_twice_gives_x1_then_x2() -> None:
    state = ok(install(new_state(), app()))
    assert revisions(ok(install(state, app()))) == ("x1", "x2")


def test_x_numbers_restart_after_a_full_remove() -> None:
    state = ok(remove(installed(2), NAME))
    assert state.instance(NAME) is None
    assert revisions(ok(install(state, app()))) == ("x1",)


def test_the_number_of_a_removed_revision_comes_back() -> None:
    state = ok(revert(installed(3, retain=3), NAME))  # current x2, x3 after it
    state = ok(remove(state, NAME, "x3"))
    state = ok(install(state, app("9")))
    assert revisions(state) == ("x1", "x2", "x3")
    assert state.instance(NAME).revision("x3").version == "9"  # type: ignore[union-attr]


def test_refresh_appends_and_a_refresh_to_a_present_revision_moves_it_to_the_end() -> None:
    state = installed(3, retain=3)
    assert revisions(state) == ("x1", "x2", "x3")
    state = ok(refresh_revision(state, NAME, "x1"))
    assert (revisions(state), current(state)) == (("x2", "x3", "x1"), "x1")


def test_revert_only_moves_current() -> None:
    state = ok(revert(installed(3, retain=3), NAME))
    assert (revisions(state), current(state)) == (("x1", "x2", "x3"), "x2")
    state = ok(revert(state, NAME, "x3"))  # --revision may name a newer one
    assert (revisions(state), current(state)) == (("x1", "x2", "x3"), "x3")


def test_gc_with_retain_2_keeps_two_including_the_new_one() -> None:
    outcome = install(installed(2), app("2.0"))
    assert revisions(ok(outcome)) == ("x2", "x3")
    assert outcome.discarded == ("x1",)


def test_gc_with_retain_3_keeps_three() -> None:
    state = installed(4, retain=3)
    assert revisions(state) == ("x2", "x3", "x4")


def test_revert_then_refresh_discards_the_reverted_from_revisions() -> None:
    state = ok(revert(installed(3, retain=3), NAME, "x1"))
    outcome = install(state, app("4.0"))
    assert revisions(ok(outcome)) == ("x1", "x4")
    assert outcome.discarded == ("x2", "x3")


def test_refresh_to_a_reverted_from_revision_keeps_it() -> None:
    state = ok(revert(installed(3, retain=3), NAME, "x1"))
    outcome = refresh_revision(state, NAME, "x3")
    assert revisions(ok(outcome)) == ("x1", "x3")
    assert outcome.discarded == ("x2",)


def test_revert_never_collects_garbage() -> None:
    state = installed(3, retain=3)
    state = ok(set_config(state, "refresh.retain", "2"))
    outcome = revert(state, NAME)
    assert revisions(ok(outcome)) == ("x1", "x2", "x3")
    assert outcome.discarded == ()


def test_changing_retain_removes_nothing_until_the_next_refresh() -> None:
    state = ok(set_config(installed(3, retain=3), "refresh.retain", "2"))
    assert revisions(state) == ("x1", "x2", "x3")
    assert revisions(ok(install(state, app("4.0")))) == ("x3", "x4")


def test_refresh_to_a_present_revision_after_lowering_retain_keeps_retain_plus_one_prediction() -> (
    None
):
    """doInstall counts the target out of the old part, then keeps `retain` of the rest."""
    state = ok(set_config(installed(3, retain=3), "refresh.retain", "2"))
    outcome = refresh_revision(state, NAME, "x1")
    assert revisions(ok(outcome)) == ("x2", "x3", "x1")
    assert outcome.discarded == ()


@pytest.mark.parametrize(
    ("value", "shown"),
    [("1", "1"), ("21", "21"), ("abc", "abc"), ("-1", "-1"), ("2.5", "2.5"), ("300", "300")],
)
def test_retain_out_of_range_is_refused_verbatim(value: str, shown: str) -> None:
    before = new_state()
    refused(
        set_config(before, "refresh.retain", value),
        before,
        "invalid-retain",
        "cannot perform the following tasks:\n"
        '- Run configure hook of "core" snap (run hook "configure": '
        f'retain must be a number between 2 and 20, not "{shown}")',
    )


@pytest.mark.parametrize(("value", "retain"), [("2", 2), ("20", 20), ('"5"', 5), ("07", 7)])
def test_retain_in_range_is_accepted(value: str, retain: int) -> None:
    assert ok(set_config(new_state(), "refresh.retain", value)).retain == retain


def test_unsetting_retain_restores_the_classic_default() -> None:
    state = ok(set_config(new_state(), "refresh.retain", "5"))
    assert ok(set_config(state, "refresh.retain", "")).retain == 2


# -- §5 data -----------------------------------------------------------------------------------


def test_refresh_copies_current_data_and_leaves_the_old_as_it_was() -> None:
    state = ok(run_app(installed(1), NAME, "a"))
    state = ok(install(state, app("2.0")))
    state = ok(run_app(state, NAME, "b"))
    assert (data(state, "x1"), data(state, "x2")) == ({"a"}, {"a", "b"})
    assert state.instance(NAME).common == {"a", "b"}  # type: ignore[union-attr]


def test_refresh_to_a_present_revision_overwrites_its_data_with_current() -> None:
    state = ok(run_app(installed(1), NAME, "a"))
    state = ok(install(state, app("2.0")))
    state = ok(run_app(state, NAME, "b"))
    state = ok(revert(state, NAME))
    state = ok(run_app(state, NAME, "c"))  # x1 {a, c}, x2 {a, b}
    state = ok(refresh_revision(state, NAME, "x2"))
    assert (data(state, "x1"), data(state, "x2")) == ({"a", "c"}, {"a", "c"})


def test_revert_copies_nothing() -> None:
    state = ok(run_app(installed(1), NAME, "a"))
    state = ok(install(state, app("2.0")))
    state = ok(run_app(state, NAME, "b"))
    reverted = ok(revert(state, NAME))
    assert (data(reverted, "x1"), data(reverted, "x2")) == ({"a"}, {"a", "b"})


def test_remove_of_an_inactive_revision_runs_no_hook_and_drops_its_data() -> None:
    state = ok(run_app(installed(2), NAME, "a"))
    outcome = remove(state, NAME, "x1")
    assert revisions(ok(outcome)) == ("x2",)
    assert outcome.hooks_run == ()
    assert outcome.discarded == ("x1",)
    assert outcome.state.instance(NAME).common == {"a"}  # type: ignore[union-attr]


def test_remove_of_the_active_revision_is_refused_verbatim() -> None:
    several = installed(2)
    refused(
        remove(several, NAME, "x2"),
        several,
        "active-revision",
        'cannot remove "hookapp": cannot remove active revision x2 of snap "hookapp" '
        "(revert first?)",
    )
    single = installed(1)
    refused(
        remove(single, NAME, "x1"),
        single,
        "active-revision",
        'cannot remove "hookapp": cannot remove active revision x1 of snap "hookapp"',
    )


def test_remove_of_a_revision_not_installed_prints_and_exits_zero() -> None:
    before = installed(2)
    outcome = remove(before, NAME, "x7")
    refused(
        outcome, before, "revision-not-installed", 'revision x7 of snap "hookapp" is not installed'
    )
    assert outcome.error is not None and outcome.error.exit_code == 0


def test_remove_of_a_snap_not_installed_prints_and_exits_zero() -> None:
    before = new_state()
    outcome = remove(before, NAME)
    refused(outcome, before, "not-installed", 'snap "hookapp" is not installed')
    assert outcome.error is not None and outcome.error.exit_code == 0


def test_from_2_71_removing_the_only_revision_is_a_full_remove() -> None:
    state = installed(1, state=new_state(snapd_version=(2, 71)))
    outcome = remove(state, NAME, "x1")
    assert ok(outcome).instance(NAME) is None
    assert runs(outcome) == [("remove", "x1")]
    # With several revisions the current one is still refused, now always with the hint.
    several = installed(2, state=new_state(snapd_version=(2, 77)))
    assert remove(several, NAME, "x2").error.message.endswith("(revert first?)")  # type: ignore[union-attr]


def test_full_remove_runs_the_remove_hook_in_current_and_drops_everything() -> None:
    state = ok(run_app(installed(2), NAME, "a"))
    state = ok(revert(state, NAME))
    outcome = remove(state, NAME)
    assert ok(outcome).instance(NAME) is None
    assert runs(outcome) == [("remove", "x1")]
    assert outcome.discarded == ("x2", "x1")
    assert remove(state, NAME, purge=True).state == outcome.state


def test_a_failing_remove_hook_is_ignored() -> None:
    state = ok(install(new_state(), app(failing={"remove": "not now"})))
    outcome = remove(state, NAME)
    assert ok(outcome).instance(NAME) is None
    assert runs(outcome) == [("remove", "x1")]


# -- §6 revert -----------------------------------------------------------------------------------


def test_revert_runs_configure_in_the_target_only() -> None:
    outcome = revert(installed(2), NAME)
    assert current(ok(outcome)) == "x1"
    assert runs(outcome) == [("configure", "x1")]


@pytest.mark.parametrize(
    ("state", "revision", "kind", "message"),
    [
        (installed(1), None, "no-revision-to-revert", "no revision to revert to"),
        (new_state(), None, "no-revision-to-revert", "no revision to revert to"),
        (installed(2), "x2", "already-on-revision", "already on requested revision"),
        (new_state(), "x1", "inactive-snap", "cannot revert inactive snaps"),
        (installed(2), "x5", "revision-not-found", 'cannot find revision x5 for snap "hookapp"'),
    ],
)
def test_revert_errors_verbatim(
    state: SnapdState, revision: str | None, kind: str, message: str
) -> None:
    refused(revert(state, NAME, revision), state, kind, 'cannot revert "hookapp": ' + message)


def test_revert_with_nothing_before_current_is_refused() -> None:
    state = ok(revert(installed(2), NAME))  # current x1 is first in the sequence
    refused(
        revert(state, NAME),
        state,
        "no-revision-to-revert",
        'cannot revert "hookapp": no revision to revert to',
    )


def test_local_refresh_is_unknown_to_the_store() -> None:
    before = installed(1)
    message = 'local snap "hookapp" is unknown to the store, use --amend to proceed anyway'
    refused(refresh(before, NAME), before, "local-snap-unknown-to-store", message)
    refused(refresh_revision(before, NAME, "x3"), before, "local-snap-unknown-to-store", message)


def test_refresh_of_a_snap_not_installed_is_an_error() -> None:
    before = new_state()
    refused(refresh(before, NAME), before, "not-installed", 'snap "hookapp" is not installed')
    outcome = refresh_revision(before, NAME, "x1")
    assert outcome.error is not None and outcome.error.exit_code == 1


def test_store_questions_are_outside_the_model() -> None:
    with pytest.raises(ModelGap):
        set_config(new_state(), "refresh.hold", "forever")


# -- §7 hooks ------------------------------------------------------------------------------------


def test_observed_hook_log_over_install_refresh_revert() -> None:
    first = install(new_state(), app())
    second = install(ok(first), app("2.0"))
    third = revert(ok(second), NAME)
    assert runs(first) + runs(second) + runs(third) == [
        ("install", "x1"),
        ("configure", "x1"),
        ("pre-refresh", "x1"),
        ("post-refresh", "x2"),
        ("configure", "x2"),
        ("configure", "x1"),
    ]


def test_only_hooks_present_in_the_file_run() -> None:
    outcome = install(new_state(), app(hooks=("configure",)))
    assert runs(outcome) == [("configure", "x1")]
    assert runs(install(ok(outcome), app("2.0", hooks=()))) == []


@pytest.mark.parametrize("hook", ["install", "configure", "check-health"])
def test_a_failing_hook_on_a_first_install_leaves_nothing(hook: str) -> None:
    snap = app(failing={hook: "no"}, hooks=(*HOOK_NAMES, "check-health"))
    outcome = install(new_state(), snap)
    # Only root's ~/snap/NAME/current, left by the hooks' `snap run` (2.57.6, observed).
    assert replace(outcome.state, user_dirs=()) == new_state()
    assert [(d.user, d.revisions, d.common, d.current) for d in outcome.state.user_dirs] == [
        ("root", (), None, "x1")
    ]
    assert outcome.error is not None and outcome.error.kind == "hook-failed"
    assert outcome.hooks_run[-1].hook == hook


def test_failing_configure_during_a_refresh_rolls_back() -> None:
    before = ok(run_app(installed(1), NAME, "a"))
    outcome = install(before, app("2.0", failing={"configure": "bad config"}))
    # Root's ~/snap/NAME/current stays where the last hook's `snap run` put it (userdata).
    assert replace(outcome.state, user_dirs=before.user_dirs) == before
    assert runs(outcome) == [("pre-refresh", "x1"), ("post-refresh", "x2"), ("configure", "x2")]
    assert outcome.error is not None
    assert outcome.error.message == (
        "cannot perform the following tasks:\n"
        '- Run configure hook of "hookapp" snap if present (run hook "configure": bad config)'
    )


def test_failing_configure_after_gc_loses_the_collected_revision_prediction() -> None:
    """GC runs before configure and clear-snap/discard-snap have no undo (snapmgr.go)."""
    before = installed(2)
    outcome = install(before, app("3.0", failing={"configure": "bad"}))
    assert outcome.error is not None
    assert outcome.discarded == ("x1",)
    assert (revisions(outcome.state), current(outcome.state)) == (("x2",), "x2")


def test_failing_check_health_uses_its_own_task_summary() -> None:
    snap = app("2.0", failing={"check-health": "unhealthy"}, hooks=("check-health",))
    outcome = install(installed(1), snap)
    assert outcome.error is not None
    assert outcome.error.message == (
        "cannot perform the following tasks:\n"
        '- Run health check of "hookapp" snap (run hook "check-health": unhealthy)'
    )


@pytest.mark.parametrize(
    ("printed", "shown"),
    [
        ("", "exit status 1"),
        ("  spaced out \n", "spaced out"),
        ("one\ntwo\n", "\n-----\none\ntwo\n-----"),
    ],
)
def test_hook_output_formatting(printed: str, shown: str) -> None:
    outcome = install(installed(1), app("2.0", failing={"post-refresh": printed}))
    assert outcome.error is not None
    assert outcome.error.message.endswith(f'(run hook "post-refresh": {shown})')


# -- §8 parallel instances -----------------------------------------------------------------------


def test_an_instance_key_needs_the_experimental_flag() -> None:
    before = installed(1)
    refused(
        install(before, app(), name="hookapp_foo"),
        before,
        "parallel-disabled",
        "cannot install snap file: experimental feature disabled - test it by setting "
        "'experimental.parallel-instances' to true",
    )


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("hookapp_Foo", "invalid-instance-key", 'invalid instance key: "Foo"'),
        ("hookapp_toolongkey1", "invalid-instance-key", 'invalid instance key: "toolongkey1"'),
        ("hookapp_", "invalid-instance-key", 'invalid instance key: ""'),
        ("h_foo", "invalid-snap-name", 'invalid snap name: "h"'),
        (
            "other_foo",
            "instance-name-mismatch",
            'instance name "other_foo" does not match snap name "hookapp"',
        ),
    ],
)
def test_instance_name_errors_verbatim(name: str, kind: str, message: str) -> None:
    before = ok(set_config(new_state(), "experimental.parallel-instances", "true"))
    refused(install(before, app(), name=name), before, kind, message)


def test_instances_are_independent() -> None:
    state = ok(set_config(installed(2), "experimental.parallel-instances", "true"))
    outcome = install(state, app("9.0", epoch="3"), name="hookapp_foo")  # no epoch check
    state = ok(outcome)
    assert outcome.hooks_run[0].instance == "hookapp_foo"
    assert revisions(state, "hookapp_foo") == ("x1",)
    assert revisions(state) == ("x1", "x2")
    state = ok(run_app(state, "hookapp_foo", "only-foo"))
    assert data(state, "x1") == frozenset()
    assert state.instance(NAME).common == frozenset()  # type: ignore[union-attr]
    # Epoch checks and messages use the instance name.
    refused(
        install(state, app("9.1", epoch="0"), name="hookapp_foo"),
        state,
        "epoch-refused",
        'cannot install snap file: cannot refresh "hookapp_foo" to local snap with epoch 0, '
        "because it can't read the current epoch of 3",
    )
    failing = install(
        state, app("9.2", epoch="3", failing={"post-refresh": "x"}), name="hookapp_foo"
    )
    assert failing.error is not None
    assert 'Run post-refresh hook of "hookapp_foo" snap if present' in failing.error.message


def test_flag_values_other_than_true_or_false_are_refused() -> None:
    before = new_state()
    refused(
        set_config(before, "experimental.parallel-instances", "yes"),
        before,
        "invalid-flag-value",
        "cannot perform the following tasks:\n"
        '- Run configure hook of "core" snap (run hook "configure": '
        "experimental.parallel-instances can only be set to 'true' or 'false')",
    )


# -- misc ----------------------------------------------------------------------------------------


def test_system_is_a_reserved_name() -> None:
    before = new_state()
    refused(
        install(before, app(name="system")),
        before,
        "reserved-name",
        "cannot install snap file: cannot install reserved snap name 'system'",
    )


def test_describe_names_every_revision_and_marker() -> None:
    state = ok(run_app(installed(2), NAME, "marker-one"))
    text = describe(state)
    assert "refresh.retain=2" in text
    assert "*x2" in text and " x1 " in text and "marker-one" in text


def test_refresh_to_the_current_revision_is_a_full_refresh_onto_itself_prediction() -> None:
    """No guard in 2.57's Update path for a local revision equal to current (snapstate.go)."""
    state = ok(revert(installed(3, retain=3), NAME, "x2"))  # x3 after current
    state = ok(run_app(state, NAME, "a"))
    outcome = refresh_revision(state, NAME, "x2")
    assert runs(outcome) == [("pre-refresh", "x2"), ("post-refresh", "x2"), ("configure", "x2")]
    assert (revisions(ok(outcome)), current(outcome.state)) == (("x1", "x2"), "x2")
    assert outcome.discarded == ("x3",)
    assert data(outcome.state, "x2") == {"a"}


def test_refreshing_an_instance_with_a_key_needs_the_flag_too() -> None:
    state = ok(set_config(new_state(), "experimental.parallel-instances", "true"))
    state = ok(install(state, app(), name="hookapp_k"))
    state = ok(install(state, app("2.0"), name="hookapp_k"))
    state = ok(set_config(state, "experimental.parallel-instances", "false"))
    refused(
        refresh_revision(state, "hookapp_k", "x1"),
        state,
        "parallel-disabled",
        'cannot refresh "hookapp_k": experimental feature disabled - test it by setting '
        "'experimental.parallel-instances' to true",
    )
    assert current(ok(revert(state, "hookapp_k")), "hookapp_k") == "x1"  # revert is not gated


def test_running_the_app_of_a_snap_not_installed_prediction() -> None:
    before = new_state()
    refused(
        run_app(before, NAME, "m"),
        before,
        "not-installed",
        "cannot find current revision for snap hookapp: "
        "readlink /snap/hookapp/current: no such file or directory",
    )


def test_missing_file_is_refused_by_the_client_before_snapd():
    """The snap command opens the file first (observed on 2.57.6)."""
    from snapconform.model import snapd as model

    state = model.new_state()
    outcome = model.install_missing_file(state, "/tmp/nope.snap")
    assert outcome.error is not None and outcome.error.message == (
        'cannot open "/tmp/nope.snap": open /tmp/nope.snap: no such file or directory'
    )
    assert outcome.state == state and outcome.hooks_run == ()


def test_parallel_flag_refusal_is_wrapped_from_2_74():
    """snapd 2.74 wraps feature-flag refusals (observed: 2.68 plain, 2.77 wrapped)."""
    from snapconform.model import snapd as model

    for version, wrapped in (((2, 57), False), ((2, 68), False), ((2, 74), True), ((2, 77), True)):
        outcome = model.install(
            model.new_state(snapd_version=version), model.SnapFile("sc-a", "1.0"), name="sc-a_k"
        )
        assert outcome.error is not None
        assert outcome.error.message.startswith(
            'cannot install snap file: feature flag validation failed for snap "sc-a_k": '
            if wrapped
            else "cannot install snap file: experimental feature disabled"
        )
