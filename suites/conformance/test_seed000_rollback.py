"""Seed 000, "How to cause a snap rollback?": failing hooks as a publisher's brake.

Every step is also checked against the model by ConformanceRun.step; the asserts below state
the seed's claims directly on what real snapd did.
"""

from __future__ import annotations

from snapconform.conformance.operations import InstallFile, RunApp
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = __import__("pytest").mark.conformance


def test_failing_pre_refresh_changes_nothing(conformance, names):
    """#3-#5: failing pre-refresh (it runs in the OLD revision) aborts the refresh."""
    name = names.fresh()
    old = SnapFile(name, "1.0", hooks=(HookPlan("pre-refresh", fails_with="save your work first"),))
    new = SnapFile(name, "2.0")
    conformance.run([InstallFile(old), RunApp(name, "before")])
    before = conformance.last_observation.instance(name)

    record = conformance.step(InstallFile(new))

    assert not record.expected_ok and record.observed_exit_code != 0
    assert "save your work first" in (record.observed_error or "")
    after = conformance.last_observation.instance(name)
    assert after == before, "a refused refresh must leave revisions and data as they were"
    assert [hook[1:] for hook in record.observed_hooks] == [["pre-refresh", "x1"]]


def test_pre_refresh_runs_in_old_revision_and_is_not_told_the_next(conformance, names):
    """#4: "the pre-refresh hook is run in the previous snap ...
    you can't know which one is coming"."""
    name = names.fresh()
    old = SnapFile(name, "1.0", hooks=(HookPlan("pre-refresh"),))
    new = SnapFile(name, "2.0", hooks=(HookPlan("pre-refresh"), HookPlan("post-refresh")))
    conformance.run([InstallFile(old), InstallFile(new)])

    lines = {line.hook: line for line in conformance.last_observation.hooks}
    pre, post = lines["pre-refresh"], lines["post-refresh"]
    assert (pre.revision, pre.version, pre.snap_data) == ("x1", "1.0", f"/var/snap/{name}/x1")
    assert (post.revision, post.version, post.snap_data) == ("x2", "2.0", f"/var/snap/{name}/x2")


def test_failing_post_refresh_rolls_back_to_old_revision_with_its_data(conformance, names):
    """#4: a failing post-refresh "will actually mark the new snap revision as bad" (rollback)."""
    name = names.fresh()
    old = SnapFile(name, "1.0")
    new = SnapFile(name, "2.0", hooks=(HookPlan("post-refresh", fails_with="cannot migrate"),))
    conformance.run([InstallFile(old), RunApp(name, "kept")])

    record = conformance.step(InstallFile(new))

    assert record.observed_exit_code != 0
    assert "cannot migrate" in (record.observed_error or "")
    after = conformance.last_observation.instance(name)
    assert after.sequence == ("x1",) and after.current == "x1"
    assert after.revision("x1").data == frozenset({"kept"})
    assert "x2" not in after.data_dirs, "the new revision's data is dropped on rollback"


def test_snap_common_writes_survive_a_rollback(conformance, names):
    """004: "epochs cannot automatically safeguard ... $SNAP_COMMON ... if a refresh fails"."""
    name = names.fresh()
    old = SnapFile(name, "1.0")
    new = SnapFile(
        name,
        "2.0",
        hooks=(HookPlan("post-refresh", fails_with="half-migrated", marker="migrated"),),
    )
    conformance.run([InstallFile(old), RunApp(name, "v1-data")])
    conformance.step(InstallFile(new))

    after = conformance.last_observation.instance(name)
    assert after.current == "x1"
    assert "migrated" in (after.common or frozenset()), "SNAP_COMMON is not rolled back"
    assert "migrated" not in after.revision("x1").data
