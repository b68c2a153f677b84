"""Run only by test_killed_worker.py, as `pytest -n 2` over this file: one worker runs each
test. The parent SIGKILLs the worker running test_killed (while its snapd is busy), then
touches $SNAPCONFORM_KILLED; test_survives waits for that and takes one more step."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from snapconform.conformance.operations import InstallFile, RunApp
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance


def test_killed(conformance, names):
    name = names.fresh()
    conformance.run([InstallFile(SnapFile(name, "1.0")), RunApp(name, "m1")])
    conformance.client.shell.run("sleep 300", timeout=400)  # killed in here


def test_survives(conformance, names):
    name = names.fresh()
    conformance.run([InstallFile(SnapFile(name, "1.0")), RunApp(name, "m1")])
    marker = Path(os.environ["SNAPCONFORM_KILLED"])
    deadline = time.monotonic() + 300
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the other worker was never killed"
    conformance.step(RunApp(name, "m2"))  # this worker and its host go on
