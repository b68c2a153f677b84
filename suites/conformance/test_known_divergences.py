"""The known-divergence path on real snapd: a step whose every mismatch a recorded contradiction
explains is reported as that contradiction (verdict known-divergence), not as a failure of the
model and not silently. The registry is empty today, so the entry here is made for the test, on
an operation that predicts from a deliberately wrong 'document'."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from snapconform.conformance.known import KnownDivergence
from snapconform.conformance.operations import InstallFile
from snapconform.conformance.session import ConformanceRun, Divergence, KnownDivergenceFound
from snapconform.model import snapd as model

pytestmark = pytest.mark.conformance


@dataclass(frozen=True)
class InstallPerAWrongDocument(InstallFile):
    """Installs for real; predicts as a document that says a sideload keeps no data dir would."""

    def predict(self, state, locate):
        outcome = super().predict(state, locate)
        instance = outcome.state.instance(self.snap.name)
        wrong = replace(instance, common=frozenset({"never-there"}))
        return replace(outcome, state=outcome.state.with_instance(wrong))


ENTRY = KnownDivergence(
    key="demo-common",
    fields=r"NAME\.common",
    document="“a fresh install starts with a marker in SNAP_COMMON” (a made-up sentence)",
    observed="snapd starts SNAP_COMMON empty (observed here)",
)


def test_a_recorded_contradiction_is_reported_as_itself(host_session, names):
    run = ConformanceRun(host_session, known_divergences=(ENTRY,))
    with pytest.raises(KnownDivergenceFound) as found:
        run.step(InstallPerAWrongDocument(model.SnapFile(names.fresh(), "1.0")))
    assert found.value.known == (ENTRY,)
    assert run.history[-1].verdict == "known-divergence" and run.history[-1].known == [
        "demo-common"
    ]
    assert "made-up sentence" in str(found.value)


def test_an_unrecorded_divergence_still_fails(host_session, names):
    run = ConformanceRun(host_session)  # the real, empty registry
    with pytest.raises(Divergence):
        run.step(InstallPerAWrongDocument(model.SnapFile(names.fresh(), "1.0")))
