"""`snap try DIR` and editing the tried directory (model/snapd_try.py). DIR is the fixture's
unpacked tree: the .snap is uploaded and unpacked on the host with unsquashfs (snapd's own
dependency), once per file, so trying the same snap again tries the same directory.
Registered so that histories round-trip through JSON."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar

from snapconform.conformance.operations import (
    FileLocator,
    FileStep,
    file_step_from_json,
    register_operation,
)
from snapconform.harness.fixtures import HOST_WORK_DIR
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.model import snapd as model
from snapconform.model import snapd_try

__all__ = ["EditTried", "TryDir", "tried_dir"]

TRY_ROOT = HOST_WORK_DIR / "try"


def tried_dir(snap_path: str) -> str:
    """Where the tree of the uploaded file ``snap_path`` is unpacked on the host."""
    return str(TRY_ROOT / PurePosixPath(snap_path).stem)


def _unpack_script(snap_path: str) -> str:
    directory = tried_dir(snap_path)
    unpack = shlex.join(["unsquashfs", "-no-progress", "-d", directory, snap_path])
    mkdir = shlex.join(["mkdir", "-p", str(TRY_ROOT)])
    return f"test -d {shlex.quote(directory)} || {{ {mkdir} && {unpack} >/dev/null; }}"


@dataclass(frozen=True)
class TryDir(FileStep):
    """`snap try DIR` with DIR the unpacked ``snap``."""

    kind: ClassVar[str] = "try-dir"

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return snapd_try.try_dir(state, self.snap, tried_dir(locate(self.snap)))

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        snap_path = locate(self.snap)
        unpacked = client.shell.run(_unpack_script(snap_path) + " 2>&1", timeout=120)
        if unpacked.exit_code != 0:
            return SnapCommandResult(
                ("unsquashfs", snap_path), unpacked.exit_code, unpacked.output, unpacked.duration
            )
        return client.run_snap(["snap", "try", tried_dir(snap_path)])

    def shell(self, locate: FileLocator) -> str:
        snap_path = locate(self.snap)
        return f"{_unpack_script(snap_path)} && snap try {shlex.quote(tried_dir(snap_path))}"


@dataclass(frozen=True)
class EditTried(FileStep):
    """Write TEXT into the tried directory's try-note (no snap command)."""

    kind: ClassVar[str] = "edit-tried"
    text: str

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return snapd_try.edit_note(state, tried_dir(locate(self.snap)), self.text)

    def _script(self, locate: FileLocator) -> str:
        note = f"{tried_dir(locate(self.snap))}/{snapd_try.NOTE_FILE}"
        return f"printf %s {shlex.quote(self.text)} > {shlex.quote(note)}"

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        started = time.monotonic()
        result = client.shell.run(self._script(locate) + " 2>&1", timeout=30)
        return SnapCommandResult(
            ("edit-tried", self.snap.name),
            result.exit_code,
            result.output,
            time.monotonic() - started,
        )

    def shell(self, locate: FileLocator) -> str:
        return self._script(locate)


register_operation(TryDir, file_step_from_json)
register_operation(EditTried, file_step_from_json)
