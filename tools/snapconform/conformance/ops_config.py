"""Operations on a snap's configuration: `snap set NAME KEY=VALUE...` and `snap get NAME KEY`.

The configure hook a fixture has reads the keys its HookPlan names (`reads_config`) with
`snapctl get` and logs what it got; a value starting with "bad" makes it fail. After every
step the observation reads REST /v2/snaps/NAME/conf.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, ClassVar

from snapconform.conformance.operations import FileLocator, Operation, register_operation
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.model import snapd as model


@dataclass(frozen=True)
class SetSnapConfig(Operation):
    kind: ClassVar[str] = "set-snap"
    instance: str
    pairs: tuple[tuple[str, str], ...]

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.set_snap_config(state, self.instance, self.pairs)

    def _argv(self) -> list[str]:
        return ["snap", "set", self.instance, *(f"{key}={value}" for key, value in self.pairs)]

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(self._argv())

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(self._argv())

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


@dataclass(frozen=True)
class GetSnapConfig(Operation):
    kind: ClassVar[str] = "get-snap"
    instance: str
    key: str

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.get_config(state, self.instance, self.key)

    def _argv(self) -> list[str]:
        return ["snap", "get", self.instance, self.key]

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(self._argv())

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(self._argv())

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


def _pairs_from_json(data: dict[str, Any]) -> dict[str, Any]:
    data["pairs"] = tuple((str(key), str(value)) for key, value in data["pairs"])
    return data


register_operation(SetSnapConfig, _pairs_from_json)
register_operation(GetSnapConfig)
