"""Seed 004, "stepped through each epoch", on real snapd: "If a user neglects to update their
system across epochs ... when they eventually refresh, they will be stepped through each epoch:
0 to 1*, 1 to 2*, and 2 onwards ... by performing the migration process for each step".

A user on epoch 0 (R1) misses R2 (1*), R3 (1), R4 (2*) and R5 (2), all released to stable, then
runs one `snap refresh`. Every revision has a post-refresh hook that leaves a marker in its
SNAP_DATA, so each hop's hook and each data copy show. The model (snapd's re-refresh loop and the
store's greatest-readable-epoch rule) predicts the hops 1 -> 2 -> 4 -> 5: R4 (2*) reads R2's
epoch-1 data, so R3 is never needed."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import RunApp
from snapconform.conformance.store_steps import RefreshAll, Release, StoreInstall
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance

MISSED = ((2, "1*"), (3, "1"), (4, "2*"), (5, "2"))


def revision_file(name: str, revision: int, epoch: str | None) -> SnapFile:
    hooks = (HookPlan("post-refresh", marker=f"migrated-by-r{revision}"),)
    return SnapFile(name, f"{revision}.0", epoch_yaml=epoch, hooks=hooks)


def test_one_refresh_steps_an_epoch_0_user_through_each_epoch(store_run, names):
    name = names.fresh()
    store_run.run(
        [
            Release(revision_file(name, 1, None), "stable", 1),
            StoreInstall(name),
            RunApp(name, "written-by-r1"),
            *(
                Release(revision_file(name, revision, epoch), "stable", revision)
                for revision, epoch in MISSED
            ),
        ]
    )
    record = store_run.step(RefreshAll(watch=(name,)))

    # The hops, as the hooks show them: post-refresh then configure in each revision snapd
    # linked, in order (no pre-refresh: the fixtures give none).
    post_refresh = [
        revision for _, hook, revision in record.observed_hooks if hook == "post-refresh"
    ]
    assert post_refresh == ["2", "4", "5"]
    # One refresh request, then a re-refresh after each hop, each sending the epoch then held.
    epochs = [
        request["request"]["context"][0]["epoch"]
        for request in record.observed_store_requests
        if request.get("method") == "POST"
        and not any(
            action.get("action") == "fetch-assertions"
            for action in request["request"].get("actions", [])
        )
    ]
    assert epochs == [
        {"read": [0], "write": [0]},
        {"read": [0, 1], "write": [1]},
        {"read": [1, 2], "write": [2]},
        {"read": [2], "write": [2]},
    ]
    # One change did it all: a link-snap per hop, each hop's round ended by a check-rerefresh
    # (the third one's request finds R5 itself, so no fourth round).
    (change,) = [c for c in record.observed_changes if c["kind"] == "refresh-snap"]
    kinds = [kind for kind, _ in change["tasks"]]
    assert kinds.count("link-snap") == 3 and kinds.count("check-rerefresh") == 3
    assert change["status"] == "Done"
    assert kinds.count("discard-snap") == 2  # R1 at the second hop, R2 at the third
    # Only the hops were downloaded: never R3.
    downloads = [
        request["path"].rpartition("_")[2]
        for request in record.observed_store_requests
        if str(request.get("path", "")).startswith("/download/")
    ]
    assert downloads == ["2.snap", "4.snap", "5.snap"]
    # The data was copied at every hop: R5 holds what R1's app wrote and each migration's mark.
    seen = store_run.last_observation.instance(name)
    assert seen.sequence == ("4", "5") and seen.current == "5"  # refresh.retain=2, hop by hop
    assert seen.revision("5").data == frozenset(
        {"written-by-r1", "migrated-by-r2", "migrated-by-r4", "migrated-by-r5"}
    )
    assert seen.revision("5").epoch_yaml == "2"
