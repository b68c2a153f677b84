"""The confinement and `snap try` operations round-trip through JSON (histories replay them),
and their shell views are what a person would type."""

from __future__ import annotations

import json

from snapconform.conformance.operations import operation_from_json
from snapconform.conformance.ops_confinement import InstallWithModes, Modes
from snapconform.conformance.ops_try import EditTried, TryDir, tried_dir
from snapconform.model.snapd import HookPlan, SnapFile

SNAP = SnapFile("sc-ops", "1.0", hooks=(HookPlan("install", marker="m"),), confinement="classic")


def locate(snap: SnapFile) -> str:
    return f"/var/tmp/snapconform/snaps/{snap.name}_{snap.version}_abc.snap"


def test_operations_round_trip_through_json():
    for operation in (
        InstallWithModes(SNAP, Modes(classic=True)),
        InstallWithModes(SNAP),
        TryDir(SNAP),
        EditTried(SNAP, "it's edited"),
    ):
        assert operation_from_json(json.loads(json.dumps(operation.to_json()))) == operation


def test_shell_views():
    assert InstallWithModes(SNAP, Modes(devmode=True, jailmode=True)).shell(locate) == (
        "snap install --dangerous --devmode --jailmode "
        "/var/tmp/snapconform/snaps/sc-ops_1.0_abc.snap"
    )
    assert tried_dir(locate(SNAP)) == "/var/tmp/snapconform/try/sc-ops_1.0_abc"
    assert (
        TryDir(SNAP).shell(locate).endswith("&& snap try /var/tmp/snapconform/try/sc-ops_1.0_abc")
    )
    assert EditTried(SNAP, "it's").shell(locate) == (
        "printf %s 'it'\"'\"'s' > /var/tmp/snapconform/try/sc-ops_1.0_abc/try-note"
    )
