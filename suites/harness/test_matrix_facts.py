"""The model's version-dependent facts as the matrix finds them (every `*_SINCE` constant of the
model, with the comment that says what changed) and the steps of a history that depend on one
(replayed by the real model with that one fact turned the other way)."""

from __future__ import annotations

from snapconform.conformance.operations import InstallFile, Operation, SetSystem
from snapconform.model import snapd as model
from snapconform.model import snapd_store, snapd_text
from snapconform.reports.matrix_facts import (
    History,
    evidence,
    model_facts,
    predict_history,
    replayable,
    turned,
)

SNAP = model.SnapFile("sc-ab121", "1.0")


def fact(name: str):
    return next(f for f in model_facts() if f.name == name)


def test_every_since_constant_of_the_model_is_a_fact() -> None:
    found = {f.name: f for f in model_facts()}
    assert found["FEATURE_FLAG_WRAP_SINCE"].since == snapd_text.FEATURE_FLAG_WRAP_SINCE == (2, 74)
    assert found["FEATURE_FLAG_WRAP_SINCE"].module == "snapconform.model.snapd_text"
    assert "2.74" in found["FEATURE_FLAG_WRAP_SINCE"].about
    assert found["REFRESH_ALL_SENDS_CHANNEL_SINCE"].since == (2, 65)
    assert found["REMOVE_ONLY_REVISION_SINCE"].about.startswith("From 2.71")
    versions = [f.since for f in model_facts()]
    assert versions == sorted(versions)


def history_of(operations: list[Operation], version: tuple[int, int]) -> list[dict]:
    """Steps as a run records them, predicted by the model for snapd ``version``, all passed."""
    state = model.new_state(snapd_version=version)
    steps = []
    for number, operation in enumerate(operations, 1):
        outcome = operation.predict(state, lambda snap: f"/x/{snap.name}.snap")
        steps.append(
            {
                "step": number,
                "operation": operation.to_json(),
                "expected": {
                    "ok": outcome.error is None,
                    "kind": None if outcome.error is None else outcome.error.kind,
                    "hooks": [[r.instance, r.hook, r.revision] for r in outcome.hooks_run],
                },
                "verdict": "pass",
            }
        )
        state = outcome.state
    return steps


# An instance key while experimental.parallel-instances is off: refused, in words that changed
# in 2.74; the plain install before it does not depend on that.
PARALLEL_REFUSED = [InstallFile(SNAP), InstallFile(SNAP, name="sc-ab121_k1")]


def test_the_parallel_refusal_depends_on_the_2_74_fact_on_both_sides() -> None:
    wrap = fact("FEATURE_FLAG_WRAP_SINCE")
    for version, test in (((2, 77), "sid"), ((2, 68), "trixie")):
        history = History(test, history_of(PARALLEL_REFUSED, version), version)
        found = evidence(wrap, [history])
        assert found.confirmed == [f"{test} step 2"], version
        assert found.contradicted == []
    # Another fact does not change these steps' predictions.
    history = History("sid", history_of(PARALLEL_REFUSED, (2, 77)), (2, 77))
    assert evidence(fact("REMOVE_ONLY_REVISION_SINCE"), [history]).confirmed == []


def test_turning_a_fact_is_undone() -> None:
    wrap = fact("FEATURE_FLAG_WRAP_SINCE")
    steps = history_of(PARALLEL_REFUSED, (2, 77))
    before = predict_history(steps, (2, 77))
    with turned(wrap, (2, 77)):
        assert snapd_text.FEATURE_FLAG_WRAP_SINCE == (99, 0)
        during = predict_history(steps, (2, 77))
    assert snapd_text.FEATURE_FLAG_WRAP_SINCE == (2, 74)
    assert predict_history(steps, (2, 77)) == before
    assert during[1].error is not None and before[1].error is not None
    assert "feature flag validation failed" in before[1].error
    assert "feature flag validation failed" not in during[1].error
    with turned(fact("REFRESH_ALL_SENDS_CHANNEL_SINCE"), (2, 57)):
        assert snapd_store.REFRESH_ALL_SENDS_CHANNEL_SINCE == (0, 0)
    assert snapd_store.REFRESH_ALL_SENDS_CHANNEL_SINCE == (2, 65)


def test_a_history_the_model_no_longer_replays_is_no_evidence() -> None:
    steps = history_of(
        [SetSystem("experimental.parallel-instances", "true"), *PARALLEL_REFUSED], (2, 77)
    )
    history = History("t", steps, (2, 77))
    assert replayable(history)
    # recorded on a host whose own setting differed: the model starts elsewhere
    steps[2]["expected"]["ok"] = False
    assert not replayable(history)
    assert evidence(fact("FEATURE_FLAG_WRAP_SINCE"), [history]).confirmed == []


def test_a_step_snapd_did_not_confirm_is_counted_apart() -> None:
    steps = history_of(PARALLEL_REFUSED, (2, 77))
    steps[1]["verdict"] = "divergence"
    found = evidence(fact("FEATURE_FLAG_WRAP_SINCE"), [History("t", steps, (2, 77))])
    assert found.confirmed == [] and found.contradicted == ["t step 2"]
