"""Snaps the model did not install: the host's own snaps, and snapd's rules for removing a snap
that is in use.

A host already has snaps when a run starts (nspawn: the stand-in `core` and `snapd`; a borrowed
VM: anything). `seed` puts them into the model's state as snapd lists them, marked
`preinstalled`. What the model knows of such a snap is what snapd and its files say: revisions,
versions, epochs, type, base, which hooks exist and the data directories' entries; not what its
hooks and apps do. A step that depends on that unknown is outside the model (`ModelGap`, with
what is missing), never a prediction.

Removal (overlord/snapstate/snapstate.go removeTasks -> canRemove -> policy/*.go CanRemove, read
at 2.57.6, 2.68.3 and 2.77): a revision that is not the last one is always removable on a
classic system in run mode (boot.InUse is false on classic); removing a snap (or its only
revision) asks the policy of its type:
- os (`core`): 2.57 refuses while the model names no base (every classic model):
  "snap is used by the model". From 2.62 (commit e016f71207) that rule is for Ubuntu Core 16
  boots only; on classic `core` goes unless the `snapd` snap is missing ("core snap cannot be
  removed if snapd snap is not installed") or an app or gadget with no base (or base core16,
  when core16 is not installed) uses it: "snap is being used by snap NAME." (baseUsedBy);
- base: the model's base is "used by the model"; else the same baseUsedBy rule with its name;
- snapd: on classic only as the last snap: "remove all other snaps first";
- app: refused only when snapd marked it required (never for what a run installs; the model
  cannot see the flag of a host's snap: `Required` is not in the REST API);
- kernel and gadget, and any removal on an Ubuntu Core device, are outside the model.
The CLI prints `cannot remove "NAME": snap "NAME" is not removable: REASON`
(daemon errToResponse around snapstate's `snap %q is not removable: %v`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from snapconform.model import snapd_text as text
from snapconform.model.epoch import Epoch, EpochError
from snapconform.model.snapd_state import (
    DeviceModel,
    ExpectedError,
    InstanceState,
    ModelGap,
    Outcome,
    RevisionState,
    SnapdState,
)

__all__ = [
    "CORE_REMOVABLE_ON_CLASSIC_SINCE",
    "HostRevision",
    "HostSnap",
    "removal_refusal",
    "require_known_apps",
    "require_known_hook",
    "seed",
    "used_by",
]

# From 2.62 `core` may be removed from a classic system (policy/os.go, commit e016f71207
# "allow "core" snap to be removed on classic systems", first tagged in 2.62); before, the
# generic-classic model naming no base made it "used by the model".
CORE_REMOVABLE_ON_CLASSIC_SINCE = (2, 62)

# Types whose snaps can use a base (policy/base.go baseUsedBy).
_BASE_USERS = ("app", "gadget")

IS_MODEL = "snap is used by the model"  # policy/errors.go errIsModel
SNAPD_NOT_INSTALLED = "core snap cannot be removed if snapd snap is not installed"  # 2.62+
OTHER_SNAPS_FIRST = "remove all other snaps first"  # errSnapdNotYetRemovableOnClassic
NOT_REMOVABLE = "cannot remove {q}: snap {q} is not removable: {reason}"


@dataclass(frozen=True)
class HostRevision:
    """One revision of a snap the host had, as snapd lists it and its files say."""

    revision: str
    version: str
    epoch_yaml: str | None = None  # snap.yaml's `epoch:` text; None: no key (epoch 0)
    snap_type: str = "app"
    base: str = ""
    hooks: tuple[str, ...] = ()  # meta/hooks entries
    data: frozenset[str] = frozenset()  # entries of /var/snap/NAME/REV
    channel: str | None = None


@dataclass(frozen=True)
class HostSnap:
    name: str
    current: str
    revisions: tuple[HostRevision, ...]  # sequence order
    common: frozenset[str] = frozenset()
    tracking_channel: str | None = None
    apps: tuple[str, ...] = field(default=())


def _revision_state(found: HostRevision) -> RevisionState:
    try:
        epoch = Epoch() if found.epoch_yaml is None else Epoch.parse_yaml(found.epoch_yaml)
    except EpochError as exc:
        raise ModelGap(
            f"revision {found.revision} has an epoch the model cannot read: {exc}"
        ) from None
    return RevisionState(
        found.revision,
        epoch,
        found.version,
        channel=found.channel,
        snap_type=found.snap_type,
        base=found.base,
        foreign_hooks=tuple(sorted(found.hooks)),
    )


def seed(
    state: SnapdState, snaps: Iterable[HostSnap], device: DeviceModel | None = None
) -> SnapdState:
    """`state` with the host's snaps installed as snapd lists them (and its model assertion)."""
    for snap in snaps:
        instance = InstanceState(
            name=snap.name,
            snap_name=snap.name.partition("_")[0],
            sequence=tuple(_revision_state(rev) for rev in snap.revisions),
            current=snap.current,
            data=tuple((rev.revision, rev.data) for rev in snap.revisions),
            common=snap.common,
            channel=snap.tracking_channel,
            preinstalled=True,
        )
        state = state.with_instance(instance)
    return state if device is None else replace(state, device=device)


def used_by(state: SnapdState, base: str, removing: str = "") -> tuple[str, ...]:
    """The instances using `base` ("" is core: an app with no base), sorted
    (policy/base.go baseUsedBy: an app or gadget any of whose revisions names it; for core
    also base core16 while core16 is not installed)."""
    also_core16 = base == "" and state.instance("core16") is None
    users = []
    for instance in state.instances:
        if instance.name == removing or instance.current_revision.snap_type not in _BASE_USERS:
            continue
        for revision in instance.sequence:
            if revision.snap_type not in _BASE_USERS:
                continue
            if revision.base == base or (also_core16 and revision.base == "core16"):
                users.append(instance.name)
                break
    return tuple(sorted(users))


def in_use_text(users: tuple[str, ...]) -> str:
    """policy/errors.go inUseByErr."""
    if len(users) == 1:
        return f"snap is being used by snap {users[0]}."
    if len(users) <= 5:
        return f"snap is being used by snaps {', '.join(users[:-1])} and {users[-1]}."
    return f"snap is being used by snaps {', '.join(users[:5])} and {len(users) - 5} more."


def _reason(state: SnapdState, instance: InstanceState) -> tuple[str | None, str]:
    """Why snapd refuses to remove all of `instance` (None: it does not), and the rule."""
    kind = instance.current_revision.snap_type
    name = instance.name
    if kind == "os":
        if name == "ubuntu-core":
            return None, "policy/os.go: ubuntu-core may always go"
        if state.snapd_version < CORE_REMOVABLE_ON_CLASSIC_SINCE:
            if state.device.base == "":
                return IS_MODEL, "policy/os.go: the model names no base, so core is its base"
        elif state.instance("snapd") is None:
            return SNAPD_NOT_INSTALLED, "policy/os.go (2.62+): snapd would go with core"
        users = used_by(state, "", removing=name)
        if users:
            return in_use_text(users), "policy/base.go baseUsedBy: apps without base: use core"
        return None, "policy/os.go (2.62+): nothing uses core and the snapd snap is installed"
    if kind == "base":
        if state.device.base == name:
            return IS_MODEL, "policy/base.go: the model's base"
        users = used_by(state, name, removing=name)
        if users:
            return in_use_text(users), f"policy/base.go baseUsedBy: apps with base: {name}"
        return None, f"policy/base.go: nothing uses {name}"
    if kind == "snapd":
        if len(state.instances) > 1:
            return OTHER_SNAPS_FIRST, "policy/snapd.go: on classic only the last snap"
        return None, "policy/snapd.go: snapd is the last snap"
    return None, "policy/policy.go appPolicy: an app that is not required"


def removal_refusal(state: SnapdState, instance: InstanceState, *, full: bool) -> Outcome | None:
    """snapd's refusal to remove `instance` (all of it with `full`, else one inactive
    revision), or None when the policy of its type lets it go. Outside the model: kernels,
    gadgets and Ubuntu Core devices (boot state), and a host's app that may be required."""
    kind = instance.current_revision.snap_type
    if kind in ("kernel", "gadget") or not state.device.classic:
        raise ModelGap(
            f"removing {instance.name} (type {kind}) on a "
            f"{'classic' if state.device.classic else 'Ubuntu Core'} device: the model has no "
            "rules for kernels, gadgets or boot state (policy/kernel.go, gadget.go, boot.InUse)"
        )
    if not full:
        return None  # a revision of any type: boot.InUse is false on classic
    reason, rule = _reason(state, instance)
    if reason is None:
        return None
    message = NOT_REMOVABLE.format(q=text.go_quote(instance.name), reason=reason)
    return Outcome(
        state,
        ExpectedError("not-removable", message),
        (),
        f"refused: {instance.name} (type {kind}) is not removable: {rule} "
        "(snapstate.go removeTasks -> canRemove)",
    )


def require_known_hook(instance: str, revision: RevisionState, hook: str) -> None:
    """A hook of a snap the host had runs: what it does is outside the model."""
    if hook in revision.foreign_hooks:
        raise ModelGap(
            f"{instance} {revision.revision} has its own {hook} hook (on the host before the "
            "run): the model does not know what it does"
        )


def require_known_apps(instance: InstanceState) -> None:
    """Running an app of a snap the host had: the model knows only the fixtures' app."""
    if instance.preinstalled:
        raise ModelGap(
            f"{instance.name} was on the host before the run: the model does not know its apps"
        )
