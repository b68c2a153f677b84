"""A Hypothesis state machine over store histories: a publisher releases, promotes, closes and
unreleases revisions of one snap (and switches a misbehaviour on and off), users install it
(plain or `NAME_k1`) from a channel, refresh one or all, switch, revert and remove; every step
is model-checked on real snapd behind the served store, as the local machine's are.

Store revisions are numbered by the machine (1, 2, 3, ... per snap), each with its own file
(version N.0, so no two revisions share a sha3-384). A release's epoch moves relative to the
last released one (same, settle N* -> N, bridge N+1*, next N+1, or any form), so epoch walks
0 -> 1* -> 1 -> 2* are likely. Preconditions read only the model (snapd's state and the run's
store world), so generation is deterministic. Each example uses fresh snap names, and its
teardown removes every store snap it installed: later requests would carry them as context.

Labels (beside the local machine's where they apply), all read from the model's prediction:
epoch stepping (one refresh made more than one hop), bridge used (a hop onto a bridge that then
moved on), closed-channel forwarding (a notice predicted), blocked retry (a refresh of all snaps
offered a reverted-from revision and did not take it), failed revision retried (a revision
whose refresh failed tried again), misbehaving store refused.
"""

from __future__ import annotations

from typing import Any

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from snapconform.conformance.machine import (
    EPOCH_TEXTS,
    MachineBase,
    hook_plans,
    moved_epoch,
)
from snapconform.conformance.operations import Operation
from snapconform.conformance.store_steps import (
    CloseChannel,
    Misbehave,
    Misbehaviour,
    RefreshAll,
    Release,
    StoreInstall,
    StoreOperation,
    StoreRefresh,
    StoreWorld,
    Switch,
    Unrelease,
)
from snapconform.model import snapd as model
from snapconform.model.epoch import Epoch
from snapconform.model.store_catalog import CatalogSnap, StoreResult, file_epoch

CHANNELS = ("stable", "candidate", "beta", "edge")  # least risky first: shrinks towards stable
# Bridges and settling on them twice as often as the rest: what makes one refresh step through
# several epochs (0 -> 1* -> 1 -> 2* ...) when a user missed the releases in between.
STORE_EPOCH_MOVES = ("same", "bridge", "settle", "same", "bridge", "settle", "next", "fixed")
# What a misbehaving store claims a revision's epoch is (report_epoch).
REPORTED_EPOCHS = ("0", "1", "1*", "2", "2*")
# Revision 1's epoch: 0 mostly (where the epochs page starts), any form otherwise.
START_EPOCHS = (None, None, None, *EPOCH_TEXTS[1:])
# Channels a user names: none (the default or the tracked one) first.
USER_CHANNELS = (None, "stable", "candidate", "beta", "edge")

# A release goes to a channel a user tracks ("tracked": the first installed instance's, else
# stable) as often as to all the others together: releases elsewhere reach nobody.
RELEASE_CHANNELS = ("tracked", "stable", "tracked", "candidate", "tracked", "beta", "edge")
RELEASE_ARGUMENTS = {
    "channel": st.sampled_from(RELEASE_CHANNELS),
    "move": st.sampled_from(STORE_EPOCH_MOVES),
    "fixed": st.sampled_from(EPOCH_TEXTS),
    "hooks": hook_plans,
}


def is_bridge(epoch: Epoch) -> bool:
    """An epoch that reads one below what it writes (N*, or any such form): a migration step."""
    return min(epoch.read) < max(epoch.write)


def hop_path(name: str, before: model.SnapdState, outcome: model.Outcome) -> list[str]:
    """The revisions a refresh change took `name` through, from its current one: each
    re-refresh request's context holds the revision the previous hop linked."""
    found = before.instance(name)
    path = [found.current] if found is not None else []
    for request in outcome.store_requests:
        context = request.context_of(name)
        hop = request.purpose == "re-refresh" and context and request.action_for(name)
        if hop and context and (not path or path[-1] != context.revision):
            path.append(context.revision)
    return path


class StoreMachine(MachineBase):
    """Configure with `StoreMachine.configure(store_session, recorder)` before running it."""

    def __init__(self) -> None:
        super().__init__()
        # per instance: store revisions a refresh failed to (rolled back or refused at mount)
        self.failed_revisions: dict[str, set[str]] = {}
        self._world_before = StoreWorld()
        self._predicted: model.Outcome | None = None
        self._refreshed_all: tuple[model.SnapdState, StoreWorld] | None = None

    # -- the store as the model sees it ----------------------------------------------------
    @property
    def world(self) -> StoreWorld:
        return self.run.world

    def catalog_snap(self) -> CatalogSnap | None:
        return self.world.catalog.snap(self.name)

    def released(self) -> list[int]:
        entry = self.catalog_snap()
        return sorted(number for number, _ in entry.files) if entry else []

    def file_of(self, revision: int) -> model.SnapFile:
        entry = self.catalog_snap()
        found = entry.file(revision) if entry else None
        assert found is not None
        return found

    def open_channels(self) -> list[str]:
        entry = self.catalog_snap()
        return [channel for channel in CHANNELS if entry and entry.store.is_open(channel)]

    def publisher_epoch(self) -> Epoch:
        """The epoch of the last revision released (a publisher moves on from there)."""
        released = self.released()
        return file_epoch(self.file_of(released[-1])) if released else Epoch()

    def readable_by_users(self, revision: int) -> bool:
        """Whether every installed instance's data can be read by store revision `revision`."""
        epoch = file_epoch(self.file_of(revision))
        return all(
            epoch.can_read(found.current_revision.epoch)
            for found in (self.installed(name) for name in self.instance_names())
            if found is not None
        )

    def tracked_risk(self) -> str:
        """The risk the first installed instance tracks (stable when none is installed)."""
        for name in self.instance_names():
            found = self.installed(name)
            if found is not None and found.channel:
                return found.channel.rpartition("/")[2]
        return "stable"

    def watched(self) -> tuple[str, ...]:
        return tuple(self.instance_names())

    # -- steps and labels ------------------------------------------------------------------
    def do(self, operation: Operation) -> None:
        # The prediction again (pure, deterministic), for labels the step record does not keep.
        self._world_before = self.world
        self._predicted = (
            operation.predict_store(self.state, self.world)[0]
            if isinstance(operation, StoreOperation)
            else None
        )
        if isinstance(operation, StoreOperation) and operation.publishes:
            self.recorder.publisher_steps += 1
        super().do(operation)

    def is_refresh(self, operation: Operation) -> bool:
        return isinstance(operation, StoreRefresh | RefreshAll)

    def label(self, operation: Operation, before: model.SnapdState, ok: bool) -> None:
        super().label(operation, before, ok)
        outcome, world = self._predicted, self._world_before
        if outcome is None or not isinstance(operation, StoreOperation):
            return
        if isinstance(operation, Misbehave) and not operation.misbehaviour.honest:
            self.recorder.count("store misbehaving")
        if any("temporarily forwarding" in notice for notice in outcome.notices):
            self.recorder.count("closed-channel forwarding")
        if not self.is_refresh(operation):
            return
        respond = world.responder() or world.catalog.answer
        first = next((r for r in outcome.store_requests if r.purpose == "refresh"), None)
        answers = respond(first) if first is not None else ()
        for name in operation.instances:
            self._label_hops(name, before, outcome, world)
        for result in answers:
            self._label_answer(operation, before, result, world)
        if (
            not world.misbehaviour.honest
            and outcome.error
            and outcome.error.kind == "epoch-refused"
        ):
            self.recorder.count("misbehaving store refused")

    def _label_hops(
        self, name: str, before: model.SnapdState, outcome: model.Outcome, world: StoreWorld
    ) -> None:
        path = hop_path(name, before, outcome)
        if len(path) > 2:
            self.recorder.count("epoch stepping")
        entry = world.catalog.snap(name.partition("_")[0])
        for revision in path[1:-1]:
            file = entry.file(int(revision)) if entry else None
            if file is not None and is_bridge(file_epoch(file)):
                self.recorder.count("bridge used")
                break
        failed = self.failed_revisions.setdefault(name, set())
        tried = set(path[1:])
        target = self._failed_target(name, outcome, world)
        if target is not None:
            tried.add(target)
        if tried & failed:
            self.recorder.count("failed revision retried")
        if target is not None:
            failed.add(target)

    def _failed_target(self, name: str, outcome: model.Outcome, world: StoreWorld) -> str | None:
        """The revision a failed refresh change tried to take `name` to: the answer to the
        last request for it, when that answer was taken and did not stay."""
        if outcome.error is None or outcome.error.kind not in ("hook-failed", "epoch-refused"):
            return None
        requests = [
            r
            for r in outcome.store_requests
            if r.purpose in ("refresh", "re-refresh") and r.action_for(name)
        ]
        after = outcome.state.instance(name)
        if not requests or after is None:
            return None
        last = requests[-1]
        context = last.context_of(name)
        respond = world.responder() or world.catalog.answer
        result = next((r for r in respond(last) if r.instance == name), None)
        if result is None or not result.found or context is None:
            return None
        revision = str(result.revision)
        if revision in (after.current, context.revision):
            return None
        if last.purpose == "re-refresh" and result.epoch == context.epoch:
            return None  # a re-refresh does not take an answer of the current epoch
        return revision

    def _label_answer(
        self, operation: Operation, before: model.SnapdState, result: StoreResult, world: StoreWorld
    ) -> None:
        """Labels from the store's first answer to a refresh (before snapd's own checks)."""
        inst = before.instance(result.instance)
        if inst is None or not result.found or str(result.revision) == inst.current:
            return
        if isinstance(operation, RefreshAll) and str(result.revision) in inst.blocked:
            self.recorder.count("blocked retry")
            return
        unreadable = result.epoch is not None and not result.epoch.can_read(
            inst.current_revision.epoch
        )
        if unreadable and not world.misbehaviour.honest and isinstance(operation, RefreshAll):
            self.recorder.count("misbehaving store refused")  # skipped: snapd only logs it

    # -- what the publisher does -------------------------------------------------------------
    @initialize(
        channel=st.sampled_from(CHANNELS), epoch=st.sampled_from(START_EPOCHS), hooks=hook_plans
    )
    def start(self, channel: str, epoch: str | None, hooks: Any) -> None:
        """Every example starts with revision 1 in a channel and a user installing it from
        there: the other users' rules need one."""
        note(f"snap name {self.name}")
        self.do(Release(model.SnapFile(self.name, "1.0", epoch, hooks), channel, 1))
        self.do(StoreInstall(self.name, None if channel == "stable" else channel))

    @rule(**RELEASE_ARGUMENTS)
    def release(self, channel: str, move: str, fixed: str | None, hooks: Any) -> None:
        revision = (self.released() or [0])[-1] + 1
        epoch = moved_epoch(self.publisher_epoch(), move, fixed)
        snap = model.SnapFile(self.name, f"{revision}.0", epoch_yaml=epoch, hooks=hooks)
        self.do(Release(snap, self.tracked_risk() if channel == "tracked" else channel, revision))

    # Releases are what refreshes, epochs and re-refreshes are about: a second rule doubles
    # their share of the steps (Hypothesis picks among enabled rules uniformly).
    @rule(**RELEASE_ARGUMENTS)
    def release_again(self, channel: str, move: str, fixed: str | None, hooks: Any) -> None:
        self.release(channel, move, fixed, hooks)

    @rule(channel=st.sampled_from(RELEASE_CHANNELS), hooks=hook_plans)
    def release_epoch_step(self, channel: str, hooks: Any) -> None:
        """The epochs page's way to a new epoch: a bridge N* and then N, one after the other
        to one channel; a user on N-1 who refreshes later is stepped through both."""
        self.release(channel, "bridge", None, hooks)
        self.release(channel, "settle", None, hooks)

    # Hypothesis leaves some rules out of each example (swarm testing): a second copy makes an
    # example without any epoch step rarer.
    @rule(channel=st.sampled_from(RELEASE_CHANNELS), hooks=hook_plans)
    def release_epoch_step_again(self, channel: str, hooks: Any) -> None:
        self.release_epoch_step(channel, hooks)

    @precondition(lambda self: bool(self.released()))
    @rule(choice=st.integers(0, 20), channel=st.sampled_from(CHANNELS))
    def promote(self, choice: int, channel: str) -> None:
        """An earlier revision released (again) to a channel: the same file, a new release."""
        released = self.released()
        revision = released[choice % len(released)]
        self.do(Release(self.file_of(revision), channel, revision))

    @precondition(lambda self: bool(self.open_channels()))
    @rule(choice=st.integers(0, 3))
    def close_channel(self, choice: int) -> None:
        channels = self.open_channels()
        self.do(CloseChannel(self.name, channels[choice % len(channels)]))

    @precondition(lambda self: bool(self.open_channels()))
    @rule(choice=st.integers(0, 3))
    def unrelease(self, choice: int) -> None:
        channels = self.open_channels()
        self.do(Unrelease(self.name, channels[choice % len(channels)]))

    @precondition(lambda self: self.world.misbehaviour.honest and bool(self.released()))
    @rule(
        lie=st.sampled_from(("offer_unreadable", "report_epoch")),
        choice=st.integers(0, 20),
        epoch=st.sampled_from(REPORTED_EPOCHS),
    )
    def misbehave(self, lie: str, choice: int, epoch: str) -> None:
        """A store answer the model says a store never gives, which the model still predicts
        snapd's answer to: any revision offered, or a revision's epoch misreported. Revisions
        an installed instance cannot read come first (snapd must refuse those)."""
        released = self.released()
        unreadable = [number for number in released if not self.readable_by_users(number)]
        pool = unreadable if unreadable and choice % 2 == 0 else released
        revision = pool[(choice // 2) % len(pool)]
        if lie == "offer_unreadable":
            misbehaviour = Misbehaviour(offer_unreadable=((self.name, revision),))
        else:
            misbehaviour = Misbehaviour(report_epoch=((self.name, revision, epoch),))
        self.do(Misbehave(misbehaviour))

    @precondition(lambda self: not self.world.misbehaviour.honest)
    @rule()
    def behave(self) -> None:
        self.do(Misbehave(Misbehaviour()))

    # -- what users do -------------------------------------------------------------------------
    @precondition(lambda self: self.any_missing())
    @rule(index=st.integers(0, 1), choice=st.integers(0, 4), named=st.booleans())
    def install(self, index: int, choice: int, named: bool) -> None:
        """From an open channel mostly (`named`: any channel, open or not; choice 0: none)."""
        instance = self.pick_instance(index, installed=False)
        assert instance is not None
        channels = self.open_channels() if not named else []
        channel = (
            USER_CHANNELS[choice] if named or not channels else channels[choice % len(channels)]
        )
        self.do(StoreInstall(instance, None if choice == 0 else channel))

    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), channel=st.sampled_from((None, *USER_CHANNELS)))
    def refresh(self, index: int, channel: str | None) -> None:
        """`snap refresh NAME`, without --channel twice as often as with each channel."""
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        self.do(StoreRefresh(instance, channel))

    @precondition(lambda self: self.any_installed() and bool(self.released()))
    @rule(index=st.integers(0, 1), choice=st.integers(0, 20))
    def refresh_to_revision(self, index: int, choice: int) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        released = self.released()
        self.do(StoreRefresh(instance, revision=released[choice % len(released)]))

    def changed_since_refresh_all(self) -> bool:
        """A refresh of all snaps right after another, with nothing changed, checks nothing new."""
        return self.any_installed() and (self.state, self.world) != self._refreshed_all

    @precondition(lambda self: self.changed_since_refresh_all())
    @rule()
    def refresh_all(self) -> None:
        self.do(RefreshAll(watch=self.watched()))
        self._refreshed_all = (self.state, self.world)

    # What an auto-refresh does, and where blocked and failed revisions show: twice the share.
    @precondition(lambda self: self.changed_since_refresh_all())
    @rule()
    def refresh_all_again(self) -> None:
        self.refresh_all()

    # refresh.retain matters here only for what refreshes keep: at most two settings an example
    # (as a rule always enabled, it took a fifth of the steps of examples with few others).
    @precondition(lambda self: self.retain_settings() < 2)
    @rule(value=st.sampled_from(("2", "3", "1", "21", "two")))
    def set_retain(self, value: str) -> None:
        super().set_retain(value)

    def retain_settings(self) -> int:
        return sum(
            1
            for record in self.run.history
            if record.operation.get("op") == "set"
            and record.operation.get("key") == "refresh.retain"
        )

    # A revert leaves the reverted-from revision blocked for refreshes of all snaps: twice the
    # share of reverts makes those refreshes (blocked retries) likelier.
    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), choice=st.one_of(st.none(), st.integers(0, 20)))
    def revert_again(self, index: int, choice: int | None) -> None:
        self.revert(index, choice)

    @precondition(lambda self: self.any_installed())
    @rule(index=st.integers(0, 1), channel=st.sampled_from(CHANNELS))
    def switch(self, index: int, channel: str) -> None:
        instance = self.pick_instance(index, installed=True)
        assert instance is not None
        self.do(Switch(instance, channel))
