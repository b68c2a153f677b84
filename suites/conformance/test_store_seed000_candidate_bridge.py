"""Seed 000 #8 on real snapd: "If a user is on beta (with epoch: 0) and tries to do snap refresh
--candidate to something that has epoch: 1 and there is an epoch: 1* somewhere in the channel
history to bounce through, the refresh will end up on that revision (with a warning about the
candidate being closed), and then a later auto-refresh (or a manual snap refresh) will get them
to the wanted revision."

The user tracks beta on R10 (epoch 0); candidate holds R11 (1*) and, at its tip, R12 (1). Since
snapd 2.38 the re-refresh takes both hops in the one `snap refresh --candidate` (the model,
from handlers.go doCheckReRefresh): the user lands on R12, tracking latest/candidate, and no
closed-channel warning is printed (candidate is open; the effective channel is candidate at
both hops). The next refresh has nothing to do. Every step is model-checked."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from snapconform.conformance.store_steps import (
    RefreshAll,
    Release,
    StoreInstall,
    StoreRefresh,
    StoreWorld,
)
from snapconform.model import snapd as model
from snapconform.model.snapd import HookPlan, SnapFile, StoreResult

pytestmark = pytest.mark.conformance

POST_REFRESH = (HookPlan("post-refresh"),)


def test_beta_user_refreshing_to_candidate_bounces_through_the_bridge(store_run, names):
    name = names.fresh()
    store_run.run(
        [
            Release(SnapFile(name, "10"), "beta", 10),
            StoreInstall(name, channel="beta"),
            Release(SnapFile(name, "11", epoch_yaml="1*", hooks=POST_REFRESH), "candidate", 11),
            Release(SnapFile(name, "12", epoch_yaml="1", hooks=POST_REFRESH), "candidate", 12),
        ]
    )
    record = store_run.step(StoreRefresh(name, channel="candidate"))

    # One command, two hops: R11 (the 1* in candidate's history), then R12 (candidate's tip).
    hops = [revision for _, hook, revision in record.observed_hooks if hook == "post-refresh"]
    assert hops == ["11", "12"]
    seen = store_run.last_observation.instance(name)
    assert (seen.current, seen.sequence) == ("12", ("11", "12"))
    assert seen.tracking_channel == "latest/candidate"
    # What `snap` printed: the refreshed snap at its final revision, no closed-channel warning.
    assert "closed" not in record.observed_output
    assert f"{name} (candidate) 12 from" in record.observed_output
    # The first request asked for candidate with the beta user's epoch-0 context.
    first = next(
        request["request"]
        for request in record.observed_store_requests
        if request.get("method") == "POST"
        and request["request"]["actions"][0].get("action") == "refresh"
    )
    assert first["actions"][0]["channel"] == "latest/candidate"
    assert first["context"][0]["tracking-channel"] == "latest/beta"
    assert first["context"][0]["epoch"] == {"read": [0], "write": [0]}

    # The next refresh, one name or all, has nothing to do.
    named = store_run.step(StoreRefresh(name))
    assert f'snap "{name}" has no updates available' in named.observed_output
    every = store_run.step(RefreshAll(watch=(name,)))
    assert "All snaps up to date." in every.observed_output
    assert store_run.last_observation.instance(name).current == "12"


@dataclass(frozen=True)
class RefreshAsTheSeedSays(StoreRefresh):
    """`snap refresh NAME --channel=C`, predicted as #8 says: the refresh ends on the 1*
    (snapd's re-refresh finds nothing to step on to), with a warning about the channel."""

    def predict_store(
        self, state: model.SnapdState, world: StoreWorld
    ) -> tuple[model.Outcome, StoreWorld]:
        def first_hop_only(request: model.StoreRequest) -> tuple[StoreResult, ...]:
            if request.purpose == "re-refresh":
                return tuple(
                    StoreResult(action.instance, error="revision-not-found")
                    for action in request.actions
                )
            return world.catalog.answer(request)

        as_said = self.act(state, world.catalog, first_hop_only)
        # The sentence says nothing of requests: those stay snapd's (the model's).
        sent = self.act(state, world.catalog, world.catalog.answer).store_requests
        warning = f"Channel latest/candidate for {self.instance} is closed"
        return replace(as_said, notices=(*as_said.notices, warning), store_requests=sent), world


def test_the_seeds_sentence_on_real_snapd(store_run, names):
    """#8's sentence as the prediction: on real snapd the refresh goes on to candidate's tip
    and prints no warning, the known divergence `seed000-8-one-refresh-takes-both-hops` (this
    test is then reported as an expected failure naming it)."""
    name = names.fresh()
    # Revisions of their own: the known divergence's entry names them, so that it explains
    # this contradiction only.
    store_run.run(
        [
            Release(SnapFile(name, "1000"), "beta", 1000),
            StoreInstall(name, channel="beta"),
            Release(SnapFile(name, "1001", epoch_yaml="1*"), "candidate", 1001),
            Release(SnapFile(name, "1002", epoch_yaml="1"), "candidate", 1002),
            RefreshAsTheSeedSays(name, channel="candidate"),
        ]
    )
