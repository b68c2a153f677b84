"""Parallel instances and hooks: a refresh that reuses the revision number of an undone one.

Found by the state machine in CI and shrunk by replay to these steps. On snapd 2.57.6 and 2.68.3
the second refresh's post-refresh hook runs with a $SNAP that does not show the new file (the
known divergence `parallel-instance-hook-sees-undone-revision`: this test is then reported as an
expected failure naming it); on 2.77.1 the hook sees its own files, as the documents say. A
plain snap (no instance key) is fine on every release.
"""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, SetSystem
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "instance-key"])
def test_hook_of_a_refresh_reusing_an_undone_revision_sees_its_own_files(conformance, names, keyed):
    name = names.fresh()
    instance = f"{name}_k1" if keyed else None
    conformance.run(
        [
            SetSystem("experimental.parallel-instances", "true"),
            InstallFile(SnapFile(name, "1.0"), name=instance),
            # fails in post-refresh: x2 is undone
            InstallFile(
                SnapFile(name, "2.0", hooks=(HookPlan("post-refresh", "first failure"),)),
                name=instance,
            ),
        ]
    )
    # x2 again, another file: its hook prints a message it reads from its own $SNAP
    record = conformance.step(
        InstallFile(
            SnapFile(name, "3.0", hooks=(HookPlan("post-refresh", "second failure"),)),
            name=instance,
        )
    )
    assert '(run hook "post-refresh": second failure)' in (record.observed_error or "")
    seen = conformance.last_observation.instance(instance or name)
    assert seen.sequence == ("x1",) and seen.current == "x1"
