"""Seed 004 on real snapd: new users and old-epoch users, and a revert back across an epoch.

- "the old epoch is invisible to new users who always get the latest epoch with a fresh
  installation": users installing after an epoch-1 release get it, also when an epoch-0
  revision was released after it;
- "You can still push updates to users of the old epoch by specifying epoch: 0": an epoch-0
  maintenance release reaches the epoch-0 user, not the epoch-1 ones;
- "You can use revert to switch back to releases from a previous epoch, discarding any data
  changes done by the latest revision": the old user crosses to epoch 1 through a 1* bridge,
  reverts to the epoch-0 store revision, and then `snap refresh` (all) leaves the reverted-from
  revision alone while `snap refresh NAME` takes it again.

The users are parallel instances of one snap on one snapd (NAME: the old user; NAME_new and
NAME_late: new users). Every step is model-checked."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import Revert, RunApp, SetSystem
from snapconform.conformance.store_steps import RefreshAll, Release, StoreInstall, StoreRefresh
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance

POST_REFRESH = (HookPlan("post-refresh"),)  # shows each hop in the hook log


def current_of(run, instance: str) -> tuple[str | None, str | None]:
    seen = run.last_observation.instance(instance)
    revision = seen.revision(seen.current or "")
    return seen.current, None if revision is None else (revision.epoch_yaml or "0")


def test_new_users_get_the_latest_epoch_and_old_users_keep_epoch_0_updates(store_run, names):
    name = names.fresh()
    old, new, late = name, f"{name}_new", f"{name}_late"
    watch = (old, new)
    store_run.run(
        [
            SetSystem("experimental.parallel-instances", "true"),
            Release(SnapFile(name, "1.0"), "stable", 1),
            StoreInstall(old),
            Release(SnapFile(name, "2.0", epoch_yaml="1"), "stable", 2),
            # the old user cannot read R2: nothing to refresh
            RefreshAll(watch=(old,)),
            StoreInstall(new),
        ]
    )
    assert current_of(store_run, old) == ("1", "0")
    assert current_of(store_run, new) == ("2", "1")

    # An epoch-0 maintenance release after the epoch-1 one: the old user takes it, the new
    # user cannot read it, a user installing now still gets the latest epoch (R2, not R3).
    store_run.run(
        [
            Release(SnapFile(name, "3.0"), "stable", 3),
            RefreshAll(watch=watch),
            StoreInstall(late),
        ]
    )
    assert current_of(store_run, old) == ("3", "0")
    assert current_of(store_run, new) == ("2", "1")
    assert current_of(store_run, late) == ("2", "1")


def test_a_revert_back_across_an_epoch_and_the_next_refreshes(store_run, names):
    name = names.fresh()
    store_run.run(
        [
            Release(SnapFile(name, "1.0"), "stable", 1),
            StoreInstall(name),
            RunApp(name, "epoch-0-data"),
            Release(SnapFile(name, "2.0", epoch_yaml="1*", hooks=POST_REFRESH), "stable", 2),
            RefreshAll(watch=(name,)),  # over the 1* bridge
            RunApp(name, "epoch-1-data"),
        ]
    )
    seen = store_run.last_observation.instance(name)
    assert seen.current == "2" and seen.revision("2").epoch_yaml == "1*"
    assert seen.revision("2").data == frozenset({"epoch-0-data", "epoch-1-data"})

    store_run.step(Revert(name))
    seen = store_run.last_observation.instance(name)
    # Back on the epoch-0 store revision with the epoch-0 data it had: R2's changes are gone.
    assert (seen.current, seen.sequence) == ("1", ("1", "2"))
    assert seen.revision("1").data == frozenset({"epoch-0-data"})
    assert seen.tracking_channel == "latest/stable"

    # `snap refresh` (all, as an auto-refresh would) does not take the reverted-from R2 back,
    # not even once a newer epoch-1 revision is out (R3 cannot read epoch 0, R2 is blocked).
    record = store_run.step(RefreshAll(watch=(name,)))
    assert "All snaps up to date." in record.observed_output
    store_run.step(Release(SnapFile(name, "3.0", epoch_yaml="1", hooks=POST_REFRESH), "stable", 3))
    record = store_run.step(RefreshAll(watch=(name,)))
    assert "All snaps up to date." in record.observed_output
    assert store_run.last_observation.instance(name).current == "1"
    # `snap refresh NAME` does: R2 again with R1's data copied over, then the re-refresh
    # (the epoch changed) takes R3.
    record = store_run.step(StoreRefresh(name))
    seen = store_run.last_observation.instance(name)
    hops = [revision for _, hook, revision in record.observed_hooks if hook == "post-refresh"]
    assert hops == ["2", "3"]
    assert (seen.current, seen.sequence) == ("3", ("2", "3"))
    assert seen.revision("3").data == frozenset({"epoch-0-data"})
