"""Confinement flags of a local install, checked against model/snapd_confinement.py:
--devmode / --jailmode / --classic refusals (CLI, daemon modeFlags, check_snap.go
validateFlagsForInfo), the REST `confinement` / `devmode` / `jailmode` after each step, and
which flags a local refresh keeps (none: the request's own)."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import Revert
from snapconform.conformance.ops_confinement import InstallWithModes, Modes
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance

DEVMODE = Modes(devmode=True)
CLASSIC = Modes(classic=True)


def test_confinement_flags_and_what_a_refresh_keeps(conformance, names):
    strict, classic, devmode = names.fresh(), names.fresh(), names.fresh()
    conformance.run(
        [
            InstallWithModes(SnapFile(strict, "1.0"), Modes(devmode=True, jailmode=True)),
            InstallWithModes(SnapFile(strict, "1.0"), Modes(jailmode=True)),
            InstallWithModes(SnapFile(strict, "1.0"), Modes(devmode=True, classic=True)),
            InstallWithModes(SnapFile(strict, "1.0"), DEVMODE),
            InstallWithModes(SnapFile(strict, "2.0")),
            Revert(strict),
            InstallWithModes(SnapFile(strict, "3.0"), CLASSIC),
            InstallWithModes(SnapFile(classic, "1.0", confinement="classic")),
            InstallWithModes(SnapFile(classic, "1.0", confinement="classic"), DEVMODE),
            InstallWithModes(SnapFile(classic, "1.0", confinement="classic"), CLASSIC),
            InstallWithModes(SnapFile(classic, "2.0", confinement="classic")),
            InstallWithModes(SnapFile(classic, "2.0", confinement="classic"), CLASSIC),
            InstallWithModes(SnapFile(devmode, "1.0", confinement="devmode")),
            InstallWithModes(SnapFile(devmode, "1.0", confinement="devmode"), DEVMODE),
            InstallWithModes(SnapFile(devmode, "2.0", confinement="devmode")),
        ]
    )
