"""A snap's configuration on real snapd: `snap set/get NAME`, the configure hook that reads it
(and refuses a value), and the per-revision copies snapd keeps across refresh, revert and
rollback (model/snapd_config.py; each step is compared with REST /v2/snaps/NAME/conf and the
values the hooks read)."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile, Refresh, Remove, Revert
from snapconform.conformance.ops_config import GetSnapConfig, SetSnapConfig
from snapconform.conformance.ops_services import Disable, Enable
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance

READS_K = HookPlan("configure", reads_config=("k",))


def configured(name: str, version: str, *more: HookPlan) -> SnapFile:
    return SnapFile(name, version, hooks=(READS_K, *more))


def test_snap_set_runs_the_configure_hook_which_may_refuse(conformance, names):
    name, other = names.fresh(), names.fresh()
    conformance.run(
        [
            InstallFile(configured(name, "1.0")),  # configure reads k: unset, prints nothing
            SetSnapConfig(name, (("k", "one"),)),
            GetSnapConfig(name, "k"),
            SetSnapConfig(name, (("k", "bad1"),)),  # the hook refuses: nothing is committed
            GetSnapConfig(name, "k"),
            SetSnapConfig(name, (("k", "two"), ("n", "7"))),  # 7 is a JSON number
            GetSnapConfig(name, "missing"),
            InstallFile(SnapFile(other, "1.0")),  # no configure hook
            SetSnapConfig(other, (("k", "x"),)),  # refused: the hook task is mandatory
        ]
    )


def test_configuration_per_revision_across_refresh_revert_and_rollback(conformance, names):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(configured(name, "1.0")),
            SetSnapConfig(name, (("k", "one"),)),
            InstallFile(configured(name, "2.0")),  # x1's copy saved; configure in x2 sees one
            SetSnapConfig(name, (("k", "two"),)),
            Revert(name),  # x2's copy saved, x1's restored: one
            Revert(name, "x2"),  # x2's copy restored: two
            Refresh(name, "x1"),  # a refresh restores nothing: still two
            # post-refresh fails: undone, the old current's copy (two) is put back
            InstallFile(configured(name, "3.0", HookPlan("post-refresh", "no"))),
            Remove(name, "x2"),  # x2 and its copy go
            Revert(name),  # to x1? no: x1 is current; refused
            Remove(name),
        ]
    )


def test_a_revert_to_a_revision_without_a_copy_keeps_the_configuration(conformance, names):
    """No configuration when x1 was left, so x1 has no copy: the revert restores nothing."""
    name = names.fresh()
    conformance.run(
        [
            InstallFile(configured(name, "1.0")),
            InstallFile(configured(name, "2.0")),
            SetSnapConfig(name, (("k", "two"),)),
            Revert(name),
            GetSnapConfig(name, "k"),
        ]
    )


def test_dotted_keys_patch_maps_and_travel_with_revisions(conformance, names):
    """`snap set NAME d.x=...` (config/transaction.go): maps patched key by key, a path
    through anything else refused before the hook runs; the nested values saved per revision
    like the others."""
    name = names.fresh()
    conformance.run(
        [
            InstallFile(configured(name, "1.0")),
            SetSnapConfig(name, (("d.x", "1"), ("d.y", "two"))),
            GetSnapConfig(name, "d.x"),
            GetSnapConfig(name, "d.nope"),
            SetSnapConfig(name, (("d.x.deep", "true"),)),  # 1 is not a map: refused
            GetSnapConfig(name, "d.x.deep"),  # the same refusal from snap get
            SetSnapConfig(name, (("e.b", "2"), ("e", '{"a": 1}'))),  # e first, then patched
            InstallFile(configured(name, "2.0")),
            SetSnapConfig(name, (("d", "plain"),)),
            SetSnapConfig(name, (("d.z", "3"),)),  # through a string: refused
            Revert(name),  # x1's copy: d as it was before the refresh
            GetSnapConfig(name, "d.y"),
        ]
    )


def test_snap_set_of_a_disabled_snap_fails_in_its_hook(conformance, names):
    """The hook task of a disabled snap runs `snap run --hook`, which finds no current link:
    the change fails and nothing is committed; `snap enable` brings the old value back."""
    name = names.fresh()
    conformance.run(
        [
            InstallFile(configured(name, "1.0")),
            SetSnapConfig(name, (("k", "one"),)),
            Disable(name),
            SetSnapConfig(name, (("k", "two"),)),
            GetSnapConfig(name, "k"),
            Enable(name),
            GetSnapConfig(name, "k"),
        ]
    )
