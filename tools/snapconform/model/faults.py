"""What the model allows of a step whose change snapd was killed in (snapd, or the whole host).

An interrupted step is an indeterminate operation, as in Jepsen's histories: snapd may finish
the change after it comes back (it ends as the step would have: Done, or Error for a predicted
rollback, in the model's state after the step), or undo it (Undone or Error, in the state before
the step: only the hooks that ran leave their marks, as a hook-failure rollback leaves them).
Data that existed before the step is intact in both; nothing else is allowed.

What snapd promises, from its source (overlord/state/taskrunner.go run, 2.57.6 and 2.77.1): a
task's status is saved with the state on every unlock, and after a restart a task found Doing
runs its do handler again from the start (Undoing: its undo handler). So a run-hook task killed
mid-run runs its hook a second time (hookstate's handler keeps no record of a started run), and
a task seen Done through the REST API is Done on disk (the API reads the state under the same
lock whose release writes it). A hook may thus run twice, once: the one whose task had not
finished when snapd died. Tasks of the other instances' lanes are not concurrent here (one
instance per step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from snapconform.model import snapd_userdata as userdata
from snapconform.model.snapd_state import (
    ExpectedError,
    HookRun,
    InstanceState,
    Outcome,
    RevisionState,
    SnapdState,
)

__all__ = [
    "COPY_RERUN_ANOMALY",
    "KILL_HOW",
    "KILL_STATUSES",
    "Allowed",
    "KillPoint",
    "allowed_outcomes",
    "copy_rerun_leaves_target",
    "hooks_allowed",
    "undone_state",
]

KILL_STATUSES = ("Doing", "Done")  # the task boundary: it entered Doing, or its do finished
# SIGKILL of snapd.service; of the whole host (a power cut); or the store going down at the
# point and coming back a few seconds later (snapd is not killed: its download retries)
KILL_HOW = ("snapd", "power", "store")
MAX_DELAY_MS = 2000
# The known divergence (conformance/known.py) an undo that kept a re-run copy shows.
COPY_RERUN_ANOMALY = "killed-copy-leaves-new-revision-data"
STEP_KINDS = ("install", "refresh", "revert", "remove")


@dataclass(frozen=True)
class KillPoint:
    """Where a step's change is interrupted: when its task number `task` (modulo the change's
    number of tasks, which the model does not know) has entered `status`, `delay_ms` later."""

    task: int
    status: str = "Doing"
    delay_ms: int = 0
    how: str = "snapd"

    def __post_init__(self) -> None:
        if self.task < 0:
            raise ValueError(f"kill point task {self.task} must be 0 or more")
        if self.status not in KILL_STATUSES:
            raise ValueError(f"kill point status {self.status!r}: one of {KILL_STATUSES}")
        if not 0 <= self.delay_ms <= MAX_DELAY_MS:
            raise ValueError(f"kill point delay {self.delay_ms} ms: 0..{MAX_DELAY_MS}")
        if self.how not in KILL_HOW:
            raise ValueError(f"kill point how {self.how!r}: one of {KILL_HOW}")

    def describe(self) -> str:
        what = {"power": "power cut", "store": "store down"}.get(self.how, "snapd killed")
        delay = f" +{self.delay_ms} ms" if self.delay_ms else ""
        return f"{what} when task #{self.task} is {self.status}{delay}"


@dataclass(frozen=True)
class Allowed:
    """One outcome an interrupted step may have: the change's final statuses and the state."""

    name: str  # "completed" (snapd finished the change) or "undone" (it undid it)
    outcome: Outcome
    change_statuses: tuple[str, ...]
    # Set on an outcome snapd gives that breaks what it promises (a new revision's data left
    # after its undo): the key of the known divergence that records it. Matching it is not a
    # pass; the model keeps following the state it leaves.
    anomaly: str | None = None


def _marker_of(
    run: HookRun, before: InstanceState | None, after: InstanceState | None
) -> str | None:
    for instance in (before, after):
        revision = None if instance is None else instance.revision(run.revision)
        if revision is not None:
            plan = revision.hook(run.hook)
            return None if plan is None else plan.marker
    return None


def undone_state(
    before: SnapdState,
    after: SnapdState,
    instance: str,
    kind: str,
    hooks_ran: Sequence[HookRun],
) -> SnapdState:
    """The state after snapd undid an interrupted step of `kind` on `instance`, the hooks in
    `hooks_ran` having run: the state before, plus the markers those hooks wrote where an undo
    keeps them. SNAP_COMMON keeps every marker (it is shared, never rolled back); a revision's
    SNAP_DATA keeps one when the revision was there before and the undo does not put its old
    data back: a refresh's undo deletes the new revision's copy or restores a present one's from
    the trash, so only the old current revision (pre-refresh) keeps its marks; a revert or a
    remove copies nothing. An undone first install leaves nothing (SNAP_COMMON included)."""
    if kind not in STEP_KINDS:
        raise ValueError(f"step kind {kind!r}: one of {STEP_KINDS}")
    old = before.instance(instance)
    if old is None:
        return before
    new = after.instance(instance)
    data = dict(old.data)
    common = set(old.common)
    for run in hooks_ran:
        marker = _marker_of(run, old, new)
        if marker is None or run.instance != instance:
            continue
        common.add(marker)
        keeps = run.revision in data and (kind != "refresh" or run.revision == old.current)
        if keeps:
            data[run.revision] = data[run.revision] | {marker}
    undone: InstanceState = replace(old, data=tuple(data.items()), common=frozenset(common))
    return before.with_instance(undone)


def refresh_target(
    before: SnapdState, outcome: Outcome, instance: str, hooks_ran: Sequence[HookRun]
) -> str | None:
    """The new revision an interrupted refresh of `instance` went to, where the model can tell:
    the predicted current, else (an undone prediction) a revision a hook ran in that the
    sequence before did not hold; None when neither shows it."""
    old = before.instance(instance)
    if old is None:
        return None
    new = outcome.state.instance(instance)
    if new is not None and new.current not in old.revisions:
        return new.current
    ran_in = (r.revision for r in hooks_ran if r.instance == instance)
    return next((revision for revision in ran_in if revision not in old.revisions), None)


def copy_rerun_leaves_target(
    state: SnapdState, instance: str, target: str, copied: int | None = None
) -> SnapdState:
    """The undone state of a refresh to the new revision `target` whose copy-snap-data ran
    again after the kill: the first copy was made (whole or in part) before snapd died; the
    second run trashed it as TARGET.old and copied again; the undo removed TARGET and put the
    trash back (backend/snapdata.go copySnapDataDirectory, copydata.go UndoCopySnapData, alike
    in 2.57.6 and 2.77). So what the first run had copied stays beside the sequence: the first
    `copied` dirs (all when None) in snapd's order, each user's ~/snap/INSTANCE/TARGET, then
    the system's SNAP_DATA (snapd_userdata.copy_order), each holding what the current
    revision's held when it was copied (its markers after pre-refresh, as in the undone state;
    a copy cut short holds fewer files, which the observer does not see)."""
    found = state.instance(instance)
    if found is None or target in found.revisions:
        return state
    order = [*userdata.copy_order(state, instance, found.current), None]  # None: SNAP_DATA
    left = order if copied is None else order[:copied]
    if None in left:
        stray = (*found.stray_data, (target, found.data_of(found.current)))
        state = state.with_instance(replace(found, stray_data=stray))
    dirs = []
    for d in state.user_dirs:
        revisions = dict(d.revisions)
        if d.instance == instance and d.user in left:
            revisions[target] = revisions[found.current]
            d = replace(d, revisions=tuple(revisions.items()))
        dirs.append(d)
    return replace(state, user_dirs=tuple(dirs))


def copy_dirs(state: SnapdState, instance: str) -> int:
    """How many data dirs a refresh of `instance` copies (its users' and SNAP_DATA)."""
    found = state.instance(instance)
    if found is None:
        return 0
    return len(userdata.copy_order(state, instance, found.current)) + 1


def _copy_rerun(
    alternative: Allowed, instance: str, target: str, copied: int, total: int
) -> Allowed:
    outcome = alternative.outcome
    state = copy_rerun_leaves_target(outcome.state, instance, target, copied)
    part = "" if copied == total else f" ({copied} of {total} dirs)"
    why = (
        f"{outcome.why}; copy-snap-data ran again after the kill, so the undo put its first "
        f"copy back as {target}{part} (trash of copySnapDataDirectory restored by "
        "UndoCopySnapData)"
    )
    return Allowed(
        f"{alternative.name}, {target} copy restored{part}",
        replace(outcome, state=state, why=why),
        alternative.change_statuses,
        anomaly=COPY_RERUN_ANOMALY,
    )


def allowed_outcomes(
    before: SnapdState,
    outcome: Outcome,
    instance: str,
    kind: str,
    hooks_ran: Sequence[HookRun],
    unfinished: frozenset[str] = frozenset(),
) -> tuple[Allowed, ...]:
    """Every outcome the model allows for a step predicted as `outcome` whose change was
    interrupted: as predicted, or (when the prediction is a success) undone. `unfinished`:
    the kinds of the change's tasks not yet done when snapd died (they run again); a refresh's
    copy-snap-data among them gives each undone outcome a twin that keeps the new revision's
    data (copy_rerun_leaves_target), marked as the anomaly COPY_RERUN_ANOMALY: snapd's undo
    promises to delete that data."""
    completed = Allowed(
        "completed", outcome, ("Done",) if outcome.error is None else ("Error", "Undone")
    )
    if outcome.error is not None:
        # A predicted rollback already ends in its undone state; an interruption changes nothing
        # snapd promises about it (but what a re-run copy leaves, below).
        allowed: tuple[Allowed, ...] = (completed,)
    else:
        state = undone_state(before, outcome.state, instance, kind, hooks_ran)
        undone = Outcome(
            state,
            ExpectedError("interrupted-undone", r".*", pattern=True),
            tuple(hooks_ran),
            f"the interrupted change was undone: {instance} as before the step, with only the "
            "marks of the hooks that ran (overlord/state/taskrunner.go: a failed task aborts "
            "its lanes)",
        )
        allowed = (completed, Allowed("undone", undone, ("Undone", "Error")))
    target = refresh_target(before, outcome, instance, hooks_ran)
    if kind != "refresh" or "copy-snap-data" not in unfinished or target is None:
        return allowed
    twins = []
    for alternative in allowed:
        if alternative.outcome.error is None:
            continue  # completed: the refresh's cleanup cleared the trash
        total = copy_dirs(alternative.outcome.state, instance)
        twins += [
            _copy_rerun(alternative, instance, target, copied, total)
            for copied in range(total, 0, -1)
        ]
    return (*allowed, *twins)


def _without_one_repeat(
    observed: Sequence[tuple[str, str, str]], rerunnable: frozenset[str]
) -> list[list[tuple[str, str, str]]]:
    """`observed` itself and each way of dropping one immediate repeat of a rerunnable hook."""
    ways = [list(observed)]
    for index in range(1, len(observed)):
        if observed[index] == observed[index - 1] and observed[index][1] in rerunnable:
            ways.append([*observed[:index], *observed[index + 1 :]])
    return ways


def hooks_allowed(
    expected: Sequence[tuple[str, str, str]],
    observed: Sequence[tuple[str, str, str]],
    rerunnable: frozenset[str],
    *,
    prefix: bool = False,
) -> bool:
    """Whether `observed` hook runs (instance, hook, revision) are `expected` (or, with `prefix`,
    a prefix of it: an undone change stops early), allowing one hook in `rerunnable` (those whose
    task had not finished when snapd died) to have run twice in a row."""
    for way in _without_one_repeat(observed, rerunnable):
        if (way == list(expected[: len(way)])) if prefix else (way == list(expected)):
            return True
    return False


def step_kind(before: SnapdState, operation_kind: str, instance: str) -> str:
    """install / refresh / revert / remove for an operation kind of the conformance room
    (`install` onto an installed instance is a refresh)."""
    if operation_kind == "install":
        return "refresh" if before.instance(instance) is not None else "install"
    if operation_kind in STEP_KINDS:
        return operation_kind
    raise ValueError(f"operation {operation_kind!r} cannot be interrupted")


def sequence_revisions(state: SnapdState, instance: str) -> tuple[str, ...]:
    found = state.instance(instance)
    return () if found is None else found.revisions


def current_revision(state: SnapdState, instance: str) -> RevisionState | None:
    found = state.instance(instance)
    return None if found is None else found.current_revision
