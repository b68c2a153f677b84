"""Real snapd installing and refreshing from the served store: the basic moves every store
scenario builds on, model-checked at each step (revisions, tracking channel, hooks, data and the
requests snapd sends)."""

from __future__ import annotations

import pytest

from snapconform.conformance.store_steps import (
    RefreshAll,
    Release,
    StoreInstall,
    StoreRefresh,
    Switch,
)
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance


def test_install_refresh_and_refresh_all_from_the_store(store_run, names):
    name = names.fresh()
    hooks = (HookPlan("post-refresh", marker="migrated"),)
    store_run.run(
        [
            Release(SnapFile(name, "1.0"), "stable", 1),
            StoreInstall(name),
            Release(SnapFile(name, "2.0", hooks=hooks), "stable", 2),
            StoreRefresh(name),
            Release(SnapFile(name, "3.0"), "candidate", 3),
            RefreshAll(watch=(name,)),
            StoreRefresh(name, channel="candidate"),
            RefreshAll(watch=(name,)),
            Switch(name, "stable"),
        ]
    )
    seen = store_run.last_observation.instance(name)
    assert seen.sequence == ("2", "3") and seen.current == "3"
    assert seen.tracking_channel == "latest/stable"
