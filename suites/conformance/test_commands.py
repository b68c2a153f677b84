"""Commands naming several snaps or none, and `snap run --hook`, checked against
model/snapd_commands.py: `snap install --dangerous A B` (a lane that fails is undone alone),
`snap remove A MISSING B`, `snap revert` alone, and a hook run by hand."""

from __future__ import annotations

import pytest

from snapconform.conformance.ops_commands import (
    InstallMany,
    RemoveMany,
    RevertWithoutName,
    RunHook,
)
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance


def test_several_snaps_in_one_command_and_a_hook_run_by_hand(conformance, names):
    first, second, missing = names.fresh(), names.fresh(), names.fresh()
    hooks = (HookPlan("install"), HookPlan("configure", marker="configured"))
    conformance.run(
        [
            RevertWithoutName(),
            InstallMany((SnapFile(first, "1.0", hooks=hooks), SnapFile(second, "1.0"))),
            RunHook(first, "configure"),
            RunHook(first, "remove"),
            RunHook(missing, "configure"),
            # One lane's post-refresh fails: that lane is undone, the other refresh stays.
            InstallMany(
                (
                    SnapFile(first, "2.0", hooks=hooks),
                    SnapFile(second, "2.0", hooks=(HookPlan("post-refresh", "boom"),)),
                )
            ),
            RemoveMany((first, missing, second)),
            RemoveMany((first, second)),
        ]
    )
