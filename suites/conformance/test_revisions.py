"""Local revisions: x<N> numbering and reuse, refresh.retain and garbage collection, revert and
remove with snapd's errors (facts §§4-6). Each step is checked against the model as it runs."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import (
    InstallFile,
    Refresh,
    Remove,
    Revert,
    RunApp,
    SetSystem,
)
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance


def v(name: str, version: str, epoch: str | None = None) -> SnapFile:
    return SnapFile(name, version, epoch_yaml=epoch)


def test_same_file_twice_gives_x1_then_x2(conformance, names):
    name = names.fresh()
    conformance.run([InstallFile(v(name, "1.0")), InstallFile(v(name, "1.0"))])
    assert conformance.last_observation.instance(name).sequence == ("x1", "x2")


def test_x_numbers_are_reused_after_a_full_remove(conformance, names):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(v(name, "1.0")),
            InstallFile(v(name, "2.0")),
            Remove(name),
            InstallFile(v(name, "3.0")),
        ]
    )
    seen = conformance.last_observation.instance(name)
    assert seen.sequence == ("x1",) and seen.revision("x1").version == "3.0"


def test_retain_2_garbage_collects_the_oldest_on_refresh(conformance, names):
    name = names.fresh()
    conformance.run(
        [
            SetSystem("refresh.retain", "2"),  # classic's default, stated for borrowed hosts
            InstallFile(v(name, "1.0")),
            RunApp(name, "a"),
            InstallFile(v(name, "2.0")),
            InstallFile(v(name, "3.0")),
        ]
    )
    seen = conformance.last_observation.instance(name)
    assert seen.sequence == ("x2", "x3")
    assert "x1" not in seen.data_dirs


def test_retain_3_keeps_three_and_lowering_it_removes_nothing_until_the_next_refresh(
    conformance, names
):
    name = names.fresh()
    conformance.run(
        [SetSystem("refresh.retain", "3")] + [InstallFile(v(name, f"{i}.0")) for i in range(1, 5)]
    )
    assert conformance.last_observation.instance(name).sequence == ("x2", "x3", "x4")
    conformance.step(SetSystem("refresh.retain", "2"))
    conformance.step(RunApp(name, "m"))
    assert conformance.last_observation.instance(name).sequence == ("x2", "x3", "x4")
    conformance.step(InstallFile(v(name, "5.0")))
    assert conformance.last_observation.instance(name).sequence == ("x4", "x5")


def test_refresh_after_revert_discards_the_reverted_from_revision(conformance, names):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(v(name, "1.0")),
            InstallFile(v(name, "2.0")),
            Revert(name),
            InstallFile(v(name, "3.0")),
        ]
    )
    seen = conformance.last_observation.instance(name)
    assert seen.current == "x3" and "x2" not in seen.sequence


def test_refresh_to_a_present_revision_overwrites_its_data_with_current(conformance, names):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(v(name, "1.0")),
            RunApp(name, "only-in-x1"),
            InstallFile(v(name, "2.0")),
            RunApp(name, "written-in-x2"),
            Refresh(name, "x1"),
        ]
    )
    seen = conformance.last_observation.instance(name)
    assert seen.sequence == ("x2", "x1") and seen.current == "x1"
    assert "written-in-x2" in seen.revision("x1").data


def test_revert_and_remove_errors(conformance, names):
    name = names.fresh()
    steps = conformance.run(
        [
            InstallFile(v(name, "1.0")),
            Revert(name),  # no revision to revert to
            InstallFile(v(name, "2.0")),
            Revert(name, "x9"),  # cannot find revision
            Revert(name, "x2"),  # already on requested revision
            Remove(name, "x2"),  # active revision (revert first?)
            Remove(name, "x7"),  # not installed: snap prints it and exits 0
            Refresh(name),  # local snap unknown to the store
            Remove(name, "x1"),  # fine: inactive
            Remove(name, "x2"),  # the only revision left, active
        ]
    )
    refused = [step.index for step in steps if step.observed_exit_code != 0]
    # 2.71+ turns removing the only (active) revision into a full remove (facts §10).
    last_refused = conformance.session.snapd_version < (2, 71)
    assert refused == [2, 4, 5, 6, 8] + ([10] if last_refused else [])
    assert "is not installed" in steps[6].observed_output
