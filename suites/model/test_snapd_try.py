"""`snap try DIR` in model/snapd_try.py, against snapd's source (canonical/snapd 2.57.6:
daemon/api_sideload_n_try.go trySnap, overlord/snapstate/snapstate.go TryPath, cmd/snap
cmd_snap_op.go cmdTry) and the run of suites/conformance/test_try.py."""

from __future__ import annotations

import pytest

from snapconform.model.snapd import (
    HookPlan,
    HookRun,
    ModelGap,
    SnapFile,
    install,
    new_state,
    refresh_revision,
    revert,
)
from snapconform.model.snapd_try import edit_note, expected_try, try_dir

DIR = "/var/tmp/snapconform/try/sc-try_1.0"
SNAP = SnapFile("sc-try", "1.0", hooks=(HookPlan("install", marker="m"),))


def test_try_installs_a_local_revision_mounted_from_the_directory_and_runs_its_hooks():
    # TryPath is InstallPath with TryMode: revision x1, the install hook runs.
    outcome = try_dir(new_state(), SNAP, DIR)
    instance = outcome.state.instance("sc-try")
    assert instance.current == "x1"
    assert HookRun("sc-try", "install", "x1") in outcome.hooks_run
    assert outcome.notices[-1] == f"sc-try 1.0 mounted from {DIR}"
    assert expected_try(outcome.state, instance) == (True, DIR, None)


def test_an_edit_in_the_directory_shows_at_once_and_trying_again_refreshes():
    state = edit_note(try_dir(new_state(), SNAP, DIR).state, DIR, "edited").state
    instance = state.instance("sc-try")
    assert instance.current == "x1"  # no snapd change: the revision is DIR bind-mounted
    assert expected_try(state, instance) == (True, DIR, "edited")
    again = try_dir(state, SNAP, DIR).state.instance("sc-try")
    assert (again.revisions, again.current) == (("x1", "x2"), "x2")


def test_a_plain_install_after_a_try_leaves_try_mode():
    # handlers.go doLinkSnap sets SnapState.TryMode from the setup.
    state = try_dir(new_state(), SNAP, DIR).state
    state = install(state, SnapFile("sc-try", "2.0"), file_path="/f.snap").state
    assert expected_try(state, state.instance("sc-try")) == (False, None, None)


def test_a_revert_ends_try_mode_even_back_onto_the_tried_revision():
    # snapstate.go RevertToRevision carries DevMode/JailMode/Classic over, not TryMode; found by
    # the state machine on 2.57.6 (REST trymode false after `snap revert` from a tried x2).
    state = install(new_state(), SnapFile("sc-try", "2.0"), file_path="/f.snap").state
    state = try_dir(state, SNAP, DIR).state
    back = revert(state, "sc-try").state
    assert expected_try(back, back.instance("sc-try")) == (False, None, None)
    forth = revert(back, "sc-try", "x2").state
    # REST's mounted-from is the .snap symlink out of try mode (daemon/snap.go)
    assert expected_try(forth, forth.instance("sc-try")) == (False, None, None)


def test_relative_directories_and_a_classic_snap_are_outside_the_model():
    with pytest.raises(ModelGap):
        try_dir(new_state(), SNAP, "relative/dir")
    with pytest.raises(ModelGap):
        try_dir(new_state(), SnapFile("sc-try", "1.0", confinement="classic"), DIR)


def test_refusals_are_the_sideloads_worded_for_the_directory():
    # daemon/api_sideload_n_try.go trySnap: errToResponse(..., "cannot try %s: %s", trydir)
    state = install(new_state(), SnapFile("sc-try", "1.0"), file_path="/f.snap").state
    refused = try_dir(state, SnapFile("sc-try", "2.0", epoch_yaml="2"), DIR)
    assert refused.error.message == (
        f'cannot try {DIR}: cannot refresh "sc-try" to local snap with epoch 2, because it '
        "can't read the current epoch of 0"
    )
    failing = SnapFile("sc-tried", "1.0", hooks=(HookPlan("install", fails_with="no"),))
    undone = try_dir(new_state(), failing, DIR)
    assert undone.error.message.startswith("cannot perform the following tasks:")
    assert undone.state.instance("sc-tried") is None


def test_a_refresh_to_the_tried_revision_ends_try_mode_too():
    # link-snap sets TryMode from the setup (handlers.go doLinkSnap); only TryPath marks it.
    # Found by the soak on 2.57.6: `snap refresh --revision=xN` onto the tried xN.
    state = install(new_state(), SnapFile("sc-try", "2.0"), file_path="/f.snap").state
    state = try_dir(state, SNAP, DIR).state
    state = revert(state, "sc-try").state
    state = refresh_revision(state, "sc-try", "x2").state
    assert expected_try(state, state.instance("sc-try")) == (False, None, None)
