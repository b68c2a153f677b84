"""`snap try DIR`: a snap run from an unpacked directory.

The daemon reads DIR's meta/snap.yaml and hands DIR to snapstate.TryPath, which is InstallPath
with the TryMode flag (daemon/api_sideload_n_try.go trySnap, overlord/snapstate/snapstate.go
TryPath): the same checks, hooks, data copy and local revision xN as `snap install --dangerous`,
and `snap try` of an installed snap is a refresh. The revision is DIR bind-mounted (no copy),
so a file edited in DIR shows at once in /snap/NAME/current; REST shows the snap's `trymode`
and the revision's `mounted-from` (DIR; daemon/snap.go mapLocal reads the link). The CLI
prints `NAME VERSION mounted from DIR` (cmd/snap/cmd_snap_op.go cmdTry).
"""

from __future__ import annotations

from dataclasses import replace

from snapconform.model import snapd, snapd_text
from snapconform.model.snapd_state import InstanceState, ModelGap, Outcome, SnapdState, SnapFile

__all__ = ["NOTE_FILE", "edit_note", "expected_try", "try_dir"]

# The file the suites edit in a tried directory (top level of the snap tree).
NOTE_FILE = "try-note"


def try_dir(state: SnapdState, snap: SnapFile, directory: str) -> Outcome:
    """`snap try DIR` for DIR holding ``snap``'s unpacked tree."""
    if not directory.startswith("/"):
        raise ModelGap("snap try of a relative path: the CLI makes it absolute first")
    outcome = snapd.install(state, snap, file_path=directory)
    if outcome.error is not None:
        return _refused_or_failed(outcome, directory)
    instance = outcome.state.instance(snap.name)
    assert instance is not None
    current = replace(instance.current_revision, try_dir=directory)
    sequence = tuple(current if r.revision == current.revision else r for r in instance.sequence)
    instance = replace(instance, sequence=sequence, trymode=True)
    return replace(
        outcome,
        state=outcome.state.with_instance(instance),
        notices=(*outcome.notices, f"{snap.name} {snap.version} mounted from {directory}"),
        why=outcome.why + f"; mounted from {directory} (snapstate.go TryPath)",
    )


def _refused_or_failed(outcome: Outcome, directory: str) -> Outcome:
    """A try that does not go through, from the sideload's outcome: TryPath's refusals are
    InstallPath's, which the daemon words `cannot try DIR: ERR` where the sideload says
    `cannot install snap file: ERR` (api_sideload_n_try.go trySnap, errToResponse's fallback
    format); a change that fails (a hook, a service) fails as the sideload's does."""
    error = outcome.error
    assert error is not None
    if error.pattern:
        raise ModelGap(f"snap try refused ({error.kind}): the model has no try text for it")
    if error.message.startswith(snapd_text.INSTALL_FILE_PREFIX):
        message = f"cannot try {directory}: " + error.message[len(snapd_text.INSTALL_FILE_PREFIX) :]
        return replace(
            outcome,
            error=replace(error, message=message),
            why=outcome.why + " (snap try words it `cannot try DIR: ...`, trySnap)",
        )
    if error.message.startswith(snapd_text.CHANGE_ERROR_PREFIX):
        return outcome
    raise ModelGap(f"snap try refused ({error.kind}): the model has no try text for it")


def edit_note(state: SnapdState, directory: str, text: str) -> Outcome:
    """Write ``text`` into DIR/try-note: no snapd command, the bind mount shows it."""
    notes = dict(state.try_notes)
    notes[directory] = text
    return Outcome(
        replace(state, try_notes=tuple(sorted(notes.items()))),
        None,
        (),
        f"wrote {NOTE_FILE} in {directory}: a revision mounted from it shows it at once",
    )


def expected_try(state: SnapdState, instance: InstanceState) -> tuple[bool, str | None, str | None]:
    """What the observation shows: `trymode`, the current revision's `mounted-from` when it is
    a directory, and /snap/NAME/current/try-note (None: no such file)."""
    directory = instance.current_revision.try_dir
    note = dict(state.try_notes).get(directory) if directory else None
    # REST reads the .snap symlink to its directory only in try mode (daemon/snap.go): a
    # tried revision reverted onto shows /var/lib/snapd/snaps/NAME_REV.snap, yet DIR is still
    # what /snap/NAME/REV shows.
    return (instance.trymode, directory if instance.trymode else None, note)
