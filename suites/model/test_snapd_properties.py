"""Properties of the snapd model over random operation sequences (facts §§4-8).

Each step is checked against rules stated independently of the model's code: what a refused
request may change, what a revert may touch, which data may disappear and how, and the bounds
garbage collection keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from snapconform.model.snapd import (
    HookPlan,
    InstanceState,
    Outcome,
    SnapdState,
    SnapFile,
    install,
    new_state,
    refresh,
    refresh_revision,
    remove,
    revert,
    run_app,
    set_config,
)

NAME = "hookapp"
INSTANCES = (NAME, f"{NAME}_a", f"{NAME}_b")
REVISIONS = tuple(f"x{n}" for n in range(1, 7))
# Mostly readable steps; "0*" is invalid (a refused install).
EPOCHS = (None,) * 8 + ("0", "1*", "1*", "1", "2*", "2", "0*")
HOOKS = ("install", "configure", "pre-refresh", "post-refresh", "remove", "check-health")
RETAINS = ("2", "3", "4", "1", "abc", "")
# Refusals decided before a change starts: the state must come back unchanged.
HOOK_FAILED = "hook-failed"


@st.composite
def hook_plans(draw: st.DrawFn) -> tuple[HookPlan, ...]:
    present = draw(st.lists(st.sampled_from(HOOKS), unique=True, max_size=len(HOOKS)))
    # Failures are rare enough that sequences get somewhere.
    return tuple(
        HookPlan(hook, draw(st.sampled_from((None,) * 24 + ("boom", "")))) for hook in present
    )


snap_files = st.builds(
    SnapFile,
    name=st.just(NAME),
    version=st.sampled_from(("1.0", "2.0", "3.0")),
    epoch_yaml=st.sampled_from(EPOCHS),
    hooks=hook_plans(),
)


@dataclass(frozen=True)
class Op:
    kind: str
    instance: str = NAME
    snap: SnapFile | None = None
    revision: str | None = None
    value: str = ""
    purge: bool = False
    pick: int | None = None  # choose the revision at this index of the sequence (modulo)

    def target(self, state: SnapdState) -> str | None:
        instance = state.instance(self.instance)
        if self.pick is None or instance is None:
            return self.revision
        return instance.revisions[self.pick % len(instance.revisions)]

    def apply(self, state: SnapdState) -> Outcome:
        revision = self.target(state)
        if self.kind == "install":
            assert self.snap is not None
            name = None if self.instance == NAME else self.instance
            return install(state, self.snap, name=name)
        if self.kind == "refresh":
            if revision is None:
                return refresh(state, self.instance)
            return refresh_revision(state, self.instance, revision)
        if self.kind == "revert":
            return revert(state, self.instance, revision)
        if self.kind == "remove":
            return remove(state, self.instance, revision, purge=self.purge)
        if self.kind == "retain":
            return set_config(state, "refresh.retain", self.value)
        if self.kind == "parallel":
            return set_config(state, "experimental.parallel-instances", self.value)
        assert self.kind == "run"
        return run_app(state, self.instance, self.value)


# Weighted towards one instance and towards installs, so sequences grow long enough to refresh,
# revert and collect garbage.
instances = st.sampled_from((NAME, NAME, NAME, NAME, *INSTANCES))
revisions = st.sampled_from(REVISIONS)
KINDS = ("install",) * 8 + ("refresh",) * 3 + ("revert",) * 3 + ("remove",) * 2
KINDS += ("retain", "parallel", "run", "run")


@st.composite
def ops(draw: st.DrawFn) -> Op:
    kind = draw(st.sampled_from(KINDS))
    instance = draw(instances)
    if kind == "install":
        return Op(kind, instance, snap=draw(snap_files))
    if kind in ("refresh", "revert", "remove"):
        # Mostly a revision the instance has, sometimes any, sometimes none (revert to the
        # previous one, refresh from the store, a full remove).
        how = draw(st.sampled_from(("present",) * 4 + ("literal", "none")))
        return Op(
            kind,
            instance,
            revision=draw(revisions) if how == "literal" else None,
            pick=draw(st.integers(0, 5)) if how == "present" else None,
            purge=draw(st.booleans()),
        )
    if kind == "retain":
        return Op(kind, value=draw(st.sampled_from(RETAINS)))
    if kind == "parallel":
        return Op(kind, value=draw(st.sampled_from(("true", "false"))))
    return Op(kind, instance, value=draw(st.sampled_from("abcd")))


@st.composite
def op_sequences(draw: st.DrawFn) -> list[Op]:
    """Starts with an install of the main instance (the interesting runs need one)."""
    first = Op("install", NAME, snap=draw(snap_files))
    return [first, *draw(st.lists(ops(), max_size=20))]


versions = st.sampled_from([(2, 57), (2, 68), (2, 71), (2, 77)])


def without(instance: InstanceState, revisions: tuple[str, ...]) -> InstanceState | None:
    kept = tuple(e for e in instance.sequence if e.revision not in revisions)
    if not kept:
        return None
    return InstanceState(
        instance.name,
        instance.snap_name,
        kept,
        instance.current,
        tuple((rev, instance.data_of(rev)) for rev in (e.revision for e in kept)),
        instance.common,
    )


def is_refresh(op: Op, before: SnapdState) -> bool:
    """A sideload over an existing instance or `snap refresh --revision`."""
    if op.kind == "install":
        return before.instance(op.instance) is not None
    return op.kind == "refresh" and op.target(before) is not None


def check_step(op: Op, before: SnapdState, outcome: Outcome, retain_lowered: bool) -> None:
    after = outcome.state
    old = before.instance(op.instance)
    new = after.instance(op.instance)
    error = outcome.error

    # Other instances are never touched by an operation on one instance.
    if op.kind not in ("retain", "parallel"):
        for other in before.instances:
            if other.name != op.instance:
                assert after.instance(other.name) == other
    # The current revision is always in the sequence; x-numbers in a sequence are unique.
    for instance in after.instances:
        assert instance.current in instance.revisions
        assert len(set(instance.revisions)) == len(instance.revisions)
        assert {rev for rev, _ in instance.data} == set(instance.revisions)

    # A refused request (no change started) leaves the state exactly as it was.
    if error is not None and error.kind != HOOK_FAILED:
        assert after == before
        assert outcome.hooks_run == ()
        assert outcome.discarded == ()
    # A failed change is undone; only revisions discarded before the failure stay gone.
    if error is not None and error.kind == HOOK_FAILED:
        expected = None if old is None else without(old, outcome.discarded)
        assert new == expected

    # Discards are documented: whatever revision disappeared is listed, and only those.
    old_revisions = set(old.revisions) if old else set()
    new_revisions = set(new.revisions) if new else set()
    assert old_revisions - new_revisions == set(outcome.discarded)
    if outcome.discarded:
        assert op.kind in ("install", "refresh", "remove")
    # Everyone else keeps their data, except the refresh target (a copy of current's) and the
    # current revision the app wrote into.
    for revision in old_revisions & new_revisions:
        assert old is not None and new is not None
        kept = new.data_of(revision)
        if outcome.ok and is_refresh(op, before) and revision == new.current:
            assert kept == old.data_of(old.current)
        elif outcome.ok and op.kind == "run" and revision == old.current:
            assert kept == old.data_of(revision) | {op.value}
        else:
            assert kept == old.data_of(revision)
    # SNAP_COMMON never loses a marker while the instance stays.
    if old is not None and new is not None:
        assert old.common <= new.common

    # A revert touches nothing but "current": no data, no sequence, nothing discarded.
    if op.kind == "revert" and old is not None:
        assert new is not None
        assert new.sequence == old.sequence and new.data == old.data and new.common == old.common

    # After a refresh the sequence holds at most refresh.retain revisions (one more when
    # refresh.retain was lowered earlier and the target was already present).
    if outcome.ok and is_refresh(op, before):
        assert new is not None
        bound = after.retain + (1 if retain_lowered else 0)
        assert len(new.sequence) <= bound, (new.revisions, after.retain)

    # Hooks run in the instance operated on, in revisions it has or had.
    for run in outcome.hooks_run:
        assert run.instance == op.instance
    if outcome.hooks_run and outcome.hooks_run[0].hook == "pre-refresh":
        assert old is not None and outcome.hooks_run[0].revision == old.current


@settings(max_examples=300, deadline=None)
@given(version=versions, parallel=st.booleans(), sequence=op_sequences())
def test_operation_sequences_keep_snapds_rules(
    version: tuple[int, int], parallel: bool, sequence: list[Op]
) -> None:
    state = new_state(snapd_version=version)
    if parallel:
        state = set_config(state, "experimental.parallel-instances", "true").state
    retain_lowered = False
    for op in sequence:
        outcome = op.apply(state)
        check_step(op, state, outcome, retain_lowered)
        if outcome.ok and outcome.state.retain < state.retain:
            retain_lowered = True
        state = outcome.state


@settings(max_examples=200, deadline=None)
@given(sequence=op_sequences(), marker=st.sampled_from("wxyz"))
def test_a_revert_never_changes_any_revisions_data(sequence: list[Op], marker: str) -> None:
    state = new_state()
    for op in sequence:
        state = op.apply(state).state
    for instance in state.instances:
        state = run_app(state, instance.name, marker).state
        before = state.instance(instance.name)
        assert before is not None
        for target in (None, *before.revisions):
            after = revert(state, instance.name, target).state.instance(instance.name)
            assert after is not None
            assert after.data == before.data and after.common == before.common


@settings(max_examples=200, deadline=None)
@given(files=st.lists(snap_files, min_size=1, max_size=12), retain=st.sampled_from("2345"))
def test_refreshes_at_a_constant_retain_never_exceed_it(files: list[SnapFile], retain: str) -> None:
    state = set_config(new_state(), "refresh.retain", retain).state
    for snap in files:
        outcome = install(state, snap)
        state = outcome.state
        instance = state.instance(NAME)
        if instance is not None:
            assert len(instance.sequence) <= int(retain)
            assert instance.current == instance.revisions[-1] or not outcome.ok
