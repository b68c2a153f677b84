"""Run only by test_pytest_workers.py, as `pytest -n 2` over this file (no host is made): one
test writes its artifacts, the other's worker dies by SIGKILL."""

from __future__ import annotations

import os
import signal

import pytest

pytestmark = pytest.mark.conformance


def test_writes_its_artifacts(test_artifacts, artifacts_dir):
    assert artifacts_dir.name == os.environ["PYTEST_XDIST_WORKER"]
    (test_artifacts / "history.json").write_text('{"steps": []}\n')


def test_its_worker_dies():
    os.kill(os.getpid(), signal.SIGKILL)
