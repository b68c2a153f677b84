"""The connection rules of model/snapd_interfaces.py, each against snapd's source (canonical/snapd
2.57.6: interfaces/policy, interfaces/builtin/content.go, overlord/ifacestate) and the runs of
suites/conformance/test_interfaces.py (2.57.6, 2.68.3, 2.77.1)."""

from __future__ import annotations

import pytest

from snapconform.model.snapd import (
    Connection,
    ContentEndpointPlan,
    SnapFile,
    connect,
    disable,
    disconnect,
    enable,
    install,
    new_state,
    remove,
    revert,
)
from snapconform.model.snapd_interfaces import visible_connections

CONSUMER, PRODUCER = "sc-consumer", "sc-producer"
PLUG = (ContentEndpointPlan("shared"),)
SLOTS = (ContentEndpointPlan("out"), ContentEndpointPlan("other", "other-content"))
LINK = Connection(CONSUMER, "shared", PRODUCER, "out")


def consumer(version: str = "1.0", plugs=PLUG) -> SnapFile:
    return SnapFile(CONSUMER, version, content_plugs=plugs)


def pair():
    state = install(new_state(), consumer()).state
    return install(state, SnapFile(PRODUCER, "1.0", content_slots=SLOTS)).state


def test_nothing_connects_by_itself_between_sideloaded_snaps():
    # content's allow-auto-connection needs plug-publisher-id == $SLOT_PUBLISHER_ID; a snap
    # without a snap-declaration has none, and unset ids never match (policy/helpers.go checkID).
    assert pair().connections == frozenset()


def test_connect_then_again_changes_nothing_the_second_time():
    state = connect(pair(), CONSUMER, "shared", PRODUCER, "out").state
    assert visible_connections(state) == {LINK}
    again = connect(state, CONSUMER, "shared", PRODUCER, "out")
    assert again.ok and again.state == state


def test_different_content_tags_still_connect_by_hand():
    # Observed on 2.57.6: no snap-declaration, so allow-connection's content check is not met
    # by any rule that refuses a manual connection of sideloaded snaps.
    outcome = connect(pair(), CONSUMER, "shared", PRODUCER, "other")
    assert outcome.ok


@pytest.mark.parametrize(
    ("plug_snap", "plug", "slot_snap", "slot", "message"),
    [
        (CONSUMER, "nosuch", PRODUCER, "out", 'snap "sc-consumer" has no plug named "nosuch"'),
        (CONSUMER, "shared", PRODUCER, "nosuch", 'snap "sc-producer" has no slot named "nosuch"'),
        ("sc-gone", "shared", PRODUCER, "out", 'snap "sc-gone" is not installed'),
    ],
)
def test_connect_refusals(plug_snap, plug, slot_snap, slot, message):
    outcome = connect(pair(), plug_snap, plug, slot_snap, slot)
    assert outcome.error is not None and outcome.error.message == message


def test_disconnect_of_what_is_not_connected():
    outcome = disconnect(pair(), CONSUMER, "shared", PRODUCER, "out")
    assert outcome.error.message == (
        "cannot disconnect sc-consumer:shared from sc-producer:out, it is not connected"
    )


def test_a_connection_survives_refresh_and_revert_and_hides_while_the_plug_is_gone():
    # ifacestate reloadConnections skips a connection whose plug is missing but keeps it.
    state = connect(pair(), CONSUMER, "shared", PRODUCER, "out").state
    state = install(state, consumer("2.0")).state
    assert visible_connections(state) == {LINK}
    state = install(state, consumer("3.0", plugs=())).state
    assert visible_connections(state) == frozenset() and state.connections == {LINK}
    state = revert(state, CONSUMER).state
    assert visible_connections(state) == {LINK}


def test_disable_hides_a_connection_and_enable_shows_it_again():
    state = connect(pair(), CONSUMER, "shared", PRODUCER, "out").state
    state = disable(state, CONSUMER).state
    assert visible_connections(state) == frozenset()
    assert visible_connections(enable(state, CONSUMER).state) == {LINK}
    # the disabled snap's endpoints left the repository (remove-profiles): unknown to connect
    # and disconnect alike (seen on 2.57.6: suites/conformance/test_interfaces.py)
    refused = connect(state, CONSUMER, "shared", PRODUCER, "out")
    assert refused.error.message == f'snap "{CONSUMER}" has no plug named "shared"'
    assert disconnect(state, CONSUMER, "shared", PRODUCER, "out").error.message == (
        f'snap "{CONSUMER}" has no plug named "shared"'
    )


@pytest.mark.parametrize("removed", [CONSUMER, PRODUCER])
def test_a_full_remove_drops_the_connection_for_good(removed):
    # ifacestate discard-conns on a full remove: reinstalling brings nothing back.
    state = connect(pair(), CONSUMER, "shared", PRODUCER, "out").state
    state = remove(state, removed).state
    assert state.connections == frozenset()
    again = consumer() if removed == CONSUMER else SnapFile(PRODUCER, "1.0", content_slots=SLOTS)
    assert visible_connections(install(state, again).state) == frozenset()


def test_removing_an_inactive_revision_keeps_the_connection():
    state = install(pair(), consumer("2.0")).state
    state = connect(state, CONSUMER, "shared", PRODUCER, "out").state
    state = remove(state, CONSUMER, "x1").state
    assert visible_connections(state) == {LINK}
