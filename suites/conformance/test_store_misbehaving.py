"""A misbehaving store on real snapd (issue 7 §3): answers the model says a store never gives,
and snapd's defences against each. For every case snapd refuses the refresh with its own
message and nothing on the host changes (each step compares what snapd holds with the model's
unchanged state); once the store is honest again (`Misbehave(Misbehaviour())`) a refresh works.

- offer_unreadable: R2 (epoch 1) offered to an epoch-0 user; refused before download (snapstate
  earlyChecks, check_snap.go earlyEpochCheck), the model predicts the message;
- report_epoch: R2 offered with metadata epoch 0 while its file says 1; the early check passes,
  the download happens, and the file's own epoch is refused at "Mount snap" (checkSnap), model-
  predicted;
- wrong_sha3: the download's sha3-384 is not what the store announced;
- tampered snap-revision, tampered snap-declaration: a header changed after signing;
- status 500, down: snapd retries for about 32 s, then gives up (one step each).
"""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import Operation
from snapconform.conformance.session import StepRecord
from snapconform.conformance.store_steps import (
    Misbehave,
    Misbehaviour,
    Release,
    StoreInstall,
    StoreRefresh,
)
from snapconform.harness.operations import normalise_whitespace
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance


def refused_then_honest(
    run,
    name: str,
    misbehaviour: Misbehaviour,
    new_epoch: str | None = None,
    refused_step: Operation | None = None,
) -> StepRecord:
    """R1 installed, R2 released; the store misbehaves and `snap refresh NAME` (or
    `refused_step`) is refused with nothing changed; the store behaves and the refresh takes
    R2. Returns the refused step."""
    run.run(
        [
            Release(SnapFile(name, "1.0"), "stable", 1),
            StoreInstall(name),
            Release(SnapFile(name, "2.0", epoch_yaml=new_epoch), "stable", 2),
            Misbehave(misbehaviour),
        ]
    )
    before = run.last_observation.instance(name)
    refused = run.step(refused_step or StoreRefresh(name))
    assert refused.observed_exit_code != 0
    after = run.last_observation.instance(name)
    assert (after.current, after.sequence, after.revisions) == (
        before.current,
        before.sequence,
        before.revisions,
    )
    if new_epoch is None:  # an honest store has R2 for this user
        run.run([Misbehave(Misbehaviour()), StoreRefresh(name)])
        assert run.last_observation.instance(name).current == "2"
    return refused


def printed(record: StepRecord) -> str:
    """What `snap` printed, unwrapped (the CLI wraps long errors)."""
    return normalise_whitespace(record.observed_output)


def test_an_unreadable_offer_is_refused_before_download(store_run, names):
    name = names.fresh()
    record = refused_then_honest(
        store_run, name, Misbehaviour(offer_unreadable=((name, 2),)), new_epoch="1"
    )
    assert record.observed_error == (
        f'cannot refresh "{name}": cannot refresh "{name}" to new revision 2 with epoch 1, '
        "because it can't read the current epoch of 0"
    )
    assert not [r for r in record.observed_store_requests if "/download/" in str(r.get("path"))]
    # honest again: epoch 1 is not for this user, and a bridge is taken
    store_run.run(
        [
            Misbehave(Misbehaviour()),
            Release(SnapFile(name, "3.0", epoch_yaml="1*"), "stable", 3),
            StoreRefresh(name),
        ]
    )
    assert store_run.last_observation.instance(name).current == "3"


def test_a_metadata_epoch_unlike_the_files_is_refused_at_mount(store_run, names):
    name = names.fresh()
    lying = Misbehaviour(offer_unreadable=((name, 2),), report_epoch=((name, 2, "0"),))
    record = refused_then_honest(store_run, name, lying, new_epoch="1")
    assert "/download/" in " ".join(str(r.get("path")) for r in record.observed_store_requests)
    assert (
        f'- Mount snap "{name}" (2) (cannot refresh "{name}" to new revision 2 with epoch 1,'
        in printed(record)
    )
    store_run.run(
        [
            Misbehave(Misbehaviour()),
            Release(SnapFile(name, "3.0"), "stable", 3),
            StoreRefresh(name),
        ]
    )
    assert store_run.last_observation.instance(name).current == "3"


def test_a_wrong_sha3_384_is_refused(store_run, names):
    name = names.fresh()
    record = refused_then_honest(store_run, name, Misbehaviour(wrong_sha3=(name,)))
    assert f'sha3-384 mismatch for "{name}"' in printed(record)


@pytest.mark.parametrize("assertion", ["snap-revision", "snap-declaration"])
def test_a_tampered_assertion_is_refused(store_run, names, assertion):
    name = names.fresh()
    record = refused_then_honest(store_run, name, Misbehaviour(tampered=((name, assertion, 2),)))
    assert "hash tag doesn't match" in printed(record)


def test_a_store_answering_500_is_refused_after_retries(store_run, names):
    # An install: a refresh first refreshes the snap-declaration, whose bulk request and then
    # single fetches are each tried 6 times (64 s on 2.57.6); an install's query alone, 32 s.
    name, other = names.fresh(), names.fresh()
    store_run.step(Release(SnapFile(other, "1.0"), "stable", 1))
    record = refused_then_honest(
        store_run, name, Misbehaviour(status=500), refused_step=StoreInstall(other)
    )
    assert "got unexpected HTTP status code 500" in printed(record)
    assert len(record.observed_store_requests) == 6  # snapd tried 6 times before giving up
    assert not store_run.last_observation.instance(other).installed


def test_a_store_that_is_down_is_refused_after_retries(store_run, names):
    name = names.fresh()
    record = refused_then_honest(store_run, name, Misbehaviour(down=True))
    assert "connect: connection refused" in printed(record)
    assert record.duration > 20  # snapd retried before giving up
