"""A refresh onto a revision already present, then a re-refresh hop in the same change, on real
snapd; then a full remove.

Found replaying seed 004's revert scenario: the user reverts from R2 (1*) to R1 (0), R3 (1) is
released, and `snap refresh NAME` takes R2 again (present: its old data is trashed as 2.old, R1's
copied in) and the re-refresh goes on to R3 in the same change. snapd clears a refresh's trash
when the change is done, for the snap's current revision only (handlers.go cleanupCopySnapData
takes snapst.CurrentInfo(): R3), so 2.old stays. A full remove then fails at "Remove data" with
"remove /var/snap/NAME: directory not empty" and leaves the snap half removed (R2 discarded, R3
disabled, its data gone): the known divergence `rerefresh-leaves-trash-remove-fails` (this test
is then reported as an expected failure naming it). A single hop onto a present revision is
fine: its trash is the current revision's, cleared by then.
"""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import Remove, Revert, RunApp
from snapconform.conformance.store_steps import RefreshAll, Release, StoreInstall, StoreRefresh
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance


def test_a_full_remove_after_a_re_refresh_past_a_present_revision(store_run, names):
    name = names.fresh()
    store_run.run(
        [
            Release(SnapFile(name, "1.0"), "stable", 1),
            StoreInstall(name),
            RunApp(name, "epoch-0-data"),
            Release(SnapFile(name, "2.0", epoch_yaml="1*"), "stable", 2),
            RefreshAll(watch=(name,)),
            Revert(name),
            Release(SnapFile(name, "3.0", epoch_yaml="1"), "stable", 3),
            StoreRefresh(name),  # R2 (present) then, re-refreshing, R3
        ]
    )
    seen = store_run.last_observation.instance(name)
    assert (seen.current, seen.sequence) == ("3", ("2", "3"))
    assert seen.trash == frozenset({"2.old"})  # R2's own data, trashed at the first hop
    store_run.step(Remove(name, purge=True))
