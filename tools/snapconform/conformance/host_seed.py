"""The model's first state from the host's own snaps: what the observer saw of them at the start
of a run, handed to model.snapd_host.seed (the model cannot read the harness's types)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from snapconform.harness.observe import HostSnap, Observation
from snapconform.model import snapd as model
from snapconform.model import snapd_host
from snapconform.model.snapd_state import DeviceModel


def host_snap_facts(snap: HostSnap) -> snapd_host.HostSnap:
    active = next((rev for rev in snap.revisions if rev.status == "active"), None)
    return snapd_host.HostSnap(
        name=snap.name,
        current=snap.current or snap.revisions[-1].revision,
        revisions=tuple(
            snapd_host.HostRevision(
                revision=rev.revision,
                version=rev.version,
                epoch_yaml=rev.epoch_yaml,
                snap_type=rev.snap_type,
                base=rev.base,
                hooks=rev.hooks,
                data=frozenset(rev.data or ()),
                channel=rev.channel,
            )
            for rev in snap.revisions
        ),
        common=frozenset(snap.common or ()),
        tracking_channel=None if active is None else active.tracking_channel,
        apps=snap.apps,
    )


def seed_from_host(
    state: model.SnapdState, observation: Observation, leave_out: Iterable[str] = ()
) -> model.SnapdState:
    """`state` with every snap the observation lists (but `leave_out`) as preinstalled, the
    host's model assertion and whether snapd forces devmode there."""
    skipped = set(leave_out)
    snaps = [
        host_snap_facts(snap)
        for snap in observation.host_snaps
        if snap.name not in skipped and snap.revisions
    ]
    seeded = snapd_host.seed(state, snaps, device_model(observation.device_model))
    if observation.confinement_level is not None:
        # snapd forces devmode where AppArmor is not fully there (sandbox.ForceDevMode)
        seeded = replace(seeded, force_devmode=observation.confinement_level == "partial")
    return seeded


def device_model(headers: dict[str, Any] | None) -> DeviceModel | None:
    """The model assertion's headers as the model's DeviceModel (None: snapd has no model
    yet, and the model keeps its generic-classic default)."""
    if not headers:
        return None
    return DeviceModel(
        classic=str(headers.get("classic") or "false") == "true",
        base=str(headers.get("base") or ""),
        gadget=str(headers.get("gadget") or ""),
        kernel=str(headers.get("kernel") or ""),
    )
