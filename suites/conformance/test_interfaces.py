"""A content plug and slot between two sideloaded fixture snaps: `snap connect` and
`snap disconnect`, the connection through refresh, revert, disable/enable and remove, as REST
/v2/connections lists it, checked against model/snapd_interfaces.py."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, Remove, Revert, RunApp
from snapconform.conformance.ops_interfaces import Connect, Disconnect
from snapconform.conformance.ops_services import Disable, Enable
from snapconform.model.snapd import ContentEndpointPlan, SnapFile

pytestmark = pytest.mark.conformance

PLUG = (ContentEndpointPlan("shared"),)
SLOTS = (ContentEndpointPlan("out"), ContentEndpointPlan("other", "other-content"))


def test_a_connection_is_kept_across_refresh_and_revert_and_dropped_on_remove(conformance, names):
    consumer, producer = names.fresh(), names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(consumer, "1.0", content_plugs=PLUG)),
            InstallFile(SnapFile(producer, "1.0", content_slots=SLOTS)),
            # Sideloaded snaps have no publisher: nothing was connected automatically.
            Connect(consumer, "shared", producer, "out"),
            Connect(consumer, "shared", producer, "out"),
            Connect(consumer, "nosuch", producer, "out"),
            RunApp(consumer, "m1"),
            InstallFile(SnapFile(consumer, "2.0", content_plugs=PLUG)),
            Revert(consumer),
            # A revision without the plug hides the connection; a revert shows it again.
            InstallFile(SnapFile(consumer, "3.0")),
            Revert(consumer),
            Disable(consumer),
            Enable(consumer),
            Disconnect(consumer, "shared", producer, "out"),
            Disconnect(consumer, "shared", producer, "out"),
            Connect(consumer, "shared", producer, "out"),
            Remove(producer),
            InstallFile(SnapFile(producer, "1.0", content_slots=SLOTS)),
            Connect(consumer, "shared", producer, "out"),
            Remove(consumer),
            Connect(consumer, "shared", producer, "out"),
            InstallFile(SnapFile(consumer, "1.0", content_plugs=PLUG)),
            Remove(consumer),
            Remove(producer),
        ]
    )


def test_content_tags_that_differ_still_connect_by_hand(conformance, names):
    consumer, producer = names.fresh(), names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(consumer, "1.0", content_plugs=PLUG)),
            InstallFile(SnapFile(producer, "1.0", content_slots=SLOTS)),
            Connect(consumer, "shared", producer, "other"),
            Remove(consumer),
            Remove(producer),
        ]
    )


def test_a_disabled_snap_has_no_plugs_or_slots_to_connect(conformance, names):
    """`snap disable` takes the snap out of the interfaces repository: connect and disconnect
    naming its endpoints are refused, and its connection comes back with `snap enable`."""
    consumer, producer = names.fresh(), names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(consumer, "1.0", content_plugs=PLUG)),
            InstallFile(SnapFile(producer, "1.0", content_slots=SLOTS)),
            Disable(consumer),
            Connect(consumer, "shared", producer, "out"),
            Enable(consumer),
            Connect(consumer, "shared", producer, "out"),
            Disable(producer),
            Disconnect(consumer, "shared", producer, "out"),
            Connect(consumer, "shared", producer, "other"),
            Enable(producer),
            Remove(consumer),
            Remove(producer),
        ]
    )
