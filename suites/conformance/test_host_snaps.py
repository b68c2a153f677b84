"""Snaps the model did not install (issue 9 §1): the host's own snaps seed the model, and
snapd's in-use rules for removing them are predicted (model/snapd_host.py); a step about what
the model does not know of such a snap is "outside-model", never a made-up prediction.

On nspawn the host's snaps are the stand-in `core` (type os) and `snapd` (type snapd); every
fixture app has no `base:`, so it uses core. Each test keeps an app installed while it asks to
remove core: from snapd 2.62 an unused core is removable on classic, and this host has no store
to bring it back.
"""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, Remove, RunApp
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance


def keep_host_whole(conformance) -> None:
    """A host whose core went (a wrong prediction let it) is no use to the next test."""
    seen = conformance.observer.observe(["core"], consume_hooks=False)
    if not seen.instance("core").installed:
        conformance.session.broken = True


def test_the_hosts_snaps_seed_the_model(conformance):
    core = conformance.state.instance("core")
    assert core is not None and core.preinstalled
    assert core.current_revision.snap_type == "os"
    snapd = conformance.state.instance("snapd")
    if snapd is not None:  # the stand-in is in every image we build; a borrowed host may differ
        assert snapd.current_revision.snap_type == "snapd" and snapd.preinstalled


def test_removing_core_while_an_app_uses_it_is_refused(conformance, names):
    app, other = names.fresh(), names.fresh()
    try:
        conformance.run(
            [
                InstallFile(SnapFile(app, "1.0")),
                InstallFile(SnapFile(other, "1.0")),
                Remove("core"),  # 2.57: used by the model; 2.62+: used by both apps
                Remove("core", revision="x1"),  # the only revision (2.71+: a full remove)
                Remove(other, purge=True),
                Remove("core"),  # now used by one app
                Remove("core", revision="x2"),  # not in the sequence
            ]
        )
    finally:
        keep_host_whole(conformance)
    refusal = conformance.history[2]
    assert refusal.verdict == "pass" and refusal.expected_kind == "not-removable"
    assert refusal.observed_exit_code != 0
    conformance.step(Remove(app, purge=True))


def test_removing_snapd_is_refused_while_other_snaps_are_installed(conformance, names):
    if conformance.state.instance("snapd") is None:
        pytest.skip("this host has no snapd snap")
    app = names.fresh()
    conformance.run([InstallFile(SnapFile(app, "1.0")), Remove("snapd"), Remove(app)])
    assert conformance.history[1].expected_kind == "not-removable"


def test_running_an_app_of_a_host_snap_is_outside_the_model(conformance):
    record = conformance.step(RunApp("core", "m1"))
    assert record.verdict == "outside-model"
    assert "core was on the host before the run" in record.expected_why
    assert record.observed_exit_code is None  # not sent to snapd
