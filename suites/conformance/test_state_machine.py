"""Hypothesis drives real snapd with generated operation sequences; every step must match the
model. A divergence is shrunk to a minimal sequence, saved (first and minimal history) and
turned into a shell script and a spread task under artifacts/state-machine/."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from snapconform.conformance.machine import FailureRecorder, SnapdMachine

pytestmark = pytest.mark.conformance


def test_snapd_follows_the_model(host_session, artifacts_dir):
    recorder = FailureRecorder(artifacts_dir / "state-machine")
    SnapdMachine.configure(host_session, recorder)
    try:
        run_state_machine_as_test(SnapdMachine, settings=settings())
    except BaseException:
        paths = recorder.finish()
        for path in paths:
            print(f"\nreproducer: {path}\n{path.read_text()}")
        raise
    finally:
        print(f"\ncoverage labels: {recorder.labels}")
