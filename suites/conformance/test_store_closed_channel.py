"""Closed channels on real snapd: "Closed channels fall back to the next less risky channel"
(snapcraft docs). A user tracking candidate stays on candidate when the publisher closes it,
is served by stable with snapd's notice "Channel latest/candidate for NAME is closed;
temporarily forwarding to stable.", is taken back when a new release reopens candidate, and
follows an unrelease of candidate's tip. Every step is model-checked: revisions, the tracking
channel, the notices `snap` prints (Outcome.notices) and the requests snapd sends."""

from __future__ import annotations

import pytest

from snapconform.conformance.store_steps import (
    CloseChannel,
    RefreshAll,
    Release,
    StoreInstall,
    StoreRefresh,
    Unrelease,
)
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance


def notice(name: str, forwarding_to: str) -> str:
    return (
        f"Channel latest/candidate for {name} is closed; temporarily forwarding to {forwarding_to}."
    )


def current_and_tracking(run, name: str) -> tuple[str | None, str | None]:
    seen = run.last_observation.instance(name)
    return seen.current, seen.tracking_channel


def test_closing_candidate_forwards_to_stable_and_a_release_takes_users_back(store_run, names):
    name = names.fresh()
    store_run.run(
        [
            Release(SnapFile(name, "1.0"), "stable", 1),
            Release(SnapFile(name, "2.0"), "candidate", 2),
            StoreInstall(name, channel="candidate"),
            CloseChannel(name, "candidate"),
        ]
    )
    forwarded = store_run.step(RefreshAll(watch=(name,)))
    assert notice(name, "stable") in forwarded.observed_output
    # Served by stable (R1, a step back), still tracking candidate.
    assert current_and_tracking(store_run, name) == ("1", "latest/candidate")

    # Nothing newer: `snap refresh NAME` has no update (and so prints no notice).
    quiet = store_run.step(StoreRefresh(name))
    assert "closed" not in quiet.observed_output

    # A new release to candidate reopens it: the next refresh takes the user back, no notice.
    store_run.step(Release(SnapFile(name, "3.0"), "candidate", 3))
    back = store_run.step(RefreshAll(watch=(name,)))
    assert "closed" not in back.observed_output
    assert current_and_tracking(store_run, name) == ("3", "latest/candidate")


def test_unreleasing_candidates_tip(store_run, names):
    name = names.fresh()
    store_run.run(
        [
            Release(SnapFile(name, "1.0"), "stable", 1),
            Release(SnapFile(name, "2.0"), "candidate", 2),
            Release(SnapFile(name, "3.0"), "candidate", 3),
            StoreInstall(name, channel="candidate"),
        ]
    )
    assert current_and_tracking(store_run, name) == ("3", "latest/candidate")
    # Candidate's tip goes back to R2: the next refresh follows it.
    store_run.step(Unrelease(name, "candidate"))
    store_run.step(StoreRefresh(name))
    assert current_and_tracking(store_run, name) == ("2", "latest/candidate")
    # Unreleasing R2 too leaves candidate empty, so closed: stable serves, with the notice.
    store_run.step(Unrelease(name, "candidate"))
    emptied = store_run.step(RefreshAll(watch=(name,)))
    assert notice(name, "stable") in emptied.observed_output
    assert current_and_tracking(store_run, name) == ("1", "latest/candidate")
    # A user installing from candidate now is forwarded too, and told so.
    other = names.fresh()
    store_run.step(Release(SnapFile(other, "1.0"), "stable", 1))
    installed = store_run.step(StoreInstall(other, channel="candidate"))
    assert notice(other, "stable") in installed.observed_output


def test_a_closed_channel_follows_the_next_less_risky_open_one(store_run, names):
    name = names.fresh()
    edge = f"Channel latest/edge for {name} is closed; temporarily forwarding to"
    store_run.run(
        [
            Release(SnapFile(name, "1.0"), "stable", 1),
            Release(SnapFile(name, "2.0"), "candidate", 2),
        ]
    )
    # edge and beta never had a release: candidate is the next less risky open channel.
    installed = store_run.step(StoreInstall(name, channel="edge"))
    assert f"{edge} candidate." in installed.observed_output
    assert current_and_tracking(store_run, name) == ("2", "latest/edge")
    # With candidate closed too, stable serves.
    store_run.step(CloseChannel(name, "candidate"))
    refreshed = store_run.step(RefreshAll(watch=(name,)))
    assert f"{edge} stable." in refreshed.observed_output
    assert current_and_tracking(store_run, name) == ("1", "latest/edge")
