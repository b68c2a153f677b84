"""Hypothesis drives real snapd behind the served store with generated store histories (a
publisher's releases, promotions, closes, unreleases and misbehaviours; users' installs,
refreshes of one or all, switches, reverts and removes); every step must match the model. A
divergence is shrunk by replay to a minimal history, saved with its reproducers (which start
the store and recreate its catalog at each step) under artifacts/store-state-machine/.

Coverage labels (epoch stepping, bridge used, closed-channel forwarding, blocked retry, ...) are
Hypothesis events: `--hypothesis-show-statistics` prints their counts; summary.json and the
junit properties carry them with the steps and the rate."""

from __future__ import annotations

import pytest

from snapconform.conformance.machine import machine_settings, recorded_machine
from snapconform.conformance.store_machine import StoreMachine

pytestmark = pytest.mark.conformance


class TestSnapdFollowsTheModelThroughTheStore(StoreMachine.TestCase):
    settings = machine_settings()

    @pytest.fixture(autouse=True)
    def _drive(self, request, store_session, artifacts_dir, record_property):
        def failed() -> bool:
            report = getattr(request.node, "report_call", None)
            return report is not None and report.failed

        with recorded_machine(
            StoreMachine,
            store_session,
            artifacts_dir / "store-state-machine",
            record_property=record_property,
            failed=failed,
        ):
            yield
