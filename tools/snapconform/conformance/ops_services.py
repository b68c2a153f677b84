"""Operations on services and on a snap's enabled state: `snap disable|enable NAME`,
`snap stop [--disable] NAME.SERVICE`, `snap start [--enable] NAME.SERVICE`.

Predicted by model/snapd_services.py; registered so that histories round-trip through JSON.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import ClassVar

from snapconform.conformance.operations import FileLocator, Operation, register_operation
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.model import snapd as model

__all__ = ["Disable", "Enable", "StartService", "StopService"]


@dataclass(frozen=True)
class Disable(Operation):
    """`snap disable NAME`: services stopped, the snap unlinked, its data kept."""

    kind: ClassVar[str] = "disable"
    instance: str

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.disable(state, self.instance)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(["snap", "disable", self.instance])

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(["snap", "disable", self.instance])

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class Enable(Operation):
    """`snap enable NAME`: the current revision linked again, its services started."""

    kind: ClassVar[str] = "enable"
    instance: str

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.enable(state, self.instance)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(["snap", "enable", self.instance])

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(["snap", "enable", self.instance])

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class StopService(Operation):
    """`snap stop [--disable] NAME.SERVICE`."""

    kind: ClassVar[str] = "stop-service"
    instance: str
    service: str
    disable: bool = False

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.stop_service(state, self.instance, self.service, disable=self.disable)

    def argv(self) -> list[str]:
        flags = ["--disable"] if self.disable else []
        return ["snap", "stop", *flags, f"{self.instance}.{self.service}"]

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(self.argv())

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(self.argv())

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class StartService(Operation):
    """`snap start [--enable] NAME.SERVICE`."""

    kind: ClassVar[str] = "start-service"
    instance: str
    service: str
    enable: bool = False

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.start_service(state, self.instance, self.service, enable=self.enable)

    def argv(self) -> list[str]:
        flags = ["--enable"] if self.enable else []
        return ["snap", "start", *flags, f"{self.instance}.{self.service}"]

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(self.argv())

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(self.argv())

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


for _operation in (Disable, Enable, StopService, StartService):
    register_operation(_operation)
