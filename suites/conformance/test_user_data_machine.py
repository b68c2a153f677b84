"""The state machine with its users'-data and configuration rules in focus: SnapdMachine's
install, refresh, revert and remove rules plus machine_userdata.UserDataRules (add-user,
run-as-user, app environment, set-config), without the services, connection and host-snap
rules, which otherwise take most steps of a short run. A short run (3 examples of 15 steps,
more under HYPOTHESIS_PROFILE=soak or nightly); every step is checked against the model and a
divergence is shrunk and saved like test_state_machine's, under artifacts/user-data-machine/."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import Phase, settings

from snapconform.conformance.machine import FailureRecorder, SnapdMachine

pytestmark = pytest.mark.conformance

LONG = os.environ.get("HYPOTHESIS_PROFILE") in ("soak", "nightly")


class UserDataMachine(SnapdMachine):
    """SnapdMachine without the services rules (plain attributes are not rules)."""

    install_or_refresh_with_services = None
    install_or_refresh_with_services_again = None
    disable_snap = None
    enable_snap = None
    stop_service = None
    start_service_enable = None
    install_producer = None
    remove_producer = None
    connect = None
    disconnect = None
    remove_host_snap = None


class TestUserDataFollowsTheModel(UserDataMachine.TestCase):
    settings = settings(
        settings.default,
        max_examples=30 if LONG else 3,
        stateful_step_count=30 if LONG else 15,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )

    @pytest.fixture(autouse=True)
    def _drive(self, request, host_session, artifacts_dir, record_property):
        recorder = FailureRecorder(artifacts_dir / "user-data-machine", session=host_session)
        UserDataMachine.configure(host_session, recorder)
        yield
        summary = {"steps": recorder.steps, "labels": recorder.labels}
        (artifacts_dir / "user-data-machine").mkdir(parents=True, exist_ok=True)
        (artifacts_dir / "user-data-machine" / "summary.json").write_text(
            json.dumps(summary, indent=2) + "\n"
        )
        record_property("labels", recorder.labels)
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for path in recorder.finish():
                print(f"\n==> {path}\n{path.read_text()}")
        print(f"\n{recorder.steps} steps checked against the model; labels: {recorder.labels}")
