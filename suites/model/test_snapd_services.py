"""The services and disable/enable rules of model/snapd_services.py, each against the snapd
source it comes from (canonical/snapd 2.57.6 unless said) and the runs that confirmed it
(suites/conformance/test_services.py, test_disable_enable.py on 2.57.6, 2.68.3, 2.77.1)."""

from __future__ import annotations

import re

import pytest

from snapconform.model import snapd_services
from snapconform.model.snapd import (
    HookPlan,
    HookRun,
    ModelGap,
    ServicePlan,
    SnapFile,
    disable,
    enable,
    install,
    new_state,
    refresh_revision,
    remove,
    revert,
    run_app,
    start_service,
    stop_service,
)
from snapconform.model.snapd_services import expected_services

NAME = "sc-svc"
SERVICES = (ServicePlan("daemon"), ServicePlan("once", "oneshot"))
FAILING = (ServicePlan("daemon"), ServicePlan("once", "oneshot", fails=True))


def snap(version: str, services=SERVICES, hooks=()) -> SnapFile:
    return SnapFile(NAME, version, services=services, hooks=hooks)


def statuses(state, name=NAME):
    return {s.name: (s.enabled, s.active) for s in expected_services(state.instance(name))}


def normalised(text: str) -> str:
    return " ".join(text.split())


def test_install_enables_and_starts_every_service_and_a_oneshot_is_not_active():
    # handlers.go startSnapServices -> wrappers/services.go StartServices (Enable: true);
    # the oneshot has no RemainAfterExit, so REST reports it inactive once it exited (observed).
    state = install(new_state(), snap("1.0")).state
    assert statuses(state) == {"daemon": (True, True), "once": (True, False)}


def test_a_user_disabled_service_stays_disabled_across_refresh_and_revert():
    # handlers.go stopSnapServices records systemd's disabled services into
    # LastActiveDisabledServices; startSnapServices skips them.
    state = install(new_state(), snap("1.0")).state
    state = stop_service(state, NAME, "daemon", disable=True).state
    state = install(state, snap("2.0")).state
    assert statuses(state)["daemon"] == (False, False)
    state = revert(state, NAME).state
    assert statuses(state)["daemon"] == (False, False)
    state = start_service(state, NAME, "daemon", enable=True).state
    assert statuses(state)["daemon"] == (True, True)


def test_a_disabled_service_name_survives_a_revision_without_it():
    # handlers.go missingDisabledServices keeps names the new revision lacks.
    state = install(new_state(), snap("1.0")).state
    state = stop_service(state, NAME, "daemon", disable=True).state
    state = install(state, snap("2.0", services=())).state
    assert statuses(state) == {}
    state = install(state, snap("3.0")).state
    assert statuses(state)["daemon"] == (False, False)


def test_a_stopped_service_runs_again_after_the_next_link():
    state = install(new_state(), snap("1.0")).state
    state = stop_service(state, NAME, "daemon", disable=False).state
    assert statuses(state)["daemon"] == (True, False)
    state = install(state, snap("2.0")).state
    assert statuses(state)["daemon"] == (True, True)


def test_a_failing_service_undoes_the_refresh_after_post_refresh_ran():
    # snapstate.go doInstall: post-refresh hook, then start-snap-services; its failure undoes
    # the change, and undoStopSnapServices starts the old services again.
    hooks = (HookPlan("post-refresh"), HookPlan("configure"))
    state = install(new_state(), snap("1.0", hooks=hooks)).state
    state = stop_service(state, NAME, "daemon", disable=False).state
    outcome = install(state, snap("2.0", FAILING, hooks))
    assert outcome.error is not None and outcome.error.pattern
    assert [(run.hook, run.revision) for run in outcome.hooks_run] == [("post-refresh", "x2")]
    after = outcome.state.instance(NAME)
    assert after.revisions == ("x1",) and after.current == "x1"
    assert statuses(outcome.state)["daemon"] == (True, True)
    observed_257 = (
        'cannot perform the following tasks: - Start snap "sc-svc" (unset) services '
        "(systemctl command [start snap.sc-svc.once.service] failed with exit status 1: Job for "
        "snap.sc-svc.once.service failed because the control process exited with error code. "
        'See "systemctl status snap.sc-svc.once.service" and "journalctl -xeu '
        'snap.sc-svc.once.service" for details. )'
    )
    assert re.fullmatch(outcome.error.message, normalised(observed_257), re.DOTALL)


def test_a_failing_service_disabled_first_lets_the_refresh_through():
    state = install(new_state(), snap("1.0")).state
    state = stop_service(state, NAME, "once", disable=True).state
    outcome = install(state, snap("2.0", FAILING))
    assert outcome.ok and outcome.state.instance(NAME).current == "x2"


def test_a_failing_service_started_by_hand_changes_nothing():
    """servicestate.go's service-control change fails on the systemctl command; the service
    stays disabled with --enable too (observed on 2.57.6, text below)."""
    state = install(new_state(), snap("1.0")).state
    state = stop_service(state, NAME, "once", disable=True).state
    state = install(state, snap("2.0", FAILING)).state
    for and_enable in (True, False):
        outcome = start_service(state, NAME, "once", enable=and_enable)
        assert outcome.state.instance(NAME) == state.instance(NAME)
        # its snap run as root made root's dirs
        assert outcome.service_runs == (HookRun(NAME, "once", "x2"),)
        observed_257 = normalised(
            "cannot perform the following tasks:\n"
            '- Run service command "start" for services ["once"] of snap "sc-svc" (systemctl '
            "command [start snap.sc-svc.once.service] failed with exit status 1: Job for "
            "snap.sc-svc.once.service failed because the control process exited with error "
            'code.\nSee "systemctl status snap.sc-svc.once.service" and "journalctl -xeu '
            'snap.sc-svc.once.service" for details.\n)'
        )
        assert re.fullmatch(outcome.error.message, observed_257, re.DOTALL)


def test_a_first_install_whose_service_fails_leaves_nothing_and_skips_configure():
    hooks = (HookPlan("install"), HookPlan("configure"))
    outcome = install(new_state(), snap("1.0", FAILING, hooks))
    assert outcome.state.instance(NAME) is None
    assert [run.hook for run in outcome.hooks_run] == ["install"]
    assert "(unset)" in outcome.error.message.replace("\\", "")


def test_refresh_to_a_present_revision_names_it_in_the_failed_task():
    state = install(new_state(), snap("1.0")).state
    state = stop_service(state, NAME, "once", disable=True).state
    state = install(state, snap("2.0", FAILING)).state
    state = revert(state, NAME).state
    state = start_service(state, NAME, "once", enable=True).state
    outcome = refresh_revision(state, NAME, "x2")
    assert "(x2)" in outcome.error.message.replace("\\", "")
    assert outcome.state.instance(NAME).current == "x1"


def test_disable_reports_every_service_off_and_enable_brings_back_all_but_the_disabled():
    # snapstate.go Disable (stop-snap-services, unlink-snap) and Enable (start-snap-services).
    state = install(new_state(), snap("1.0")).state
    state = stop_service(state, NAME, "once", disable=True).state
    state = disable(state, NAME).state
    assert not state.instance(NAME).active
    assert statuses(state) == {"daemon": (False, False), "once": (False, False)}
    state = enable(state, NAME).state
    assert statuses(state) == {"daemon": (True, True), "once": (False, False)}


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ((2, 57), 'cannot refresh "sc-svc": refreshing disabled snap "sc-svc" not supported'),
        ((2, 68), 'cannot refresh "sc-svc": cannot update disabled snap "sc-svc"'),
        ((2, 77), 'cannot refresh "sc-svc": cannot update disabled snap "sc-svc"'),
    ],
)
def test_a_disabled_snap_refuses_refreshes(version, message):
    # snapstate.go UpdateWithDeviceContext (before 2.65) / doInstall; observed on each release.
    state = install(new_state(version), snap("1.0")).state
    state = install(state, snap("2.0")).state
    state = disable(state, NAME).state
    assert refresh_revision(state, NAME, "x1").error.message == message
    assert install(state, snap("3.0")).error.message == (
        'cannot install snap file: cannot update disabled snap "sc-svc"'
    )
    assert (
        revert(state, NAME).error.message == 'cannot revert "sc-svc": cannot revert inactive snaps'
    )


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (
            (2, 57),
            "cannot find current revision for snap sc-svc: readlink /snap/sc-svc/current: "
            "no such file or directory",
        ),
        ((2, 68), "race condition detected, snap-run can only retry once"),
        ((2, 77), 'cannot run "sc-svc.mark", snap is disabled'),
    ],
)
def test_running_a_disabled_snap(version, message):
    # cmd/snap/cmd_run.go at 2.57.6, 2.68.3 and 2.76+ (observed on 2.57.6, 2.68.3, 2.77.1).
    state = disable(install(new_state(version), snap("1.0")).state, NAME).state
    assert run_app(state, NAME, "m1").error.message == message


def test_second_disable_and_enable_are_refused():
    # snapstate.go Disable/Enable: "snap %q already disabled" / "already enabled".
    state = install(new_state(), snap("1.0")).state
    assert enable(state, NAME).error.message == (
        'cannot enable "sc-svc": snap "sc-svc" already enabled'
    )
    state = disable(state, NAME).state
    assert disable(state, NAME).error.message == (
        'cannot disable "sc-svc": snap "sc-svc" already disabled'
    )


def test_a_disabled_snaps_remove_runs_no_remove_hook():
    # snapstate.go removeTasks: the remove hook is only scheduled when the snap is active.
    state = install(new_state(), snap("1.0", hooks=(HookPlan("remove"),))).state
    outcome = remove(disable(state, NAME).state, NAME)
    assert outcome.ok and outcome.hooks_run == () and outcome.state.instance(NAME) is None


def test_service_operations_outside_the_model_say_so():
    state = install(new_state(), snap("1.0", FAILING[:1])).state
    with pytest.raises(ModelGap):
        stop_service(state, NAME, "nosuch", disable=True)
    with pytest.raises(ModelGap):
        start_service(disable(state, NAME).state, NAME, "daemon", enable=True)


def test_version_facts_are_ordered():
    assert snapd_services.RUN_RETRY_ONCE_SINCE < snapd_services.RUN_DISABLED_SINCE


def test_enable_moves_the_current_revision_to_the_end_of_the_sequence():
    # handlers.go doLinkSnap: a link without the revert flag moves the revision to the end
    # (observed on 2.57.6: after a revert to x1 of (x1, x3), enable gave (x3, x1)).
    state = install(new_state(), snap("1.0")).state
    state = install(state, snap("2.0")).state
    state = revert(state, NAME).state
    state = enable(disable(state, NAME).state, NAME).state
    assert state.instance(NAME).revisions == ("x2", "x1")
    assert revert(state, NAME).state.instance(NAME).current == "x2"


def test_every_service_start_is_a_run_as_root_of_the_linked_revision():
    # Each started service is `snap run` as root (its unit's ExecStart), which makes root's
    # ~/snap/NAME/REV (observed on 2.68.3 and 2.77.1): outcomes list the services started.
    outcome = install(new_state(), snap("1.0"))
    assert [(r.hook, r.revision) for r in outcome.service_runs] == [
        ("daemon", "x1"),
        ("once", "x1"),
    ]
    state = stop_service(outcome.state, NAME, "daemon", disable=True).state
    failed = install(state, snap("2.0", FAILING))
    assert [(r.hook, r.revision) for r in failed.service_runs] == [("once", "x2"), ("once", "x1")]


# -- several snaps in one command, `snap revert` alone, `snap run --hook` (snapd_commands.py) --


def test_a_failing_lane_of_a_many_snap_install_is_undone_alone():
    # snapstate.InstallPathMany: a lane per snap; observed on 2.57.6.
    from snapconform.model.snapd_commands import install_many

    other = SnapFile("sc-other", "1.0")
    state = install_many(new_state(), ((snap("1.0"), "A"), (other, "B"))).state
    failing = SnapFile("sc-other", "2.0", hooks=(HookPlan("post-refresh", "boom"),))
    outcome = install_many(state, ((snap("2.0"), "A"), (failing, "B")))
    assert outcome.error is not None and outcome.error.kind == "hook-failed"
    assert outcome.state.instance(NAME).current == "x2"
    assert outcome.state.instance("sc-other").revisions == ("x1",)


def test_remove_of_several_names_the_missing_ones_and_exits_0():
    from snapconform.model.snapd_commands import remove_many

    outcome = remove_many(install(new_state(), snap("1.0")).state, (NAME, "sc-gone"))
    assert outcome.ok and outcome.state.instance(NAME) is None
    assert outcome.notices == ("sc-gone not installed",)


def test_revert_alone_is_a_usage_error_and_run_hook_runs_the_current_hook():
    from snapconform.model.snapd_commands import revert_without_name, run_hook

    refused = revert_without_name(new_state())
    assert refused.error.exit_code == 64
    state = install(new_state(), snap("1.0", hooks=(HookPlan("configure", marker="c"),))).state
    ran = run_hook(state, NAME, "configure")
    assert [(r.hook, r.revision) for r in ran.hooks_run] == [("configure", "x1")]
    assert run_hook(state, NAME, "remove").error.message == (
        'cannot find hook "remove" in "sc-svc"'
    )


def test_removing_the_current_revision_of_a_disabled_snap():
    # snapstate.go removeTasks: the active-revision refusal is for an active snap only.
    state = disable(install(new_state(), snap("1.0", hooks=(HookPlan("remove"),))).state, NAME)
    outcome = remove(state.state, NAME, "x1")
    assert outcome.ok and outcome.state.instance(NAME) is None and outcome.hooks_run == ()
    two = disable(install(install(new_state(), snap("1.0")).state, snap("2.0")).state, NAME)
    with pytest.raises(ModelGap):
        remove(two.state, NAME, "x2")
    assert remove(two.state, NAME, "x1").ok


@pytest.mark.parametrize(("version", "ok"), [((2, 57), True), ((2, 68), False), ((2, 77), False)])
def test_removing_several_snaps_none_of_them_installed(version, ok):
    # cmd/snap/cmd_snap_op.go: 2.57 tolerates a change without snap-names, 2.65+ does not
    # (changedSnapsFromChange; observed on 2.57.6 and 2.68.3).
    from snapconform.model.snapd_commands import remove_many

    outcome = remove_many(new_state(version), (NAME, "sc-gone"))
    assert outcome.ok is ok
    if not ok:
        assert outcome.error.message == "data entry not found"


def test_a_disabled_snap_refuses_a_revert_to_an_unknown_revision_as_inactive():
    # snapstate.go RevertToRevision: already-on, then inactive, then cannot-find.
    state = disable(install(new_state(), snap("1.0")).state, NAME).state
    assert revert(state, NAME, "x9").error.message == (
        'cannot revert "sc-svc": cannot revert inactive snaps'
    )
    assert revert(state, NAME, "x1").error.kind == "already-on-revision"


def test_a_revert_starts_the_target_revisions_services_as_root():
    # The reverted-to revision's services are `snap run` as root (observed on 2.57.6, 2.68.3,
    # 2.77.1: root's ~/snap/NAME/current points at the revert's target afterwards).
    state = install(install(new_state(), snap("1.0")).state, snap("2.0")).state
    outcome = revert(state, NAME)
    assert [(r.hook, r.revision) for r in outcome.service_runs] == [
        ("daemon", "x1"),
        ("once", "x1"),
    ]
