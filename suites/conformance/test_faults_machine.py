"""The state machine with the fault rule (issue 10 §3): SnapdMachine's rules (local installs and
refreshes across epochs, hooks that fail, parallel instances, reverts, removes, retain) plus
"the next step is killed at point P" (conformance/machine_faults.py). Every interrupted step is
judged against the outcomes the model allows; a divergence is shrunk by replay (the history
carries the kill point) and written out with its reproducers under artifacts/faults-machine/.

Under the dev and ci profiles it runs 2 examples of 12 steps (a few minutes);
`HYPOTHESIS_PROFILE=soak` 4 examples of 20 steps (SNAPCONFORM_FAULT_EXAMPLES=N: N examples),
nightly the profile's own counts; its summary.json lists the kill points reached and the
outcomes seen as coverage labels."""

from __future__ import annotations

import os

import pytest

from snapconform.conformance.machine import machine_settings, recorded_machine
from snapconform.conformance.machine_faults import FaultySnapdMachine

pytestmark = pytest.mark.conformance

# Each interrupted step costs seconds (a kill, a restart, a settle; a power cut a boot), so the
# counts are the fault machine's own: short under dev and ci, ~80 steps under soak (about half
# an hour on one loaded container), the profile's own under nightly.
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
COUNTS = {
    "soak": {"max_examples": 4, "stateful_step_count": 20},
    "nightly": {},
}.get(PROFILE, {"max_examples": 2, "stateful_step_count": 12})
if os.environ.get("SNAPCONFORM_FAULT_EXAMPLES"):  # a longer (or shorter) soak
    COUNTS = {**COUNTS, "max_examples": int(os.environ["SNAPCONFORM_FAULT_EXAMPLES"])}


class TestSnapdKilledMidChangeFollowsTheModel(FaultySnapdMachine.TestCase):
    settings = machine_settings(**COUNTS)

    @pytest.fixture(autouse=True)
    def _drive(self, request, host_session, artifacts_dir, record_property):
        def failed() -> bool:
            report = getattr(request.node, "report_call", None)
            return report is not None and report.failed

        with recorded_machine(
            FaultySnapdMachine,
            host_session,
            artifacts_dir / "faults-machine",
            record_property=record_property,
            failed=failed,
        ):
            yield
