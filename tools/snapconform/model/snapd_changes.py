"""The changes snapd runs for one instance, shared by the sideload and store operations.

`fresh_install` (install, configure, check-health in the new revision) and `refresh_to` (the
refresh change: pre-refresh in the old revision, copy data, link, post-refresh, garbage
collection, configure, check-health; undone as snapd undoes it) return an `Outcome` for one
instance; `HookLog` runs the hooks a revision's file has. Facts and sources are named on each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from snapconform.model import snapd_config as config
from snapconform.model import snapd_services as services
from snapconform.model import snapd_text as text
from snapconform.model import snapd_userdata as userdata
from snapconform.model.snapd_host import require_known_hook
from snapconform.model.snapd_state import (
    ExpectedError,
    HookRun,
    InstanceState,
    ModelGap,
    Outcome,
    RevisionState,
    SnapdState,
)

__all__ = [
    "HookLog",
    "fresh_install",
    "gc_discards",
    "hook_failed",
    "instance_name_error",
    "local_unknown",
    "names",
    "not_installed",
    "refresh_to",
    "refused",
    "valid_snap_name",
    "without",
]

_INSTANCE_KEY = re.compile(r"[a-z0-9]{1,10}")  # snap/naming/validate.go validInstanceKey
_ALMOST_VALID_NAME = re.compile(r"[a-z0-9-]*[a-z][a-z0-9-]*")  # snap/naming/validate.go


def valid_snap_name(name: str) -> bool:
    """snap/naming/validate.go ValidateSnap."""
    return (
        2 <= len(name) <= 40
        and _ALMOST_VALID_NAME.fullmatch(name) is not None
        and not name.startswith("-")
        and not name.endswith("-")
        and "--" not in name
    )


def instance_name_error(name: str) -> tuple[str, str] | None:
    """snap/naming/validate.go ValidateInstance: (kind, message) or None."""
    snap_name, underscore, key = name.partition("_")
    if not valid_snap_name(snap_name):
        return "invalid-snap-name", text.INVALID_SNAP_NAME.format(text.go_quote(snap_name))
    if underscore and not _INSTANCE_KEY.fullmatch(key):
        return "invalid-instance-key", text.INVALID_INSTANCE_KEY.format(text.go_quote(key))
    return None


def not_installed(state: SnapdState, instance: str, exit_code: int = 1) -> Outcome:
    return refused(
        state,
        "not-installed",
        text.NOT_INSTALLED.format(text.go_quote(instance)),
        f"refused: {instance} is not installed (snap/errors.go NotInstalledError)",
        exit_code,
    )


def local_unknown(state: SnapdState, instance: InstanceState) -> Outcome:
    if not instance.current_revision.is_local:
        raise ModelGap(f"{instance.name} {instance.current} comes from a store; no store here")
    return refused(
        state,
        "local-snap-unknown-to-store",
        text.LOCAL_UNKNOWN.format(text.go_quote(instance.name)),
        "refused: a sideloaded snap has no snap-id, so snapd cannot ask the store about it "
        "(storehelpers.go preUpdateInfo, cmd/snap/error.go)",
    )


def refused(state: SnapdState, kind: str, message: str, why: str, exit_code: int = 1) -> Outcome:
    return Outcome(state, ExpectedError(kind, message, exit_code), (), why)


def without(instance: InstanceState, revisions: Iterable[str]) -> InstanceState:
    gone = set(revisions)
    return replace(
        instance,
        sequence=tuple(e for e in instance.sequence if e.revision not in gone),
        data=tuple((rev, markers) for rev, markers in instance.data if rev not in gone),
    )


def names(revisions: Iterable[str]) -> str:
    listed = list(revisions)
    return ", ".join(listed) if listed else "nothing"


class HookLog:
    """The hooks one change runs, in order; only hooks present in the revision's file run."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.runs: list[HookRun] = []
        self._marks: list[tuple[str, str]] = []  # (revision, marker) not yet applied

    def run(self, revision: RevisionState, hook: str) -> str | None:
        """Run ``hook`` in ``revision``; the change's error text if it failed, else None."""
        require_known_hook(self.instance, revision, hook)
        plan = revision.hook(hook)
        if plan is None:
            return None  # every hook task is "if present" (hookstate/hooks.go Optional)
        self.runs.append(HookRun(self.instance, hook, revision.revision))
        if plan.marker is not None:
            # The hook writes before it exits, so a failing hook's marker is written too.
            self._marks.append((revision.revision, plan.marker))
        if plan.fails_with is None:
            return None
        return text.hook_change_error(hook, self.instance, plan.fails_with)

    def mark(self, instance: InstanceState) -> InstanceState:
        """Apply the markers written since the last call: each lands in its revision's
        SNAP_DATA (when that revision's data exists) and in SNAP_COMMON."""
        marks, self._marks = self._marks, []
        if not marks:
            return instance
        data = dict(instance.data)
        for revision, marker in marks:
            if revision in data:
                data[revision] = data[revision] | {marker}
        common = instance.common | {marker for _, marker in marks}
        return replace(instance, data=tuple(data.items()), common=common)


def hook_failed(state: SnapdState, log: HookLog, message: str, why: str) -> Outcome:
    return Outcome(state, ExpectedError("hook-failed", message), tuple(log.runs), why)


def _install_change(
    state: SnapdState, instance_name: str, snap_name: str, revision: RevisionState
) -> Outcome:
    """install hook, then configure, then check-health, all in the new revision."""
    log = HookLog(instance_name)
    for hook in ("install", "configure", "check-health"):
        failure = log.run(revision, hook)
        if failure:
            return hook_failed(
                state,
                log,
                failure,
                f"the {hook} hook failed on a first install, so the whole install was undone: "
                f"nothing of {instance_name} is left, SNAP_COMMON included "
                "(backend/copydata.go UndoCopySnapData)",
            )
        if hook == "install" and (service := services.failing_start(revision)):
            return services.start_failed(
                state,
                instance_name,
                services.start_label(revision, from_file=revision.is_local),
                service,
                tuple(log.runs),
                f"start-snap-services failed on {service.name} after the install hook, so the "
                f"whole install was undone: nothing of {instance_name} is left "
                "(handlers.go startSnapServices)",
                service_runs=services.started(instance_name, revision),
            )
    instance = log.mark(
        InstanceState(
            instance_name,
            snap_name,
            (revision,),
            revision.revision,
            ((revision.revision, frozenset()),),
            frozenset(),
        )
    )
    return Outcome(
        state.with_instance(instance),
        None,
        tuple(log.runs),
        f"installed {instance_name} {revision.revision}: a first sideload is x1 and runs "
        "install then configure in the new revision (snapstate.go doInstall)",
        service_runs=services.started(instance_name, revision),
    )


def gc_discards(instance: InstanceState, target: str, is_new: bool, retain: int) -> list[str]:
    """What the refresh to ``target`` garbage-collects (snapstate.go doInstall).

    First every revision after current (reverted-from ones) except the target; then, with the
    target taken out of the part up to current, the oldest until ``retain`` remain there, one
    fewer when the target is new. So a refresh to a revision already present can leave
    retain + 1 revisions when refresh.retain was lowered since (a prediction from the code).
    """
    keep = retain - 1 if is_new else retain
    revisions = list(instance.revisions)
    current_index = revisions.index(instance.current)
    discards = [rev for rev in revisions[current_index + 1 :] if rev != target]
    head = [rev for rev in revisions[:current_index] if rev != target]
    head.append(instance.current)
    discards += head[: max(0, len(head) - keep)]
    return discards


def _refresh_change(
    state: SnapdState, instance: InstanceState, target: RevisionState, *, is_new: bool
) -> Outcome:
    """The refresh change (snapstate.go doInstall, handlers.go, hookstate/hooks.go).

    pre-refresh runs in the old revision; copy-snap-data copies the current SNAP_DATA over the
    target's (trashing what the target had); link-snap appends the target (moving it to the end
    if present); post-refresh runs in the target; garbage collection runs; then configure and
    check-health run in the target. A failure in post-refresh undoes everything. A failure in
    configure or check-health undoes the refresh too, but the collected revisions stay gone:
    clear-snap and discard-snap have no undo handlers (snapmgr.go) and undoLinkSnap counts the
    revisions discarded before the failure (handlers.go). That last point is a prediction.
    """
    log = HookLog(instance.name)
    old = instance.current_revision
    where = f"{old.revision} to {target.revision}"
    failure = log.run(old, "pre-refresh")
    # pre-refresh writes into the old revision before its data is copied (or the refresh is
    # aborted); nothing undoes a hook's writes.
    instance = log.mark(instance)
    if failure:
        return hook_failed(
            state.with_instance(instance),
            log,
            failure,
            f"pre-refresh failed in {old.revision}, the old revision, before anything was "
            f"unlinked: the refresh {where} was aborted, nothing changed and no data was copied",
        )
    data = dict(instance.data)
    data[target.revision] = instance.data_of(old.revision)
    others = tuple(e for e in instance.sequence if e.revision != target.revision)
    # link-snap sets TryMode from the setup, which only `snap try` marks (snapd_try.py): any
    # other refresh ends try mode, onto a revision present too (found by the soak on 2.57.6).
    linked = replace(
        instance,
        sequence=(*others, target),
        current=target.revision,
        data=tuple(data.items()),
        trymode=False,
    )
    stray = target.revision in dict(instance.stray_data)
    undone_data = (
        f"{target.revision}'s own data is put back from the trash"
        if not is_new
        else f"{target.revision}'s new data is deleted and its stray dir put back from the trash"
        if stray
        else f"{target.revision}'s new data is deleted"
    )
    failure = log.run(target, "post-refresh")
    linked = log.mark(linked)
    # An undone refresh drops or restores the target's data; SNAP_COMMON keeps what was written.
    rolled_back = services.services_restarted(replace(instance, common=linked.common))
    # Who runs: the target's services once linked, the old ones again when the change is undone.
    new_runs = services.started(instance.name, target, instance.disabled_services)
    old_runs = services.started(instance.name, old, instance.disabled_services)
    if failure:
        return services.with_service_runs(
            hook_failed(
                state.with_instance(rolled_back),
                log,
                failure,
                f"post-refresh failed in {target.revision}, so the refresh {where} was undone: "
                f"{old.revision} is current again with its data as it was and {undone_data}; "
                "SNAP_COMMON is shared and not rolled back",
            ),
            old_runs,
        )
    service = services.failing_start(target, instance.disabled_services)
    if service is not None:
        return services.start_failed(
            state.with_instance(rolled_back),
            instance.name,
            services.start_label(target, from_file=is_new and target.is_local),
            service,
            tuple(log.runs),
            f"start-snap-services failed on {service.name} in {target.revision}, so the refresh "
            f"{where} was undone: {old.revision} is current again with its data and its services "
            "started again (handlers.go startSnapServices, undoStopSnapServices)",
            service_runs=new_runs + old_runs,
        )
    linked = services.services_restarted(linked)
    discarded = tuple(gc_discards(instance, target.revision, is_new, state.retain))
    for hook in ("configure", "check-health"):
        failure = log.run(target, hook)
        linked = log.mark(linked)
        rolled_back = replace(rolled_back, common=linked.common)
        if failure:
            return Outcome(
                state.with_instance(without(rolled_back, discarded)),
                ExpectedError("hook-failed", failure),
                tuple(log.runs),
                f"{hook} failed in {target.revision} after the refresh {where} was linked: "
                f"the refresh was undone ({old.revision} current, {undone_data}) but garbage "
                f"collection had already discarded {names(discarded)}, which has no undo "
                "(snapmgr.go discard-snap; a prediction)",
                discarded,
                service_runs=new_runs + old_runs,
            )
    return Outcome(
        state.with_instance(without(linked, discarded)),
        None,
        tuple(log.runs),
        f"refreshed {instance.name} {where}: pre-refresh in {old.revision}, its SNAP_DATA "
        f"copied to {target.revision}, post-refresh and configure in {target.revision}; "
        f"refresh.retain={state.retain} discarded {names(discarded)} (snapstate.go doInstall)",
        discarded,
        service_runs=new_runs,
    )


# Users' data (snapd_userdata.py) and configuration (snapd_config.py) follow each install and
# refresh change; the changes themselves are above.


def fresh_install(
    state: SnapdState, instance_name: str, snap_name: str, revision: RevisionState
) -> Outcome:
    outcome = _install_change(state, instance_name, snap_name, revision)
    outcome = userdata.after_fresh_install(outcome, instance_name, revision)
    return config.after_fresh_install(outcome, revision)


def refresh_to(
    state: SnapdState, instance: InstanceState, target: RevisionState, *, is_new: bool
) -> Outcome:
    outcome = _refresh_change(state, instance, target, is_new=is_new)
    outcome = userdata.after_refresh(
        state,
        instance.current,
        outcome,
        instance.name,
        target.revision,
        known=(target, *instance.sequence),
    )
    aborted = userdata.aborted_before_copy(outcome)
    return config.after_refresh(instance, target, outcome, aborted=aborted)
