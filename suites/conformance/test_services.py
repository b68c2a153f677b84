"""Services of a fixture snap (a simple daemon and a oneshot) through install, refresh, revert,
`snap stop --disable`, a refresh whose service fails to start, and remove: which services are
enabled and active after each step, checked against model/snapd_services.py."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, Refresh, Remove, Revert
from snapconform.conformance.ops_services import StartService, StopService
from snapconform.model.snapd import HookPlan, ServicePlan, SnapFile

pytestmark = pytest.mark.conformance

SERVICES = (ServicePlan("daemon", "simple"), ServicePlan("once", "oneshot"))
FAILING = (ServicePlan("daemon", "simple"), ServicePlan("once", "oneshot", fails=True))


def test_services_follow_install_refresh_revert_and_remove(conformance, names):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", services=SERVICES)),
            StopService(name, "daemon", disable=True),
            # A user-disabled service stays disabled across a refresh and a revert.
            InstallFile(SnapFile(name, "2.0", services=SERVICES)),
            Revert(name),
            Refresh(name, "x2"),
            # A plain stop lasts until the next change starts the snap's services.
            StartService(name, "daemon", enable=True),
            StopService(name, "daemon"),
            Revert(name),
            Remove(name),
        ]
    )
    seen = conformance.history[2].observed_state[name]
    assert ["daemon", "simple", False, False] in seen["services"]


def test_a_service_that_fails_to_start_undoes_the_refresh(conformance, names):
    name = names.fresh()
    hooks = (HookPlan("post-refresh"),)
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", services=SERVICES)),
            StopService(name, "daemon"),
            # post-refresh runs, start-snap-services fails on `once`: back to x1, whose
            # services the undo starts again (the stopped daemon too).
            InstallFile(SnapFile(name, "2.0", hooks=hooks, services=FAILING)),
            # With the failing service disabled by the user first, the same refresh works.
            StopService(name, "once", disable=True),
            InstallFile(SnapFile(name, "2.0", hooks=hooks, services=FAILING)),
            Remove(name),
        ]
    )
    assert conformance.history[2].expected_kind == "service-start-failed"


def test_a_first_install_whose_service_fails_leaves_nothing(conformance, names):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", hooks=(HookPlan("install"),), services=FAILING)),
            InstallFile(SnapFile(name, "1.0", services=SERVICES)),
            # A revision without services keeps the disabled name for a later one.
            StopService(name, "daemon", disable=True),
            InstallFile(SnapFile(name, "2.0")),
            InstallFile(SnapFile(name, "3.0", services=SERVICES)),
            Remove(name),
        ]
    )


def test_a_service_that_fails_to_start_by_hand_changes_nothing(conformance, names):
    """A disabled oneshot that fails, kept through a refresh (start-snap-services skips it),
    then `snap start --enable` and `snap start` of it: each change fails on its systemctl
    command and the service stays disabled (servicestate.go)."""
    name = names.fresh()
    good = (ServicePlan("daemon", "simple"), ServicePlan("once", "oneshot"))
    bad = (ServicePlan("daemon", "simple"), ServicePlan("once", "oneshot", fails=True))
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", services=good)),
            StopService(name, "once", disable=True),
            InstallFile(SnapFile(name, "2.0", services=bad)),
            StartService(name, "once", enable=True),
            StartService(name, "once"),
            Remove(name),
        ]
    )
