"""Bad input: snapd refuses it with the message the model predicts, and nothing on the host
changes (the instance is not installed, no data directory is left behind)."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, InstallMissingFile, SetSystem
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance

# One per validation rule of snapd's epoch parser (facts §1), each written as snap.yaml holds it.
INVALID_EPOCHS = {
    "star-zero": "0*",
    "zero-padded": "01",
    "hex": "0xA",
    "decimal": "1.5",
    "negative": "-1",
    "too-big": "4294967296",
    "empty-read-list": "{read: []}",
    "not-increasing": "{read: [2, 1]}",
    "duplicates": "{read: [1, 1]}",
    "too-long": "{read: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}",
    "disjoint": "{read: [1], write: [2]}",
    "not-a-list": "{read: 1}",
}


@pytest.mark.parametrize("epoch", INVALID_EPOCHS.values(), ids=INVALID_EPOCHS.keys())
def test_invalid_epoch_in_snap_yaml_is_refused(conformance, names, epoch):
    name = names.fresh()
    record = conformance.step(InstallFile(SnapFile(name, "1.0", epoch_yaml=epoch)))
    assert record.observed_exit_code != 0
    assert not conformance.last_observation.instance(name).installed
    assert not conformance.last_observation.instance(name).data_dirs


@pytest.mark.parametrize("epoch", INVALID_EPOCHS.values(), ids=INVALID_EPOCHS.keys())
def test_invalid_epoch_refresh_leaves_the_installed_revision_alone(conformance, names, epoch):
    name = names.fresh()
    conformance.step(InstallFile(SnapFile(name, "1.0")))
    before = conformance.last_observation.instance(name)
    record = conformance.step(InstallFile(SnapFile(name, "2.0", epoch_yaml=epoch)))
    assert record.observed_exit_code != 0
    assert conformance.last_observation.instance(name) == before


def test_parallel_instance_needs_the_experimental_flag(conformance, names):
    name = names.fresh()
    conformance.step(SetSystem("experimental.parallel-instances", "false"))
    record = conformance.step(InstallFile(SnapFile(name, "1.0"), name=f"{name}_a"))
    assert record.observed_exit_code != 0
    assert "experimental.parallel-instances" in (record.observed_error or "")


@pytest.mark.parametrize(
    "key", ["UPPER", "elevenchars", "dash-key", "under_score", ""], ids=lambda key: key or "empty"
)
def test_invalid_instance_keys_are_refused(conformance, names, key):
    name = names.fresh()
    conformance.step(SetSystem("experimental.parallel-instances", "true"))
    record = conformance.step(InstallFile(SnapFile(name, "1.0"), name=f"{name}_{key}"))
    assert record.observed_exit_code != 0
    assert not conformance.last_observation.instance(f"{name}_{key}").installed


def test_instance_name_of_another_snap_is_refused(conformance, names):
    name, other = names.fresh(), names.fresh()
    conformance.step(SetSystem("experimental.parallel-instances", "true"))
    record = conformance.step(InstallFile(SnapFile(name, "1.0"), name=f"{other}_k"))
    assert record.observed_exit_code != 0


def test_missing_file_is_refused_by_the_client_and_nothing_changes(conformance, names):
    name = names.fresh()
    conformance.step(InstallFile(SnapFile(name, "1.0")))
    before = conformance.last_observation.instance(name)
    path = f"/var/tmp/snapconform/{name}-missing.snap"
    record = conformance.step(InstallMissingFile(path))
    assert record.observed_exit_code != 0
    assert f'cannot open "{path}"' in (record.observed_error or "")
    assert conformance.last_observation.instance(name) == before
