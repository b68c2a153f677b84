"""`snap try DIR` checked against model/snapd_try.py: the unpacked fixture tried (x1, its hooks
run, REST trymode and mounted-from), a file edited in DIR seen at once in
/snap/NAME/current, the same DIR tried again (a refresh to x2), and a plain install after it."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import Revert
from snapconform.conformance.ops_confinement import InstallWithModes
from snapconform.conformance.ops_try import EditTried, TryDir
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance


def test_try_a_directory_edit_it_and_try_it_again(conformance, names):
    name = names.fresh()
    hooks = (HookPlan("install", marker="installed"), HookPlan("post-refresh", marker="again"))
    tried = SnapFile(name, "1.0", hooks=hooks)
    conformance.run(
        [
            TryDir(tried),
            EditTried(tried, "first edit"),
            EditTried(tried, "second edit"),
            TryDir(tried),
            InstallWithModes(SnapFile(name, "2.0", hooks=hooks)),
        ]
    )


def test_a_revert_ends_try_mode(conformance, names):
    """RevertToRevision does not carry TryMode (found by the state machine on 2.57.6): a revert
    from the tried revision, and one back onto it, both leave try mode."""
    name = names.fresh()
    tried = SnapFile(name, "1.0")
    conformance.run(
        [
            InstallWithModes(SnapFile(name, "2.0")),
            TryDir(tried),
            Revert(name),
            Revert(name, "x2"),
        ]
    )


def test_a_try_is_refused_or_fails_as_a_sideload_would(conformance, names):
    """TryPath is InstallPath: its refusals are the sideload's worded `cannot try DIR: ...`
    (daemon trySnap), and a failing hook undoes the try as it undoes an install."""
    name, other = names.fresh(), names.fresh()
    conformance.run(
        [
            InstallWithModes(SnapFile(name, "1.0")),
            TryDir(SnapFile(name, "2.0", epoch_yaml="2")),  # cannot read epoch 0: refused
            TryDir(SnapFile(other, "1.0", hooks=(HookPlan("install", fails_with="no"),))),
        ]
    )
