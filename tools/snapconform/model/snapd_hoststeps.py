"""Host steps snapd must cope with: an app of the snap still running, a mount point blocked.

An app kept running (`while_app_runs`): the fixture app `mark MARKER` writes SNAP_DATA/MARKER
first; when the host has made that a FIFO, the app blocks in open(2) until someone reads it, so
it stays a live process of the snap (in snap run's scope `snap.NAME.mark.UUID.scope`, with
/snap/NAME/REV/bin/mark open) for as long as the host wants. Then, per snapd's source and what
2.57.6, 2.68.3 and 2.77.1 did (suites/conformance/test_host_steps.py):

- A local refresh (`snap install --dangerous FILE` of the instance) is refused before any
  change: refresh-app-awareness is on when unset (features/features.go
  featuresEnabledWhenUnset; from 2.7x the flag is gone and the check always runs), and
  softCheckNothingRunningForRefresh surfaces the BusySnapError of a manual refresh at once
  (overlord/snapstate/refresh.go, autorefresh.go inhibitRefresh): `snap "N" has running apps
  (mark), pids: P`, after the sideload's "cannot install snap file: ".
- With `--ignore-running` the refresh goes ahead (doInstall skips the check for
  Flags.IgnoreRunning) and the app runs on from the old revision; removing that revision then
  is removeInactiveRevision, with no running check either: its mount goes lazily, the app runs.
- A full `snap remove` is not refused and does not wait: no step of removeTasks looks at running
  apps (overlord/snapstate/snapstate.go); the mount unit's LazyUnmount=yes
  (systemd/systemd.go) detaches the busy mount. The app outlives the command; seconds later it
  had ended in some runs and ran on in others: the model does not say which (no notice).
- `snap remove --revision=R` of an inactive revision does not touch the app (it runs from
  current); of the active one it is the usual active-revision refusal.
- `snap remove --terminate` (2.65+: cmd/snap/cmd_snap_op.go, removeTasks' kill-snap-apps task
  after the remove hook) removes the snap and kills the app; before 2.65 the CLI's parser
  refuses the flag: ``unknown flag `terminate'``, exit status 64.

A blocked mount point before a first `snap install --dangerous` (`install_over_blocked`): the
"Mount snap" task's SetupSnap does os.MkdirAll(/snap/NAME/REV) (overlord/snapstate/backend/
setup.go), which fails with ENOTDIR on a regular file at /snap/NAME/REV or at /snap/NAME; the
install is undone and its cleanup deletes what was there: SetupSnap's deferred RemoveSnapFiles
does os.RemoveAll(/snap/NAME/REV) and doMountSnap's cleanup RemoveSnapDir does
os.Remove(/snap/NAME) (overlord/snapstate/handlers.go), which removes a file as readily as an
empty directory. A non-empty directory at /snap/NAME/REV is mounted over (its files hidden) and
the full remove's RemoveSnapFiles os.RemoveAll deletes them with the mount point.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from snapconform.model import snapd
from snapconform.model import snapd_text as text
from snapconform.model.snapd_state import (
    ExpectedError,
    ModelGap,
    Outcome,
    SnapdState,
    SnapFile,
)

__all__ = [
    "APP_ENDED",
    "APP_RUNNING",
    "BLOCKERS",
    "TERMINATE_SINCE",
    "after_remove_leftover",
    "held_app_notice",
    "hold_app",
    "install_over_blocked",
    "mount_dir_listing",
    "remove_terminate",
    "while_app_runs",
]

# `snap remove --terminate` and its kill-snap-apps task (cmd/snap/cmd_snap_op.go, snapstate.go
# removeTasks; first tagged in 2.65).
TERMINATE_SINCE = (2, 65)
TERMINATE_UNKNOWN = "unknown flag `terminate'"
PARSER_EXIT = 64  # go-flags parse errors (cmd/snap/main.go)
TERMINATE_WITH_REVISION = "terminate can only be specified when revision is unset"

# What the held app is, a few seconds after the step (the operation waits up to 5 s).
APP_RUNNING = "running"
APP_ENDED = "ended"

# What the host puts where snapd will mount the first revision (x1) of NAME.
FILE_AT_REVISION = "file-at-revision"  # /snap/NAME/x1 a regular file
FILE_AT_SNAP_DIR = "file-at-snap-dir"  # /snap/NAME a regular file
DIR_WITH_FILE = "dir-with-file"  # /snap/NAME/x1 a directory holding a file
BLOCKERS = (FILE_AT_REVISION, FILE_AT_SNAP_DIR, DIR_WITH_FILE)

# The steps the model knows the effect of while an app runs.
STEP_REMOVE = "remove"  # snap remove NAME [--revision=R]
STEP_LOCAL_REFRESH = "install"  # snap install --dangerous FILE of the running instance
STEP_REMOVE_TERMINATE = "remove-terminate"
STEP_LOCAL_REFRESH_IGNORING = "install-ignore-running"  # ... with --ignore-running
STEPS = (STEP_REMOVE, STEP_LOCAL_REFRESH, STEP_REMOVE_TERMINATE, STEP_LOCAL_REFRESH_IGNORING)


def held_app_notice(status: str) -> str:
    """The line the operation prints about the held app after the step."""
    return f"held app: {status}"


def hold_app(state: SnapdState, instance: str, marker: str) -> Outcome:
    """The host makes SNAP_DATA/MARKER a FIFO and starts `snap run INSTANCE.mark MARKER`: the
    app blocks opening it, so the FIFO is in current's SNAP_DATA and SNAP_COMMON gets nothing;
    `snap run` made root's ~/snap/INSTANCE/REV as for any run (snapd.run_app)."""
    found = state.instance(instance)
    if found is None or not found.active:
        raise ModelGap(f"an app of {instance} kept running needs it installed and enabled")
    ran = snapd.run_app(state, instance, marker)
    if ran.error is not None:
        raise ModelGap(f"snap run {instance}.mark was refused: {ran.error.message}")
    after = ran.state.instance(instance)
    assert after is not None
    return replace(
        ran,
        state=ran.state.with_instance(replace(after, common=found.common)),
        why=f"the app of {instance} waits on the FIFO {marker} in {found.current}'s SNAP_DATA",
    )


def while_app_runs(
    state: SnapdState,
    instance: str,
    marker: str,
    step_kind: str,
    step: Callable[[SnapdState], Outcome],
    then: Sequence[tuple[str, Callable[[SnapdState], Outcome]]] = (),
) -> Outcome:
    """``step`` (an operation of kind ``step_kind`` on ``instance``), then each of ``then``
    (kind, step), while one app of the instance, started from its current revision, is held
    running; the outcome's notice says what became of the app after the last step."""
    held = hold_app(state, instance, marker)
    before = held.state.instance(instance)
    assert before is not None
    outcome, status = _step_while_running(held.state, instance, before.current, step_kind, step)
    runs, notices, whys = list(outcome.hooks_run), list(outcome.notices), [outcome.why]
    for kind, later in then:
        if outcome.error is not None:
            raise ModelGap("a step after a refused one while the app runs (the run stops there)")
        outcome, status = _step_while_running(outcome.state, instance, before.current, kind, later)
        runs += outcome.hooks_run
        notices += outcome.notices
        whys.append(outcome.why)
    combined = replace(outcome, hooks_run=tuple(runs), notices=tuple(notices), why="; ".join(whys))
    return _with_app(combined, held, status)


def _step_while_running(
    state: SnapdState,
    instance: str,
    app_revision: str,
    step_kind: str,
    step: Callable[[SnapdState], Outcome],
) -> tuple[Outcome, str | None]:
    """One step while the app (of ``app_revision``) runs, and the app's status after it (None:
    not predicted)."""
    if step_kind not in STEPS:
        raise ModelGap(f"what {step_kind!r} does while an app runs is not in the model")
    before = state.instance(instance)
    assert before is not None
    outcome = step(state)
    if step_kind == STEP_LOCAL_REFRESH_IGNORING:
        why = "; --ignore-running skips the running-apps check (snapstate.go doInstall)"
        return replace(outcome, why=outcome.why + why), APP_RUNNING
    if step_kind == STEP_LOCAL_REFRESH:
        if outcome.error is not None:  # refused for its own reason, before the running check
            return outcome, APP_RUNNING
        if outcome.state.instance(instance) is before:
            raise ModelGap("a refresh of another instance while this one's app runs")
        pattern = re.escape(
            text.INSTALL_FILE_PREFIX + f'snap "{instance}" has running apps (mark), pids: '
        )
        busy = ExpectedError("busy-snap", pattern + r"\d+", pattern=True)
        refused = Outcome(
            state,
            busy,
            (),
            f"refused before any change: {app_revision}'s app is running and "
            "refresh-app-awareness surfaces a manual refresh's BusySnapError (features.go: on "
            "when unset; refresh.go softCheckNothingRunningForRefresh, inhibitRefresh)",
        )
        return refused, APP_RUNNING
    gone = outcome.error is None and outcome.state.instance(instance) is None
    if step_kind == STEP_REMOVE and gone:
        why = (
            "; no remove task looks at running apps (snapstate.go removeTasks) and the mount "
            "unit unmounts lazily (systemd.go LazyUnmount=yes). What becomes of the app is "
            "not predicted: seconds later it had ended in some runs and ran on in others "
            "(2.57.6, 2.68.3, 2.77.1); the model has no rule for it"
        )
        return replace(outcome, why=outcome.why + why), None
    if step_kind == STEP_REMOVE:
        after = outcome.state.instance(instance)
        own = outcome.error is None and after is not None and after.revision(app_revision) is None
        why = (
            f"; {app_revision}, the app's own revision, is unmounted lazily: the app runs on"
            if own
            else "; the app's revision stays"
        )
        return replace(outcome, why=outcome.why + why), APP_RUNNING
    return outcome, APP_ENDED if gone else APP_RUNNING


def _with_app(outcome: Outcome, held: Outcome, status: str | None) -> Outcome:
    """``outcome`` after the hold; ``status`` None: what the app does is not checked."""
    runs = held.hooks_run + outcome.hooks_run
    notices = outcome.notices if status is None else (held_app_notice(status), *outcome.notices)
    return replace(
        outcome,
        hooks_run=runs,
        notices=notices,
        why=f"{held.why}; {outcome.why}",
    )


def remove_terminate(state: SnapdState, instance: str, revision: str | None = None) -> Outcome:
    """`snap remove --terminate INSTANCE [--revision=R]`: the full remove with kill-snap-apps
    after the remove hook (2.65+), or the CLI's parser refusing the flag."""
    if state.snapd_version < TERMINATE_SINCE:
        return Outcome(
            state,
            ExpectedError("unknown-flag", TERMINATE_UNKNOWN, exit_code=PARSER_EXIT),
            (),
            "refused by the CLI's parser: --terminate is first in 2.65 (cmd/snap/cmd_snap_op.go)",
        )
    if revision is not None:
        return Outcome(
            state,
            ExpectedError("terminate-revision", TERMINATE_WITH_REVISION),
            (),
            "refused by the daemon before it looks at the snap (daemon/api_snaps.go "
            "snapInstruction.validate)",
        )
    outcome = snapd.remove(state, instance)
    return replace(
        outcome,
        why=outcome.why + "; kill-snap-apps after the remove hook ends its apps (snapstate.go "
        "removeTasks, handlers.go doKillSnapApps)",
    )


def install_over_blocked(
    state: SnapdState, snap: SnapFile, blocker: str, file_path: str = "FILE", revision: str = "x1"
) -> Outcome:
    """`snap install --dangerous FILE` of ``snap`` (a first install, or a local refresh) after
    the host put ``blocker`` where the new revision ``revision`` mounts (/snap/NAME/REV); the
    notice says what is left at /snap/NAME."""
    if blocker not in BLOCKERS:
        raise ValueError(f"blocker {blocker!r}: one of {', '.join(BLOCKERS)}")
    existing = state.instance(snap.name)
    if existing is not None and blocker == FILE_AT_SNAP_DIR:
        raise ValueError(f"/snap/{snap.name} is the installed snap's: no file can be there")
    outcome = snapd.install(state, snap, file_path=file_path)
    after = outcome.state.instance(snap.name)
    if outcome.error is None:
        assert after is not None
        if after.current != revision:
            raise ModelGap(f"a blocker at {revision}, which this install does not mount")
    if outcome.error is None and blocker != DIR_WITH_FILE:
        mount_dir = f"/snap/{snap.name}" + (f"/{revision}" if blocker == FILE_AT_REVISION else "")
        message = text.change_error(
            f'Mount snap "{snap.name}" (unset)', f"mkdir {mount_dir}: not a directory"
        )
        what = "install" if existing is None else "refresh"
        outcome = Outcome(
            state,
            ExpectedError("mount-blocked", message),
            (),
            f"Mount snap fails: os.MkdirAll finds a file at {mount_dir} (backend/setup.go "
            f"SetupSnap); the {what} is undone before any data or hook, and the cleanup "
            "(RemoveSnapFiles' RemoveAll of the mount dir, handlers.go RemoveSnapDir's "
            "os.Remove of /snap/NAME, which fails while another revision is there) deletes "
            "the host's file",
        )
    elif outcome.error is None:
        outcome = replace(
            outcome,
            why=outcome.why + "; the squashfs is mounted over the directory, its file hidden",
        )
    leftover = mount_dir_listing(outcome.state, snap.name)
    return replace(outcome, notices=(_leftover_notice(snap.name, leftover), *outcome.notices))


def _leftover_notice(name: str, leftover: str) -> str:
    return f"left at /snap/{name}: {leftover}"


def mount_dir_listing(state: SnapdState, name: str) -> str:
    """`ls -A /snap/NAME`, sorted (`-`: /snap/NAME is gone): `current` and a mount point per
    revision; after an undone first install nothing, the host's file included."""
    found = state.instance(name)
    if found is None:
        return "-"
    return " ".join(sorted(["current", *found.revisions]))


def after_remove_leftover(blocker: str) -> str:
    """`ls -A /snap/NAME` after the full remove of a snap installed over ``blocker``: the
    RemoveAll of the mount point takes the directory's hidden file with it (backend/setup.go
    RemoveSnapFiles)."""
    if blocker != DIR_WITH_FILE:
        raise ValueError(f"no snap is installed over {blocker}")
    return "-"
