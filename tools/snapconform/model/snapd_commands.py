"""Commands that name several snaps or none, and `snap run --hook`.

- `snap install --dangerous FILE...`: one change with a lane per snap (daemon/api_sideload_n_try.go
  sideloadManySnaps, snapstate.InstallPathMany); a lane that fails is undone alone, the others
  stay done, and the CLI prints the failed tasks only (observed on 2.57.6: one lane's
  post-refresh failed, the other lane's refresh stayed).
- `snap remove NAME...`: one change; names not installed are reported `NAME not installed`
  after the removed ones and the command exits 0 (observed on 2.57.6). When none of them is
  installed the change carries no `snap-names`; from 2.65 the CLI reads that as an error,
  `data entry not found` (client.ErrNoData), exit 1 (cmd/snap/cmd_snap_op.go
  changedSnapsFromChange, made for components; observed on 2.68.3).
- `snap revert` with no name: the CLI's argument parser refuses it, exit status 64
  (go-flags' ErrRequired; observed).
- `snap run --hook=HOOK NAME`: runs the current revision's hook outside any change, as root
  (cmd/snap/cmd_run.go snapRunHook): `cannot find hook %q in %q` when the revision has no such
  hook; a snap with no current revision gets the readlink error.
"""

from __future__ import annotations

from snapconform.model import snapd
from snapconform.model import snapd_text as text
from snapconform.model import snapd_userdata as userdata
from snapconform.model.snapd_changes import HookLog
from snapconform.model.snapd_state import ExpectedError, ModelGap, Outcome, SnapdState, SnapFile

__all__ = [
    "REMOVE_NONE_IS_AN_ERROR_SINCE",
    "install_many",
    "remove_many",
    "revert_without_name",
    "run_hook",
]

# `snap remove A B` with neither installed: from 2.65 `data entry not found`, exit 1 (above).
REMOVE_NONE_IS_AN_ERROR_SINCE = (2, 65)

# Refusals that happen inside a lane's change (the other lanes go on); any other refusal would
# be made before the change exists, for the whole command: the model does not predict that.
_LANE_FAILURES = ("hook-failed", "service-start-failed")


def install_many(state: SnapdState, files: tuple[tuple[SnapFile, str], ...]) -> Outcome:
    """`snap install --dangerous FILE...` of snaps with different names (FILE's path given)."""
    names = [snap.name for snap, _ in files]
    if len(files) < 2 or len(set(names)) != len(names):
        raise ModelGap("install_many needs two or more files of different snaps")
    hooks, service_runs, discarded, failures, whys = [], [], [], [], []
    for snap, path in files:
        outcome = snapd.install(state, snap, file_path=path)
        if outcome.error is not None and outcome.error.kind not in _LANE_FAILURES:
            raise ModelGap(f"{snap.name}: a refusal before the change ({outcome.error.kind})")
        if outcome.error is not None:
            if outcome.error.pattern or len(failures) > 0:
                raise ModelGap("the model has no text for this many-snap failure")
            failures.append(outcome.error)
        state = outcome.state
        hooks += outcome.hooks_run
        service_runs += outcome.service_runs
        discarded += outcome.discarded
        whys.append(outcome.why)
    error = failures[0] if failures else None
    return Outcome(
        state,
        error,
        tuple(hooks),
        "one change, a lane per snap, each undone alone (snapstate.InstallPathMany): "
        + "; ".join(whys),
        tuple(discarded),
        service_runs=tuple(service_runs),
    )


def remove_many(state: SnapdState, names: tuple[str, ...]) -> Outcome:
    """`snap remove NAME...`: the installed ones removed, the others named; exit 0."""
    if len(names) < 2 or len(set(names)) != len(names):
        raise ModelGap("remove_many needs two or more different names")
    hooks, discarded, whys, missing = [], [], [], []
    for name in names:
        if state.instance(name) is None:
            missing.append(name)
            whys.append(f"{name} is not installed: named after the removed ones")
            continue
        outcome = snapd.remove(state, name)
        if outcome.error is not None:
            raise ModelGap(f"{name}: a refused remove among several")
        state = outcome.state
        hooks += outcome.hooks_run
        discarded += outcome.discarded
        whys.append(outcome.why)
    if len(missing) == len(names) and state.snapd_version >= REMOVE_NONE_IS_AN_ERROR_SINCE:
        return Outcome(
            state,
            ExpectedError("no-data", "data entry not found"),
            (),
            "none of them is installed, so the change has no snap-names and the CLI fails "
            "reading them (cmd/snap/cmd_snap_op.go changedSnapsFromChange, 2.65+)",
        )
    notices = tuple(f"{name} not installed" for name in missing)
    return Outcome(state, None, tuple(hooks), "; ".join(whys), tuple(discarded), notices=notices)


def revert_without_name(state: SnapdState) -> Outcome:
    """`snap revert` alone: refused by the CLI's parser, snapd never asked."""
    return Outcome(
        state,
        ExpectedError("usage", "the required argument `<snap>` was not provided", exit_code=64),
        (),
        "refused by the snap command's argument parser (go-flags: a required positional "
        "argument), exit status 64",
    )


def run_hook(state: SnapdState, instance: str, hook: str) -> Outcome:
    """`snap run --hook=HOOK INSTANCE` as root."""
    found = state.instance(instance)
    if found is None:
        return Outcome(
            state,
            ExpectedError("not-installed", text.RUN_NOT_INSTALLED.format(name=instance)),
            (),
            f"refused: {instance} has no current revision (snap/info.go ReadCurrentInfo)",
        )
    if not found.active:
        raise ModelGap(f"`snap run --hook` of the disabled snap {instance}")
    plan = found.current_revision.hook(hook)
    if plan is None:
        return Outcome(
            state,
            ExpectedError(
                "no-such-hook",
                f"cannot find hook {text.go_quote(hook)} in {text.go_quote(instance)}",
            ),
            (),
            f"refused: {found.current} has no {hook} hook (cmd/snap/cmd_run.go snapRunHook)",
        )
    if plan.fails_with is not None:
        raise ModelGap("the model has no text for a failing hook run by `snap run --hook`")
    log = HookLog(instance)
    log.run(found.current_revision, hook)
    updated = state.with_instance(log.mark(found))
    runs = tuple(log.runs)
    return Outcome(
        userdata.after_hooks(updated, runs),
        None,
        runs,
        f"ran {hook} of {instance} {found.current} by hand, outside any change, as root "
        "(cmd/snap/cmd_run.go snapRunHook)",
    )
