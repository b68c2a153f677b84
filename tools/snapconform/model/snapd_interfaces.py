"""Interface connections between fixture snaps: a `content` plug and slot, `snap connect`,
`snap disconnect`, and what refresh, revert, disable and remove do to a connection.

Why `content`: its slot may sit on an app snap (base declaration: allow-installation
slot-snap-type app), a manual connection is allowed (allow-connection on the content tag), and
without AppArmor its only effect is a bind mount in the plug snap's namespace
(interfaces/builtin/content.go). Between two sideloaded snaps it is never connected
automatically: allow-auto-connection asks plug-publisher-id == $SLOT_PUBLISHER_ID, and a snap
without a snap-declaration has no publisher id, which never matches (interfaces/policy/helpers.go
checkID: "unset values never match"; policy.go plugPublisherID).

Facts observed on 2.57.6 (bookworm) and checked on 2.68.3 and 2.77.1 by the conformance suite
(suites/conformance/test_interfaces.py):
- `snap connect P:plug S:slot` connects, also when the content tags differ (sideloaded snaps
  carry no snap-declaration whose rules could refuse it); connecting again changes nothing and
  prints nothing. `snap "N" has no plug named "X"` / `... no slot named ...` for a name the
  current revision lacks, `snap "N" is not installed` for a missing snap.
- `snap disconnect P:plug S:slot` of what is not connected:
  `cannot disconnect P:plug from S:slot, it is not connected`.
- A connection stays in snapd's state across refresh and revert. REST (/v2/connections) only
  lists it while both snaps are enabled and their current revisions have the plug and the
  slot: a refresh to a revision without the plug hides it and a revert to one with it shows it
  again; `snap disable` hides it and `snap enable` shows it again (ifacestate reloadConnections
  skips connections whose plug or slot is missing but keeps them in the state).
- A full remove of either snap drops its connections for good (ifacestate discard-conns):
  installing it again does not bring them back.
"""

from __future__ import annotations

from dataclasses import replace

from snapconform.model import snapd_text as text
from snapconform.model.snapd_state import (
    Connection,
    ExpectedError,
    InstanceState,
    Outcome,
    SnapdState,
)

__all__ = [
    "connect",
    "disconnect",
    "drop_connections_of",
    "visible_connections",
]


def _q(value: str) -> str:
    return text.go_quote(value)


def _refused(state: SnapdState, kind: str, message: str, why: str) -> Outcome:
    return Outcome(state, ExpectedError(kind, message), (), why)


def _has(instance: InstanceState, side: str, name: str) -> bool:
    endpoints = (
        instance.current_revision.content_plugs
        if side == "plug"
        else instance.current_revision.content_slots
    )
    return any(endpoint.name == name for endpoint in endpoints)


def visible_connections(state: SnapdState) -> frozenset[Connection]:
    """The connections REST lists: both snaps enabled, both ends in their current revisions."""
    visible = set()
    for connection in state.connections:
        plug_snap = state.instance(connection.plug_snap)
        slot_snap = state.instance(connection.slot_snap)
        if plug_snap is None or slot_snap is None:
            continue
        if not (plug_snap.active and slot_snap.active):
            continue
        if _has(plug_snap, "plug", connection.plug) and _has(slot_snap, "slot", connection.slot):
            visible.add(connection)
    return frozenset(visible)


def drop_connections_of(state: SnapdState, instance: str) -> SnapdState:
    """After a full remove of ``instance``: its connections are discarded (discard-conns)."""
    kept = frozenset(
        connection
        for connection in state.connections
        if instance not in (connection.plug_snap, connection.slot_snap)
    )
    if kept == state.connections:
        return state
    return replace(state, connections=kept)


def _endpoint_problem(state: SnapdState, snap: str, side: str, name: str) -> str | None:
    found = state.instance(snap)
    if found is None:
        return text.NOT_INSTALLED.format(_q(snap))
    # A disabled snap's plugs and slots leave the repository (its remove-profiles task takes
    # the snap out of it): snapd knows none of them (prediction: interfaces/repo.go).
    if not found.active or not _has(found, side, name):
        return f"snap {_q(snap)} has no {side} named {_q(name)}"
    return None


def _endpoint_refusal(state: SnapdState, snap: str, side: str, name: str) -> Outcome | None:
    """snapd's refusal of a connect or disconnect naming an endpoint it does not know."""
    problem = _endpoint_problem(state, snap, side, name)
    if problem is None:
        return None
    return _refused(
        state,
        "no-such-endpoint",
        problem,
        f"refused: {snap}:{name} is not a {side} snapd knows (interfaces/repo.go)",
    )


def connect(state: SnapdState, plug_snap: str, plug: str, slot_snap: str, slot: str) -> Outcome:
    """`snap connect PLUG_SNAP:PLUG SLOT_SNAP:SLOT` (ifacestate Connect)."""
    for snap, side, name in ((plug_snap, "plug", plug), (slot_snap, "slot", slot)):
        refusal = _endpoint_refusal(state, snap, side, name)
        if refusal is not None:
            return refusal
    connection = Connection(plug_snap, plug, slot_snap, slot)
    if connection in state.connections:
        return Outcome(
            state,
            None,
            (),
            f"{connection} is connected already: snapd changes nothing and says nothing",
        )
    return Outcome(
        replace(state, connections=state.connections | {connection}),
        None,
        (),
        f"connected {connection} by hand: sideloaded snaps have no snap-declaration, so no "
        "policy rule refuses it (ifacestate Connect)",
    )


def disconnect(state: SnapdState, plug_snap: str, plug: str, slot_snap: str, slot: str) -> Outcome:
    """`snap disconnect PLUG_SNAP:PLUG SLOT_SNAP:SLOT` (ifacestate Disconnect)."""
    for snap, side, name in ((plug_snap, "plug", plug), (slot_snap, "slot", slot)):
        refusal = _endpoint_refusal(state, snap, side, name)
        if refusal is not None:
            return refusal
    connection = Connection(plug_snap, plug, slot_snap, slot)
    if connection not in visible_connections(state):
        return _refused(
            state,
            "not-connected",
            f"cannot disconnect {plug_snap}:{plug} from {slot_snap}:{slot}, it is not connected",
            f"refused: {connection} is not connected (ifacestate Disconnect)",
        )
    return Outcome(
        replace(state, connections=state.connections - {connection}),
        None,
        (),
        f"disconnected {connection}: a manual connection just goes",
    )
