"""Users' data: ~USER/snap/INSTANCE/{REV,common,current}, and what each change does to it.

Facts (canonical/snapd; 2.57.6, 2.68.3 and 2.77.1 unless a *_SINCE constant says otherwise):
- `snap run` (apps, and hooks through `snap run --hook`) creates ~/snap/INSTANCE/REV and
  ~/snap/INSTANCE/common for the user it runs as, and points ~/snap/INSTANCE/current at REV,
  on the host, before snap-confine starts (cmd/snap/cmd_run.go createUserDataDirs and
  createOrUpdateUserDataSymlink). Hooks run as root, so every hook run makes root's. Nothing
  else moves a user's `current`: a refresh or revert leaves it where the last run put it.
- Inside the snap's namespace snap-confine makes $SNAP_USER_DATA again and dies when it cannot
  outside /home and /root (cmd/snap-confine/user-support.c setup_user_data; the text below).
- snapd finds users' data by globbing, not from the users it knows: `/home/*/snap/INSTANCE/REV`
  and /root/snap/INSTANCE/REV (overlord/snapstate/backend/snapdata.go snapDataDirs and
  snapCommonDataDirs); from 2.62 also `HOMEDIR/*/...` for each `homedirs` entry (dirs.go
  SetSnapHomeDirs, DataHomeGlobs). A home elsewhere is never copied, rolled back or removed.
- Refresh: each found OLD directory is copied to NEW (what NEW had is trashed as NEW.old first);
  a user without OLD keeps whatever NEW it had (backend/copydata.go copySnapData,
  copySnapDataDirectory). Undo: every found NEW directory is removed and the trash put back
  (UndoCopySnapData, untrashData); an undone first install also removes the common dirs.
- Revert copies nothing. Discarding a revision (garbage collection, `remove --revision`, a full
  remove) removes its found directories; a full remove also the found common dirs
  (RemoveSnapData, RemoveSnapCommonData), and from 2.62 the `current` link and the emptied
  ~/snap/INSTANCE itself (RemoveSnapDataDir with snapBaseDataDirs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePosixPath

from snapconform.model import snapd_text as text
from snapconform.model.snapd_state import (
    ExpectedError,
    HookRun,
    InstanceState,
    ModelGap,
    Outcome,
    RevisionState,
    SnapdState,
    UserAccount,
    UserSnapDir,
)

__all__ = [
    "HOMEDIRS_COPY_SINCE",
    "HOMEDIRS_SINCE",
    "REMOVE_USER_SNAP_DIR_SINCE",
    "ROOT",
    "aborted_before_copy",
    "account",
    "accounts",
    "add_user",
    "after_fresh_install",
    "after_hooks",
    "after_refresh",
    "after_remove",
    "after_remove_revision",
    "app_environment",
    "confine_refusal",
    "found_by_snapd",
    "run_as",
    "set_homedirs_option",
    "settled_runs",
    "user_dir",
]

ROOT = UserAccount("root", "/root", 0)
HOME_ROOT = "/home"
# The `homedirs` system option (overlord/configstate/configcore/homedirs.go, first in 2.58).
HOMEDIRS_SINCE = (2, 58)
# Data copy, rollback and removal glob the homedirs too (snapdata.go, snapd commit a282087172).
HOMEDIRS_COPY_SINCE = (2, 62)
# A full remove deletes ~/snap/INSTANCE/current and ~/snap/INSTANCE (snapd commit bc7f9eccc2).
REMOVE_USER_SNAP_DIR_SINCE = (2, 62)
# snap-confine's refusal of a home outside /home: reworded in 2.59, new link in 2.72.
CONFINE_TEXT_NEEDS_CONFIGURATION_SINCE = (2, 59)
CONFINE_TEXT_NEW_LINK_SINCE = (2, 72)
# Prefixes under which snap-confine can always make $SNAP_USER_DATA (user-support.c).
_CONFINE_PREFIXES = ("/home/", "/root/")


def accounts(state: SnapdState) -> tuple[UserAccount, ...]:
    return (ROOT, *state.users)


def account(state: SnapdState, name: str) -> UserAccount | None:
    return next((user for user in accounts(state) if user.name == name), None)


def add_user(state: SnapdState, user: UserAccount) -> Outcome:
    """`useradd` on the host: snapd is not involved; the model learns where the home is."""
    known = account(state, user.name)
    if known is not None and known != user:
        raise ValueError(f"user {user.name} already has home {known.home}, not {user.home}")
    users = state.users if known else (*state.users, user)
    return Outcome(
        replace(state, users=users),
        None,
        (),
        f"user {user.name} with home {user.home}: snapd does not track users; it finds their "
        "data by globbing home directories (backend/snapdata.go snapDataDirs)",
    )


# configcore/homedirs.go invalidPrefixes: no home root under these.
_RESERVED_PREFIXES = (
    "/bin/",
    "/boot/",
    "/dev/",
    "/etc/",
    "/lib/",
    "/proc/",
    "/root/",
    "/sbin/",
    "/sys/",
    "/tmp/",  # noqa: S108
)


def _known_directories(state: SnapdState) -> set[str]:
    """Directories the model knows exist: /home, and each user's home and its parent."""
    known = {HOME_ROOT}
    for user in state.users:
        known |= {user.home.rstrip("/"), str(PurePosixPath(user.home).parent)}
    return known


def _homedirs_problem(state: SnapdState, value: str) -> str | None:
    """configcore/homedirs.go validateHomedirsConfiguration, in its order, per entry."""
    for entry in value.split(","):
        if not entry.startswith("/"):
            return f"path {text.go_quote(entry)} is not absolute"
        # (ValidateNoAppArmorRegexp: the suites use plain paths only)
        slashed = entry if entry.endswith("/") else entry + "/"
        for prefix in _RESERVED_PREFIXES:
            if slashed.startswith(prefix):
                return (
                    f"path {text.go_quote(slashed)} uses reserved root directory "
                    f"{text.go_quote(prefix)}"
                )
        if slashed.rstrip("/") not in _known_directories(state):
            raise ModelGap(f"homedirs entry {entry}: the model does not know whether it exists")
    return None


def set_homedirs_option(state: SnapdState, value: str | None) -> Outcome:
    """`snap set system homedirs=DIR[,DIR]` (None: unset)."""
    if state.snapd_version < HOMEDIRS_SINCE:
        message = text.system_config_error('cannot set "core.homedirs": unsupported system option')
        return Outcome(
            state,
            ExpectedError("unsupported-option", message),
            (),
            "refused: homedirs is a system option from 2.58 (configcore/homedirs.go); before "
            "that configcore knows no such key, set or unset (runwithstate.go)",
        )
    if value:
        problem = _homedirs_problem(state, value)
        if problem is not None:
            return Outcome(
                state,
                ExpectedError("invalid-homedirs", text.system_config_error(problem)),
                (),
                f"refused: {problem} (configcore/homedirs.go validateHomedirsConfiguration)",
            )
    dirs = tuple(str(PurePosixPath(d)) for d in (value or "").split(",") if d)
    return Outcome(
        replace(state, homedirs=dirs),
        None,
        (),
        f"homedirs is now {','.join(dirs) or 'unset'}: snap-confine brings those homes into "
        "snaps' namespaces (2.58+) and data copies glob them (2.62+; dirs.go SetSnapHomeDirs)",
    )


# Environment variables snapd adds over the releases (snap/snapenv/snapenv.go).
SNAP_UID_SINCE = (2, 60)
SNAP_APP_NAME_SINCE = (2, 77)


def app_environment(
    state: SnapdState, user: str, instance: InstanceState
) -> tuple[tuple[str, str | None], ...]:
    """What the fixture app `mark` sees run as ``user`` (snap/snapenv/snapenv.go basicEnv and
    userEnv): SNAP, SNAP_DATA, SNAP_COMMON name the snap, the user dirs the instance; HOME is
    $SNAP_USER_DATA; XDG_RUNTIME_DIR is /run/user/UID/snap.INSTANCE."""
    found = account(state, user)
    assert found is not None
    revision = instance.current_revision
    name, rev = instance.snap_name, revision.revision
    user_data = f"{found.home}/snap/{instance.name}/{rev}"
    uid = str(found.uid) if state.snapd_version >= SNAP_UID_SINCE else None
    app = "mark" if state.snapd_version >= SNAP_APP_NAME_SINCE else None
    env: dict[str, str | None] = {
        "HOME": user_data,
        "SNAP": f"/snap/{name}/{rev}",
        "SNAP_APP_NAME": app,
        "SNAP_COMMON": f"/var/snap/{name}/common",
        "SNAP_DATA": f"/var/snap/{name}/{rev}",
        "SNAP_EUID": uid,
        "SNAP_INSTANCE_KEY": instance.instance_key,
        "SNAP_INSTANCE_NAME": instance.name,
        "SNAP_NAME": name,
        "SNAP_REAL_HOME": found.home,
        "SNAP_REVISION": rev,
        "SNAP_UID": uid,
        "SNAP_USER_COMMON": f"{found.home}/snap/{instance.name}/common",
        "SNAP_USER_DATA": user_data,
        "SNAP_VERSION": revision.version,
        "XDG_RUNTIME_DIR": f"/run/user/{found.uid}/snap.{instance.name}",
    }
    return tuple(sorted(env.items()))


def found_by_snapd(state: SnapdState, user: UserAccount) -> bool:
    """snapd's globs reach this user's ~/snap: root, /home/*, and (2.62+) each homedirs/*."""
    if user == ROOT or user.home == ROOT.home:
        return True
    parent = str(PurePosixPath(user.home).parent)
    roots = [HOME_ROOT]
    if state.snapd_version >= HOMEDIRS_COPY_SINCE:
        roots += list(state.homedirs)
    return parent in roots


def _confine_text(version: tuple[int, int]) -> str:
    if version < CONFINE_TEXT_NEEDS_CONFIGURATION_SINCE:
        return (
            "Sorry, home directories outside of /home are not currently supported. \n"
            "See https://forum.snapcraft.io/t/11209 for details."
        )
    link = (
        "https://snapcraft.io/docs/home-outside-home"
        if version >= CONFINE_TEXT_NEW_LINK_SINCE
        else "https://forum.snapcraft.io/t/11209"
    )
    return f"Sorry, home directories outside of /home needs configuration.\nSee {link} for details."


def confine_refusal(state: SnapdState, user: UserAccount) -> str | None:
    """snap-confine's text when it cannot make $SNAP_USER_DATA in the snap's namespace: a home
    outside /home and /root that no `homedirs` entry (2.58+) brings into the namespace."""
    home = user.home.rstrip("/") + "/"
    if home.startswith(_CONFINE_PREFIXES):
        return None
    if state.snapd_version >= HOMEDIRS_SINCE and any(
        home.startswith(d.rstrip("/") + "/") for d in state.homedirs
    ):
        return None
    return _confine_text(state.snapd_version)


# -- the directories ------------------------------------------------------------------------------


def user_dir(state: SnapdState, user: str, instance: str) -> UserSnapDir:
    found = next((d for d in state.user_dirs if d.user == user and d.instance == instance), None)
    return found if found is not None else UserSnapDir(user, instance)


def _put(state: SnapdState, updated: UserSnapDir) -> SnapdState:
    others = tuple(
        d
        for d in state.user_dirs
        if not (d.user == updated.user and d.instance == updated.instance)
    )
    kept = others if updated.empty else (*others, updated)
    return replace(state, user_dirs=tuple(sorted(kept, key=lambda d: (d.user, d.instance))))


def _revisions(d: UserSnapDir) -> dict[str, frozenset[str]]:
    return dict(d.revisions)


def _with_revisions(d: UserSnapDir, revisions: dict[str, frozenset[str]]) -> UserSnapDir:
    return replace(d, revisions=tuple(revisions.items()))


def touch(state: SnapdState, user: str, instance: str, revision: str) -> SnapdState:
    """What `snap run` does for ``user`` before snap-confine: REV and common exist, current=REV."""
    d = user_dir(state, user, instance)
    revisions = _revisions(d)
    revisions.setdefault(revision, frozenset())
    common = d.common if d.common is not None else frozenset()
    return _put(state, replace(_with_revisions(d, revisions), common=common, current=revision))


def _mark(state: SnapdState, user: str, instance: str, revision: str, marker: str) -> SnapdState:
    d = user_dir(state, user, instance)
    revisions = _revisions(d)
    revisions[revision] = revisions.get(revision, frozenset()) | {marker}
    common = (d.common or frozenset()) | {marker}
    return _put(state, replace(_with_revisions(d, revisions), common=common))


def _found_users(state: SnapdState) -> list[str]:
    return [user.name for user in accounts(state) if found_by_snapd(state, user)]


def copy_order(state: SnapdState, instance: str, revision: str) -> list[str]:
    """The users whose ~/snap/INSTANCE/REVISION a refresh from REVISION copies, in snapd's
    order: the homes the glob finds (sorted), then root's; the system's SNAP_DATA comes after
    them all (backend/snapdata.go snapDataDirs)."""
    users = [
        user
        for user in accounts(state)
        if found_by_snapd(state, user)
        and revision in _revisions(user_dir(state, user.name, instance))
    ]
    return [user.name for user in sorted(users, key=lambda u: (u.name == ROOT.name, u.home))]


def remove_revisions(state: SnapdState, instance: str, revisions: tuple[str, ...]) -> SnapdState:
    for user in _found_users(state):
        d = user_dir(state, user, instance)
        kept = {rev: m for rev, m in d.revisions if rev not in revisions}
        state = _put(state, _with_revisions(d, kept))
    return state


def _remove_common(state: SnapdState, instance: str) -> SnapdState:
    for user in _found_users(state):
        state = _put(state, replace(user_dir(state, user, instance), common=None))
    return state


def settled_runs(
    state: SnapdState, runs: tuple[HookRun, ...], revisions: tuple[RevisionState, ...]
) -> tuple[SnapdState, tuple[HookRun, ...]]:
    """The service runs whose `snap run` is over when the step ends, and ``state`` noting the
    instances whose simple services ran: a simple service's `snap run` goes on after systemd
    reports it started, so what it does to root's ~/snap/INSTANCE races the observation (seen
    on 2.77.1: `current` not yet moved; on 2.57.6 the dirs made after the step). The model
    leaves those runs out and compare.py is lenient about root's empty dirs and link for the
    noted instances (markers are still compared)."""

    def simple(run: HookRun) -> bool:
        return any(
            rev.revision == run.revision
            and any(s.name == run.hook and s.daemon == "simple" for s in rev.services)
            for rev in revisions
        )

    racy = frozenset(run.instance for run in runs if simple(run))
    if racy - state.simple_services_ran:
        state = replace(state, simple_services_ran=state.simple_services_ran | racy)
    return state, tuple(run for run in runs if not simple(run))


def after_hooks(state: SnapdState, runs: tuple[HookRun, ...]) -> SnapdState:
    """Each hook (or service) ran through `snap run` as root."""
    for run in runs:
        state = touch(state, ROOT.name, run.instance, run.revision)
    return state


# -- the changes ------------------------------------------------------------------------------


def _with_state(outcome: Outcome, state: SnapdState) -> Outcome:
    return replace(outcome, state=state)


def after_fresh_install(outcome: Outcome, instance: str, revision: RevisionState) -> Outcome:
    """The install's hooks made root's dirs; an undone install removes the found REV and
    common dirs (UndoCopySnapData with no old revision), and from 2.62 the `current` link and
    the directory (observed: 2.57.6 leaves root's `current` dangling, 2.68.3 and 2.77.1 leave
    nothing)."""
    state, services = settled_runs(outcome.state, outcome.service_runs, (revision,))
    state = after_hooks(state, outcome.hooks_run + services)
    if outcome.error is not None:
        state = _remove_common(remove_revisions(state, instance, (revision.revision,)), instance)
        state = _drop_links(state, instance)
    return _with_state(outcome, state)


def _drop_links(state: SnapdState, instance: str) -> SnapdState:
    if state.snapd_version >= REMOVE_USER_SNAP_DIR_SINCE:
        for user in _found_users(state):
            state = _put(state, replace(user_dir(state, user, instance), current=None))
    return state


def aborted_before_copy(outcome: Outcome) -> bool:
    runs = outcome.hooks_run
    return (
        outcome.error is not None
        and outcome.error.kind == "hook-failed"
        and bool(runs)
        and runs[-1].hook == "pre-refresh"
    )


def after_refresh(
    before: SnapdState,
    old: str,
    outcome: Outcome,
    instance: str,
    target: str,
    *,
    known: tuple[RevisionState, ...] = (),
) -> Outcome:
    """pre-refresh (root, OLD), the copy OLD -> TARGET for every found user who has OLD, the
    target's hooks (root, TARGET); undone: TARGET removed and its trash put back; then the
    revisions garbage collection discarded go."""
    state = replace(outcome.state, user_dirs=before.user_dirs)
    runs = outcome.hooks_run
    first = 1 if runs and runs[0].hook == "pre-refresh" and runs[0].revision == old else 0
    state = after_hooks(state, runs[:first])
    if aborted_before_copy(outcome):
        return _with_state(outcome, state)
    copied_for: set[str] = set()
    saved = state
    for user in _found_users(state):
        d = user_dir(state, user, instance)
        revisions = _revisions(d)
        if old in revisions:
            revisions[target] = revisions[old]
            copied_for.add(user)
            state = _put(state, _with_revisions(d, revisions))
    # Services are `snap run` as root too: the target's start before an undo, the old
    # revision's (restarted by the undo) after it.
    state, service_runs = settled_runs(state, outcome.service_runs, known)
    in_target = tuple(run for run in service_runs if run.revision == target)
    restarted = tuple(run for run in service_runs if run.revision != target)
    state = after_hooks(state, runs[first:] + in_target)
    if outcome.error is not None:
        for user in _found_users(state):
            d = user_dir(state, user, instance)
            revisions = _revisions(d)
            revisions.pop(target, None)
            previous = _revisions(user_dir(saved, user, instance)).get(target)
            if user in copied_for and previous is not None:
                # the trash put back (untrash): the target's own dir, or (a new target) a
                # stray one an earlier undo left (model/faults.py copy_rerun_leaves_target)
                revisions[target] = previous
            state = _put(state, _with_revisions(d, revisions))
    state = remove_revisions(state, instance, outcome.discarded)
    return _with_state(outcome, after_hooks(state, restarted))


def after_remove_revision(outcome: Outcome, instance: str, revision: str) -> Outcome:
    return _with_state(outcome, remove_revisions(outcome.state, instance, (revision,)))


def after_remove(outcome: Outcome, instance: str, revisions: tuple[str, ...]) -> Outcome:
    """The remove hook (root), every revision's found dirs, the found common dirs; 2.62+ the
    `current` link and the directory too."""
    state = after_hooks(outcome.state, outcome.hooks_run)
    state = _remove_common(remove_revisions(state, instance, revisions), instance)
    return _with_state(outcome, _drop_links(state, instance))


def run_as(
    state: SnapdState, user: str, instance: str, revision: str, marker: str | None
) -> tuple[SnapdState, ExpectedError | None]:
    """`snap run INSTANCE.mark --user MARKER` as ``user`` in ``revision`` (installed)."""
    found = account(state, user)
    if found is None:
        raise ValueError(f"unknown user {user!r}: add it first (AddUser)")
    state = touch(state, user, instance, revision)
    refusal = confine_refusal(state, found)
    if refusal is not None:
        return state, ExpectedError("home-outside-home", refusal)
    if marker is not None:
        state = _mark(state, user, instance, revision, marker)
    return state, None
