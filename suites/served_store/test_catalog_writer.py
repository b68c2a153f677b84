"""The catalog writer: model stores and built files in, the directory the server reads out."""

from __future__ import annotations

import hashlib
import json

import pytest
from test_server_support import blob, catalog_snap, release_all

from snapconform.model.epoch import Epoch
from snapconform.model.snapd_state import SnapFile
from snapconform.model.store import EpochOrder, Policies, Store
from snapconform.model.store_catalog import StoreCatalog
from snapconform.served_store import openpgp
from snapconform.served_store.assertions import (
    Signer,
    TestKeys,
    parse,
    sha3_384_b64url,
    snap_id_for,
    verify,
)
from snapconform.served_store.catalog import (
    CatalogError,
    CatalogSnap,
    CatalogWriter,
    Misbehave,
    RevisionFile,
    Tamper,
    snaps_of,
    store_events,
)
from snapconform.served_store.server_program import load_catalog

NAME = "sc-catalog"
ZERO_JSON = {"read": [0], "write": [0]}
BRIDGE_JSON = {"read": [0, 1], "write": [1]}  # 1*
RELEASES = [("stable", 1, "0"), ("candidate", 2, "1*"), ("stable", 2, "1*")]


@pytest.fixture(scope="module")
def keys() -> TestKeys:
    return TestKeys(store=Signer.generate(), root=Signer.generate())


@pytest.fixture
def store() -> Store:
    return release_all(Store(policies=Policies(epoch_order=EpochOrder.BRIDGES_LAST)), RELEASES)


def test_catalog_json_carries_the_store_and_the_files(tmp_path, store, keys):
    snap = catalog_snap(tmp_path / "blobs", NAME, store)
    catalog = CatalogWriter(keys).write(tmp_path / "catalog", [snap])
    document = json.loads((catalog / "catalog.json").read_text())
    assert document["format"] == 1
    entry = document["snaps"][NAME]
    assert entry["snap-id"] == snap_id_for(NAME)
    assert entry["publisher"]["id"] == "testrootorg"
    assert entry["risks"] == ["stable", "candidate", "beta", "edge"]
    assert entry["policies"]["epoch_order"] == "bridges-last"
    assert entry["events"] == [
        {"event": "release", "channel": "stable", "revision": 1, "epoch": ZERO_JSON},
        {"event": "release", "channel": "candidate", "revision": 2, "epoch": BRIDGE_JSON},
        {"event": "release", "channel": "stable", "revision": 2, "epoch": BRIDGE_JSON},
    ]
    for number in (1, 2):
        source = tmp_path / "blobs" / f"{NAME}_{number}.bin"
        meta = entry["revisions"][str(number)]
        assert meta["file"] == f"{NAME}_{number}.snap"
        assert meta["sha3-384"] == hashlib.sha3_384(source.read_bytes()).hexdigest()
        assert meta["size"] == source.stat().st_size
        assert meta["version"] == f"{number}.0"
        assert (catalog / "files" / meta["file"]).samefile(source)  # hard-linked, not copied


def test_the_server_replays_the_same_store(tmp_path, store):
    catalog = CatalogWriter().write(
        tmp_path / "catalog", [catalog_snap(tmp_path / "blobs", NAME, store)]
    )
    assert load_catalog(catalog).snaps[NAME].store == store


def test_store_events_are_the_channel_log_in_order(store):
    events = store_events(store)
    assert [(e["channel"], e["revision"]) for e in events] == [
        ("stable", 1),
        ("candidate", 2),
        ("stable", 2),
    ]


def test_assertions_are_signed_and_named_as_snapd_asks(tmp_path, store, keys):
    catalog = CatalogWriter(keys).write(
        tmp_path / "catalog", [catalog_snap(tmp_path / "blobs", NAME, store)]
    )
    snap_id = snap_id_for(NAME)
    declaration = (catalog / "assertions" / "snap-declaration" / "16" / snap_id).read_bytes()
    verify(declaration, keys.store)
    assert parse(declaration).headers["snap-name"] == NAME
    for number in (1, 2):
        data = (tmp_path / "blobs" / f"{NAME}_{number}.bin").read_bytes()
        revision = (catalog / "assertions" / "snap-revision" / sha3_384_b64url(data)).read_bytes()
        verify(revision, keys.store)
        headers = parse(revision).headers
        assert (headers["snap-revision"], headers["snap-size"]) == (str(number), str(len(data)))
        assert headers["snap-id"] == snap_id
    account_key = (catalog / "assertions" / "account-key" / keys.store.key_id).read_bytes()
    verify(account_key, keys.root)


def test_rewriting_gives_the_same_bytes(tmp_path, store, keys):
    writer = CatalogWriter(keys)
    snaps = [catalog_snap(tmp_path / "blobs", NAME, store)]
    catalog = writer.write(tmp_path / "catalog", snaps)
    before = {p: p.read_bytes() for p in catalog.rglob("*") if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in before}
    writer.write(catalog, snaps)
    after = {p: p.read_bytes() for p in catalog.rglob("*") if p.is_file()}
    assert after == before
    assert {p: p.stat().st_mtime_ns for p in after} == mtimes  # untouched, nothing to re-push


def test_a_rewrite_drops_what_the_catalog_no_longer_holds(tmp_path, store):
    writer = CatalogWriter()
    blobs = tmp_path / "blobs"
    catalog = writer.write(tmp_path / "catalog", [catalog_snap(blobs, NAME, store)])
    other = release_all(Store(), [("stable", 1, "0")])
    writer.write(catalog, [catalog_snap(blobs, "sc-other", other)])
    files = sorted(p.relative_to(catalog).as_posix() for p in catalog.rglob("*") if p.is_file())
    assert files == ["catalog.json", "files/sc-other_1.snap"]


def test_without_keys_no_assertions(tmp_path, store):
    catalog = CatalogWriter().write(
        tmp_path / "catalog", [catalog_snap(tmp_path / "blobs", NAME, store)]
    )
    assert not (catalog / "assertions").exists()


def test_misbehave_section(tmp_path, store, keys):
    misbehave = Misbehave(
        status=None,
        offer_unreadable={NAME: None},
        report_epoch={NAME: {2: Epoch.from_string("3")}},
        wrong_sha3_384={NAME: [2, 1]},
        tampered=[Tamper(NAME, "snap-declaration", "snap-name", "sc-renamed")],
    )
    catalog = CatalogWriter(keys).write(
        tmp_path / "catalog", [catalog_snap(tmp_path / "blobs", NAME, store)], misbehave
    )
    section = json.loads((catalog / "catalog.json").read_text())["misbehave"]
    key = f"snap-declaration/16/{snap_id_for(NAME)}"
    assert section == {
        "offer-unreadable": {NAME: None},
        "report-epoch": {NAME: {"2": {"read": [3], "write": [3]}}},
        "wrong-sha3-384": {NAME: [1, 2]},
        "tampered-assertions": {key: f"tampered/{key}"},
    }
    tampered = (catalog / "tampered" / key).read_bytes()
    assert parse(tampered).headers["snap-name"] == "sc-renamed"
    with pytest.raises(openpgp.SignatureInvalid):
        verify(tampered, keys.store)
    assert load_catalog(catalog).misbehave.tampered_assertions == {key: f"tampered/{key}"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-file", "sc-catalog: revisions 2 are released but have no built file"),
        (
            "epoch",
            "sc-catalog: revision 1 is released with epoch 0, its file says 7"
            " (Misbehave.report_epoch is how a store lies)",
        ),
        ("twice", "snap listed twice: sc-catalog"),
        ("misbehave", "misbehave names 'sc-elsewhere', which is not in the catalog"),
        ("tamper-without-keys", "assertions need the test keys: CatalogWriter(keys=TestKeys...)"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, store, change, message):
    blobs = tmp_path / "blobs"
    snap = catalog_snap(blobs, NAME, store)
    snaps = [snap]
    misbehave = None
    if change == "no-file":
        snaps = [CatalogSnap(NAME, store, {1: snap.revisions[1]})]
    elif change == "epoch":
        revisions = dict(snap.revisions)
        revisions[1] = RevisionFile(blob(blobs, NAME, 1), "1.0", epoch=Epoch.from_string("7"))
        snaps = [CatalogSnap(NAME, store, revisions)]
    elif change == "twice":
        snaps = [snap, snap]
    elif change == "misbehave":
        misbehave = Misbehave(offer_unreadable={"sc-elsewhere": None})
    else:
        misbehave = Misbehave(tampered=[Tamper(NAME, "snap-declaration", "snap-name", "x")])
    with pytest.raises(CatalogError) as failure:
        CatalogWriter().write(tmp_path / "catalog", snaps, misbehave)
    assert str(failure.value) == message
    assert not (tmp_path / "catalog" / "catalog.json").exists()  # nothing half-written


def test_closes_and_unreleases_are_carried(tmp_path, store):
    changed = store.close("candidate").release("beta", 3, Epoch()).unrelease("stable")
    snap = catalog_snap(tmp_path / "blobs", NAME, changed)
    catalog = CatalogWriter().write(tmp_path / "catalog", [snap])
    events = json.loads((catalog / "catalog.json").read_text())["snaps"][NAME]["events"]
    assert [(e["event"], e["channel"]) for e in events[3:]] == [
        ("close", "candidate"),
        ("release", "beta"),
        ("unrelease", "stable"),
    ]
    assert load_catalog(catalog).snaps[NAME].store == changed


def test_snaps_of_the_models_store_catalog(tmp_path):
    one = SnapFile(NAME, "1.0")
    two = SnapFile(NAME, "2.0", epoch_yaml="1*")
    model = StoreCatalog().release(NAME, "stable", 1, one).release(NAME, "candidate", 2, two)
    built = {one: blob(tmp_path, NAME, 1), two: blob(tmp_path, NAME, 2)}
    snaps = snaps_of(model, built.__getitem__)
    catalog = CatalogWriter().write(tmp_path / "catalog", snaps)
    entry = json.loads((catalog / "catalog.json").read_text())["snaps"][NAME]
    assert {n: (m["version"], m["epoch"]) for n, m in entry["revisions"].items()} == {
        "1": ("1.0", ZERO_JSON),
        "2": ("2.0", BRIDGE_JSON),
    }
    assert load_catalog(catalog).snaps[NAME].store == model.store_of(NAME)
