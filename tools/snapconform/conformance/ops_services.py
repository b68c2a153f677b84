"""Operations on services and on a snap's enabled state: `snap disable|enable NAME`,
`snap stop [--disable] NAME.SERVICE`, `snap start [--enable] NAME.SERVICE`.

Predicted by model/snapd_services.py; registered so that histories round-trip through JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from snapconform.conformance.operations import FileLocator, InstanceCommand, register_operation
from snapconform.model import snapd as model

__all__ = ["Disable", "Enable", "StartService", "StopService"]


@dataclass(frozen=True)
class Disable(InstanceCommand):
    """`snap disable NAME`: services stopped, the snap unlinked, its data kept."""

    kind: ClassVar[str] = "disable"

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.disable(state, self.instance)

    def argv(self) -> list[str]:
        return ["snap", "disable", self.instance]


@dataclass(frozen=True)
class Enable(InstanceCommand):
    """`snap enable NAME`: the current revision linked again, its services started."""

    kind: ClassVar[str] = "enable"

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.enable(state, self.instance)

    def argv(self) -> list[str]:
        return ["snap", "enable", self.instance]


@dataclass(frozen=True)
class StopService(InstanceCommand):
    """`snap stop [--disable] NAME.SERVICE`."""

    kind: ClassVar[str] = "stop-service"
    service: str
    disable: bool = False

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.stop_service(state, self.instance, self.service, disable=self.disable)

    def argv(self) -> list[str]:
        flags = ["--disable"] if self.disable else []
        return ["snap", "stop", *flags, f"{self.instance}.{self.service}"]


@dataclass(frozen=True)
class StartService(InstanceCommand):
    """`snap start [--enable] NAME.SERVICE`."""

    kind: ClassVar[str] = "start-service"
    service: str
    enable: bool = False

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.start_service(state, self.instance, self.service, enable=self.enable)

    def argv(self) -> list[str]:
        flags = ["--enable"] if self.enable else []
        return ["snap", "start", *flags, f"{self.instance}.{self.service}"]


for _operation in (Disable, Enable, StopService, StartService):
    register_operation(_operation)
