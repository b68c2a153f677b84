"""snapd with a store: install from a channel, refresh one or all, switch, and re-refresh.

Each operation is a pure function over `SnapdState` returning an `Outcome`, like the sideload
ones (import them from `snapconform.model.snapd`):

    store_install(state, catalog, name, channel=None, revision=None, *, store=None)
        `snap install NAME|NAME_KEY [--channel=C] [--revision=N]`
    store_refresh(state, catalog, instance, channel=None, revision=None, *, store=None)
        `snap refresh NAME [--channel=C] [--revision=N]` (a store snap; N may be in the
        sequence, then no store query)
    refresh_all(state, catalog, *, auto=False, store=None)
        `snap refresh` (auto=False) or an auto-refresh (auto=True: nothing is printed)
    switch_channel(state, instance, channel)
        `snap switch --channel=C NAME`
`revert` and `remove` work on store revisions as on local ones (snapd.py).

`catalog` is the store's content (`StoreCatalog`); `store`, when given, answers instead of the
honest `catalog.answer` (a misbehaving store, e.g. `store_catalog.offering`). Store revisions
are numbers ("5"), local ones "xN". Every outcome says which store requests snapd sends
(`Outcome.store_requests`), what the CLI prints besides errors (`Outcome.notices`), and why.

Facts (canonical/snapd; "2.57" = tag 2.57.6, "2.68" = 2.68.3, "2.77" = 2.77):
- Requests (store/store_action.go, overlord/snapstate/storehelpers.go, target.go): every POST
  carries as context every instance whose current revision has a snap-id (sideloads are left
  out), with its revision, epoch and tracking channel ("stable" when it has none). An install
  action names the snap with channel (default "stable") or, with --revision, the revision only.
  `snap refresh NAME` sends one refresh action with the resolved channel (the tracking channel
  unless --channel; channel.Resolve keeps the track: "candidate" -> "latest/candidate"), or the
  revision only. `snap refresh` (and auto-refresh) sends one action per store instance: with no
  channel in 2.57, with the tracking channel from 2.65 (target.go completeStoreAction; checked
  at 2.64 and 2.65). Before every `snap refresh ...` the daemon refreshes the snap-declarations
  of all store snaps with one bulk request (daemon/api_snaps.go snapUpdate/snapUpdateMany,
  assertstate/bulk.go): purpose "assertions" (one POST whether the store answers it or, as the
  served store does while it serves tampered assertions, refuses it with 400 and snapd GETs
  each assertion instead: observed on 2.57.6 both ways).
- A refresh result whose revision is the installed one is "no update"; so is, for `snap
  refresh` with no names (auto-refresh included), a revision after current in the sequence,
  i.e. reverted from (store_action.go findRev(cur.Block); storehelpers.go sets Block only when
  refreshing all). `snap refresh NAME` and re-refreshes do take a reverted-from revision.
- Early checks before any download (snapstate earlyChecks): the parallel-instances flag, then
  the store-reported epoch must read the current one (check_snap.go earlyEpochCheck). Refreshing
  one snap, a failure is the command's error; refreshing all, that snap is skipped silently.
  The downloaded file's own epoch is checked again at "Mount snap" (checkSnap/checkEpochs).
- Re-refresh (check-rerefresh task, handlers.go doCheckReRefresh): after a refresh change with
  updates, once its other tasks are done, snapd asks the store again for the snaps that
  refreshed successfully in that round (one request, their tracking channels, no Block) and
  refreshes those whose answer's epoch differs from the now-current one; that round gets its own
  check-rerefresh. Nothing refreshed successfully (a rollback): no request. An early-check
  failure in a re-refresh fails that task (change in error) and stops the stepping; earlier hops
  stay. Local revisions: a sideload has no check-rerefresh; a refresh to xN has one but sends
  nothing (no snap-id).
- Tracking (snapstate.go, handlers.go doLinkSnap/undoLinkSnap/doSwitchSnap): install records
  Full(channel) (`latest/stable` by default, also with --revision); a refresh records the asked
  channel on success (an undone refresh restores the old one); `snap refresh --channel=C NAME`
  with no update switches tracking alone and sets the current revision's channel to C;
  `snap switch` changes only tracking; revert keeps it. With closed-channel forwarding snapd
  records the channel asked for, and the revision's channel is the store's effective channel.
- Failed refreshes: an undone refresh removes the new revision from the sequence; nothing in
  2.57 remembers it, so any later refresh (auto, `snap refresh`, `snap refresh NAME`) tries it
  again. From 2.67 (commit dc01a39243, "many: add snap auto refresh backoff") an auto-refresh
  change whose unlink-current-snap was undone (a failure after the old revision was unlinked:
  post-refresh, configure, check-health; not pre-refresh, not mount) records the revision
  (RefreshFailures); later auto-refreshes skip that revision while the backoff delay (8 h after
  one failure, up to 2 weeks) lasts, and any refresh to another revision clears the record
  (autorefresh.go checkSnapRefreshFailures). Manual refreshes, with or without names, are never
  skipped. The model has no clock: it assumes every later step falls inside the delay.
  Confirmed on 2.57.6: `snap refresh` and `snap refresh NAME` retry the revision
  (suites/conformance/test_store_seed000_failed_refresh.py), and so does an auto-refresh,
  provoked once by hand (known divergence seed000-4-auto-refresh-retries); the 2.67+ backoff
  is from source only.
- CLI (cmd/snap/cmd_snap_op.go, error.go): the closed-channel notice follows an install or
  refresh of each snap shown whose tracking channel and current revision's channel differ in
  risk; `snap refresh NAME` with nothing new prints `snap "N" has no updates available` and
  exits 0; `snap refresh` with nothing refreshed prints `All snaps up to date.` and exits 0.

Model choices, named: hooks of several snaps refreshing in one change are listed instance by
instance (snapd runs their lanes concurrently), and so are several failed tasks in a change's
error; a loop of re-refreshes is cut after MAX_HOPS or when it comes back to a revision it
left (snapd has no such guard).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from snapconform.model import snapd_text as text
from snapconform.model.epoch import EpochError
from snapconform.model.snapd_changes import (
    fresh_install,
    instance_name_error,
    local_unknown,
    not_installed,
    refresh_to,
    refused,
)
from snapconform.model.snapd_state import (
    LOCAL_REVISION,
    ConfigRead,
    ContextEntry,
    ExpectedError,
    HookRun,
    InstanceState,
    ModelGap,
    Outcome,
    RefreshFailure,
    RevisionState,
    SnapdState,
    StoreAction,
    StoreRequest,
    check_revision,
)
from snapconform.model.store_catalog import (
    ID_NOT_FOUND,
    NAME_NOT_FOUND,
    REVISION_NOT_FOUND,
    Responder,
    StoreCatalog,
    StoreResult,
    file_epoch,
)

__all__ = [
    "MAX_HOPS",
    "REFRESH_ALL_SENDS_CHANNEL_SINCE",
    "REFRESH_FAILURE_BACKOFF_SINCE",
    "full_channel",
    "refresh_all",
    "store_install",
    "store_refresh",
    "switch_channel",
]

# From 2.65 `snap refresh` and re-refresh actions carry the tracking channel (target.go).
REFRESH_ALL_SENDS_CHANNEL_SINCE = (2, 65)
# From 2.67 failed auto-refreshes are recorded and backed off (autorefresh.go).
REFRESH_FAILURE_BACKOFF_SINCE = (2, 67)
# From 2.76 the notice also needs a tracking channel (cmd_snap_op.go showDone, 2.75 vs 2.76).
NOTICE_NEEDS_TRACKING_SINCE = (2, 76)
MAX_HOPS = 32
RISKS = ("stable", "candidate", "beta", "edge")  # snap/channel/channel.go channelRisks


# -- channels as snapd handles them (snap/channel/channel.go) --------------------------------------


def full_channel(name: str) -> str:
    """channel.Full: a risk gets the track "latest", a track gets the risk "stable"."""
    parts = [part for part in name.split("/") if part]
    if len(parts) == 1:
        return f"latest/{parts[0]}" if parts[0] in RISKS else f"{parts[0]}/stable"
    if len(parts) == 2 and parts[0] in RISKS:
        return "latest/" + "/".join(parts)
    return "/".join(parts)


def _resolve(tracking: str | None, new: str) -> str:
    """channel.Resolve: a risk (or risk/branch) keeps the tracked channel's track."""
    if not tracking:
        return new
    first = tracking.split("/")[0]
    track = first if first not in RISKS else ""
    if new.split("/")[0] in RISKS and track:
        return f"{track}/{new}"
    return new


def _risk(channel: str) -> str:
    parts = channel.split("/")
    if parts[0] in RISKS:
        return parts[0]
    return parts[1] if len(parts) > 1 else "stable"


def _q(value: str) -> str:
    return text.go_quote(value)


# -- requests --------------------------------------------------------------------------------------


def _context(state: SnapdState) -> tuple[ContextEntry, ...]:
    return tuple(
        ContextEntry(inst.name, inst.current, inst.channel or "stable", inst.current_revision.epoch)
        for inst in state.instances
        if inst.from_store
    )


def _assertions_request(state: SnapdState) -> tuple[StoreRequest, ...]:
    """The bulk snap-declaration refresh before a `snap refresh`; none without store snaps."""
    names = tuple(inst.name for inst in state.instances if inst.from_store)
    return (StoreRequest("assertions", assertions_for=names),) if names else ()


def _refresh_action_channel(state: SnapdState, inst: InstanceState) -> str | None:
    """The channel of a refresh-all or re-refresh action (none before 2.65)."""
    if state.snapd_version < REFRESH_ALL_SENDS_CHANNEL_SINCE:
        return None
    return inst.channel or None


def _result_for(results: Sequence[StoreResult], instance: str) -> StoreResult:
    found = next((r for r in results if r.instance == instance), None)
    if found is None:
        raise ModelGap(f"the store gave no result for {instance}")
    return found


# -- one hop: a refresh change for one instance ----------------------------------------------------


@dataclass(frozen=True)
class _Hop:
    outcome: Outcome
    # (error kind, task summary, task error) when the change failed in this hop
    failure: tuple[str, str, str] | None = None
    after_unlink: bool = False  # the failure undid unlink-current-snap (2.67 backoff counts it)


def _target(inst: InstanceState, result: StoreResult) -> tuple[RevisionState, bool]:
    """The revision a refresh links: the present one (its own file) or the downloaded one."""
    assert result.revision is not None
    revision = str(result.revision)
    present = inst.revision(revision)
    if present is not None:
        return replace(present, channel=result.effective_channel), False
    if result.file is None:
        raise ModelGap(f"the store answered {revision} for {inst.name} without a file")
    try:
        epoch = file_epoch(result.file)
    except EpochError as exc:
        raise ModelGap(f"the store's file for {revision} has an invalid epoch: {exc}") from None
    hooks = result.file.hooks
    return RevisionState(
        revision, epoch, result.file.version, hooks, result.effective_channel
    ), True


def _hop(state: SnapdState, inst: InstanceState, result: StoreResult, tracking: str | None) -> _Hop:
    target, is_new = _target(inst, result)
    current = inst.current_revision
    if is_new and not target.epoch.can_read(current.epoch):
        # The file's snap.yaml disagrees with what the store reported (mount-snap checkSnap).
        message = text.EPOCH_REFUSED.format(
            name=_q(inst.name),
            desc=f"new revision {target.revision}",
            new=target.epoch,
            current=current.epoch,
        )
        summary = f"Mount snap {_q(inst.name)} ({target.revision})"
        why = (
            f"the downloaded {target.revision} has epoch {target.epoch} in its snap.yaml, which "
            f"cannot read the current epoch {current.epoch}: refused at Mount snap, before any "
            "hook (check_snap.go checkSnap)"
        )
        failed = Outcome(state, ExpectedError("epoch-refused", message), (), why)
        return _Hop(failed, ("epoch-refused", summary, message))
    outcome = refresh_to(state, inst, target, is_new=is_new)
    if outcome.error is None:
        moved = outcome.state.instance(inst.name)
        assert moved is not None
        return _Hop(
            replace(outcome, state=outcome.state.with_instance(replace(moved, channel=tracking)))
        )
    last = outcome.hooks_run[-1] if outcome.hooks_run else None
    assert last is not None  # refresh_to fails only in a hook
    summary = text.HOOK_SUMMARIES[last.hook].format(_q(inst.name))
    detail = outcome.error.message.rpartition(f"{summary} (")[2].removesuffix(")")
    return _Hop(outcome, ("hook-failed", summary, detail), after_unlink=last.hook != "pre-refresh")


def _early_check(
    state: SnapdState, inst: InstanceState, result: StoreResult
) -> tuple[str, str] | None:
    """snapstate earlyChecks on the store's answer: (error kind, text), or None."""
    if inst.instance_key and not state.parallel_instances:
        return "parallel-disabled", text.parallel_disabled(state.snapd_version, inst.name)
    assert result.epoch is not None
    current = inst.current_revision
    if not result.epoch.can_read(current.epoch):
        return "epoch-refused", text.EPOCH_REFUSED.format(
            name=_q(inst.name),
            desc=f"new revision {result.revision}",
            new=result.epoch,
            current=current.epoch,
        )
    return None


def _backoff(
    state: SnapdState, inst: InstanceState, revision: str, auto: bool
) -> tuple[bool, InstanceState]:
    """checkSnapRefreshFailures (2.67+): (skip this target, the instance after the check)."""
    failure = inst.refresh_failure
    if state.snapd_version < REFRESH_FAILURE_BACKOFF_SINCE or failure is None:
        return False, inst
    if failure.revision != revision:
        return False, replace(inst, refresh_failure=None)
    return auto, inst


def _record_failure(state: SnapdState, name: str, revision: str) -> SnapdState:
    """processFailedAutoRefresh (2.67+): count a failed auto-refresh to `revision`."""
    inst = state.instance(name)
    assert inst is not None
    previous = inst.refresh_failure
    count = previous.count + 1 if previous and previous.revision == revision else 1
    return state.with_instance(replace(inst, refresh_failure=RefreshFailure(revision, count)))


# -- a refresh change: first round, then re-refresh rounds -----------------------------------------


@dataclass
class _Change:
    """What one refresh change did so far (mutable while the change runs)."""

    state: SnapdState
    auto: bool
    hooks: list[HookRun]
    discarded: list[str]
    requests: list[StoreRequest]
    failures: list[tuple[str, str, str]]  # (error kind, task summary, task error)
    whys: list[str]
    # What each hop's change did besides its hooks: the services it started and what its hooks
    # read of the configuration (snapd_services, snapd_config follow every refresh_to).
    service_runs: list[HookRun] = field(default_factory=list)
    config_reads: list[ConfigRead] = field(default_factory=list)

    def run_round(self, updates: list[tuple[str, StoreResult]]) -> list[str]:
        """Refresh each (instance, answer) in its own lane; the instances that moved."""
        moved: list[str] = []
        for name, result in sorted(updates, key=lambda item: item[0]):
            inst = self.state.instance(name)
            assert inst is not None and result.revision is not None
            hop = _hop(self.state, inst, result, inst.channel)
            self.hooks += hop.outcome.hooks_run
            self.discarded += hop.outcome.discarded
            self.service_runs += hop.outcome.service_runs
            self.config_reads += hop.outcome.config_reads
            self.state = hop.outcome.state
            if hop.failure is None:
                moved.append(name)
                self.whys.append(f"{name} {inst.current} -> {result.revision}: {result.why}")
                continue
            self.failures.append(hop.failure)
            self.whys.append(hop.outcome.why)
            if (
                self.auto
                and hop.after_unlink
                and self.state.snapd_version >= REFRESH_FAILURE_BACKOFF_SINCE
            ):
                self.state = _record_failure(self.state, name, str(result.revision))
        return moved

    def re_refresh(self, respond: Responder, moved: list[str]) -> None:
        """check-rerefresh rounds until nothing moves (handlers.go doCheckReRefresh)."""
        left: dict[str, set[str]] = {name: set() for name in moved}
        for _ in range(MAX_HOPS):
            if not moved:
                return
            summary = text.re_refresh_summary(self.state.snapd_version, moved)
            actions = []
            for name in sorted(moved):
                inst = self.state.instance(name)
                assert inst is not None
                left.setdefault(name, set()).add(inst.current)
                actions.append(
                    StoreAction("refresh", name, _refresh_action_channel(self.state, inst))
                )
            request = StoreRequest("re-refresh", _context(self.state), tuple(actions))
            self.requests.append(request)
            results = respond(request)
            updates: list[tuple[str, StoreResult]] = []
            for name in sorted(moved):
                inst = self.state.instance(name)
                assert inst is not None
                result = _result_for(results, name)
                if not result.found or str(result.revision) == inst.current:
                    continue
                if result.epoch == inst.current_revision.epoch:
                    self.whys.append(
                        f"{name}: the re-refresh answer {result.revision} has the current epoch "
                        f"{result.epoch}, so snapd does not take it (reRefreshFilter)"
                    )
                    continue
                if str(result.revision) in left.get(name, set()):
                    self.whys.append(
                        f"{name}: the re-refresh would go back to {result.revision}; the model "
                        "stops there (snapd has no such guard)"
                    )
                    continue
                skip, checked = _backoff(self.state, inst, str(result.revision), self.auto)
                self.state = self.state.with_instance(checked)
                if skip:
                    continue
                problem = _early_check(self.state, checked, result)
                if problem is not None:
                    self.failures.append((problem[0], summary, problem[1]))
                    self.whys.append(
                        f"the re-refresh of {name} was refused ({problem}): the check-rerefresh "
                        "task fails, the hops before it stay (handlers.go doCheckReRefresh)"
                    )
                    return
                updates.append((name, result))
            moved = self.run_round(updates)
        self.whys.append(f"re-refresh cut after {MAX_HOPS} rounds (a model guard)")

    def outcome(self, notices: tuple[str, ...] = ()) -> Outcome:
        why = "; ".join(self.whys) if self.whys else "nothing moved"
        error = None
        if self.failures:
            message = text.change_error_lines([(task, err) for _, task, err in self.failures])
            error = ExpectedError(self.failures[0][0], message, 0 if self.auto else 1)
            notices = ()
        return Outcome(
            self.state,
            error,
            tuple(self.hooks),
            why,
            tuple(self.discarded),
            notices,
            tuple(self.requests),
            service_runs=tuple(self.service_runs),
            config_reads=tuple(self.config_reads),
        )


def _closed_notices(state: SnapdState, names: Sequence[str]) -> tuple[str, ...]:
    """showDone's closed-channel notice for each snap shown (cmd_snap_op.go)."""
    notices = []
    for name in names:
        inst = state.instance(name)
        if inst is None:
            continue
        tracking = inst.channel or ""
        channel = inst.current_revision.channel or ""
        if not tracking and state.snapd_version >= NOTICE_NEEDS_TRACKING_SINCE:
            continue
        risk = _risk(tracking) if tracking else ""
        if tracking != channel and channel and risk != _risk(channel):
            notices.append(
                text.CLOSED_CHANNEL_NOTICE.format(tracking=tracking, name=name, channel=channel)
            )
    return tuple(notices)


def _with_requests(outcome: Outcome, requests: Sequence[StoreRequest]) -> Outcome:
    return replace(outcome, store_requests=(*requests, *outcome.store_requests))


def _not_available(
    instance: str,
    result: StoreResult,
    action: StoreAction,
    user_channel: str | None,
    verb: str,
) -> ExpectedError:
    """The CLI's text for a store error on one snap (cmd/snap/error.go errorToCmdMessage)."""
    if result.error in (NAME_NOT_FOUND, ID_NOT_FOUND):
        return ExpectedError("snap-not-found", text.SNAP_NOT_FOUND.format(_q(instance)))
    if result.error != REVISION_NOT_FOUND:
        raise ModelGap(f"the model has no text for the store error {result.error!r}")
    if result.releases and action.channel:
        try:
            message = text.not_available_listing(
                instance, verb, action.channel, list(result.releases)
            )
        except ValueError as exc:
            raise ModelGap(str(exc)) from None
        return ExpectedError("channel-not-available", message)
    if action.revision is not None:
        message = text.REVISION_NOT_AVAILABLE.format(
            q=_q(instance), revision=action.revision, name=instance
        )
    elif user_channel:
        message = text.NOT_AVAILABLE_ON_CHANNEL.format(
            q=_q(instance), channel=_q(user_channel), name=instance
        )
    else:
        message = text.NOT_AVAILABLE_AS_SPECIFIED.format(q=_q(instance), name=instance)
    return ExpectedError("revision-not-available", message)


# -- snap install NAME -----------------------------------------------------------------------------


def store_install(
    state: SnapdState,
    catalog: StoreCatalog,
    name: str,
    channel: str | None = None,
    revision: str | None = None,
    *,
    store: Responder | None = None,
) -> Outcome:
    """`snap install NAME [--channel=C] [--revision=N]` (NAME may be NAME_KEY).

    `channel` is what the user typed (`candidate` for --candidate). snapstate.go
    InstallWithDeviceContext (2.57) / target.go storeInstallGoal (2.68+).
    """
    respond = store or catalog.answer
    if revision is not None:
        check_revision(revision)
        if LOCAL_REVISION.fullmatch(revision):
            raise ModelGap("snap install --revision=xN asks the store for a local revision")
    if state.instance(name) is not None:
        return refused(
            state,
            "already-installed",
            text.ALREADY_INSTALLED.format(_q(name)),
            f"{name} is installed already: the CLI prints this and exits 0, nothing is asked of "
            "the store (snapstate AlreadyInstalledError, cmd/snap/error.go)",
            exit_code=0,
        )
    problem = instance_name_error(name)
    prefix = f"cannot install {_q(name)}: "  # daemon/api_snaps.go errToResponse
    if problem is not None:
        return refused(
            state,
            problem[0],
            prefix + text.INVALID_INSTANCE_NAME + problem[1],
            "refused before the store is asked: the instance name breaks snap/naming rules",
        )
    asked = (channel or "stable") if revision is None else None
    action = StoreAction("install", name, asked, revision)
    request = StoreRequest("install", _context(state), (action,))
    result = _result_for(respond(request), name)
    if not result.found:
        error = _not_available(name, result, action, channel, "install")
        return Outcome(
            state,
            error,
            (),
            f"the store has nothing for {name} ({result.why}); nothing changes",
            store_requests=(request,),
        )
    snap_name, _, key = name.partition("_")
    if key and not state.parallel_instances:
        return _with_requests(
            refused(
                state,
                "parallel-disabled",
                prefix + text.parallel_disabled(state.snapd_version, name),
                "refused after the store answered: an instance key needs "
                "experimental.parallel-instances (snapstate.go ensureInstallPreconditions)",
            ),
            (request,),
        )
    if result.file is None or result.file.name != snap_name:
        raise ModelGap(f"the store answered {name} with a file of another snap")
    target, _ = _target_for_install(result)
    outcome = fresh_install(state, name, snap_name, target)
    if outcome.error is not None:
        return _with_requests(outcome, (request,))
    tracking = full_channel(channel or "stable")
    inst = outcome.state.instance(name)
    assert inst is not None
    after = outcome.state.with_instance(replace(inst, channel=tracking))
    why = (
        f"installed {name} {target.revision} from the store, tracking {tracking}: "
        f"{result.why}; install then configure ran in {target.revision} (snapstate.go doInstall)"
    )
    # The install change's own outcome (its hooks, services started, configuration read),
    # with the store's part: tracking, notices, the request.
    return replace(
        outcome,
        state=after,
        why=why,
        notices=_closed_notices(after, [name]),
        store_requests=(request,),
    )


def _target_for_install(result: StoreResult) -> tuple[RevisionState, bool]:
    assert result.revision is not None and result.file is not None
    try:
        epoch = file_epoch(result.file)
    except EpochError as exc:
        raise ModelGap(f"the store's file has an invalid epoch: {exc}") from None
    return (
        RevisionState(
            str(result.revision),
            epoch,
            result.file.version,
            result.file.hooks,
            result.effective_channel,
        ),
        True,
    )


# -- snap refresh NAME -----------------------------------------------------------------------------


def store_refresh(
    state: SnapdState,
    catalog: StoreCatalog,
    instance: str,
    channel: str | None = None,
    revision: str | None = None,
    *,
    store: Responder | None = None,
) -> Outcome:
    """`snap refresh NAME [--channel=C | --revision=N]` (snapstate.go UpdateWithDeviceContext)."""
    respond = store or catalog.answer
    requests = list(_assertions_request(state))
    if revision is not None:
        check_revision(revision)
        if channel is not None:
            raise ModelGap("--channel with --revision is outside the model")
    found = state.instance(instance)
    if found is None:
        return _with_requests(not_installed(state, instance), requests)
    prefix = f"cannot refresh {_q(instance)}: "  # daemon/api_snaps.go errToResponse
    change = _Change(state, False, [], [], requests, [], [])
    if revision is not None and found.revision(revision) is not None:
        return _refresh_present(change, respond, found, revision, prefix)
    if not found.from_store:
        return _with_requests(local_unknown(state, found), requests)
    if revision is not None and LOCAL_REVISION.fullmatch(revision):
        raise ModelGap(f"{revision} is not in {instance}'s sequence and is not a store revision")
    tracking = found.channel
    asked = _resolve(tracking, channel) if channel else tracking
    action = StoreAction("refresh", instance, None if revision else asked, revision)
    request = StoreRequest("refresh", _context(state), (action,))
    requests.append(request)
    result = _result_for(respond(request), instance)
    if not result.found:
        error = _not_available(instance, result, action, channel, "refresh")
        return Outcome(
            state,
            error,
            (),
            f"the store has nothing for {instance}: {result.why}",
            store_requests=tuple(requests),
        )
    if str(result.revision) == found.current:
        return _no_update(state, found, asked, result, requests)
    problem = _early_check(state, found, result)
    if problem is not None:
        return Outcome(
            state,
            ExpectedError(problem[0], prefix + problem[1]),
            (),
            f"refused before download: {problem[1]} (snapstate earlyChecks, check_snap.go)",
            store_requests=tuple(requests),
        )
    _, checked = _backoff(state, found, str(result.revision), auto=False)
    tracked = full_channel(asked) if asked else None
    change.state = state.with_instance(replace(checked, channel=tracked))
    return _run_single(change, respond, instance, result, found)


def _run_single(
    change: _Change, respond: Responder, instance: str, result: StoreResult, before: InstanceState
) -> Outcome:
    """The first hop of a one-snap refresh (tracking already set to the asked channel), then
    re-refreshes; an undone hop restores the old tracking channel (undoLinkSnap)."""
    moved = change.run_round([(instance, result)])
    if not moved:
        inst = change.state.instance(instance)
        if inst is not None:
            change.state = change.state.with_instance(replace(inst, channel=before.channel))
    change.re_refresh(respond, moved)
    return change.outcome(_closed_notices(change.state, [instance]))


def _no_update(
    state: SnapdState,
    found: InstanceState,
    asked: str | None,
    result: StoreResult,
    requests: list[StoreRequest],
) -> Outcome:
    if asked is not None and asked != found.channel:
        # switch-snap-channel: tracking and the current revision's channel become the new one.
        current = replace(found.current_revision, channel=asked)
        sequence = tuple(current if e.revision == found.current else e for e in found.sequence)
        switched = replace(found, channel=full_channel(asked), sequence=sequence)
        return Outcome(
            state.with_instance(switched),
            None,
            (),
            f"the store has nothing newer than {found.current} for {asked} ({result.why}), so "
            f"snapd only switches tracking to {full_channel(asked)} (snapstate.go Update, "
            "switch-snap-channel)",
            store_requests=tuple(requests),
        )
    return Outcome(
        state,
        ExpectedError("no-update", text.NO_UPDATES.format(_q(found.name)), exit_code=0),
        (),
        f"the store's answer is the installed {found.current} ({result.why}): no update; the "
        "CLI prints this and exits 0 (store_action.go, cmd/snap/error.go)",
        store_requests=tuple(requests),
    )


def _refresh_present(
    change: _Change, respond: Responder, found: InstanceState, revision: str, prefix: str
) -> Outcome:
    """`snap refresh --revision=R NAME` with R in the sequence: no store query, the full
    refresh path, then a re-refresh (which asks the store only for a store revision)."""
    state = change.state
    target = found.revision(revision)
    assert target is not None
    if found.instance_key and not state.parallel_instances:
        return _with_requests(
            refused(
                state,
                "parallel-disabled",
                prefix + text.parallel_disabled(state.snapd_version, found.name),
                "refused: refreshing an instance with a key needs experimental.parallel-instances",
            ),
            change.requests,
        )
    current = found.current_revision
    if not target.epoch.can_read(current.epoch):
        desc = "local snap" if target.is_local else f"new revision {target.revision}"
        message = text.EPOCH_REFUSED.format(
            name=_q(found.name), desc=desc, new=target.epoch, current=current.epoch
        )
        return _with_requests(
            refused(
                state,
                "epoch-refused",
                prefix + message,
                f"refused: {revision} (epoch {target.epoch}) cannot read the current epoch "
                f"{current.epoch} (check_snap.go)",
            ),
            change.requests,
        )
    outcome = refresh_to(state, found, target, is_new=False)
    change.hooks += outcome.hooks_run
    change.discarded += outcome.discarded
    change.service_runs += outcome.service_runs
    change.config_reads += outcome.config_reads
    change.state = outcome.state
    change.whys.append(outcome.why)
    if outcome.error is not None:
        return replace(outcome, store_requests=tuple(change.requests))
    moved = [found.name] if not target.is_local else []
    change.re_refresh(respond, moved)
    return change.outcome(_closed_notices(change.state, [found.name]))


# -- snap refresh (all) and auto-refresh -----------------------------------------------------------


def refresh_all(
    state: SnapdState,
    catalog: StoreCatalog,
    *,
    auto: bool = False,
    store: Responder | None = None,
) -> Outcome:
    """`snap refresh` (auto=False) or an auto-refresh (auto=True): every store instance.

    Manual: the CLI prints the change's error, or `All snaps up to date.` (exit 0) when nothing
    was refreshed, or the refreshed snaps with their notices. Auto: nothing is printed; a failed
    change still comes back as the error (exit code 0: no command failed).
    """
    respond = store or catalog.answer
    requests = list(_assertions_request(state))
    candidates = [inst for inst in state.instances if inst.from_store]
    change = _Change(state, auto, [], [], requests, [], [])
    if not candidates:
        return _up_to_date(change, "no instance comes from the store")
    actions = tuple(
        StoreAction("refresh", inst.name, _refresh_action_channel(state, inst))
        for inst in candidates
    )
    request = StoreRequest("refresh", _context(state), actions)
    requests.append(request)
    results = respond(request)
    updates: list[tuple[str, StoreResult]] = []
    for inst in candidates:
        result = _result_for(results, inst.name)
        if not result.found:
            change.whys.append(f"{inst.name}: the store has nothing ({result.why})")
            continue
        revision = str(result.revision)
        if revision == inst.current:
            change.whys.append(f"{inst.name}: no update ({result.why})")
            continue
        if revision in inst.blocked:
            change.whys.append(
                f"{inst.name}: the store offers {revision}, reverted from, which a refresh of all "
                f"snaps does not take back ({result.why}; snapmgr.go Block)"
            )
            continue
        skip, checked = _backoff(change.state, inst, revision, auto)
        change.state = change.state.with_instance(checked)
        if skip:
            change.whys.append(
                f"{inst.name}: {revision} failed an earlier auto-refresh and its backoff delay "
                "has not passed, so it is skipped (autorefresh.go, 2.67+; the model has no clock)"
            )
            continue
        problem = _early_check(change.state, checked, result)
        if problem is not None:
            change.whys.append(
                f"{inst.name}: skipped, {problem[1]} (refreshing all, snapd only logs it)"
            )
            continue
        updates.append((inst.name, result))
    if not updates:
        return _up_to_date(change, "")
    first_round = sorted(name for name, _ in updates)
    moved = change.run_round(updates)
    change.re_refresh(respond, moved)
    notices = () if auto else _closed_notices(change.state, first_round)
    return change.outcome(notices)


def _up_to_date(change: _Change, reason: str) -> Outcome:
    whys = [reason] if reason else change.whys
    why = "nothing to refresh: " + "; ".join(whys)
    error = None
    if not change.auto:
        error = ExpectedError("all-up-to-date", text.ALL_UP_TO_DATE, exit_code=0)
    return Outcome(change.state, error, (), why, store_requests=tuple(change.requests))


# -- snap switch -----------------------------------------------------------------------------------


def switch_channel(state: SnapdState, instance: str, channel: str) -> Outcome:
    """`snap switch --channel=C NAME`: only the tracking channel changes (snapstate.go Switch,
    handlers.go doSwitchSnap); no store request; the CLI prints the new tracking channel."""
    found = state.instance(instance)
    if found is None:
        # The switch command returns the daemon's error as is (cmd_snap_op.go cmdSwitch).
        return refused(
            state,
            "not-installed",
            text.NOT_INSTALLED.format(_q(instance)),
            f"refused: {instance} is not installed (snapstate.go Switch)",
        )
    tracking = full_channel(_resolve(found.channel, channel))
    switched = replace(found, channel=tracking)
    notice = text.SWITCHED.format(_q(instance), _q(tracking))
    return Outcome(
        state.with_instance(switched),
        None,
        (),
        f"{instance} now tracks {tracking} (was {found.channel or 'nothing'}); nothing is "
        "refreshed until the next refresh",
        notices=(notice,),
    )
