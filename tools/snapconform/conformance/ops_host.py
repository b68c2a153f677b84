"""Host steps: what the host, not snapd, does to a snap's files between snapd's steps.

`WriteData` puts a file of a given size into the current revision's SNAP_DATA, as a snap that
keeps much data has there: copy-snap-data of the next refresh then takes a while, long enough
for a kill point to land inside the copy (suites/conformance/test_faults.py).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import ClassVar

from snapconform.conformance.operations import FileLocator, Operation, register_operation
from snapconform.harness.operations import SnapClient, SnapCommandResult
from snapconform.model import snapd as model

MAX_MEGABYTES = 4096


@dataclass(frozen=True)
class WriteData(Operation):
    """`head -c SIZE /dev/zero > /var/snap/INSTANCE/current/MARKER` (the model: MARKER in the
    current revision's SNAP_DATA; only SNAP_DATA, not SNAP_COMMON)."""

    kind: ClassVar[str] = "write-data"
    instance: str
    marker: str
    megabytes: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.megabytes <= MAX_MEGABYTES:
            raise ValueError(f"write-data size {self.megabytes} MiB: 0..{MAX_MEGABYTES}")

    def predict(self, state: model.SnapdState, locate: FileLocator) -> model.Outcome:
        return model.host_writes_data(state, self.instance, self.marker)

    def _script(self) -> str:
        target = shlex.quote(f"/var/snap/{self.instance}/current/{self.marker}")
        size = shlex.quote(f"{self.megabytes}M")
        return f"head -c {size} /dev/zero > {target} && sync"

    def perform(self, client: SnapClient, locate: FileLocator) -> SnapCommandResult:
        started = time.monotonic()
        result = client.shell.run(self._script() + " 2>&1", timeout=300)
        return SnapCommandResult(
            ("write-data", self.instance, self.marker),
            result.exit_code,
            result.output,
            time.monotonic() - started,
        )

    def shell(self, locate: FileLocator) -> str:
        return self._script()

    @property
    def instances(self) -> tuple[str, ...]:
        return (self.instance,)


register_operation(WriteData)
