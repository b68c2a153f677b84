"""Confinement: `snap install --dangerous [--devmode|--jailmode|--classic] FILE`.

What snapd checks, in the order it checks it:
- the CLI refuses --devmode with --jailmode before it asks the daemon
  (cmd/snap/cmd_snap_op.go modeMixin.validateMode);
- the daemon's sideload handler then refuses --jailmode where the system forces devmode (no
  AppArmor: sandbox.ForceDevMode), and --devmode with --classic
  (daemon/api_snaps.go modeFlags, called first by api_sideload_n_try.go sideloadOrTrySnap);
- once the file is read, --classic on a snap that is not `confinement: classic` is dropped
  silently (snapstate.go ensureInstallPreconditions; the CLI warns, cmd_snap_op.go showDone),
  then snap.yaml's confinement must be allowed by the flags (check_snap.go
  validateFlagsForInfo): `devmode` needs --devmode or --jailmode, every time; `classic` needs
  --classic, or an installed instance whose flags say classic.
- A local install records the request's flags and nothing else: InstallPath does not carry the
  installed instance's devmode/jailmode over, and link-snap sets SnapState's DevMode, JailMode
  and Classic from the setup (handlers.go doLinkSnap), so a refresh without the flag drops it.
  A classic snap's refresh without --classic passes InstallPath on the instance's flag but
  fails in the change at Mount snap (check_snap.go checkSnap checks the flags alone), until
  2.65 keeps the instance's classic flag (ensureInstallPreconditions, CLASSIC_KEPT_SINCE).

REST /v2/snaps shows snap.yaml's `confinement` of each revision and the instance's `devmode`
and `jailmode` flags (daemon/snap.go mapLocal); the classic flag is not shown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from snapconform.model.snapd_state import (
    ExpectedError,
    InstanceState,
    Outcome,
    SnapdState,
    SnapFile,
)
from snapconform.model.snapd_text import change_error

__all__ = [
    "CLASSIC_KEPT_SINCE",
    "CONFINEMENTS",
    "NO_MODES",
    "Modes",
    "expected_confinement",
    "flag_refusal",
    "needs_classic_message",
    "snap_refusal",
    "with_modes",
]

CONFINEMENTS = ("strict", "devmode", "classic")
# Since 2.65 ensureInstallPreconditions keeps an installed instance's classic flag for a
# request without --devmode/--jailmode (snapd commit 0e865e353f), so a classic snap's local
# refresh needs no --classic; before, its Mount snap task refused it (seen on 2.57.6, and the
# refresh passing on 2.68.3).
CLASSIC_KEPT_SINCE = (2, 65)

MODE_CONFLICT = "cannot use devmode and jailmode flags together"
NO_JAILMODE = "this system cannot honour the jailmode flag"
CLASSIC_DEVMODE = "cannot use classic and devmode flags together"
NEEDS_DEVMODE = "snap {name} requires devmode or confinement override"
# cmd/snap/error.go's text for ErrorKindSnapNeedsClassic (compared whitespace-normalised).
NEEDS_CLASSIC = (
    "This revision of snap {name} was published using classic confinement and thus may "
    "perform arbitrary system changes outside of the security sandbox that snaps are usually "
    "confined to, which may put your system at risk. If you understand and want to proceed "
    "repeat the command including --classic."
)
CLASSIC_IGNORED = "Warning: flag --classic ignored for strictly confined snap {name}"


@dataclass(frozen=True)
class Modes:
    """The confinement flags of one `snap install` command line."""

    devmode: bool = False
    jailmode: bool = False
    classic: bool = False

    def argv(self) -> list[str]:
        return [f"--{name}" for name in ("devmode", "jailmode", "classic") if getattr(self, name)]


NO_MODES = Modes()


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _refused(state: SnapdState, kind: str, message: str, why: str) -> Outcome:
    return Outcome(state, ExpectedError(kind, message), (), why)


def needs_classic_message(file_path: str) -> str:
    return NEEDS_CLASSIC.format(name=_q(file_path))


def flag_refusal(state: SnapdState, modes: Modes) -> Outcome | None:
    """Refusals of the flags alone, before the file is read."""
    if modes.devmode and modes.jailmode:
        return _refused(
            state,
            "mode-conflict",
            MODE_CONFLICT,
            "refused by the CLI: --devmode with --jailmode (cmd_snap_op.go validateMode)",
        )
    if modes.jailmode and state.force_devmode:
        return _refused(
            state,
            "no-jailmode",
            NO_JAILMODE,
            "refused: the system forces devmode, so --jailmode cannot be honoured "
            "(daemon/api_snaps.go modeFlags, sandbox.ForceDevMode)",
        )
    if modes.devmode and modes.classic:
        return _refused(
            state,
            "classic-devmode",
            CLASSIC_DEVMODE,
            "refused: --devmode with --classic (daemon/api_snaps.go modeFlags)",
        )
    return None


def snap_refusal(
    state: SnapdState,
    existing: InstanceState | None,
    snap: SnapFile,
    modes: Modes,
    file_path: str,
) -> Outcome | None:
    """snap.yaml's confinement against the flags (check_snap.go validateFlagsForInfo); the
    CLI names the file it was given, since the snap's name is not known to it."""
    if snap.confinement == "devmode" and not (modes.devmode or modes.jailmode):
        return _refused(
            state,
            "snap-needs-devmode",
            NEEDS_DEVMODE.format(name=_q(file_path)),
            "refused: a `confinement: devmode` snap needs --devmode (or --jailmode) at every "
            "install (check_snap.go validateFlagsForInfo; cmd/snap/error.go with --dangerous)",
        )
    if snap.confinement == "classic" and not modes.classic:
        if existing is not None and existing.classic and _keeps_classic(state, modes):
            return None
        if existing is not None and existing.classic:
            # InstallPath lets it through on the instance's flag, but the change's mount-snap
            # checks the file again with the request's flags alone (check_snap.go checkSnap
            # calls validateInfoAndFlags with no SnapState): the change fails, nothing moves.
            return _refused(
                state,
                "mount-needs-classic",
                change_error(
                    f"Mount snap {_q(existing.name)} (unset)",
                    f"snap {_q(existing.name)} requires classic confinement",
                ),
                "refused in the change: a classic instance's refresh without --classic passes "
                "InstallPath (snapst.Flags.Classic) and fails at Mount snap (check_snap.go "
                "checkSnap; seen on 2.57.6)",
            )
        return _refused(
            state,
            "snap-needs-classic",
            needs_classic_message(file_path),
            "refused: a `confinement: classic` snap needs --classic unless the installed "
            "instance is classic (check_snap.go validateFlagsForInfo)",
        )
    return None


def _keeps_classic(state: SnapdState, modes: Modes) -> bool:
    return state.snapd_version >= CLASSIC_KEPT_SINCE and not (modes.devmode or modes.jailmode)


def with_modes(
    outcome: Outcome,
    instance_name: str,
    snap: SnapFile,
    modes: Modes,
    existing: InstanceState | None = None,
) -> Outcome:
    """The instance after a local install that went through: the request's flags (--classic
    only for a classic snap, ensureInstallPreconditions drops it otherwise)."""
    if outcome.error is not None:
        return outcome
    notices = outcome.notices
    if modes.classic and snap.confinement != "classic":
        notices = (*notices, CLASSIC_IGNORED.format(name=snap.name))
    instance = outcome.state.instance(instance_name)
    if instance is None:
        return outcome
    instance = replace(
        instance,
        devmode=modes.devmode,
        jailmode=modes.jailmode,
        trymode=False,  # link-snap sets TryMode from the setup too (snapd_try.py sets it)
        classic=snap.confinement == "classic"
        and (
            modes.classic
            or (existing is not None and existing.classic and _keeps_classic(outcome.state, modes))
        ),
    )
    return replace(outcome, state=outcome.state.with_instance(instance), notices=notices)


def expected_confinement(instance: InstanceState) -> tuple[str, bool, bool]:
    """What REST shows: the current revision's confinement, `devmode`, `jailmode`."""
    return (instance.current_revision.confinement, instance.devmode, instance.jailmode)
