"""State-machine rules for services, `snap disable`/`snap enable` and interface connections.

`ServicesRules` is mixed into conformance.machine.SnapdMachine (it uses the machine's `do`,
`installed`, `pick_instance`, `moved_epoch`, `recorder` and `name`). Files refreshed by these
rules carry services (a simple daemon, a oneshot, sometimes one that fails to start) and a
content plug; a second snap, NAME-p, carries the matching slot. Every rule counts a coverage
label (Hypothesis `event`).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from snapconform.conformance.operations import InstallFile, Remove
from snapconform.conformance.ops_interfaces import Connect, Disconnect
from snapconform.conformance.ops_services import Disable, Enable, StartService, StopService
from snapconform.model import snapd as model
from snapconform.model.snapd_interfaces import visible_connections

PLUG = model.ContentEndpointPlan("shared")
SLOT = model.ContentEndpointPlan("out")
DAEMON = model.ServicePlan("daemon", "simple")
ONCE = model.ServicePlan("once", "oneshot")
FAILING_ONCE = model.ServicePlan("once", "oneshot", fails=True)
# Simplest first (Hypothesis shrinks towards the first); a failing start is the minority.
SERVICE_SETS: tuple[tuple[model.ServicePlan, ...], ...] = (
    (),
    (DAEMON,),
    (DAEMON, ONCE),
    (ONCE,),
    (DAEMON, FAILING_ONCE),
)

SERVICE_REFRESH_ARGUMENTS = {
    "index": st.integers(0, 1),
    "version": st.sampled_from(("1.0", "2.0", "3.0")),
    "move": st.sampled_from(("same", "same", "bridge", "next", "fixed")),
    "fixed": st.sampled_from((None, "0", "1", "1*")),
    "services": st.sampled_from(SERVICE_SETS),
    "plug": st.booleans(),
}


class ServicesRules:
    """Rules on services, the enabled state and a content connection (see the module doc).

    What it uses of the machine it is mixed into (conformance.machine.MachineBase)."""

    name: str
    run: Any
    recorder: Any
    state: model.SnapdState
    do: Any
    installed: Any
    instance_names: Any
    moved_epoch: Any

    # -- helpers ---------------------------------------------------------------------------
    @property
    def producer(self) -> str:
        return f"{self.name}-p"

    def _instances(self) -> list[model.InstanceState]:
        found = (self.installed(name) for name in self.instance_names())
        return [instance for instance in found if instance is not None]

    def _active_with_services(self) -> list[model.InstanceState]:
        return [i for i in self._instances() if i.active and i.current_revision.services]

    def _disabled(self) -> list[model.InstanceState]:
        return [i for i in self._instances() if not i.active]

    def _pluggable(self) -> list[model.InstanceState]:
        producer = self.installed(self.producer)
        if producer is None or not producer.active:
            return []
        return self._plug_holders()

    def _plug_holders(self) -> list[model.InstanceState]:
        return [
            i for i in self._instances() if i.active and PLUG in i.current_revision.content_plugs
        ]

    def _connected(self) -> list[model.Connection]:
        return sorted(visible_connections(self.state), key=str)

    # -- rules -----------------------------------------------------------------------------
    @rule(**SERVICE_REFRESH_ARGUMENTS)
    def install_or_refresh_with_services(
        self,
        index: int,
        version: str,
        move: str,
        fixed: str | None,
        services: tuple[model.ServicePlan, ...],
        plug: bool,
    ) -> None:
        names = self.instance_names()
        instance = names[index % len(names)]
        before = self.installed(instance)
        epoch = self.moved_epoch(instance, move, fixed)
        snap = model.SnapFile(
            self.name,
            version,
            epoch_yaml=epoch,
            services=services,
            content_plugs=(PLUG,) if plug else (),
        )
        kept = {c for c in visible_connections(self.state) if c.plug_snap == instance}
        self.do(InstallFile(snap, name=None if instance == self.name else instance))
        record = self.run.history[-1]
        if record.expected_ok and kept and kept <= visible_connections(self.state):
            self.recorder.count("refresh keeps a connection")
        if record.expected_kind == "service-start-failed":
            self.recorder.count(
                "refresh undone by a failing service"
                if before
                else "install undone by a failing service"
            )
        elif record.expected_kind == "snap-disabled":
            self.recorder.count("refresh of a disabled snap refused")
        elif record.expected_ok and services:
            self.recorder.count("services linked")
        if record.expected_ok and before is not None and before.disabled_services:
            self.recorder.count("refresh keeps a user-disabled service")

    # Services live in the current revision only until another rule refreshes without them:
    # a second rule doubles this one's share (Hypothesis picks among enabled rules uniformly).
    @rule(**SERVICE_REFRESH_ARGUMENTS)
    def install_or_refresh_with_services_again(
        self,
        index: int,
        version: str,
        move: str,
        fixed: str | None,
        services: tuple[model.ServicePlan, ...],
        plug: bool,
    ) -> None:
        self.install_or_refresh_with_services(index, version, move, fixed, services, plug)

    @precondition(lambda self: any(i.active for i in self._instances()))
    @rule(index=st.integers(0, 3))
    def disable_snap(self, index: int) -> None:
        active = [i.name for i in self._instances() if i.active]
        self.do(Disable(active[index % len(active)]))
        self.recorder.count("snap disable")

    @precondition(lambda self: bool(self._disabled()))
    @rule(index=st.integers(0, 3))
    def enable_snap(self, index: int) -> None:
        disabled = self._disabled()
        self.do(Enable(disabled[index % len(disabled)].name))
        self.recorder.count("snap enable")

    @precondition(lambda self: bool(self._active_with_services()))
    @rule(index=st.integers(0, 3), choice=st.integers(0, 3), disable=st.booleans())
    def stop_service(self, index: int, choice: int, disable: bool) -> None:
        candidates = self._active_with_services()
        instance = candidates[index % len(candidates)]
        services = instance.current_revision.services
        service = services[choice % len(services)].name
        self.do(StopService(instance.name, service, disable=disable))
        self.recorder.count("service stop --disable" if disable else "service stop")

    @precondition(
        lambda self: any(
            s.name in i.disabled_services and not s.fails
            for i in self._active_with_services()
            for s in i.current_revision.services
        )
    )
    @rule(index=st.integers(0, 3))
    def start_service_enable(self, index: int) -> None:
        choices = [
            (i.name, s.name)
            for i in self._active_with_services()
            for s in i.current_revision.services
            if s.name in i.disabled_services and not s.fails
        ]
        instance, service = choices[index % len(choices)]
        self.do(StartService(instance, service, enable=True))
        self.recorder.count("service start --enable")

    @precondition(lambda self: self.installed(self.producer) is None)
    @rule()
    def install_producer(self) -> None:
        self.do(InstallFile(model.SnapFile(self.producer, "1.0", content_slots=(SLOT,))))

    @precondition(lambda self: self.installed(self.producer) is not None)
    @rule()
    def remove_producer(self) -> None:
        dropped = any(c.slot_snap == self.producer for c in self.state.connections)
        self.do(Remove(self.producer, purge=True))
        if dropped:
            self.recorder.count("remove drops a connection")

    @precondition(lambda self: bool(self._plug_holders()))
    @rule(index=st.integers(0, 3))
    def connect(self, index: int) -> None:
        # The producer comes and goes by rules of their own (a soak of 857 steps never had it
        # there with a plug beside it): a connect installs it first where it is missing.
        if self.installed(self.producer) is None:
            self.install_producer()
        candidates = self._pluggable()
        if not candidates:
            return  # the producer is disabled, or its install failed
        instance = candidates[index % len(candidates)]
        self.do(Connect(instance.name, PLUG.name, self.producer, SLOT.name))
        self.recorder.count("snap connect")

    @precondition(lambda self: bool(self._connected()))
    @rule(index=st.integers(0, 3))
    def disconnect(self, index: int) -> None:
        connections = self._connected()
        connection = connections[index % len(connections)]
        self.do(
            Disconnect(connection.plug_snap, connection.plug, connection.slot_snap, connection.slot)
        )
        self.recorder.count("snap disconnect")
