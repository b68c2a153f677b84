"""Host steps of model/snapd_hoststeps.py, each against the snapd source it follows
(canonical/snapd 2.57.6, 2.68.3, 2.77) and the texts and leftovers real snapd showed
(suites/conformance/test_host_steps.py on bookworm 2.57.6, trixie 2.68.3 and sid 2.77.1)."""

from __future__ import annotations

import re

import pytest

from snapconform.conformance.operations import InstallFile, Remove, operation_from_json
from snapconform.conformance.ops_host import (
    InstallBlocked,
    InstallIgnoringRunning,
    RemoveTerminate,
    WhileAppRuns,
)
from snapconform.model import snapd_hoststeps as hoststeps
from snapconform.model.snapd import HookPlan, ModelGap, SnapFile, install, new_state, remove

NAME = "sc-host"
V1 = SnapFile(NAME, "1.0", hooks=(HookPlan("remove"),))
V2 = SnapFile(NAME, "2.0", hooks=(HookPlan("remove"),))
RELEASES = [(2, 57), (2, 68), (2, 77)]


def installed(version, *files):
    state = new_state(version)
    for snap in files:
        state = install(state, snap).state
    return state


def busy_matches(outcome, text):
    return re.fullmatch(outcome.error.message, text) is not None


@pytest.mark.parametrize("version", RELEASES)
def test_a_local_refresh_while_the_app_runs_is_refused_with_snapds_text(version):
    # refresh.go BusySnapError.Error; the sideload's prefix (daemon/api_sideload_n_try.go).
    # The text each release printed (whitespace-normalised as the CLI wraps it):
    seen = f'cannot install snap file: snap "{NAME}" has running apps (mark), pids: 486'
    state = installed(version, V1)
    outcome = hoststeps.while_app_runs(
        state, NAME, "held", hoststeps.STEP_LOCAL_REFRESH, lambda s: install(s, V2)
    )
    assert outcome.error is not None and outcome.error.kind == "busy-snap"
    assert busy_matches(outcome, seen)
    assert not busy_matches(outcome, seen.replace("(mark)", "(other)"))
    # Nothing changed but the FIFO in x1's data; the app never reached SNAP_COMMON.
    after = outcome.state.instance(NAME)
    assert after.revisions == ("x1",) and after.data_of("x1") == {"held"}
    assert after.common == frozenset()
    assert outcome.notices == ("held app: running",)
    assert outcome.hooks_run == ()


@pytest.mark.parametrize("version", RELEASES)
def test_a_full_remove_while_the_app_runs_goes_through(version):
    state = installed(version, V1)
    outcome = hoststeps.while_app_runs(
        state, NAME, "held", hoststeps.STEP_REMOVE, lambda s: remove(s, NAME)
    )
    assert outcome.error is None and outcome.state.instance(NAME) is None
    # The remove hook ran as in any remove (no task of removeTasks looks at running apps).
    assert [run.hook for run in outcome.hooks_run] == ["remove"]
    # What became of the app differed by host (ended on 2.57.6/2.68.3, ran on 2.77.1): unchecked.
    assert not any(n.startswith("held app:") for n in outcome.notices)


def test_removing_the_inactive_revision_leaves_the_running_app():
    state = installed((2, 68), V1, V2)
    outcome = hoststeps.while_app_runs(
        state, NAME, "held", hoststeps.STEP_REMOVE, lambda s: remove(s, NAME, "x1")
    )
    assert outcome.error is None
    assert outcome.state.instance(NAME).revisions == ("x2",)
    assert outcome.notices[0] == "held app: running"


def test_removing_the_active_revision_is_the_usual_refusal():
    state = installed((2, 57), V1, V2)
    outcome = hoststeps.while_app_runs(
        state, NAME, "held", hoststeps.STEP_REMOVE, lambda s: remove(s, NAME, "x2")
    )
    # The text 2.57.6 and 2.68.3 printed for a remove --revision of the active one.
    assert outcome.error.message == (
        f'cannot remove "{NAME}": cannot remove active revision x2 of snap "{NAME}" (revert first?)'
    )
    assert outcome.notices == ("held app: running",)


def test_remove_terminate_is_unknown_to_2_57_and_kills_from_2_65():
    old = hoststeps.remove_terminate(installed((2, 57), V1), NAME)
    # What 2.57.6's CLI printed, with go-flags' exit status.
    assert (old.error.message, old.error.exit_code) == ("unknown flag `terminate'", 64)
    assert old.state.instance(NAME) is not None
    assert hoststeps.TERMINATE_SINCE == (2, 65)  # first tag with kill-snap-apps in removeTasks
    for version in [(2, 68), (2, 77)]:
        state = installed(version, V1)
        outcome = hoststeps.while_app_runs(
            state,
            NAME,
            "held",
            hoststeps.STEP_REMOVE_TERMINATE,
            lambda s: hoststeps.remove_terminate(s, NAME),
        )
        assert outcome.error is None and outcome.state.instance(NAME) is None
        assert outcome.notices[0] == "held app: ended"
        # daemon/api_snaps.go validate (2.65+): a revision is refused before the snap is read.
        refused = hoststeps.remove_terminate(state, NAME, "x1")
        assert refused.error.message == "terminate can only be specified when revision is unset"
        assert refused.state == state


def test_ignore_running_refreshes_and_the_apps_own_revision_can_go():
    # doInstall skips softCheckNothingRunningForRefresh with IgnoreRunning (snapstate.go);
    # removeInactiveRevision has no running check. Seen on 2.57.6: the app ran on 10 s later.
    state = installed((2, 57), V1)
    outcome = hoststeps.while_app_runs(
        state,
        NAME,
        "held",
        hoststeps.STEP_LOCAL_REFRESH_IGNORING,
        lambda s: install(s, V2),
        [(hoststeps.STEP_REMOVE, lambda s: remove(s, NAME, "x1"))],
    )
    assert outcome.error is None
    after = outcome.state.instance(NAME)
    assert after.revisions == ("x2",)
    # The FIFO came along with x1's data (copy-snap-data copies it as it is).
    assert after.data_of("x2") == {"held"}
    assert outcome.notices[0] == "held app: running"


def test_a_step_after_a_refused_one_is_outside_the_model():
    with pytest.raises(ModelGap):
        hoststeps.while_app_runs(
            installed((2, 68), V1),
            NAME,
            "held",
            hoststeps.STEP_LOCAL_REFRESH,
            lambda s: install(s, V2),
            [(hoststeps.STEP_REMOVE, lambda s: remove(s, NAME, "x1"))],
        )


def test_holding_needs_an_installed_enabled_instance():
    with pytest.raises(ModelGap):
        hoststeps.hold_app(new_state(), NAME, "held")


@pytest.mark.parametrize(
    ("blocker", "mount_dir"),
    [
        (hoststeps.FILE_AT_REVISION, f"/snap/{NAME}/x1"),
        (hoststeps.FILE_AT_SNAP_DIR, f"/snap/{NAME}"),
    ],
)
def test_a_file_in_the_way_fails_mount_snap_and_is_deleted(blocker, mount_dir):
    # os.MkdirAll's ENOTDIR in backend/setup.go SetupSnap; the text every release printed.
    outcome = hoststeps.install_over_blocked(new_state((2, 77)), V1, blocker, "/f.snap")
    assert outcome.error.message == (
        "cannot perform the following tasks:\n"
        f'- Mount snap "{NAME}" (unset) (mkdir {mount_dir}: not a directory)'
    )
    assert outcome.state.instance(NAME) is None and outcome.hooks_run == ()
    # RemoveSnapFiles' RemoveAll and RemoveSnapDir's os.Remove took the host's file.
    assert outcome.notices == (f"left at /snap/{NAME}: -",)


def test_a_directory_in_the_way_is_mounted_over_and_removed_with_its_file():
    outcome = hoststeps.install_over_blocked(new_state(), V1, hoststeps.DIR_WITH_FILE)
    assert outcome.error is None and outcome.state.instance(NAME).revisions == ("x1",)
    assert outcome.notices[0] == f"left at /snap/{NAME}: current x1"
    assert hoststeps.after_remove_leftover(hoststeps.DIR_WITH_FILE) == "-"


def test_a_file_at_the_next_revision_fails_the_refresh_and_keeps_x1():
    # The same MkdirAll; RemoveSnapDir's os.Remove of /snap/NAME fails while x1 is there.
    state = installed((2, 68), SnapFile(NAME, "1.0", hooks=(HookPlan("pre-refresh"),)))
    outcome = hoststeps.install_over_blocked(
        state, V2, hoststeps.FILE_AT_REVISION, "/f.snap", revision="x2"
    )
    assert outcome.error.message.endswith(f"(mkdir /snap/{NAME}/x2: not a directory)")
    assert outcome.state == state and outcome.hooks_run == ()  # before pre-refresh
    assert outcome.notices == (f"left at /snap/{NAME}: current x1",)


def test_a_directory_at_the_next_revision_is_mounted_over():
    outcome = hoststeps.install_over_blocked(
        installed((2, 57), V1), V2, hoststeps.DIR_WITH_FILE, revision="x2"
    )
    assert outcome.error is None
    assert outcome.notices[0] == f"left at /snap/{NAME}: current x1 x2"


def test_a_blocker_where_nothing_mounts_is_outside_the_model():
    with pytest.raises(ModelGap):
        hoststeps.install_over_blocked(installed((2, 57), V1), V2, hoststeps.DIR_WITH_FILE)
    with pytest.raises(ValueError):
        hoststeps.install_over_blocked(installed((2, 57), V1), V2, hoststeps.FILE_AT_SNAP_DIR)


def test_host_step_operations_round_trip_through_json():
    for op in [
        WhileAppRuns(Remove(NAME, revision="x1"), marker="held1"),
        WhileAppRuns(InstallFile(V2)),
        WhileAppRuns(RemoveTerminate(NAME)),
        RemoveTerminate(NAME, revision="x2"),
        WhileAppRuns(InstallIgnoringRunning(V2), then=(Remove(NAME, revision="x1"),)),
        InstallBlocked(V1, hoststeps.DIR_WITH_FILE),
        InstallBlocked(V2, hoststeps.FILE_AT_REVISION, revision="x2"),
    ]:
        assert operation_from_json(op.to_json()) == op
    with pytest.raises(ValueError):
        InstallBlocked(V1, "nothing")
    with pytest.raises(ValueError):
        WhileAppRuns(Remove(NAME), marker="../x")
    with pytest.raises(ValueError):
        WhileAppRuns(Remove(NAME), then=(Remove("other"),))


def test_the_shell_view_leaves_a_reproducers_variables_alone():
    # reproducer.py's script keeps its verdict in $status: a step's shell text must not set it.
    step = WhileAppRuns(InstallIgnoringRunning(V2), then=(Remove(NAME, revision="x1"),))
    script = step.shell(lambda snap: "/f.snap")
    assigned = set(re.findall(r"(?<![\w$-])([A-Za-z_]\w*)=", script))
    assert assigned <= {"held_pid", "held_up", "held_status"}
    assert "snap install --dangerous --ignore-running /f.snap" in script
