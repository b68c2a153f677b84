"""`snap disable` / `snap enable`: the snap's status in REST, its services, and what snapd
refuses while it is disabled (refresh, revert, run, a second disable), checked against
model/snapd_services.py on every release (the texts differ)."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, Refresh, Remove, Revert, RunApp
from snapconform.conformance.ops_services import Disable, Enable, StopService
from snapconform.model.snapd import HookPlan, ServicePlan, SnapFile

pytestmark = pytest.mark.conformance

SERVICES = (ServicePlan("daemon", "simple"), ServicePlan("once", "oneshot"))


def test_disable_and_enable(conformance, names):
    name = names.fresh()
    hooks = (HookPlan("remove"), HookPlan("configure"))
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", hooks=hooks, services=SERVICES)),
            InstallFile(SnapFile(name, "2.0", hooks=hooks, services=SERVICES)),
            StopService(name, "once", disable=True),
            Disable(name),
            Disable(name),
            InstallFile(SnapFile(name, "3.0", services=SERVICES)),
            Refresh(name, "x1"),
            Revert(name),
            RunApp(name, "m1"),
            Enable(name),
            Enable(name),
            RunApp(name, "m2"),
            Disable(name),
            # A disabled snap's remove runs no remove hook.
            Remove(name),
            Disable(name),
            Enable(name),
        ]
    )
