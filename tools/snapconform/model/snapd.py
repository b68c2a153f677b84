"""One machine's snapd as an immutable state machine: sideloads, refreshes, reverts, removes,
and (snapd_store.py, re-exported here) installs and refreshes from a store.

Each operation is a pure function from a `SnapdState` to an `Outcome`: the state after the
operation, the error snapd's CLI prints (or None), the hooks that ran in order, which revisions
were discarded, and one sentence naming the rule that decided. A request snapd refuses before it
starts a change returns the input state unchanged. A change that fails in a hook is undone as
snapd undoes it, which is not always "unchanged" (see `_refresh`).

Facts come from reference/snapd-behaviour.md §§2, 4-8 and canonical/snapd at tag 2.57.6; a
comment names the source file of each. Where the page and the source did not settle a detail the
model makes a prediction and says so; real runs settle it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from snapconform.model import snapd_config as config
from snapconform.model import snapd_confinement as confinement
from snapconform.model import snapd_host as host
from snapconform.model import snapd_interfaces as interfaces
from snapconform.model import snapd_services as services
from snapconform.model import snapd_text as text
from snapconform.model import snapd_userdata as userdata
from snapconform.model.epoch import Epoch, EpochError
from snapconform.model.snapd_changes import HookLog as _HookLog
from snapconform.model.snapd_changes import fresh_install as _fresh_install
from snapconform.model.snapd_changes import hook_failed as _hook_failed
from snapconform.model.snapd_changes import instance_name_error as _instance_name_error
from snapconform.model.snapd_changes import local_unknown as _local_unknown
from snapconform.model.snapd_changes import not_installed as _not_installed
from snapconform.model.snapd_changes import refresh_to as _refresh
from snapconform.model.snapd_changes import refused as _refused
from snapconform.model.snapd_changes import valid_snap_name as _valid_snap_name
from snapconform.model.snapd_changes import without as _without
from snapconform.model.snapd_interfaces import connect, disconnect
from snapconform.model.snapd_services import disable, stop_service
from snapconform.model.snapd_state import (
    DEFAULT_RETAIN,
    LOCAL_REVISION,
    Connection,
    ContentEndpointPlan,
    ContextEntry,
    ExpectedError,
    HookPlan,
    HookRun,
    InstanceState,
    ModelGap,
    Outcome,
    RefreshFailure,
    RevisionState,
    ServicePlan,
    SnapdState,
    SnapFile,
    StoreAction,
    StoreRequest,
    UserAccount,
    check_revision,
    describe,
    new_state,
)
from snapconform.model.snapd_store import (
    full_channel,
    refresh_all,
    store_install,
    store_refresh,
    switch_channel,
)
from snapconform.model.store_catalog import StoreCatalog, StoreResult, offering

__all__ = [
    "Connection",
    "ContentEndpointPlan",
    "ContextEntry",
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
    "StoreCatalog",
    "StoreRequest",
    "StoreResult",
    "add_user",
    "connect",
    "describe",
    "disable",
    "disconnect",
    "enable",
    "full_channel",
    "get_config",
    "host_writes_data",
    "install",
    "install_missing_file",
    "new_state",
    "offering",
    "refresh",
    "refresh_all",
    "refresh_revision",
    "remove",
    "revert",
    "run_app",
    "run_app_as",
    "run_env",
    "set_config",
    "set_snap_config",
    "start_service",
    "stop_service",
    "store_install",
    "store_refresh",
    "switch_channel",
]

# refresh.retain's valid range (overlord/configstate/configcore/refresh.go).
RETAIN_RANGE = (2, 20)
# From 2.71 `snap remove --revision=R` of the only revision is a full remove (snapstate.go
# removeTasks: the active-revision refusal only applies with more than one revision).
REMOVE_ONLY_REVISION_SINCE = (2, 71)
# Line of `epoch:` in the fixture's meta/snap.yaml (name, version, epoch, ...): yaml.v2 type
# errors name it. A property of the fixture layout, not of snapd.
EPOCH_LINE_IN_SNAP_YAML = 3

_VALID_VERSION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9:.+~-]{0,30}[a-zA-Z0-9+~])?")  # validate.go
_MARKER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# -- small helpers ---------------------------------------------------------------------------------


def _q(value: str) -> str:
    return text.go_quote(value)


def _next_local_revision(instance: InstanceState | None) -> str:
    """x<N>: one past the highest local revision in the sequence, x1 when there is none.

    handlers.go doPrepareSnap with snapmgr.go LocalRevision (local revisions are negative
    numbers counting down); numbers of discarded revisions therefore come back.
    """
    numbers = [
        int(match.group(1))
        for entry in (instance.sequence if instance else ())
        if (match := LOCAL_REVISION.fullmatch(entry.revision))
    ]
    return f"x{max(numbers, default=0) + 1}"


def _file_epoch(snap: SnapFile) -> Epoch:
    """The epoch snapd reads from the file's snap.yaml (no key means 0)."""
    if snap.epoch_yaml is None:
        return Epoch()
    return Epoch.parse_yaml(snap.epoch_yaml)


def _snap_yaml_epoch_message(error: EpochError) -> str:
    """snapd's text for an epoch yaml.v2 refuses while reading the snap file.

    Epoch errors abort yaml.v2 and come out bare; type errors are collected and reported as
    `yaml: unmarshal errors:` with the line (snap/epoch.go UnmarshalYAML, yaml.v2 decode).
    """
    message = str(error)
    if message.startswith("cannot unmarshal !!"):
        message = f"yaml: unmarshal errors:\n  line {EPOCH_LINE_IN_SNAP_YAML}: {message}"
    return text.READ_FILE_PREFIX + text.PARSE_YAML_PREFIX + message


# -- sideload: snap install --dangerous FILE [--name NAME] ---------------------------------------


def install(
    state: SnapdState,
    snap: SnapFile,
    name: str | None = None,
    file_path: str = "FILE",
    modes: confinement.Modes = confinement.NO_MODES,
) -> Outcome:
    """`snap install --dangerous FILE [--name NAME] [--devmode|--jailmode|--classic]`: a fresh
    install or a local refresh (the flags: model/snapd_confinement.py)."""
    if refusal := confinement.flag_refusal(state, modes):
        return refusal
    if name:
        # The daemon checks --name before it reads the file (daemon/api_sideload_n_try.go).
        problem = _instance_name_error(name)
        if problem:
            kind, message = problem
            return _refused(
                state,
                kind,
                message,
                f"refused before {file_path} is read: --name {name} breaks the instance-name "
                "rules (snap/naming/validate.go ValidateInstance)",
            )
    try:
        epoch = _file_epoch(snap)
    except EpochError as error:
        return _refused(
            state,
            "invalid-epoch",
            _snap_yaml_epoch_message(error),
            f"refused: snap.yaml's epoch {snap.epoch_yaml!r} does not parse, and the daemon "
            "reads the file before anything else (snap/epoch.go, daemon readSideInfo)",
        )
    if not _valid_snap_name(snap.name):
        return _refused(
            state,
            "invalid-snap-name",
            text.READ_FILE_PREFIX + text.INVALID_SNAP_NAME.format(_q(snap.name)),
            "refused: the file's snap name fails snap/naming/validate.go (snap/validate.go)",
        )
    if not _VALID_VERSION.fullmatch(snap.version):
        raise ModelGap(f"version {snap.version!r} is invalid; the model has no text for that")
    instance_name = name or snap.name
    snap_name, _, key = instance_name.partition("_")
    if snap_name != snap.name:
        return _refused(
            state,
            "instance-name-mismatch",
            text.INSTANCE_MISMATCH.format(_q(instance_name), _q(snap.name)),
            f"refused: --name {instance_name} is not an instance of {snap.name}",
        )
    existing = state.instance(instance_name)
    if refusal := confinement.snap_refusal(state, existing, snap, modes, file_path):
        return refusal
    if key and not state.parallel_instances:
        return _refused(
            state,
            "parallel-disabled",
            text.INSTALL_FILE_PREFIX + text.parallel_disabled(state.snapd_version, instance_name),
            "refused: an instance key needs experimental.parallel-instances "
            "(snapstate.go validateFeatureFlags)",
        )
    if existing is not None and not epoch.can_read(existing.current_revision.epoch):
        current = existing.current_revision
        message = text.EPOCH_REFUSED.format(
            name=_q(instance_name), desc="local snap", new=epoch, current=current.epoch
        )
        return _refused(
            state,
            "epoch-refused",
            text.INSTALL_FILE_PREFIX + message,
            f"refused: the file (epoch {epoch}) cannot read the current epoch {current.epoch} "
            f"of {current.revision}; local refreshes are epoch-checked (check_snap.go)",
        )
    if instance_name == "system":
        return _refused(
            state,
            "reserved-name",
            text.INSTALL_FILE_PREFIX + text.RESERVED_SYSTEM,
            "refused: 'system' is reserved (snapstate.go doInstall)",
        )
    if existing is not None and (
        refusal := services.disabled_refresh_refusal(state, existing, from_file=True)
    ):
        return refusal
    revision = RevisionState(
        _next_local_revision(existing),
        epoch,
        snap.version,
        snap.hooks,
        services=snap.services,
        content_plugs=snap.content_plugs,
        content_slots=snap.content_slots,
        confinement=snap.confinement,
    )
    if existing is None:
        outcome = _fresh_install(state, instance_name, snap.name, revision)
    else:
        outcome = _refresh(state, existing, revision, is_new=True)
    return confinement.with_modes(outcome, instance_name, snap, modes, existing)


def install_missing_file(state: SnapdState, file_path: str) -> Outcome:
    """`snap install --dangerous PATH` where PATH does not exist: the client opens the file
    before it talks to snapd, so snapd never sees it: `cannot open %q: %w` around Go's os.Open
    error (client/snap_op.go InstallPath, 2.57.6 to 2.77; observed on 2.57.6)."""
    return _refused(
        state,
        "file-missing",
        f"cannot open {_q(file_path)}: open {file_path}: no such file or directory",
        f"refused by the snap command itself: {file_path} cannot be opened, so nothing reaches "
        "snapd and nothing changes (client/snap_op.go InstallPath)",
    )


# -- refresh ---------------------------------------------------------------------------------------


def _after_assertions(state: SnapdState, outcome: Outcome) -> Outcome:
    """Every `snap refresh` first refreshes the store snaps' declarations (one bulk request,
    daemon/api_snaps.go snapUpdate); with no store snap installed nothing is sent."""
    names = tuple(inst.name for inst in state.instances if inst.from_store)
    if not names:
        return outcome
    request = StoreRequest("assertions", assertions_for=names)
    return replace(outcome, store_requests=(request, *outcome.store_requests))


def refresh(state: SnapdState, instance: str) -> Outcome:
    """`snap refresh NAME` for a sideloaded snap (a store snap: `store_refresh`)."""
    found = state.instance(instance)
    if found is None:
        return _after_assertions(state, _not_installed(state, instance))
    return _after_assertions(state, _local_unknown(state, found))


def refresh_revision(state: SnapdState, instance: str, revision: str) -> Outcome:
    """`snap refresh --revision=R NAME`: R in the sequence takes the full refresh path."""
    check_revision(revision)
    found = state.instance(instance)
    if found is None:
        return _after_assertions(state, _not_installed(state, instance))
    target = found.revision(revision)
    if target is None:
        # Not in the sequence: snapd asks the store (snapstate.go infoForUpdate).
        return _after_assertions(state, _local_unknown(state, found))
    if not target.is_local:
        raise ModelGap(f"{revision} is a store revision: use store_refresh(..., revision=...)")
    return _after_assertions(state, _refresh_local(state, found, target))


def _refresh_local(state: SnapdState, found: InstanceState, target: RevisionState) -> Outcome:
    instance = found.name
    prefix = f"cannot refresh {_q(instance)}: "  # daemon/api_snaps.go errToResponse
    if found.instance_key and not state.parallel_instances:
        return _refused(
            state,
            "parallel-disabled",
            prefix + text.parallel_disabled(state.snapd_version, instance),
            "refused: refreshing an instance with a key needs experimental.parallel-instances "
            "(snapstate.go earlyChecks)",
        )
    refusal = services.disabled_refresh_refusal(state, found, from_file=False)
    if refusal is not None:
        return refusal
    current = found.current_revision
    if not target.epoch.can_read(current.epoch):
        desc = "local snap" if target.is_local else f"new revision {target.revision}"
        message = text.EPOCH_REFUSED.format(
            name=_q(instance), desc=desc, new=target.epoch, current=current.epoch
        )
        return _refused(
            state,
            "epoch-refused",
            prefix + message,
            f"refused: {target.revision} (epoch {target.epoch}) cannot read the current epoch "
            f"{current.epoch} of {current.revision}; refreshes to a present revision are "
            "epoch-checked too (check_snap.go)",
        )
    outcome = _refresh(state, found, target, is_new=False)
    refreshed = outcome.state.instance(instance)
    if outcome.error is not None or refreshed is None:
        return outcome
    # UpdateWithDeviceContext carries only Classic over from the snap; DevMode and JailMode
    # are the request's, and `snap refresh --revision=R` asks for neither (snapstate.go 2.57.6;
    # found by the soak: devmode dropped).
    dropped = replace(refreshed, devmode=False, jailmode=False)
    return replace(outcome, state=outcome.state.with_instance(dropped))


# -- revert ----------------------------------------------------------------------------------------


def _revert_change(state: SnapdState, instance: str, revision: str | None = None) -> Outcome:
    """`snap revert NAME [--revision=R]`: no epoch check, no refresh hooks, no copy, no GC."""
    prefix = f"cannot revert {_q(instance)}: "  # daemon/api_snaps.go errToResponse
    found = state.instance(instance)
    if revision is None:
        # snapmgr.go previousSideInfo: the entry before current in the sequence.
        index = found.revisions.index(found.current) if found else 0
        if found is None or index == 0:
            return _refused(
                state,
                "no-revision-to-revert",
                prefix + text.NO_REVISION_TO_REVERT,
                "refused: no revision comes before current in the sequence (snapstate.go Revert)",
            )
        target = found.sequence[index - 1]
    else:
        check_revision(revision)
        if found is not None and found.current == revision:
            return _refused(
                state,
                "already-on-revision",
                prefix + text.ALREADY_ON_REVISION,
                f"refused: {revision} is already current (snapstate.go RevertToRevision)",
            )
        if found is None:
            return _refused(
                state,
                "inactive-snap",
                prefix + text.INACTIVE_REVERT,
                "refused: a snap that is not installed is not active (RevertToRevision)",
            )
        if not found.active:  # RevertToRevision: inactive before an unknown revision
            return _refused(
                state,
                "inactive-snap",
                prefix + text.INACTIVE_REVERT,
                f"refused: {instance} is disabled (snapstate.go RevertToRevision)",
            )
        maybe_target = found.revision(revision)
        if maybe_target is None:
            return _refused(
                state,
                "revision-not-found",
                prefix + text.REVERT_NOT_FOUND.format(revision, _q(instance)),
                f"refused: {revision} is not in the sequence (RevertToRevision)",
            )
        target = maybe_target
    if not found.active:
        return _refused(
            state,
            "inactive-snap",
            prefix + text.INACTIVE_REVERT,
            f"refused: {instance} is disabled (snapstate.go RevertToRevision)",
        )
    log = _HookLog(found.name)
    new_runs = services.started(instance, target, found.disabled_services)
    old_runs = services.started(instance, found.current_revision, found.disabled_services)
    service = services.failing_start(target, found.disabled_services)
    if service is not None:
        return services.start_failed(
            state.with_instance(services.services_restarted(found)),
            instance,
            target.revision,
            service,
            (),
            f"start-snap-services failed on {service.name} in {target.revision}, so the revert "
            f"was undone: {found.current} is current again and its services run again "
            "(handlers.go startSnapServices, undoStopSnapServices)",
            service_runs=new_runs + old_runs,
        )
    # RevertToRevision carries DevMode, JailMode and Classic over, not TryMode, and link-snap
    # sets TryMode from the setup (snapstate.go 2.57.6): a revert ends try mode.
    reverted = services.services_restarted(replace(found, current=target.revision, trymode=False))
    for hook in ("configure", "check-health"):
        failure = log.run(target, hook)
        reverted = log.mark(reverted)
        if failure:
            # The revert is undone but the hook's writes to the target's data stay.
            return services.with_service_runs(
                _hook_failed(
                    state.with_instance(replace(reverted, current=found.current)),
                    log,
                    failure,
                    f"{hook} failed in {target.revision} during the revert, so the revert was "
                    f"undone and {found.current} stays current; reverts copy no data",
                ),
                new_runs + old_runs,
            )
    return Outcome(
        state.with_instance(reverted),
        None,
        tuple(log.runs),
        f"reverted {instance} from {found.current} to {target.revision}: only current moves, "
        "no data is copied, no pre/post-refresh hooks, no garbage collection; configure ran in "
        "the target (snapstate.go RevertToRevision)",
        service_runs=new_runs,
    )


# -- remove ----------------------------------------------------------------------------------------


def _remove_change(
    state: SnapdState, instance: str, revision: str | None = None, purge: bool = False
) -> Outcome:
    """`snap remove NAME [--revision=R] [--purge]` (snapstate.go removeTasks)."""
    found = state.instance(instance)
    if found is None:
        # cmd/snap/error.go: remove treats snap-not-installed as a message, exit 0.
        return _not_installed(state, instance, exit_code=0)
    if revision is None:
        return host.removal_refusal(state, found, full=True) or _remove_all(state, found, purge)
    check_revision(revision)
    several = len(found.sequence) > 1
    only_revision_rule = state.snapd_version >= REMOVE_ONLY_REVISION_SINCE
    services.disabled_current_removal(found, revision, several)
    if revision == found.current and found.active and (several or not only_revision_rule):
        message = text.ACTIVE_REVISION.format(revision, _q(instance))
        return _refused(
            state,
            "active-revision",
            f"cannot remove {_q(instance)}: " + message + (text.REVERT_FIRST if several else ""),
            f"refused: {revision} is the current revision; only inactive revisions can be "
            "removed one by one (snapstate.go removeTasks)",
        )
    if found.revision(revision) is None:
        return _refused(
            state,
            "revision-not-installed",
            text.REVISION_NOT_INSTALLED.format(revision, _q(instance)),
            f"refused: {revision} is not in the sequence; the CLI prints this and exits 0 "
            "(snap/errors.go, cmd/snap/error.go)",
            exit_code=0,
        )
    if not several:
        refusal = host.removal_refusal(state, found, full=True)
        how = f"--revision={revision} of the only revision"
        return refusal or _remove_all(state, found, purge, how)
    host.removal_refusal(state, found, full=False)  # no refusal on classic; a gap elsewhere
    return Outcome(
        state.with_instance(_without(found, [revision])),
        None,
        (),
        f"removed inactive revision {revision} of {instance} and its data; no hooks run and no "
        "snapshot is taken for a single revision (snapstate.go removeInactiveRevision)",
        (revision,),
    )


def _remove_all(
    state: SnapdState, instance: InstanceState, purge: bool, how: str = "a full remove"
) -> Outcome:
    """The remove hook runs in current (failure ignored), then every revision and common go."""
    log = _HookLog(instance.name)
    if instance.active:  # a disabled snap's remove runs no hook (snapstate.go removeTasks)
        log.run(instance.current_revision, "remove")  # IgnoreError: hookstate/hooks.go
    others = [rev for rev in reversed(instance.revisions) if rev != instance.current]
    snapshot = "no snapshot (--purge)" if purge else "an automatic snapshot"
    return Outcome(
        interfaces.drop_connections_of(state.without_instance(instance.name), instance.name),
        None,
        tuple(log.runs),
        f"{how} of {instance.name}: the remove hook runs in {instance.current} and its failure "
        f"is ignored, {snapshot}, then every revision's data and SNAP_COMMON go "
        "(snapstate.go removeTasks)",
        (*others, instance.current),
    )


# -- configuration and the fixture app -------------------------------------------------------------


def _set_system_change(state: SnapdState, key: str, value: str) -> Outcome:
    """`snap set system KEY=VALUE` for refresh.retain and experimental.parallel-instances."""
    seen = text.cli_config_text(value)
    if key == "refresh.retain":
        if seen is None or seen == "":
            return Outcome(
                replace(state, retain=DEFAULT_RETAIN),
                None,
                (),
                "refresh.retain unset: the classic default 2 applies (snapstate.go refreshRetain)",
            )
        number = text.parse_go_uint8(seen)
        if number is None or not RETAIN_RANGE[0] <= number <= RETAIN_RANGE[1]:
            return _refused(
                state,
                "invalid-retain",
                text.system_config_error(text.RETAIN_RANGE.format(_q(seen))),
                f"refused: refresh.retain {seen!r} is not a number in 2..20; configcore checks "
                "it in the hijacked configure hook of core (configcore/refresh.go)",
            )
        return Outcome(
            replace(state, retain=number),
            None,
            (),
            f"refresh.retain is now {number}; nothing is removed until the next refresh",
        )
    if key == "experimental.parallel-instances":
        if seen not in (None, "", "true", "false"):
            return _refused(
                state,
                "invalid-flag-value",
                text.system_config_error(text.BOOL_FLAG.format(key)),
                f"refused: {key} takes only true or false (configcore/corecfg.go)",
            )
        enabled = seen == "true"
        return Outcome(
            replace(state, parallel_instances=enabled),
            None,
            (),
            f"{key} is now {str(enabled).lower()}; installed instances are not touched",
        )
    raise ModelGap(f"the model does not know the system option {key!r}")


def _run_app_change(state: SnapdState, instance: str, marker: str) -> Outcome:
    """`snap run INSTANCE.mark MARKER`: the app writes MARKER to SNAP_DATA and SNAP_COMMON."""
    if not _MARKER.fullmatch(marker):
        raise ValueError(f"marker {marker!r} must be a plain file name")
    found = state.instance(instance)
    if found is None:
        return _refused(
            state,
            "not-installed",
            text.RUN_NOT_INSTALLED.format(name=instance),
            f"refused: {instance} has no current revision to run (snap/info.go ReadCurrentInfo; "
            "a prediction)",
        )
    if not found.active:
        return services.run_disabled(state, found)
    host.require_known_apps(found)
    data = dict(found.data)
    data[found.current] = data[found.current] | {marker}
    updated = replace(found, data=tuple(data.items()), common=found.common | {marker})
    return Outcome(
        state.with_instance(updated),
        None,
        (),
        f"the app wrote {marker} into {found.current}'s SNAP_DATA and into SNAP_COMMON",
    )


def host_writes_data(state: SnapdState, instance: str, marker: str) -> Outcome:
    """A file MARKER written into the current revision's SNAP_DATA from the host (not by
    snapd or the app): a snap holding much data, whose copy-snap-data then takes a while."""
    if not _MARKER.fullmatch(marker):
        raise ValueError(f"marker {marker!r} must be a plain file name")
    found = state.instance(instance)
    if found is None:
        raise ValueError(f"{instance} is not installed: there is no SNAP_DATA to write into")
    data = dict(found.data)
    data[found.current] = data[found.current] | {marker}
    updated = replace(found, data=tuple(data.items()))
    return Outcome(
        state.with_instance(updated),
        None,
        (),
        f"the host wrote {marker} into {found.current}'s SNAP_DATA",
    )


# -- users' data and configuration (model/snapd_userdata.py, model/snapd_config.py) ----------
# They follow the changes above: each public operation is the change, then what it did to
# ~USER/snap/INSTANCE and to the snap's configuration.


def revert(state: SnapdState, instance: str, revision: str | None = None) -> Outcome:
    """`snap revert NAME [--revision=R]` (see _revert_change), then the configure hook's
    ~root/snap dirs and the configuration snapd restores (snapd_config.after_revert)."""
    outcome = _revert_change(state, instance, revision)
    found = state.instance(instance)
    after = outcome.state.instance(instance)
    noted, services = userdata.settled_runs(
        outcome.state, outcome.service_runs, found.sequence if found else ()
    )
    runs = outcome.hooks_run + services
    if found is None or after is None or (outcome.error and not runs):
        return replace(outcome, state=noted)
    outcome = replace(outcome, state=userdata.after_hooks(noted, runs))
    index = found.revisions.index(found.current)
    target = revision if revision is not None else found.sequence[index - 1].revision
    return config.after_revert(found, outcome, target)


def remove(
    state: SnapdState, instance: str, revision: str | None = None, purge: bool = False
) -> Outcome:
    """`snap remove NAME [--revision=R] [--purge]` (see _remove_change), then users' dirs."""
    outcome = _remove_change(state, instance, revision, purge)
    found_before = state.instance(instance)
    if outcome.error is not None or found_before is None:
        return outcome
    if outcome.state.instance(instance) is None:
        outcome = config.after_remove(found_before, outcome)
        return userdata.after_remove(outcome, instance, outcome.discarded)
    assert revision is not None
    outcome = userdata.after_remove_revision(outcome, instance, revision)
    return config.after_remove_revision(outcome, instance, revision)


def set_config(state: SnapdState, key: str, value: str) -> Outcome:
    """`snap set system KEY=VALUE`: refresh.retain, experimental.parallel-instances, homedirs."""
    if key == "homedirs":
        return userdata.set_homedirs_option(state, text.cli_config_text(value))
    return _set_system_change(state, key, value)


def run_app(state: SnapdState, instance: str, marker: str) -> Outcome:
    """`snap run INSTANCE.mark MARKER` as root: SNAP_DATA and SNAP_COMMON get the marker, and
    `snap run` made root's ~/snap/INSTANCE/REV (snapd_userdata.touch)."""
    outcome = _run_app_change(state, instance, marker)
    found = outcome.state.instance(instance)
    if outcome.error is not None or found is None:
        return outcome
    touched = userdata.touch(outcome.state, userdata.ROOT.name, instance, found.current)
    return replace(outcome, state=touched)


def add_user(state: SnapdState, user: str, home: str, uid: int) -> Outcome:
    """`useradd` on the host (not snapd): a user the model follows."""
    return userdata.add_user(state, UserAccount(user, home, uid))


def run_app_as(state: SnapdState, user: str, instance: str, marker: str | None) -> Outcome:
    """`snap run INSTANCE.mark --user MARKER` as ``user``: the marker goes to its
    $SNAP_USER_DATA and $SNAP_USER_COMMON (snapd_userdata.run_as)."""
    found = state.instance(instance)
    if found is None:
        return _refused(
            state,
            "not-installed",
            text.RUN_NOT_INSTALLED.format(name=instance),
            f"refused: {instance} has no current revision to run (snap/info.go ReadCurrentInfo)",
        )
    if not found.active:
        return services.run_disabled(state, found)  # snap run stops before making any dir
    host.require_known_apps(found)
    after, error = userdata.run_as(state, user, instance, found.current, marker)
    why = (
        f"`snap run` made ~{user}/snap/{instance}/{found.current} and common and pointed "
        f"current there (cmd/snap/cmd_run.go createUserDataDirs)"
    )
    if error is not None:
        why += ", then snap-confine could not make $SNAP_USER_DATA in the snap's namespace "
        why += "(cmd/snap-confine/user-support.c setup_user_data)"
    elif marker is not None:
        why += f"; the app wrote {marker} into $SNAP_USER_DATA and $SNAP_USER_COMMON"
    return Outcome(after, error, (), why)


def run_env(state: SnapdState, user: str, instance: str) -> Outcome:
    """`snap run INSTANCE.mark --env-all` as ``user``: what snapd tells the app."""
    outcome = run_app_as(state, user, instance, None)
    found = state.instance(instance)
    if outcome.error is not None or found is None:
        return outcome
    return replace(outcome, env=userdata.app_environment(state, user, found))


def set_snap_config(
    state: SnapdState, instance: str, pairs: tuple[tuple[str, str], ...]
) -> Outcome:
    """`snap set NAME KEY=VALUE...` (snapd_config.set_snap_config); its configure hook ran
    through `snap run --hook` as root."""
    outcome = config.set_snap_config(state, instance, pairs)
    return replace(outcome, state=userdata.after_hooks(outcome.state, outcome.hooks_run))


def get_config(state: SnapdState, instance: str, key: str) -> Outcome:
    """`snap get NAME KEY`."""
    return config.get_config(state, instance, key)


def enable(state: SnapdState, name: str) -> Outcome:
    """`snap enable NAME` (snapd_services.enable); its services are `snap run` as root."""
    outcome = services.enable(state, name)
    return _after_service_runs(state, name, outcome)


def start_service(state: SnapdState, name: str, service: str, *, enable: bool) -> Outcome:
    """`snap start [--enable] NAME.SERVICE` (snapd_services.start_service), as root."""
    outcome = services.start_service(state, name, service, enable=enable)
    return _after_service_runs(state, name, outcome)


def _after_service_runs(state: SnapdState, name: str, outcome: Outcome) -> Outcome:
    found = state.instance(name)
    noted, runs = userdata.settled_runs(
        outcome.state, outcome.service_runs, found.sequence if found else ()
    )
    return replace(outcome, state=userdata.after_hooks(noted, runs))
