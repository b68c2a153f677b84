"""Offline: store steps round-trip through JSON, the served store's request log reads as the
model's predicted requests, and the misbehaving store's refusals match what snapd printed."""

from __future__ import annotations

import re

import pytest

from snapconform.conformance.operations import operation_from_json
from snapconform.conformance.served import describe_requests, request_lines
from snapconform.conformance.store_steps import (
    REFUSAL_PATTERNS,
    CloseChannel,
    Misbehave,
    Misbehaviour,
    RefreshAll,
    Release,
    StoreInstall,
    StoreRefresh,
    StoreWorld,
    Switch,
    Unrelease,
    misbehaving_refusal,
)
from snapconform.harness.operations import normalise_whitespace
from snapconform.model import snapd as model
from snapconform.model.epoch import Epoch
from snapconform.served_store.assertions import snap_id_for

STEPS = [
    Release(model.SnapFile("sc-a", "1.0", epoch_yaml="1*"), "candidate", 3),
    CloseChannel("sc-a", "candidate"),
    Unrelease("sc-a", "stable"),
    Misbehave(
        Misbehaviour(offer_unreadable=(("sc-a", 3),), tampered=(("sc-a", "snap-revision", 3),))
    ),
    StoreInstall("sc-a_k1", channel="beta"),
    StoreRefresh("sc-a", revision=4),
    RefreshAll(watch=("sc-a", "sc-a_k1")),
    Switch("sc-a", "edge"),
]


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.kind)
def test_store_steps_round_trip_through_json(step):
    assert operation_from_json(step.to_json()) == step


def test_user_steps_are_the_commands_a_person_types():
    assert StoreInstall("sc-a_k1", channel="beta").shell(None) == (
        "snap install sc-a_k1 --channel=beta"
    )
    assert RefreshAll().shell(None) == "snap refresh"
    assert Switch("sc-a", "edge").shell(None) == "snap switch --channel=edge sc-a"
    assert Release(model.SnapFile("sc-a", "1.0"), "stable", 1).shell(None).startswith("# store:")


def test_the_request_log_reads_as_the_models_requests():
    snap_id = snap_id_for("sc-a")
    logged = [
        {
            "method": "POST",
            "path": "/v2/snaps/refresh",
            "request": {"context": [], "actions": [{"action": "fetch-assertions", "key": "g1"}]},
        },
        {"method": "GET", "path": f"/v2/assertions/snap-declaration/16/{snap_id}"},
        {
            "method": "POST",
            "path": "/v2/snaps/refresh",
            "request": {
                "context": [
                    {
                        "snap-id": snap_id,
                        "instance-key": f"{snap_id}:Xyz",
                        "revision": 2,
                        "tracking-channel": "latest/stable",
                        "epoch": {"read": [0], "write": [0]},
                    }
                ],
                "actions": [
                    {
                        "action": "refresh",
                        "snap-id": snap_id,
                        "instance-key": f"{snap_id}:Xyz",
                        "channel": "latest/stable",
                    }
                ],
            },
        },
    ]
    predicted = (
        model.StoreRequest("assertions", assertions_for=("sc-a_k1",)),
        model.StoreRequest(
            "re-refresh",
            context=(model.ContextEntry("sc-a_k1", "2", "latest/stable", Epoch()),),
            actions=(model.StoreAction("refresh", "sc-a_k1", "latest/stable"),),
        ),
    )
    observed = describe_requests(logged, {snap_id: "sc-a"})
    assert observed == request_lines(predicted)
    assert observed[1] == (
        "refresh: context [sc-a r2 latest/stable epoch 0/0]"
        " actions [refresh sc-a channel=latest/stable]"
    )


# What snapd 2.57.6 printed when the served store misbehaved (real runs, see README).
OBSERVED = {
    "wrong_sha3": 'cannot perform the following tasks: - Download snap "sc-j" (2) from channel '
    '"latest/stable" (sha3-384 mismatch for "sc-j": got 9f2a but expected 0c1d)',
    "tampered": 'cannot perform the following tasks: - Fetch and check assertions for snap "sc-j"'
    " (2) (cannot accept some assertions: - failed signature verification: openpgp: invalid "
    "signature: hash tag doesn't match)",
    "status": 'cannot install "sc-j": cannot query the store for updates: got unexpected HTTP '
    'status code 500 via POST to "http://127.0.0.1:8190/v2/snaps/refresh"',
    "down": 'cannot install "sc-j": cannot query the store for updates: Post '
    '"http://127.0.0.1:8190/v2/snaps/refresh": dial tcp 127.0.0.1:8190: connect: connection '
    "refused",
}


@pytest.mark.parametrize("kind", sorted(REFUSAL_PATTERNS))
def test_refusal_patterns_match_what_snapd_printed(kind):
    pattern = REFUSAL_PATTERNS[kind].replace("{name}", "sc-j")
    assert re.fullmatch(pattern, normalise_whitespace(OBSERVED[kind]), re.DOTALL)


def test_a_misbehaviour_the_model_reasons_about_is_predicted_by_the_model():
    state = model.new_state()
    honest_epochs = StoreWorld(misbehaviour=Misbehaviour(offer_unreadable=(("sc-j", 2),)))
    assert misbehaving_refusal(state, honest_epochs, "sc-j") is None
    down = StoreWorld(misbehaviour=Misbehaviour(down=True))
    outcome = misbehaving_refusal(state, down, "sc-j_k1")
    assert outcome is not None and outcome.state == state and outcome.error.pattern


# A `snap refresh NAME` while every answer is 500: the snap-declaration refresh fails first.
OBSERVED_REFRESH_500 = (
    'cannot refresh "sc-j": cannot refresh snap-declaration for "sc-j": assertion service '
    'error: "misbehaving store: every request fails"'
)


def test_the_500_pattern_also_matches_a_refresh():
    pattern = REFUSAL_PATTERNS["status"].replace("{name}", "sc-j")
    assert re.fullmatch(pattern, OBSERVED_REFRESH_500, re.DOTALL)


@pytest.mark.parametrize(
    ("misbehaviour", "sent"),
    [
        (Misbehaviour(down=True), []),
        (Misbehaviour(status=500), ["assertions"] * 6),
        (Misbehaviour(tampered=(("sc-j", "snap-declaration", 2),)), ["assertions"]),
        (Misbehaviour(tampered=(("sc-j", "snap-revision", 2),)), ["assertions", "refresh"]),
        (Misbehaviour(wrong_sha3=("sc-j",)), ["assertions", "refresh"]),
    ],
)
def test_a_refused_refresh_sends_what_snapd_sent_before_it_refused(misbehaviour, sent):
    # What 2.57.6 sent (suites/conformance/test_store_misbehaving.py): no re-refresh follows.
    catalog = model.StoreCatalog().release("sc-j", "stable", 1, model.SnapFile("sc-j", "1.0"))
    state = model.store_install(model.new_state(), catalog, "sc-j").state
    catalog = catalog.release("sc-j", "stable", 2, model.SnapFile("sc-j", "2.0"))
    world = StoreWorld(catalog, misbehaviour)
    outcome, _ = StoreRefresh("sc-j").predict_store(state, world)
    assert outcome.state == state and outcome.error is not None and outcome.error.pattern
    assert [request.purpose for request in outcome.store_requests] == sent
