"""Operations on a snap's configuration: `snap set NAME KEY=VALUE...` and `snap get NAME KEY`.

The configure hook a fixture has reads the keys its HookPlan names (`reads_config`) with
`snapctl get` and logs what it got; a value starting with "bad" makes it fail. After every
step the observation reads REST /v2/snaps/NAME/conf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snapconform.conformance.operations import FileLocator, InstanceCommand, register_operation
from snapconform.model import snapd as model


@dataclass(frozen=True)
class SetSnapConfig(InstanceCommand):
    kind: ClassVar[str] = "set-snap"
    pairs: tuple[tuple[str, str], ...]

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.set_snap_config(state, self.instance, self.pairs)

    def argv(self) -> list[str]:
        return ["snap", "set", self.instance, *(f"{key}={value}" for key, value in self.pairs)]


@dataclass(frozen=True)
class GetSnapConfig(InstanceCommand):
    kind: ClassVar[str] = "get-snap"
    key: str

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.get_config(state, self.instance, self.key)

    def argv(self) -> list[str]:
        return ["snap", "get", self.instance, self.key]


def _pairs_from_json(data: dict[str, Any]) -> dict[str, Any]:
    data["pairs"] = tuple((str(key), str(value)) for key, value in data["pairs"])
    return data


register_operation(SetSnapConfig, _pairs_from_json)
register_operation(GetSnapConfig)
