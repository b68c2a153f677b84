"""Progress of a long run on the terminal: steps so far, the rate and the coverage labels.

The state machine counts its steps and labels in its `FailureRecorder`
(snapconform.conformance.machine); a `ProgressTicker` thread samples them every few seconds and
writes a line when the count moved and at least `interval` seconds passed since the last line,
so a soak or nightly run says how it is going and CI logs get at most one line per interval.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

DEFAULT_INTERVAL = 30.0  # seconds between two lines, at least
SAMPLE_EVERY = 2.0  # seconds between two looks at the counters


@dataclass(frozen=True)
class Sample:
    steps: int
    labels: Mapping[str, int]


def describe(sample: Sample, seconds: float) -> str:
    rate = sample.steps / (seconds / 60) if seconds > 0 else 0.0
    labels = ", ".join(f"{label} {count}" for label, count in sorted(sample.labels.items()))
    return (
        f"snapconform progress: {sample.steps} steps in {seconds / 60:.1f} min "
        f"({rate:.1f} steps/min); labels: {labels or 'none yet'}"
    )


class ProgressLines:
    """Decides when a sample is worth a line (pure: the clock is passed in)."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self.started: float | None = None  # when steps were first seen moving
        self.last_line: float | None = None
        self.last_steps = 0

    def line(self, sample: Sample | None, now: float) -> str | None:
        if sample is None:
            return None
        if sample.steps < self.last_steps:  # a new counter (the next state-machine test)
            self.started, self.last_line, self.last_steps = None, None, 0
        if self.started is None:
            if sample.steps == 0:
                return None
            self.started = self.last_line = now
            self.last_steps = sample.steps
            return None  # the first line comes one interval into the run: short runs print none
        assert self.last_line is not None
        if sample.steps == self.last_steps or now - self.last_line < self.interval:
            return None
        self.last_line, self.last_steps = now, sample.steps
        return describe(sample, now - self.started)


def state_machine_sample() -> Sample | None:
    """The running state machine's counters, if one was configured in this process."""
    machine = sys.modules.get("snapconform.conformance.machine")
    if machine is None:  # never imported: no state machine runs in this session
        return None
    recorder = machine.SnapdMachine.__dict__.get("recorder")
    if recorder is None:
        return None
    return Sample(recorder.steps, dict(recorder.labels))


class ProgressTicker:
    """A daemon thread writing ProgressLines' lines through `write`."""

    def __init__(
        self,
        write: Callable[[str], None],
        sample: Callable[[], Sample | None] = state_machine_sample,
        interval: float = DEFAULT_INTERVAL,
        sample_every: float = SAMPLE_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.sample = sample
        self.lines = ProgressLines(interval)
        self.sample_every = sample_every
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="snapconform-progress", daemon=True)

    def start(self) -> ProgressTicker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def tick(self) -> None:
        line = self.lines.line(self.sample(), self.clock())
        if line is not None:
            self.write(line)

    def _loop(self) -> None:
        while not self._stop.wait(self.sample_every):
            try:
                self.tick()
            except Exception:  # progress is a courtesy: it never breaks a run
                return
