"""The misbehaving store, offline: each answer the model says a store never gives, switched on
in catalog.json's misbehave section (the harness rewrites it per step)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_server_support import (
    catalog_snap,
    context_entry,
    install_action,
    refresh_action,
    release_all,
    running_server,
)

from snapconform.model.epoch import Epoch
from snapconform.model.store import Store
from snapconform.served_store import openpgp
from snapconform.served_store.assertions import (
    Signer,
    TestKeys,
    sha3_384_b64url,
    snap_id_for,
    verify,
)
from snapconform.served_store.catalog import CatalogWriter, Misbehave, Tamper

NAME = "sc-misbehaving"
SNAP_ID = snap_id_for(NAME)
ZERO = Epoch()
# stable: R1 E0; candidate: R2 E0, then R3 E2 (cannot read epoch 0).
RELEASES = [("stable", 1, "0"), ("candidate", 2, "0"), ("candidate", 3, "2")]


def signature_fails(assertion: bytes, signer: Signer) -> bool:
    try:
        verify(assertion, signer)
    except openpgp.SignatureInvalid:
        return True
    return False


@pytest.fixture(scope="module")
def keys() -> TestKeys:
    return TestKeys(store=Signer.generate(), root=Signer.generate())


@pytest.fixture
def setup(tmp_path: Path, keys: TestKeys):
    store = release_all(Store(), RELEASES)
    writer = CatalogWriter(keys)
    snaps = [catalog_snap(tmp_path / "blobs", NAME, store)]
    catalog = writer.write(tmp_path / "catalog", snaps)
    with running_server(catalog, tmp_path) as server:

        def misbehave(misbehaviour: Misbehave | None) -> None:
            writer.write(catalog, snaps, misbehaviour)

        yield server, misbehave, tmp_path


def refresh_result(server, installed: int = 2, channel: str = "latest/candidate") -> dict:
    context = [context_entry(SNAP_ID, installed, ZERO, channel)]
    response = server.actions([refresh_action(SNAP_ID)], context)
    assert response.status == 200, response.body
    (result,) = response.json()["results"]
    return result


def test_well_behaved_first(setup):
    server, _misbehave, _tmp = setup
    assert refresh_result(server)["snap"]["revision"] == 2  # R3 (epoch 2) cannot read 0


def test_offer_unreadable_the_new_users_pick(setup):
    server, misbehave, _tmp = setup
    misbehave(Misbehave(offer_unreadable={NAME: None}))
    result = refresh_result(server)
    assert result["snap"]["revision"] == 3
    assert result["snap"]["epoch"] == {"read": [2], "write": [2]}
    line = server.log_lines()[-1]["results"][0]
    assert line["misbehaved"] == ["offer-unreadable"]
    assert line["why"].startswith("misbehaving: can-read ignored")


def test_offer_unreadable_a_given_revision(setup):
    server, misbehave, _tmp = setup
    misbehave(Misbehave(offer_unreadable={NAME: 3}))
    result = refresh_result(server, installed=1, channel="latest/stable")
    assert result["snap"]["revision"] == 3
    # a new user is not a refresh: installs stay the model's
    install = server.actions([install_action(NAME, "stable")]).json()["results"][0]
    assert install["snap"]["revision"] == 1


def test_report_epoch_unlike_the_files(setup):
    server, misbehave, _tmp = setup
    misbehave(Misbehave(report_epoch={NAME: {2: Epoch.from_string("5")}}))
    result = refresh_result(server)
    assert result["snap"]["revision"] == 2  # the choice is still the model's...
    assert result["snap"]["epoch"] == {"read": [5], "write": [5]}  # ...the metadata lies
    assert server.log_lines()[-1]["results"][0]["misbehaved"] == ["report-epoch"]


def test_wrong_sha3_384(setup):
    server, misbehave, tmp = setup
    misbehave(Misbehave(wrong_sha3_384={NAME: [2]}))
    result = refresh_result(server)
    served = result["snap"]["download"]["sha3-384"]
    actual = hashlib.sha3_384((tmp / "blobs" / f"{NAME}_2.bin").read_bytes()).hexdigest()
    assert served != actual
    assert len(served) == 96 and all(c in "0123456789abcdef" for c in served)
    download = server.request("GET", result["snap"]["download"]["url"][len(server.base_url) :])
    assert hashlib.sha3_384(download.body).hexdigest() == actual  # the file itself is intact
    other = server.actions([install_action(NAME, "stable")]).json()["results"][0]
    assert (
        other["snap"]["download"]["sha3-384"]
        == hashlib.sha3_384((tmp / "blobs" / f"{NAME}_1.bin").read_bytes()).hexdigest()
    )  # only revision 2 was named


def test_tampered_assertion(setup, keys):
    server, misbehave, tmp = setup
    digest = sha3_384_b64url((tmp / "blobs" / f"{NAME}_2.bin").read_bytes())
    path = f"/v2/assertions/snap-revision/{digest}"
    good = server.request("GET", path).body
    misbehave(Misbehave(tampered=[Tamper(NAME, "snap-revision", "snap-size", "1", revision=2)]))
    bad = server.request("GET", path)
    assert bad.status == 200
    assert b"\nsnap-size: 1\n" in bad.body and bad.body != good
    assert signature_fails(bad.body, keys.store)
    assert not signature_fails(good, keys.store)
    assert server.log_lines()[-1]["misbehaved"] == ["tampered-assertion"]
    misbehave(None)  # the next step is well-behaved again
    assert server.request("GET", path).body == good


def test_tampered_assertions_make_the_bulk_fetch_fall_back(setup):
    """While assertions are tampered the bulk fetch gets 400: snapd then GETs each assertion
    and meets the tampered copy, as the misbehaving scenarios expect."""
    server, misbehave, _tmp = setup
    bulk = {
        "action": "fetch-assertions",
        "key": "g1",
        "assertions": [{"type": "snap-declaration", "primary-key": ["16", SNAP_ID]}],
    }
    assert server.actions([bulk]).status == 200
    misbehave(Misbehave(tampered=[Tamper(NAME, "snap-declaration", "snap-name", "tampered")]))
    assert server.actions([bulk]).status == 400
    misbehave(None)
    assert server.actions([bulk]).status == 200


def test_status_500_to_everything(setup):
    server, misbehave, _tmp = setup
    misbehave(Misbehave(status=500))
    assert server.actions([install_action(NAME, "stable")]).status == 500
    assert server.request("GET", f"/v2/assertions/snap-declaration/16/{SNAP_ID}").status == 500
    assert server.request("GET", f"/download/{NAME}_1.snap").status == 500
    lines = server.log_lines()[-3:]
    assert [line["status"] for line in lines] == [500, 500, 500]
    assert all(line["misbehaved"] == ["status"] for line in lines)
    assert lines[0]["request"]["actions"][0]["name"] == NAME  # still logged what was asked
    misbehave(None)
    assert server.actions([install_action(NAME, "stable")]).status == 200
