"""The store's publisher events beyond releasing: close and unrelease, and the reopen policy.

Fixed rules rest on the snapcraft docs' sentence (facts §3) "Closed channels fall back to the next
less risky channel"; what the documents leave open is `Policies.reopen`, and a test shows what its
alternative changes. The Store is its event log, so replaying the log gives the same Store (the
served store's catalog relies on it).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from snapconform.model.epoch import Epoch
from snapconform.model.store import Policies, Reopen, Store, StoreError

E = Epoch.parse_yaml


def store(*releases: tuple[str, int, str], **policy: object) -> Store:
    result = Store(policies=replace(Policies(), **policy))  # type: ignore[arg-type]
    for channel, revision, epoch in releases:
        result = result.release(channel, revision, E(epoch))
    return result


def test_a_closed_channel_follows_the_next_less_risky_open_one():
    s = store(("stable", 1, "0"), ("candidate", 2, "0")).close("candidate")
    assert not s.is_open("candidate") and s.follows("candidate") == "stable"
    assert s.history("candidate") == ()
    answer = s.refresh("candidate", 2, E("0"))
    assert (answer.revision, answer.channel) == (1, "stable")
    assert answer.why.startswith("candidate is closed, so it follows stable: ")


def test_closing_a_closed_channel_is_refused():
    with pytest.raises(StoreError, match="channel candidate is already closed"):
        store(("stable", 1, "0")).close("candidate")


def test_a_release_reopens_a_closed_channel():
    s = store(("stable", 1, "0"), ("candidate", 2, "0")).close("candidate")
    s = s.release("candidate", 3, E("0"))
    assert s.follows("candidate") == "candidate"
    assert [r.revision for r in s.history("candidate")] == [3]


def test_reopen_fresh_forgets_releases_before_the_close_keep_history_does_not():
    # Policies.reopen: no document says. A user on epoch 0 tracking candidate, which held R2
    # (epoch 0), was closed, then reopened with R3 (epoch 1, cannot read 0).
    events = store(("stable", 1, "0"), ("candidate", 2, "0"))
    fresh = events.close("candidate").release("candidate", 3, E("1"))
    kept = replace(events, policies=replace(Policies(), reopen=Reopen.KEEP_HISTORY))
    kept = kept.close("candidate").release("candidate", 3, E("1"))
    assert fresh.refresh("candidate", 1, E("0")).revision == 1  # stable serves them
    assert kept.refresh("candidate", 1, E("0")).revision == 2  # R2 counts again


def test_unrelease_goes_back_to_the_previous_tip_and_the_withdrawn_release_stops_counting():
    # A withdrawn release is no longer in the channel (fixed rule): a user on epoch 0 is not
    # bounced through the withdrawn bridge.
    s = store(("candidate", 2, "0"), ("candidate", 3, "1*"), ("candidate", 4, "1"))
    assert s.refresh("candidate", 2, E("0")).revision == 3
    s = s.unrelease("candidate").unrelease("candidate")
    assert s.tip("candidate").revision == 2  # type: ignore[union-attr]
    assert s.refresh("candidate", 2, E("0")).revision == 2
    assert [r.revision for r in s.releases] == [2, 3, 4]  # the log keeps every release


def test_unreleasing_the_last_release_closes_the_channel():
    s = store(("stable", 1, "0"), ("candidate", 2, "0")).unrelease("candidate")
    assert not s.is_open("candidate") and s.follows("candidate") == "stable"
    with pytest.raises(StoreError, match="nothing to unrelease"):
        s.unrelease("candidate")


def test_an_unreleased_promotion_leaves_the_earlier_release_of_that_revision():
    s = store(("stable", 1, "0"), ("stable", 2, "0"), ("stable", 1, "0")).unrelease("stable")
    assert s.tip("stable").revision == 2  # type: ignore[union-attr]
    assert [r.revision for r in s.candidates("stable")] == [1, 2]


def test_the_log_replays_to_the_same_store():
    s = store(("stable", 1, "0"), ("candidate", 2, "1*")).close("candidate")
    s = s.release("candidate", 3, E("1")).unrelease("candidate").release("beta", 4, E("0"))
    replayed = Store(risks=s.risks, policies=s.policies)
    for entry in s.log:
        if entry.kind == "release":
            replayed = replayed.release(entry.channel, entry.revision, entry.epoch)  # type: ignore[union-attr]
        else:
            replayed = getattr(replayed, entry.kind)(entry.channel)
    assert replayed == s
    assert [entry.kind for entry in s.log] == [
        "release",
        "release",
        "close",
        "release",
        "unrelease",
        "release",
    ]
