"""Services and `snap disable`/`snap enable`: what runs, what is enabled, and what a failing
service start undoes.

A service is an app with `daemon: simple|oneshot` (`ServicePlan` on the revision). What snapd
reports for each service of the current revision (REST `apps`: `enabled`, `active`) follows from
three things the model keeps per instance: whether the snap is enabled (`InstanceState.active`),
the services the user disabled (`disabled_services`, snapd's LastActiveDisabledServices plus
systemd's own enable state) and those merely stopped (`stopped_services`).

Facts (canonical/snapd, tags 2.57.6, 2.68.3, 2.77; observed on 2.57.6 and 2.77.1 alike unless
said):
- A change that links a revision (install, refresh, revert, enable) ends its link part with
  start-snap-services (overlord/snapstate/handlers.go startSnapServices): every service of the
  revision is enabled and started except those in LastActiveDisabledServices, which stay
  disabled and are not started (wrappers/services.go StartServices skips them). It runs after
  the install or post-refresh hook and before configure (snapstate.go doInstall).
- A refresh or revert first stops the old revision's services (stopSnapServices) and records the
  ones systemd has disabled into LastActiveDisabledServices, so a user's `snap stop --disable`
  survives refreshes and reverts, also through revisions that lack the service
  (missingDisabledServices keeps such names for later).
- `systemctl start` of a oneshot that exits 1 fails, so start-snap-services fails and the change
  is undone: a first install leaves nothing, a refresh or revert goes back to the old revision,
  whose services undoStopSnapServices starts again (all but the disabled ones, so a merely
  stopped one runs again). The CLI prints the change error
  `cannot perform the following tasks:\\n- Start snap "N" (REV) services (systemctl command
  [start UNITS] failed with exit status 1: ...)`, REV `unset` for a file install (the task is
  made before the revision is known) and the revision otherwise; what systemctl printed after
  the colon differs between releases (2.77 adds `stderr:`), hence a pattern.
- A oneshot that exited 0 is reported enabled but not active (no RemainAfterExit; observed).
- `snap disable` stops the services and unlinks the snap (snapstate.go Disable): REST then
  reports every revision `installed` and every service neither enabled nor active, and
  /var/snap/NAME/current is gone; `snap enable` links it again and starts its services as above
  (snapstate.go Enable). Its link-snap moves the current revision to the end of the sequence
  (handlers.go doLinkSnap; observed on 2.57.6), so after a revert and disable/enable the
  reverted-from revisions come before current and are no longer "blocked".
- A disabled snap refuses refreshes (`cannot update disabled snap %q`, snapstate.go doInstall;
  `snap refresh --revision` said `refreshing disabled snap %q not supported` before 2.65,
  UpdateWithDeviceContext), a revert without --revision finds `no revision to revert to`
  (observed), `snap run` fails (its text changed in 2.63 and 2.76, RUN_*_SINCE below), and a
  remove of it runs no remove hook (removeTasks: only when active).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from snapconform.model import snapd_text as text
from snapconform.model.snapd_state import (
    ExpectedError,
    HookRun,
    InstanceState,
    ModelGap,
    Outcome,
    RevisionState,
    ServicePlan,
    SnapdState,
)

__all__ = [
    "REFRESH_DISABLED_TEXT_SINCE",
    "RUN_DISABLED_SINCE",
    "RUN_RETRY_ONCE_SINCE",
    "ServiceStatus",
    "disable",
    "disabled_current_removal",
    "disabled_refresh_refusal",
    "enable",
    "expected_services",
    "failing_start",
    "run_disabled",
    "services_restarted",
    "start_failed",
    "start_failed_error",
    "start_label",
    "start_service",
    "started",
    "stop_service",
    "with_service_runs",
]

# `snap refresh --revision=R` of a disabled snap: before 2.65 UpdateWithDeviceContext refused
# with `refreshing disabled snap %q not supported`; from 2.65 the check left it and doInstall's
# `cannot update disabled snap %q` answers (snapstate.go; observed 2.57.6 and 2.77.1).
REFRESH_DISABLED_TEXT_SINCE = (2, 65)
# `snap run` of a disabled snap (cmd/snap/cmd_run.go): before 2.63 the missing current
# symlink's readlink error; from 2.63 snap run retries once on a missing current revision and
# then gives up with `race condition detected, snap-run can only retry once` (observed on
# 2.68.3); from 2.76 it says `cannot run %q, snap is disabled` (observed on 2.77.1).
RUN_RETRY_ONCE_SINCE = (2, 63)
RUN_DISABLED_SINCE = (2, 76)

_RUN_DISABLED = "cannot run {app}, snap is disabled"
_DISABLED_UPDATE = "cannot update disabled snap {}"
_DISABLED_REFRESH_OLD = "refreshing disabled snap {} not supported"


@dataclass(frozen=True)
class ServiceStatus:
    """One service as REST reports it (an app's `daemon`, `enabled`, `active`)."""

    name: str
    daemon: str
    enabled: bool
    active: bool


def _q(value: str) -> str:
    return text.go_quote(value)


def expected_services(instance: InstanceState | None) -> tuple[ServiceStatus, ...]:
    """The services REST lists for ``instance``: those of its current revision, by name."""
    if instance is None:
        return ()
    statuses = []
    for service in instance.current_revision.services:
        enabled = instance.active and service.name not in instance.disabled_services
        running = (
            enabled and service.daemon == "simple" and service.name not in instance.stopped_services
        )
        statuses.append(ServiceStatus(service.name, service.daemon, enabled, running))
    return tuple(statuses)


def failing_start(
    revision: RevisionState, disabled: frozenset[str] = frozenset()
) -> ServicePlan | None:
    """The first service start-snap-services would fail on when ``revision`` is linked (the
    user's ``disabled`` services are not started), or None."""
    for service in revision.services:
        if service.fails and service.name not in disabled:
            return service
    return None


def started(
    instance: str, revision: RevisionState, disabled: frozenset[str] = frozenset()
) -> tuple[HookRun, ...]:
    """The services start-snap-services runs for ``revision`` (all but the ``disabled``), in
    name order, each as a HookRun whose `hook` is the service's name (`snap run` as root)."""
    return tuple(
        HookRun(instance, service.name, revision.revision)
        for service in revision.services
        if service.name not in disabled
    )


def with_service_runs(outcome: Outcome, runs: tuple[HookRun, ...]) -> Outcome:
    return replace(outcome, service_runs=outcome.service_runs + runs) if runs else outcome


def start_label(revision: RevisionState, *, from_file: bool) -> str:
    """The revision in the start-snap-services task's summary: `unset` when the change was made
    from a file (the revision is assigned later, snapstate.go doInstall's revisionStr)."""
    return "unset" if from_file else revision.revision


def start_failed(
    state: SnapdState,
    instance: str,
    label: str,
    service: ServicePlan,
    runs: tuple[HookRun, ...],
    why: str,
    service_runs: tuple[HookRun, ...] = (),
) -> Outcome:
    """A change undone because start-snap-services failed on ``service``; ``state`` is what the
    undo leaves, ``service_runs`` the services that ran (the new ones, then the old ones the
    undo started again)."""
    error = start_failed_error(instance, label, service)
    return Outcome(state, error, runs, why, service_runs=service_runs)


def start_failed_error(instance: str, label: str, service: ServicePlan) -> ExpectedError:
    """The CLI's change error for a start-snap-services task that failed on ``service``."""
    unit = re.escape(f"snap.{instance}.{service.name}.service")
    quoted = re.escape(_q(instance))
    pattern = (
        rf"cannot perform the following tasks: - Start snap {quoted} \({re.escape(label)}\) "
        rf"services \(systemctl command \[start [^\]]*{unit}[^\]]*\] failed with exit status 1: "
        r".*\)"
    )
    return ExpectedError("service-start-failed", pattern, pattern=True)


def service_command_failed_error(
    instance: str, action: str, services: tuple[str, ...], failing: ServicePlan
) -> ExpectedError:
    """The CLI's change error for `snap start|stop|restart NAME.SERVICE` whose systemctl
    command failed on ``failing`` (servicestate.go: the summary quotes the action, the
    services as Go's %q of a list, and the snap)."""
    unit = re.escape(f"snap.{instance}.{failing.name}.service")
    listed = re.escape("[" + " ".join(_q(name) for name in services) + "]")
    pattern = (
        rf"cannot perform the following tasks: - Run service command {re.escape(_q(action))} "
        rf"for services {listed} of snap {re.escape(_q(instance))} \(systemctl command "
        rf"\[{re.escape(action)} [^\]]*{unit}[^\]]*\] failed with exit status 1: .*\)"
    )
    return ExpectedError("service-command-failed", pattern, pattern=True)


def services_restarted(instance: InstanceState) -> InstanceState:
    """After start-snap-services (or the undo of stop-snap-services) ran: every service but
    the disabled ones runs again."""
    if not instance.stopped_services:
        return instance
    return replace(instance, stopped_services=frozenset())


def disabled_refresh_refusal(
    state: SnapdState, instance: InstanceState, *, from_file: bool
) -> Outcome | None:
    """A refresh of a disabled snap is refused before any task runs; None when enabled."""
    if instance.active:
        return None
    name = _q(instance.name)
    if from_file:
        message = text.INSTALL_FILE_PREFIX + _DISABLED_UPDATE.format(name)
    elif state.snapd_version >= REFRESH_DISABLED_TEXT_SINCE:
        message = f"cannot refresh {name}: " + _DISABLED_UPDATE.format(name)
    else:
        message = f"cannot refresh {name}: " + _DISABLED_REFRESH_OLD.format(name)
    return Outcome(
        state,
        ExpectedError("snap-disabled", message),
        (),
        f"refused: {instance.name} is disabled and snapd does not refresh a disabled snap "
        "(snapstate.go doInstall / UpdateWithDeviceContext)",
    )


def disabled_current_removal(instance: InstanceState, revision: str, several: bool) -> None:
    """`snap remove --revision=CURRENT` of a disabled snap: removeTasks only refuses the current
    revision of an active snap, so with one revision it is a full remove (no remove hook) and
    with several it removes the current revision under snapd's feet: outside the model."""
    if not instance.active and revision == instance.current and several:
        raise ModelGap(
            f"`snap remove --revision={revision}` of the disabled {instance.name}'s current "
            "revision among several (removeTasks does not refuse it)"
        )


def run_disabled(state: SnapdState, instance: InstanceState) -> Outcome:
    """`snap run NAME.mark` of a disabled snap: the current symlink is gone."""
    if state.snapd_version >= RUN_DISABLED_SINCE:
        message = _RUN_DISABLED.format(app=_q(f"{instance.name}.mark"))
    elif state.snapd_version >= RUN_RETRY_ONCE_SINCE:
        message = "race condition detected, snap-run can only retry once"
    else:
        message = text.RUN_NOT_INSTALLED.format(name=instance.name)
    return Outcome(
        state,
        ExpectedError("snap-disabled", message),
        (),
        f"refused: {instance.name} is disabled, so it has no current link to run "
        "(cmd/snap/cmd_run.go)",
    )


def _not_installed(state: SnapdState, name: str) -> Outcome:
    return Outcome(
        state,
        ExpectedError("not-installed", text.NOT_INSTALLED.format(_q(name))),
        (),
        f"refused: {name} is not installed (snap/errors.go NotInstalledError)",
    )


def disable(state: SnapdState, name: str) -> Outcome:
    """`snap disable NAME` (snapstate.go Disable): stop services, unlink; data stays."""
    found = state.instance(name)
    if found is None:
        return _not_installed(state, name)
    if not found.active:
        return Outcome(
            state,
            ExpectedError(
                "already-disabled", f"cannot disable {_q(name)}: snap {_q(name)} already disabled"
            ),
            (),
            f"refused: {name} is already disabled (snapstate.go Disable)",
        )
    disabled = replace(found, active=False, stopped_services=frozenset())
    return Outcome(
        state.with_instance(disabled),
        None,
        (),
        f"disabled {name}: its services stopped, the snap unlinked (every revision `installed`), "
        "its data and connections kept (snapstate.go Disable)",
    )


def enable(state: SnapdState, name: str) -> Outcome:
    """`snap enable NAME` (snapstate.go Enable): link the current revision, start services."""
    found = state.instance(name)
    if found is None:
        return _not_installed(state, name)
    if found.active:
        return Outcome(
            state,
            ExpectedError(
                "already-enabled", f"cannot enable {_q(name)}: snap {_q(name)} already enabled"
            ),
            (),
            f"refused: {name} is enabled (snapstate.go Enable)",
        )
    failing = failing_start(found.current_revision, found.disabled_services)
    if failing is not None:
        return Outcome(
            state,
            start_failed_error(name, found.current, failing),
            (),
            f"`systemctl start` of {failing.name} failed, so the enable was undone and {name} "
            "stays disabled (handlers.go startSnapServices)",
        )
    # link-snap without the revert flag moves the linked revision to the end of the sequence
    # (handlers.go doLinkSnap: oldCandidateIndex), as a refresh to a present revision does.
    current = found.current_revision
    sequence = (*(entry for entry in found.sequence if entry is not current), current)
    enabled = replace(found, sequence=sequence, active=True, stopped_services=frozenset())
    return Outcome(
        state.with_instance(enabled),
        None,
        (),
        service_runs=started(name, current, found.disabled_services),
        why=f"enabled {name}: {found.current} linked again and moved to the end of the sequence "
        "(link-snap), its services started but the ones the user disabled (snapstate.go "
        "Enable, handlers.go doLinkSnap, startSnapServices)",
    )


def _service_of(state: SnapdState, name: str, service: str) -> tuple[InstanceState, ServicePlan]:
    found = state.instance(name)
    if found is None or not found.active:
        raise ModelGap(f"`snap stop/start` of {name}.{service}: {name} is not installed or enabled")
    plan = next((s for s in found.current_revision.services if s.name == service), None)
    if plan is None:
        raise ModelGap(f"{name} {found.current} has no service {service}")
    return found, plan


def stop_service(state: SnapdState, name: str, service: str, *, disable: bool) -> Outcome:
    """`snap stop [--disable] NAME.SERVICE` (daemon/api_apps.go, servicestate)."""
    found, _ = _service_of(state, name, service)
    if disable:
        updated = replace(found, disabled_services=found.disabled_services | {service})
        why = (
            f"stopped and disabled {name}.{service}: snapd keeps it disabled across refreshes, "
            "reverts and disable/enable (handlers.go stopSnapServices, startSnapServices)"
        )
    else:
        updated = replace(found, stopped_services=found.stopped_services | {service})
        why = f"stopped {name}.{service}; it stays enabled and the next link starts it again"
    return Outcome(state.with_instance(updated), None, (), why)


def start_service(state: SnapdState, name: str, service: str, *, enable: bool) -> Outcome:
    """`snap start [--enable] NAME.SERVICE`."""
    found, plan = _service_of(state, name, service)
    if plan.fails:
        return Outcome(
            state,
            service_command_failed_error(name, "start", (service,), plan),
            (),
            f"{name}.{service} fails to start: the service-control change fails and changes "
            "nothing, a disabled service stays disabled with --enable too (servicestate.go; "
            "seen on 2.57.6); its `snap run` as root made root's dirs before the app failed",
            service_runs=(HookRun(name, service, found.current),),
        )
    if not enable and service in found.disabled_services:
        raise ModelGap("the model does not track a disabled service started by hand")
    updated = replace(
        found,
        disabled_services=found.disabled_services - {service},
        stopped_services=found.stopped_services - {service},
    )
    return Outcome(
        state.with_instance(updated),
        None,
        (),
        f"started {name}.{service}" + (" and enabled it" if enable else ""),
        service_runs=(HookRun(name, service, found.current),),
    )
