"""Runs put back the system settings they change, to what the host had: on a borrowed host
(local://, ssh://, lxd://) the owner's values survive, and the model starts from them."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, SetSystem
from snapconform.conformance.session import ConformanceRun
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance


def setting(session, key):
    return session.shell.run(f"snap get system {key}", timeout=60).output.strip()


def test_the_owners_settings_survive_and_the_model_starts_from_them(host_session, names):
    owner = host_session.baseline.get("refresh.retain")
    host_session.shell.run("snap set system refresh.retain=5", timeout=60)
    host_session.attach()  # as if we had found the host like this
    try:
        run = ConformanceRun(host_session)
        assert run.state.retain == 5
        name = names.fresh()
        run.run(
            [SetSystem("refresh.retain", "3")]
            + [InstallFile(SnapFile(name, f"{i}.0")) for i in range(1, 5)]
        )
        assert run.last_observation.instance(name).sequence == ("x2", "x3", "x4")
        following = ConformanceRun(host_session)
        assert setting(host_session, "refresh.retain") == "5" and following.state.retain == 5
    finally:
        restore = (
            f"snap set system refresh.retain={owner}"
            if owner
            else "snap unset system refresh.retain"
        )
        host_session.shell.run(restore, timeout=60)
        host_session.attach()
