"""The model's data: snap files, revisions, instances, one machine's snapd state, outcomes.

All frozen and hashable, so states can be compared, deduplicated and used as keys. The
operations that move between states live in `snapconform.model.snapd`, which re-exports the
API names; import from there.

Store-related data (all defaulted, so sideload-only states are as before):
- `RevisionState.channel`: the channel the store said the revision came from (snapd keeps the
  result's `effective-channel` in the revision's side info, REST `channel`); None for sideloads.
- `InstanceState.channel`: the tracking channel as snapd records it, always with its track
  (`latest/stable`, snapstate.go SetTrackingChannel uses channel.Full); None when snapd has
  none (a sideload).
- `InstanceState.refresh_failure`: what snapd 2.67+ remembers of a failed auto-refresh
  (snapstate RefreshFailures: the revision and how many times it failed).
- `Outcome.notices`: lines the CLI prints on success that the suites check (the closed-channel
  notice, `snap switch`'s line), and `Outcome.store_requests`: each POST /v2/snaps/refresh the
  operation makes snapd send, predicted (`StoreRequest`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from snapconform.model.epoch import Epoch

__all__ = [
    "DEFAULT_RETAIN",
    "LOCAL_REVISION",
    "STORE_REVISION",
    "ConfigRead",
    "Connection",
    "ContentEndpointPlan",
    "ContextEntry",
    "DeviceModel",
    "ExpectedError",
    "HookPlan",
    "HookRun",
    "InstanceState",
    "ModelGap",
    "Outcome",
    "RefreshFailure",
    "RevisionState",
    "ServicePlan",
    "SnapFile",
    "SnapdState",
    "StoreAction",
    "StoreRequest",
    "UserAccount",
    "UserSnapDir",
    "check_revision",
    "describe",
    "new_state",
]

# refresh.retain when unset: 2 on classic systems (overlord/snapstate/snapstate.go refreshRetain).
DEFAULT_RETAIN = 2

LOCAL_REVISION = re.compile(r"x([1-9][0-9]*)")
STORE_REVISION = re.compile(r"[1-9][0-9]*")


class ModelGap(ValueError):
    """A request the model cannot answer (e.g. it needs the store); not a snapd verdict."""


@dataclass(frozen=True)
class HookPlan:
    """A hook inside a snap file (meta/hooks/NAME)."""

    name: str  # install, configure, pre-refresh, post-refresh, remove (check-health optional)
    fails_with: str | None = None  # None: exits 0; else prints this text on stderr and exits 1
    # A file the hook creates in its revision's SNAP_DATA and in SNAP_COMMON before it exits
    # (a "migration" whose fate through copies and rollbacks the suites follow).
    marker: str | None = None
    # Configuration keys the hook reads with `snapctl get` and logs; a value starting with
    # "bad" makes it fail (model/snapd_config.py).
    reads_config: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserAccount:
    """A user of the host (model/snapd_userdata.py); root (/root) is always there."""

    name: str
    home: str
    uid: int = 0


@dataclass(frozen=True)
class UserSnapDir:
    """~USER/snap/INSTANCE as snapd and `snap run` leave it (model/snapd_userdata.py).

    ``revisions``: per revision directory the marker files in it, sorted by revision;
    ``common``: the markers in ~/snap/INSTANCE/common, None when it is absent; ``current``:
    the target of the `current` link (it may dangle), None when there is no link.
    """

    user: str
    instance: str
    revisions: tuple[tuple[str, frozenset[str]], ...] = ()
    common: frozenset[str] | None = None
    current: str | None = None

    def __post_init__(self) -> None:
        revisions = tuple(sorted((rev, frozenset(m)) for rev, m in self.revisions))
        object.__setattr__(self, "revisions", revisions)

    @property
    def empty(self) -> bool:
        return not self.revisions and self.common is None and self.current is None


@dataclass(frozen=True)
class ConfigRead:
    """One value a hook read with `snapctl get` (the fixture logs it): as snapctl prints it."""

    instance: str
    hook: str
    revision: str
    key: str
    value: str


def _sort_by_name(owner: object, fields: tuple[str, ...]) -> None:
    """Keep each named tuple sorted by name, each name once (frozen: object.__setattr__)."""
    for name in fields:
        items = tuple(sorted(getattr(owner, name), key=lambda item: item.name))
        names = [item.name for item in items]
        if len(set(names)) != len(names):
            raise ValueError(f"{type(owner).__name__}.{name}: a name is listed twice in {names}")
        object.__setattr__(owner, name, items)


def _find_hook(hooks: tuple[HookPlan, ...], name: str) -> HookPlan | None:
    return next((hook for hook in hooks if hook.name == name), None)


def _check_hooks(hooks: Iterable[HookPlan], owner: str) -> tuple[HookPlan, ...]:
    hooks = tuple(hooks)
    names = [hook.name for hook in hooks]
    if len(set(names)) != len(names):
        raise ValueError(f"{owner}: a hook is listed twice in {names}")
    return hooks


@dataclass(frozen=True)
class ServicePlan:
    """An app with `daemon: simple|oneshot` in the snap (model/snapd_services.py has the rules).

    ``fails``: a oneshot that exits 1, so `systemctl start` of it fails.
    """

    name: str
    daemon: str = "simple"
    fails: bool = False


@dataclass(frozen=True)
class ContentEndpointPlan:
    """A `content` interface plug or slot of the snap (model/snapd_interfaces.py)."""

    name: str
    content: str = "scs-content"


@dataclass(frozen=True)
class Connection:
    """An interface connection snapd holds in its state, plug side first."""

    plug_snap: str
    plug: str
    slot_snap: str
    slot: str

    def __str__(self) -> str:
        return f"{self.plug_snap}:{self.plug} {self.slot_snap}:{self.slot}"


@dataclass(frozen=True)
class SnapFile:
    """A .snap built from this description (type: app, no base:, one app `mark`)."""

    name: str
    version: str
    epoch_yaml: str | None = None  # literal text after `epoch: ` in snap.yaml; None = no key
    hooks: tuple[HookPlan, ...] = ()
    services: tuple[ServicePlan, ...] = ()
    content_plugs: tuple[ContentEndpointPlan, ...] = ()
    content_slots: tuple[ContentEndpointPlan, ...] = ()
    # snap.yaml's `confinement:` (strict, devmode, classic; model/snapd_confinement.py).
    confinement: str = "strict"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hooks", _check_hooks(self.hooks, "SnapFile.hooks"))
        _sort_by_name(self, ("services", "content_plugs", "content_slots"))

    def hook(self, name: str) -> HookPlan | None:
        return _find_hook(self.hooks, name)


@dataclass(frozen=True)
class RevisionState:
    """One revision in an instance's sequence, with what its snap file holds."""

    revision: str  # "x1", "x2", or a store revision such as "5"
    epoch: Epoch
    version: str
    hooks: tuple[HookPlan, ...] = ()
    channel: str | None = None  # the store's effective channel for it; None for a sideload
    services: tuple[ServicePlan, ...] = ()
    content_plugs: tuple[ContentEndpointPlan, ...] = ()
    content_slots: tuple[ContentEndpointPlan, ...] = ()
    # What snap.yaml says (fixture files: an app with no base:, which means core); a snap the
    # host had before the run may be anything (model/snapd_host.py).
    snap_type: str = "app"
    base: str = ""
    # Hooks of a snap the host had (meta/hooks): the model knows they exist, not what they do.
    foreign_hooks: tuple[str, ...] = ()
    confinement: str = "strict"  # snap.yaml's, as REST shows it (model/snapd_confinement.py)
    # `snap try DIR`: the directory the revision is mounted from (None: a .snap; snapd_try.py).
    try_dir: str | None = None

    def __post_init__(self) -> None:
        check_revision(self.revision)
        object.__setattr__(self, "hooks", _check_hooks(self.hooks, "RevisionState.hooks"))
        _sort_by_name(self, ("services", "content_plugs", "content_slots"))

    def hook(self, name: str) -> HookPlan | None:
        return _find_hook(self.hooks, name)

    @property
    def is_local(self) -> bool:
        return self.revision.startswith("x")


@dataclass(frozen=True)
class RefreshFailure:
    """snapd 2.67+'s record of failed auto-refreshes to one revision (snap.RefreshFailuresInfo)."""

    revision: str
    count: int = 1


@dataclass(frozen=True)
class InstanceState:
    """One installed instance: its ordered sequence, current revision, and data markers.

    ``data`` holds, per revision in the sequence, the marker files in that revision's SNAP_DATA
    (kept in sequence order whatever order it was given in); ``common`` those in SNAP_COMMON.
    """

    name: str  # instance name: NAME or NAME_KEY
    snap_name: str
    sequence: tuple[RevisionState, ...]
    current: str
    data: tuple[tuple[str, frozenset[str]], ...]
    common: frozenset[str] = frozenset()
    channel: str | None = None  # tracking channel, full form (latest/stable); None: a sideload
    refresh_failure: RefreshFailure | None = None
    # On the host before the run began (seeded from it, model/snapd_host.py), not a fixture.
    preinstalled: bool = False
    # The snap's configuration (key -> value as JSON text, sorted; None: snapd holds no entry
    # for the snap, which differs from an empty one) and the copies snapd keeps per revision
    # (config.SaveRevisionConfig; model/snapd_config.py).
    config: tuple[tuple[str, str], ...] | None = None
    revision_config: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    # `snap disable` (model/snapd_services.py): False while the snap is disabled.
    active: bool = True
    # Services the user disabled (`snap stop --disable`); snapd keeps them disabled across
    # refreshes, reverts and disable/enable (snapstate LastActiveDisabledServices).
    disabled_services: frozenset[str] = frozenset()
    # Services stopped with `snap stop` (still enabled): started again by the next change that
    # starts the snap's services.
    stopped_services: frozenset[str] = frozenset()
    # The confinement flags of the install that made the current revision (SnapState's
    # DevMode, JailMode, Classic; model/snapd_confinement.py).
    devmode: bool = False
    jailmode: bool = False
    classic: bool = False
    # SnapState.TryMode: the current revision came from `snap try DIR` (model/snapd_try.py).
    trymode: bool = False
    # SNAP_DATA dirs of revisions outside the sequence, with their markers: what an undo leaves
    # when a killed copy-snap-data ran again (model/faults.py copy_rerun_leaves_target). snapd
    # does not know them: a refresh onto such a revision trashes the dir and its cleanup clears
    # the trash, so a revision in the sequence is never stray (dropped here).
    stray_data: tuple[tuple[str, frozenset[str]], ...] = ()

    def __post_init__(self) -> None:
        sequence = tuple(self.sequence)
        revisions = [entry.revision for entry in sequence]
        if not sequence:
            raise ValueError(f"{self.name}: an installed instance has at least one revision")
        if len(set(revisions)) != len(revisions):
            raise ValueError(f"{self.name}: revision listed twice in {revisions}")
        if self.current not in revisions:
            raise ValueError(f"{self.name}: current {self.current} not in {revisions}")
        data = {revision: frozenset(markers) for revision, markers in self.data}
        if len(data) != len(self.data) or set(data) != set(revisions):
            raise ValueError(f"{self.name}: data must name each of {revisions} once")
        if self.name != self.snap_name and not self.name.startswith(self.snap_name + "_"):
            raise ValueError(f"instance {self.name!r} is not an instance of {self.snap_name!r}")
        object.__setattr__(self, "sequence", sequence)
        object.__setattr__(self, "data", tuple((rev, data[rev]) for rev in revisions))
        object.__setattr__(self, "common", frozenset(self.common))
        stray = {rev: frozenset(m) for rev, m in self.stray_data if rev not in data}
        object.__setattr__(self, "stray_data", tuple(sorted(stray.items())))

    @property
    def revisions(self) -> tuple[str, ...]:
        return tuple(entry.revision for entry in self.sequence)

    @property
    def instance_key(self) -> str:
        return self.name.partition("_")[2]

    @property
    def current_revision(self) -> RevisionState:
        revision = self.revision(self.current)
        assert revision is not None  # __post_init__ checked it
        return revision

    def revision(self, revision: str) -> RevisionState | None:
        return next((entry for entry in self.sequence if entry.revision == revision), None)

    def data_of(self, revision: str) -> frozenset[str]:
        for name, markers in self.data:
            if name == revision:
                return markers
        raise KeyError(f"{self.name} has no revision {revision}")

    @property
    def from_store(self) -> bool:
        """snapd knows the current revision's snap-id: it takes part in store requests."""
        return not self.current_revision.is_local

    @property
    def blocked(self) -> tuple[str, ...]:
        """Revisions a refresh of all snaps will not take: those after current in the sequence,
        i.e. reverted from (snapmgr.go SnapState.Block; `snap revert` leaves them blocked)."""
        index = self.revisions.index(self.current)
        return self.revisions[index + 1 :]


@dataclass(frozen=True)
class DeviceModel:
    """The device's model assertion as far as removing snaps goes (model/snapd_host.py). The
    default is what snapd falls back to on a classic system with no seed: generic-classic,
    which names no base, gadget or kernel."""

    classic: bool = True
    base: str = ""
    gadget: str = ""
    kernel: str = ""


@dataclass(frozen=True)
class SnapdState:
    """Everything the model tracks of one machine's snapd."""

    snapd_version: tuple[int, int] = (2, 57)
    retain: int = DEFAULT_RETAIN
    parallel_instances: bool = False
    instances: tuple[InstanceState, ...] = ()
    # Interface connections in snapd's state (model/snapd_interfaces.py).
    connections: frozenset[Connection] = frozenset()
    # The model assertion (model/snapd_host.py: the in-use rules of snap removal).
    device: DeviceModel = DeviceModel()
    # Users besides root, the `homedirs` system option, and every ~USER/snap/INSTANCE
    # (model/snapd_userdata.py); user dirs outlive the instance, so they live here.
    users: tuple[UserAccount, ...] = ()
    homedirs: tuple[str, ...] = ()
    user_dirs: tuple[UserSnapDir, ...] = ()
    # Instances a simple service of ran as root in this run: its `snap run` races the steps
    # (snapd_userdata.settled_runs leaves it out), so the model does not say which empty dirs
    # and `current` link it left in ~root/snap/INSTANCE, then or later.
    simple_services_ran: frozenset[str] = frozenset()
    # snapd's sandbox.ForceDevMode: no AppArmor, as on every host this project builds (nspawn
    # and LXD containers on a kernel without it); --jailmode is then refused. A run reads it
    # from the host (/v2/system-info confinement "partial"; conformance/host_seed.py).
    force_devmode: bool = True
    # What each tried directory's `try-note` file holds (dir -> text; model/snapd_try.py).
    try_notes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        instances = tuple(sorted(self.instances, key=lambda inst: inst.name))
        names = [inst.name for inst in instances]
        if len(set(names)) != len(names):
            raise ValueError(f"instance listed twice in {names}")
        object.__setattr__(self, "instances", instances)

    def instance(self, name: str) -> InstanceState | None:
        return next((inst for inst in self.instances if inst.name == name), None)

    def with_instance(self, instance: InstanceState) -> SnapdState:
        others = tuple(inst for inst in self.instances if inst.name != instance.name)
        return replace(self, instances=(*others, instance))

    def without_instance(self, name: str) -> SnapdState:
        return replace(self, instances=tuple(i for i in self.instances if i.name != name))


@dataclass(frozen=True)
class HookRun:
    instance: str
    hook: str
    revision: str


@dataclass(frozen=True)
class ExpectedError:
    """What snapd's CLI prints after "error: " (compare whitespace-normalised: the CLI wraps).

    ``exit_code`` is 1 except where the CLI prints the message and still exits 0
    (cmd/snap/error.go: `snap remove` of something not installed is not an error).
    ``pattern``: ``message`` is a regular expression over the normalised text, for refusals
    whose text holds what the model does not know (hashes, ports: a misbehaving store).
    """

    kind: str
    message: str
    exit_code: int = 1
    pattern: bool = False


@dataclass(frozen=True)
class ContextEntry:
    """One installed instance as a store request's context describes it (store_action.go)."""

    instance: str
    revision: str  # a store revision, e.g. "5"
    tracking_channel: str  # as sent: the tracking channel, or "stable" when snapd has none
    epoch: Epoch  # sent in full form {"read": [...], "write": [...]}


@dataclass(frozen=True)
class StoreAction:
    """One snap action of a store request.

    `instance` is the instance the action is for: an install sends the snap name with an
    `install-N` instance key, a refresh the context's instance key. `channel` and `revision` are
    None when snapd sends none (a --revision request sends no channel).
    """

    action: str  # "install" or "refresh"
    instance: str
    channel: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class StoreRequest:
    """One POST /v2/snaps/refresh snapd sends, as the model predicts it.

    `purpose` says why: "install", "refresh" (a refresh command's query), "re-refresh" (the
    check-rerefresh task after a refresh that moved something), or "assertions" (the bulk
    snap-declaration refresh snapd makes before every `snap refresh`, actions fetch-assertions
    only, context empty; `assertions_for` names the instances whose declaration it asks for).
    Context and actions are sorted by instance name: snapd builds both from Go maps, so their
    order on the wire is not fixed.
    """

    purpose: str
    context: tuple[ContextEntry, ...] = ()
    actions: tuple[StoreAction, ...] = ()
    assertions_for: tuple[str, ...] = ()

    def context_of(self, instance: str) -> ContextEntry | None:
        return next((entry for entry in self.context if entry.instance == instance), None)

    def action_for(self, instance: str) -> StoreAction | None:
        return next((action for action in self.actions if action.instance == instance), None)


@dataclass(frozen=True)
class Outcome:
    state: SnapdState
    error: ExpectedError | None
    hooks_run: tuple[HookRun, ...]
    why: str
    # Revisions whose files and SNAP_DATA this operation deleted for good (GC, remove), in the
    # order snapd schedules them. A rolled-back new revision is not listed: it never stayed.
    discarded: tuple[str, ...] = field(default=())
    # Lines the CLI prints on success that are checked (whitespace-normalised), in order.
    notices: tuple[str, ...] = field(default=())
    # The POST /v2/snaps/refresh requests snapd sends for this operation, in order.
    store_requests: tuple[StoreRequest, ...] = field(default=())
    # The services this operation started, each as (instance, service, revision): every start
    # is a `snap run` as root, which makes root's user data dirs (model/snapd_services.py).
    service_runs: tuple[HookRun, ...] = field(default=())
    # Values hooks read with `snapctl get` (model/snapd_config.py), in order; and what the
    # fixture app's `--env-all` prints (key, value; None: the variable is not set).
    config_reads: tuple[ConfigRead, ...] = field(default=())
    env: tuple[tuple[str, str | None], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.error is None


def new_state(snapd_version: tuple[int, int] = (2, 57)) -> SnapdState:
    """A machine with nothing installed and snapd's defaults (classic: retain 2)."""
    return SnapdState(snapd_version=snapd_version)


def check_revision(revision: str) -> str:
    if not (LOCAL_REVISION.fullmatch(revision) or STORE_REVISION.fullmatch(revision)):
        raise ValueError(f"revision {revision!r} is neither xN nor N")
    return revision


def describe(state: SnapdState) -> str:
    """A few readable lines: settings, then each instance's sequence with data markers."""
    version = ".".join(map(str, state.snapd_version))
    parallel = "on" if state.parallel_instances else "off"
    lines = [f"snapd {version}, refresh.retain={state.retain}, parallel-instances {parallel}"]
    if not state.instances:
        lines.append("  (nothing installed)")
    for inst in state.instances:
        tracking = f", tracking {inst.channel}" if inst.channel else ""
        failed = (
            f", failed auto-refresh to {inst.refresh_failure.revision}"
            f" x{inst.refresh_failure.count}"
            if inst.refresh_failure
            else ""
        )
        lines.append(
            f"  {inst.name} (snap {inst.snap_name}), current {inst.current}{tracking}{failed}"
        )
        for entry in inst.sequence:
            mark = "*" if entry.revision == inst.current else " "
            markers = ",".join(sorted(inst.data_of(entry.revision))) or "-"
            hooks = ",".join(
                hook.name + ("!" if hook.fails_with is not None else "") for hook in entry.hooks
            )
            source = f" from {entry.channel}" if entry.channel else ""
            lines.append(
                f"   {mark}{entry.revision} epoch {entry.epoch} version {entry.version} "
                f"hooks [{hooks}] data [{markers}]{source}"
            )
        lines.append(f"    common [{','.join(sorted(inst.common)) or '-'}]")
        for revision, markers in inst.stray_data:
            lines.append(f"    stray {revision} data [{','.join(sorted(markers)) or '-'}]")
    return "\n".join(lines)
