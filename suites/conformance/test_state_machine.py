"""Hypothesis drives real snapd with generated operation sequences; every step must match the
model. A divergence is shrunk to a minimal sequence, saved (first and minimal history) and
turned into a shell script and a spread task under artifacts/state-machine/.

Coverage labels (epoch-crossing refresh, refused refresh, ...) are Hypothesis events:
`tox -e conformance -- --hypothesis-show-statistics` prints their counts."""

from __future__ import annotations

import json
import os
import time

import pytest

from snapconform.conformance.machine import FailureRecorder, SnapdMachine, machine_settings

pytestmark = pytest.mark.conformance


class TestSnapdFollowsTheModel(SnapdMachine.TestCase):
    settings = machine_settings()

    @pytest.fixture(autouse=True)
    def _drive(self, request, host_session, artifacts_dir, record_property):
        recorder = FailureRecorder(artifacts_dir / "state-machine", session=host_session)
        SnapdMachine.configure(host_session, recorder)
        started = time.monotonic()
        yield
        minutes = (time.monotonic() - started) / 60
        summary = {
            "host": host_session.describe(),
            "profile": os.environ.get("HYPOTHESIS_PROFILE", "dev"),
            "steps": recorder.steps,
            "minutes": round(minutes, 2),
            "steps_per_minute": round(recorder.steps / minutes, 1) if minutes else None,
            "labels": recorder.labels,
            "failures": recorder.failures,
        }
        (artifacts_dir / "state-machine").mkdir(parents=True, exist_ok=True)
        (artifacts_dir / "state-machine" / "summary.json").write_text(
            json.dumps(summary, indent=2) + "\n"
        )
        for key in ("steps", "steps_per_minute", "labels"):
            record_property(key, summary[key])
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for path in recorder.finish():
                print(f"\n==> {path}\n{path.read_text()}")
        print(f"\n{recorder.steps} steps checked against the model; labels: {recorder.labels}")
