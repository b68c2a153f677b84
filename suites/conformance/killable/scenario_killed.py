"""Run only by test_killed_run.py, which SIGKILLs the pytest running it: three quick steps, then
one that waits until it is killed."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, RunApp
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance


def test_killed_after_three_steps(conformance, names):
    name = names.fresh()
    conformance.run([InstallFile(SnapFile(name, "1.0")), RunApp(name, "m1"), RunApp(name, "m2")])
    # the parent kills us while snapd is busy with this one
    conformance.client.shell.run("sleep 300", timeout=400)
