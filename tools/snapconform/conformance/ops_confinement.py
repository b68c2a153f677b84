"""`snap install --dangerous [--devmode] [--jailmode] [--classic] FILE`
(model/snapd_confinement.py). Registered so that histories round-trip through JSON."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, ClassVar

from snapconform.conformance.operations import (
    FileLocator,
    FileStep,
    file_step_from_json,
    register_operation,
)
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.model import snapd as model
from snapconform.model.snapd_confinement import NO_MODES, Modes

__all__ = ["InstallWithModes", "Modes"]


@dataclass(frozen=True)
class InstallWithModes(FileStep):
    """A local install (or refresh) with confinement flags; no flags: a plain install."""

    kind: ClassVar[str] = "install-modes"
    modes: Modes = NO_MODES

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.install(state, self.snap, file_path=locate(self.snap), modes=self.modes)

    def argv(self, locate: FileLocator) -> list[str]:
        return ["snap", "install", "--dangerous", *self.modes.argv(), locate(self.snap)]

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        return client.run_snap(self.argv(locate))

    def shell(self, locate: FileLocator) -> str:
        return shlex.join(self.argv(locate))


def _from_json(data: dict[str, Any]) -> dict[str, Any]:
    return {**file_step_from_json(data), "modes": Modes(**data.get("modes", {}))}


register_operation(InstallWithModes, _from_json)
