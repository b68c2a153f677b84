"""Operations that name several snaps or none, and `snap run --hook` (model/snapd_commands.py):
`snap install --dangerous FILE...`, `snap remove NAME...`, `snap revert` alone,
`snap run --hook=HOOK NAME`. Registered so that histories round-trip through JSON."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, ClassVar

from snapconform.conformance.operations import (
    FileLocator,
    InstanceCommand,
    Operation,
    register_operation,
    snap_file_from_json,
)
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.model import snapd as model
from snapconform.model import snapd_commands as commands

__all__ = ["InstallMany", "RemoveMany", "RevertWithoutName", "RunHook"]


@dataclass(frozen=True)
class InstallMany(Operation):
    """`snap install --dangerous FILE FILE...` (one change, a lane per snap)."""

    kind: ClassVar[str] = "install-many"
    snaps: tuple[model.SnapFile, ...]

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return commands.install_many(state, tuple((snap, locate(snap)) for snap in self.snaps))

    def argv(self, locate: FileLocator) -> list[str]:
        return ["snap", "install", "--dangerous", *(locate(snap) for snap in self.snaps)]

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(self.argv(locate))

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(self.argv(locate))

    @property
    def instances(self) -> tuple[str, ...]:
        return tuple(snap.name for snap in self.snaps)

    def snap_files(self) -> tuple[model.SnapFile, ...]:
        return self.snaps


def _install_many_from_json(data: dict[str, Any]) -> dict[str, Any]:
    data["snaps"] = tuple(snap_file_from_json(snap) for snap in data["snaps"])
    return data


@dataclass(frozen=True)
class RemoveMany(Operation):
    """`snap remove NAME NAME...`."""

    kind: ClassVar[str] = "remove-many"
    names: tuple[str, ...]

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return commands.remove_many(state, self.names)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(["snap", "remove", *self.names])

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(["snap", "remove", *self.names])

    @property
    def instances(self) -> tuple[str, ...]:
        return self.names


def _remove_many_from_json(data: dict[str, Any]) -> dict[str, Any]:
    data["names"] = tuple(data["names"])
    return data


@dataclass(frozen=True)
class RevertWithoutName(Operation):
    """`snap revert` with no snap named."""

    kind: ClassVar[str] = "revert-without-name"

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return commands.revert_without_name(state)

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(["snap", "revert"])

    def shell(self, locate: FileLocator) -> str:
        return "snap revert"


@dataclass(frozen=True)
class RunHook(InstanceCommand):
    """`snap run --hook=HOOK NAME`: the current revision's hook, by hand, as root."""

    kind: ClassVar[str] = "run-hook"
    hook: str

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return commands.run_hook(state, self.instance, self.hook)

    def argv(self) -> list[str]:
        return ["snap", "run", f"--hook={self.hook}", self.instance]


register_operation(InstallMany, _install_many_from_json)
register_operation(RemoveMany, _remove_many_from_json)
register_operation(RevertWithoutName)
register_operation(RunHook)
