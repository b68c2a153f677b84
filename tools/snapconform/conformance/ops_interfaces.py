"""Operations on interface connections: `snap connect|disconnect PLUG_SNAP:PLUG SLOT_SNAP:SLOT`.

Predicted by model/snapd_interfaces.py; registered so that histories round-trip through JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from snapconform.conformance.operations import FileLocator, SnapCommand, register_operation
from snapconform.model import snapd as model

__all__ = ["Connect", "Disconnect"]


@dataclass(frozen=True)
class _Connection(SnapCommand):
    plug_snap: str
    plug: str
    slot_snap: str
    slot: str

    verb: ClassVar[str] = ""

    def argv(self) -> list[str]:
        return ["snap", self.verb, f"{self.plug_snap}:{self.plug}", f"{self.slot_snap}:{self.slot}"]

    @property
    def instances(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.plug_snap, self.slot_snap)))


@dataclass(frozen=True)
class Connect(_Connection):
    """`snap connect PLUG_SNAP:PLUG SLOT_SNAP:SLOT`."""

    kind: ClassVar[str] = "connect"
    verb: ClassVar[str] = "connect"

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.connect(state, self.plug_snap, self.plug, self.slot_snap, self.slot)


@dataclass(frozen=True)
class Disconnect(_Connection):
    """`snap disconnect PLUG_SNAP:PLUG SLOT_SNAP:SLOT`."""

    kind: ClassVar[str] = "disconnect"
    verb: ClassVar[str] = "disconnect"

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.disconnect(state, self.plug_snap, self.plug, self.slot_snap, self.slot)


for _operation in (Connect, Disconnect):
    register_operation(_operation)
