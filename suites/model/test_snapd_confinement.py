"""The confinement rules of model/snapd_confinement.py, each against the snapd source it
follows (canonical/snapd 2.57.6, the same in 2.68.3 and 2.77) and the run that confirmed it
(suites/conformance/test_confinement.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from snapconform.model.snapd import SnapFile, install, new_state, revert
from snapconform.model.snapd_confinement import (
    CLASSIC_DEVMODE,
    MODE_CONFLICT,
    NO_JAILMODE,
    Modes,
    expected_confinement,
    needs_classic_message,
)

PATH = "/var/tmp/f.snap"
STRICT = SnapFile("sc-conf", "1.0")
CLASSIC_SNAP = SnapFile("sc-conf", "1.0", confinement="classic")
DEVMODE_SNAP = SnapFile("sc-conf", "1.0", confinement="devmode")


def seen(state, name="sc-conf"):
    return expected_confinement(state.instance(name))


@pytest.mark.parametrize(
    ("modes", "kind", "message"),
    [
        # cmd/snap/cmd_snap_op.go modeMixin.validateMode: the CLI, before the daemon.
        (Modes(devmode=True, jailmode=True), "mode-conflict", MODE_CONFLICT),
        # daemon/api_snaps.go modeFlags: jailmode on a system that forces devmode first.
        (Modes(jailmode=True), "no-jailmode", NO_JAILMODE),
        (Modes(jailmode=True, classic=True), "no-jailmode", NO_JAILMODE),
        (Modes(devmode=True, classic=True), "classic-devmode", CLASSIC_DEVMODE),
    ],
)
def test_flag_combinations_refused_before_the_file_is_read(modes, kind, message):
    outcome = install(new_state(), STRICT, file_path=PATH, modes=modes)
    assert outcome.error is not None
    assert (outcome.error.kind, outcome.error.message) == (kind, message)
    assert outcome.state == new_state()


def test_jailmode_is_honoured_where_apparmor_is():
    state = replace(new_state(), force_devmode=False)
    outcome = install(state, STRICT, file_path=PATH, modes=Modes(jailmode=True))
    assert outcome.ok
    assert seen(outcome.state) == ("strict", False, True)


def test_devmode_flag_is_recorded_and_a_local_refresh_without_it_drops_it():
    # snapstate.go InstallPath takes the request's flags; handlers.go doLinkSnap sets
    # SnapState.DevMode from them.
    state = install(new_state(), STRICT, file_path=PATH, modes=Modes(devmode=True)).state
    assert seen(state) == ("strict", True, False)
    state = install(state, replace(STRICT, version="2.0"), file_path=PATH).state
    assert seen(state) == ("strict", False, False)
    # snapstate.go RevertToRevision takes SnapState.Flags: the revert keeps what is there.
    assert seen(revert(state, "sc-conf").state) == ("strict", False, False)


def test_classic_on_a_strict_snap_is_dropped_with_the_cli_warning():
    outcome = install(new_state(), STRICT, file_path=PATH, modes=Modes(classic=True))
    assert outcome.ok
    assert outcome.notices == (
        "Warning: flag --classic ignored for strictly confined snap sc-conf",
    )
    assert not outcome.state.instance("sc-conf").classic


def test_a_classic_snap_needs_classic_unless_the_instance_is_classic():
    # check_snap.go validateFlagsForInfo: flags.Classic, or snapst.Flags.Classic.
    for modes in (Modes(), Modes(devmode=True)):
        outcome = install(new_state(), CLASSIC_SNAP, file_path=PATH, modes=modes)
        assert outcome.error is not None
        assert outcome.error.kind == "snap-needs-classic"
        assert outcome.error.message == needs_classic_message(PATH)
    state = install(new_state(), CLASSIC_SNAP, file_path=PATH, modes=Modes(classic=True)).state
    assert seen(state) == ("classic", False, False)
    assert state.instance("sc-conf").classic
    # The instance's flag lets a refresh without --classic past InstallPath, but the change's
    # Mount snap checks the flags alone (check_snap.go checkSnap): seen on 2.57.6.
    refused = install(state, replace(CLASSIC_SNAP, version="2.0"), file_path=PATH)
    assert refused.error is not None
    assert refused.error.message == (
        "cannot perform the following tasks:\n"
        '- Mount snap "sc-conf" (unset) (snap "sc-conf" requires classic confinement)'
    )
    assert refused.state == state
    state = install(
        state, replace(CLASSIC_SNAP, version="2.0"), file_path=PATH, modes=Modes(classic=True)
    ).state
    assert (state.instance("sc-conf").current, state.instance("sc-conf").classic) == ("x2", True)


def test_a_devmode_snap_needs_devmode_at_every_install():
    refused = install(new_state(), DEVMODE_SNAP, file_path=PATH)
    assert refused.error is not None
    assert refused.error.message == f'snap "{PATH}" requires devmode or confinement override'
    state = install(new_state(), DEVMODE_SNAP, file_path=PATH, modes=Modes(devmode=True)).state
    assert seen(state) == ("devmode", True, False)
    again = install(state, replace(DEVMODE_SNAP, version="2.0"), file_path=PATH)
    assert again.error is not None and again.error.kind == "snap-needs-devmode"


def test_since_2_65_a_classic_instance_keeps_its_flag_on_a_refresh_without_classic():
    # snapstate.go ensureInstallPreconditions (2.65+, commit 0e865e353f); run on 2.68.3.
    state = new_state((2, 68))
    state = install(state, CLASSIC_SNAP, file_path=PATH, modes=Modes(classic=True)).state
    outcome = install(state, replace(CLASSIC_SNAP, version="2.0"), file_path=PATH)
    assert outcome.ok
    assert (
        outcome.state.instance("sc-conf").current,
        outcome.state.instance("sc-conf").classic,
    ) == ("x2", True)


def test_a_refresh_to_a_present_revision_drops_devmode():
    """snapstate.go UpdateWithDeviceContext carries Classic over from the snap, not DevMode or
    JailMode: `snap refresh --revision=R` asks for neither (the soak on 2.57.6 saw devmode go
    after a revert had kept it)."""
    from snapconform.model.snapd import refresh_revision

    state = install(new_state(), SnapFile("sc-m", "1.0"), file_path="/f.snap").state
    state = install(
        state, SnapFile("sc-m", "2.0"), file_path="/g.snap", modes=Modes(devmode=True)
    ).state
    state = revert(state, "sc-m", "x1").state
    assert state.instance("sc-m").devmode  # RevertToRevision keeps the snap's flags
    state = refresh_revision(state, "sc-m", "x1").state
    assert not state.instance("sc-m").devmode
