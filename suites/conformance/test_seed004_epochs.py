"""Seed 004, the "Snap epochs" page, on one machine: what snapd itself enforces.

The store side of the page (who gets which revision) is the store model's, checked offline in
suites/model; here real snapd decides local refreshes, reverts and parallel instances.
"""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, Revert, RunApp, SetSystem
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance


def test_epoch_n_over_n_minus_1_is_refused_and_nothing_changes(conformance, names):
    """ "incrementing the epoch in the new release stops those old users ... refreshing"."""
    name = names.fresh()
    conformance.run([InstallFile(SnapFile(name, "1.0", epoch_yaml="0")), RunApp(name, "old")])
    before = conformance.last_observation.instance(name)

    record = conformance.step(InstallFile(SnapFile(name, "2.0", epoch_yaml="1")))

    assert record.observed_error == (
        f'cannot install snap file: cannot refresh "{name}" to local snap with epoch 1, '
        "because it can't read the current epoch of 0"
    )
    assert conformance.last_observation.instance(name) == before
    assert record.observed_hooks == []


def test_bridge_epoch_n_star_over_n_minus_1_is_accepted_and_data_is_copied(conformance, names):
    """ "epoch: 1* ... acts as a bridge between epoch 0 and epoch 1"; data "is still copied"."""
    name = names.fresh()
    conformance.run(
        [
            SetSystem("refresh.retain", "2"),  # classic's default, stated for borrowed hosts
            InstallFile(SnapFile(name, "1.0", epoch_yaml="0")),
            RunApp(name, "epoch0-data"),
            InstallFile(SnapFile(name, "2.0", epoch_yaml="1*")),
            InstallFile(SnapFile(name, "3.0", epoch_yaml="1")),
        ]
    )
    seen = conformance.last_observation.instance(name)
    assert seen.sequence == ("x2", "x3") and seen.current == "x3"
    assert seen.revision("x2").epoch_yaml == "1*"
    assert seen.revision("x3").data == frozenset({"epoch0-data"})


def test_revert_across_an_epoch_boundary_restores_the_old_data(conformance, names):
    """ "You can use revert to switch back to releases from a previous epoch, discarding any data
    changes done by the latest revision"."""
    name = names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0", epoch_yaml="0")),
            RunApp(name, "written-by-epoch0"),
            InstallFile(SnapFile(name, "2.0", epoch_yaml="1*")),
            RunApp(name, "written-by-epoch1"),
        ]
    )
    record = conformance.step(Revert(name))

    assert record.observed_exit_code == 0
    seen = conformance.last_observation.instance(name)
    assert seen.current == "x1" and seen.revision("x1").epoch_yaml == "0"
    assert seen.revision("x1").data == frozenset({"written-by-epoch0"})
    assert seen.revision("x2").data == frozenset({"written-by-epoch0", "written-by-epoch1"})


def test_parallel_instances_on_different_epochs_live_side_by_side(conformance, names):
    """004: "you can install both epoch 0 and epoch 1 snaps at the same time using
    Parallel installs"."""
    name = names.fresh()
    instance = f"{name}_next"
    conformance.run(
        [
            SetSystem("experimental.parallel-instances", "true"),
            InstallFile(SnapFile(name, "1.0", epoch_yaml="0")),
            InstallFile(SnapFile(name, "2.0", epoch_yaml="1"), name=instance),
            RunApp(name, "zero"),
            RunApp(instance, "one"),
        ]
    )
    seen = conformance.last_observation
    assert seen.instance(name).sequence == ("x1",)
    assert seen.instance(instance).sequence == ("x1",)
    assert seen.instance(name).revision("x1").epoch_yaml == "0"
    assert seen.instance(instance).revision("x1").epoch_yaml == "1"
    assert seen.instance(name).revision("x1").data == frozenset({"zero"})
    assert seen.instance(instance).revision("x1").data == frozenset({"one"})
    # Each instance checks epochs against its own current revision.
    refused = conformance.step(InstallFile(SnapFile(name, "3.0", epoch_yaml="1")))
    accepted = conformance.step(InstallFile(SnapFile(name, "3.0", epoch_yaml="1"), name=instance))
    assert refused.observed_exit_code != 0 and accepted.observed_exit_code == 0
