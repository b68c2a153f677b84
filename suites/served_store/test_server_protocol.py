"""The served store's protocol, offline: the server program runs as a subprocess bound to
127.0.0.1 on a free port and is asked what snapd asks (reference/store.md, snapd's
store/store_action.go and details_v2.go); its answers must be the model's."""

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
from snapconform.model.plan import evaluate, parse_plan
from snapconform.model.store import Store
from snapconform.served_store.assertions import Signer, TestKeys, snap_id_for
from snapconform.served_store.catalog import CatalogWriter

PLAN_004 = Path(__file__).resolve().parents[1] / "plans" / "epochs-004.yaml"
NAME = "sc-served"
SNAP_ID = snap_id_for(NAME)
ZERO = Epoch()
ONE = Epoch.from_string("1")

# stable: R1 E0, R2 E0; candidate: R3 E1, R4 E1*; beta, edge closed.
RELEASES = [
    ("stable", 1, "0"),
    ("stable", 2, "0"),
    ("candidate", 3, "1"),
    ("candidate", 4, "1*"),
]


@pytest.fixture(scope="module")
def keys() -> TestKeys:
    return TestKeys(store=Signer.generate(), root=Signer.generate())


@pytest.fixture
def served(tmp_path: Path, keys: TestKeys):
    store = release_all(Store(), RELEASES)
    writer = CatalogWriter(keys)
    catalog = writer.write(tmp_path / "catalog", [catalog_snap(tmp_path / "blobs", NAME, store)])
    with running_server(catalog, tmp_path) as server:
        server.store = store
        server.writer = writer
        yield server


def epoch_of(document: dict) -> Epoch:
    return Epoch.from_lists(document["read"], document["write"])


def only_result(response) -> dict:
    assert response.status == 200, response.body
    results = response.json()["results"]
    assert len(results) == 1
    return results[0]


# -- install ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "revision", "effective"),
    [
        (None, 2, "stable"),  # snapd always names a channel; the store defaults to stable too
        ("stable", 2, "stable"),
        ("latest/stable", 2, "stable"),
        ("candidate", 4, "candidate"),  # the latest epoch (1* writes 1), then the most recent
        ("latest/candidate", 4, "candidate"),
        ("beta", 4, "candidate"),  # closed: follows the next less risky open channel
        ("latest/edge", 4, "candidate"),
    ],
)
def test_install_gets_the_models_fresh_install(served, channel, revision, effective):
    result = only_result(served.actions([install_action(NAME, channel)]))
    expected = served.store.fresh_install(channel or "stable")
    assert (result["snap"]["revision"], result["effective-channel"]) == (revision, effective)
    assert (expected.revision, expected.channel) == (revision, effective)
    assert result["result"] == "install"
    assert result["instance-key"] == "install-1"
    assert (result["name"], result["snap-id"]) == (NAME, SNAP_ID)


def test_install_result_has_every_field_snapd_reads(served, tmp_path):
    result = only_result(served.actions([install_action(NAME, "candidate")]))
    snap = result["snap"]
    assert snap["name"] == NAME and snap["snap-id"] == SNAP_ID
    assert snap["revision"] == 4 and snap["version"] == "4.0"
    assert snap["epoch"] == {"read": [0, 1], "write": [1]}  # 1*, in the full form
    assert snap["type"] == "app" and snap["confinement"] == "strict"
    assert snap["architectures"] == ["all"]
    assert snap["publisher"] == {
        "id": "testrootorg",
        "username": "testrootorg",
        "display-name": "Testrootorg",
        "validation": "verified",
    }
    blob = (tmp_path / "blobs" / f"{NAME}_4.bin").read_bytes()
    download = snap["download"]
    assert download["sha3-384"] == hashlib.sha3_384(blob).hexdigest()
    assert download["size"] == len(blob)
    assert download["url"] == f"{served.base_url}/download/{NAME}_4.snap"
    assert snap["created-at"]


def test_install_with_revision_gets_that_revision(served):
    result = only_result(served.actions([install_action(NAME, "stable", revision=3)]))
    assert result["snap"]["revision"] == 3
    assert result["snap"]["epoch"] == {"read": [1], "write": [1]}


def test_download_action_answers_like_install(served):
    action = {**install_action(NAME, "candidate"), "action": "download"}
    action["instance-key"] = "download-1"
    result = only_result(served.actions([action]))
    assert (result["result"], result["instance-key"]) == ("download", "download-1")
    assert result["snap"]["revision"] == 4


# -- refresh ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tracking", "installed", "epoch", "revision", "effective"),
    [
        ("latest/stable", 1, ZERO, 2, "stable"),
        ("latest/stable", 2, ZERO, 2, "stable"),  # its own revision: "no update available"
        # candidate holds only epoch 1 and 1*; 1* (R4) reads epoch 0: it is offered
        ("latest/candidate", 2, ZERO, 4, "candidate"),
        ("latest/candidate", 3, ONE, 4, "candidate"),
        ("latest/beta", 1, ZERO, 4, "candidate"),  # closed beta follows candidate
    ],
)
def test_refresh_gets_the_models_answer(served, tracking, installed, epoch, revision, effective):
    context = [context_entry(SNAP_ID, installed, epoch, tracking)]
    result = only_result(served.actions([refresh_action(SNAP_ID)], context))
    expected = served.store.refresh(tracking, installed, epoch)
    assert (expected.revision, expected.channel) == (revision, effective)
    assert result["result"] == "refresh"
    assert result["instance-key"] == SNAP_ID
    assert (result["snap"]["revision"], result["effective-channel"]) == (revision, effective)


def test_refresh_with_channel_uses_the_actions_channel(served):
    context = [context_entry(SNAP_ID, 1, ZERO, "latest/stable")]
    result = only_result(served.actions([refresh_action(SNAP_ID, channel="candidate")], context))
    assert (result["snap"]["revision"], result["effective-channel"]) == (4, "candidate")


def test_refresh_with_revision_is_not_filtered_by_epoch(served):
    """--revision: the store hands over what was asked; snapd itself checks the epoch."""
    context = [context_entry(SNAP_ID, 1, ZERO, "latest/stable")]
    result = only_result(served.actions([refresh_action(SNAP_ID, revision=3)], context))
    assert result["snap"]["revision"] == 3
    assert result["snap"]["epoch"] == {"read": [1], "write": [1]}


def test_parallel_instances_are_answered_per_instance_key(served):
    context = [
        context_entry(SNAP_ID, 1, ZERO, "latest/stable"),
        context_entry(SNAP_ID, 2, ZERO, "latest/candidate", key=f"{SNAP_ID}:hash-of-key"),
    ]
    actions = [refresh_action(SNAP_ID), refresh_action(SNAP_ID, key=f"{SNAP_ID}:hash-of-key")]
    response = served.actions(actions, context)
    results = {r["instance-key"]: r["snap"]["revision"] for r in response.json()["results"]}
    assert results == {SNAP_ID: 2, f"{SNAP_ID}:hash-of-key": 4}


def test_the_004_table_through_the_server(tmp_path, keys):
    """Each 004 cell: a new user installs from their channel, an installed user refreshes the
    way snapd does (asking again while the epoch changes); the server's answers land every
    user where the model's table says, through the same hops."""
    plan = parse_plan(PLAN_004.read_text(), str(PLAN_004))
    table = evaluate(plan)
    writer = CatalogWriter(keys)
    store = Store(risks=plan.channels)
    catalog = tmp_path / "catalog"
    have: dict[str, tuple[int, Epoch]] = {}
    step = plan.steps[0]
    store = store.release(step.channel, step.revision, step.epoch)
    writer.write(catalog, [catalog_snap(tmp_path / "blobs", NAME, store)])
    checked = 0
    with running_server(catalog, tmp_path) as server:
        for row in table.rows:
            if row.step.number > 1:
                step = row.step
                store = store.release(step.channel, step.revision, step.epoch)
                writer.write(catalog, [catalog_snap(tmp_path / "blobs", NAME, store)])
            for user in plan.users:
                cell = row.cells[user.name]
                if cell is None:
                    continue
                channel = f"latest/{user.channel}"
                if user.name not in have:
                    result = only_result(server.actions([install_action(NAME, channel)]))
                    hops: list[int] = []
                else:
                    result, hops = refresh_like_snapd(server, channel, *have[user.name])
                snap = result["snap"]
                have[user.name] = (snap["revision"], epoch_of(snap["epoch"]))
                assert snap["revision"] == cell.revision, (row.step.number, user.name)
                assert tuple(hops) == cell.hops, (row.step.number, user.name)
                checked += 1
    assert checked == sum(1 for row in table.rows for c in row.cells.values() if c is not None)


def refresh_like_snapd(server, channel: str, revision: int, epoch: Epoch) -> tuple[dict, list]:
    """One `snap refresh`: ask; after a move that changed the epoch, ask again (re-refresh)."""
    hops: list[int] = []
    while True:
        context = [context_entry(SNAP_ID, revision, epoch, channel)]
        result = only_result(server.actions([refresh_action(SNAP_ID)], context))
        assert result["result"] == "refresh", result
        offered = result["snap"]["revision"]
        if offered == revision:
            return result, hops
        new_epoch = epoch_of(result["snap"]["epoch"])
        hops.append(offered)
        changed = new_epoch != epoch
        revision, epoch = offered, new_epoch
        if not changed:
            return result, hops


# -- errors ----------------------------------------------------------------------------------


def test_install_from_a_channel_with_nothing_is_revision_not_found(tmp_path, keys):
    """Only candidate is open: stable (and nothing less risky) has nothing for a new user."""
    store = release_all(Store(), [("candidate", 1, "0")])
    catalog = CatalogWriter(keys).write(
        tmp_path / "catalog", [catalog_snap(tmp_path / "b", NAME, store)]
    )
    with running_server(catalog, tmp_path) as server:
        response = server.actions(
            [install_action(NAME, "stable")], headers={"Snap-Device-Architecture": "arm64"}
        )
    result = only_result(response)
    assert result["result"] == "error"
    assert (result["name"], result["instance-key"]) == (NAME, "install-1")
    assert result["error"]["code"] == "revision-not-found"
    # the releases snapd turns into "available on the following channels" (this device's arch)
    assert result["error"]["extra"]["releases"] == [
        {"architecture": "arm64", "channel": "latest/candidate"}
    ]


def test_refresh_with_nothing_readable_is_revision_not_found(tmp_path, keys):
    store = release_all(Store(), [("stable", 5, "2")])
    catalog = CatalogWriter(keys).write(
        tmp_path / "catalog", [catalog_snap(tmp_path / "b", NAME, store)]
    )
    with running_server(catalog, tmp_path) as server:
        context = [context_entry(SNAP_ID, 1, ZERO, "latest/stable")]
        result = only_result(server.actions([refresh_action(SNAP_ID)], context))
    assert result["result"] == "error"
    assert result["instance-key"] == SNAP_ID
    assert result["error"]["code"] == "revision-not-found"
    assert "cannot read epoch 0" in result["error"]["message"]


def test_unknown_name_and_id(served):
    install = only_result(served.actions([install_action("sc-nowhere", "stable")]))
    assert install["result"] == "error"
    assert install["error"]["code"] == "name-not-found"
    assert install["name"] == "sc-nowhere"  # snapd attributes install errors by name
    context = [context_entry("NoSuchSnapId0000000000000000000", 1, ZERO, "latest/stable")]
    refresh = only_result(
        served.actions([refresh_action("NoSuchSnapId0000000000000000000")], context)
    )
    assert refresh["error"]["code"] == "id-not-found"
    assert refresh["instance-key"] == "NoSuchSnapId0000000000000000000"


def test_unknown_revision_is_revision_not_found(served):
    result = only_result(served.actions([install_action(NAME, "stable", revision=99)]))
    assert result["error"]["code"] == "revision-not-found"
    context = [context_entry(SNAP_ID, 1, ZERO, "latest/stable")]
    result = only_result(served.actions([refresh_action(SNAP_ID, revision=99)], context))
    assert result["error"]["code"] == "revision-not-found"


def _fetch(key: str, *assertions: dict) -> dict:
    return {"action": "fetch-assertions", "key": key, "assertions": list(assertions)}


def test_fetch_assertions_up_to_date_gets_no_results(served, keys):
    """snapd's bulk refresh of snap-declarations (before `snap refresh`): everything at the
    revision snapd has means no results, which snapd reads as up to date (one POST, no GETs)."""
    declaration = {"type": "snap-declaration", "primary-key": ["16", SNAP_ID], "if-newer-than": 0}
    account_key = {"type": "account-key", "primary-key": [keys.store.key_id], "if-newer-than": 0}
    response = served.actions([_fetch("g1", declaration, account_key)])
    assert response.status == 200, response.body
    assert response.json() == {"results": []}
    answered = served.log_lines()[-1]["results"][0]["answered"]
    assert answered == [
        f"snap-declaration/16/{SNAP_ID}: up to date at 0",
        f"account-key/{keys.store.key_id}: up to date at 0",
    ]


def test_fetch_assertions_gives_stream_urls_and_not_found_errors(served):
    declaration = {"type": "snap-declaration", "primary-key": ["16", SNAP_ID]}  # no revision
    missing = {"type": "snap-declaration", "primary-key": ["16", "nope"], "if-newer-than": 0}
    response = served.actions([_fetch("g1", declaration), _fetch("g2", missing)])
    assert response.status == 200, response.body
    first, second = response.json()["results"]
    path = f"/v2/assertions/snap-declaration/16/{SNAP_ID}"
    assert first == {
        "result": "fetch-assertions",
        "key": "g1",
        "assertion-stream-urls": [served.base_url + path],
    }
    assert served.request("GET", path).body.startswith(b"type: snap-declaration\n")
    assert second["key"] == "g2" and second["assertion-stream-urls"] == []
    (error,) = second["error-list"]
    assert error["code"] == "not-found"
    assert (error["type"], error["primary-key"]) == ("snap-declaration", ["16", "nope"])


def test_fetch_assertions_beside_snap_actions_gets_4xx_so_snapd_falls_back(served):
    action = _fetch("g1", {"type": "snap-declaration", "primary-key": ["16", SNAP_ID]})
    response = served.actions([action, install_action(NAME, "stable")])
    assert 400 <= response.status < 500
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["error-list"][0]["code"]


def test_malformed_request_is_400(served):
    response = served.request("POST", "/v2/snaps/refresh", ["not", "an", "object"])
    assert response.status == 400


# -- assertions and files --------------------------------------------------------------------


def test_assertion_served_and_missing(served, keys):
    path = f"/v2/assertions/snap-declaration/16/{SNAP_ID}?max-format=5"
    found = served.request("GET", path, headers={"Accept": "application/x.ubuntu.assertion"})
    assert found.status == 200
    assert found.headers["Content-Type"] == "application/x.ubuntu.assertion"
    on_disk = served.catalog / "assertions" / "snap-declaration" / "16" / SNAP_ID
    assert found.body == on_disk.read_bytes()
    assert found.body.startswith(b"type: snap-declaration\n")
    account_key = served.request("GET", f"/v2/assertions/account-key/{keys.store.key_id}")
    assert account_key.status == 200
    missing = served.request("GET", "/v2/assertions/snap-declaration/16/NoSuchSnapId")
    assert missing.status == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert missing.json()["error-list"][0]["code"] == "not-found"
    escape = served.request("GET", "/v2/assertions/../catalog.json")
    assert escape.status == 404


def test_snap_revision_assertion_by_the_files_digest(served, tmp_path):
    from snapconform.served_store.assertions import sha3_384_b64url

    blob = (tmp_path / "blobs" / f"{NAME}_2.bin").read_bytes()
    found = served.request("GET", f"/v2/assertions/snap-revision/{sha3_384_b64url(blob)}")
    assert found.status == 200
    assert b"\nsnap-revision: 2\n" in found.body
    assert f"\nsnap-size: {len(blob)}\n".encode() in found.body


def test_download_serves_the_files_bytes(served, tmp_path):
    result = only_result(served.actions([install_action(NAME, "stable")]))
    url = result["snap"]["download"]["url"]
    path = url[len(served.base_url) :]
    whole = served.request("GET", path)
    blob = (tmp_path / "blobs" / f"{NAME}_2.bin").read_bytes()
    assert whole.status == 200 and whole.body == blob
    assert hashlib.sha3_384(whole.body).hexdigest() == result["snap"]["download"]["sha3-384"]
    resumed = served.request("GET", path, headers={"Range": "bytes=10-"})
    assert resumed.status == 206 and resumed.body == blob[10:]
    assert resumed.headers["Content-Range"] == f"bytes 10-{len(blob) - 1}/{len(blob)}"
    assert served.request("GET", "/download/nothing.snap").status == 404


def test_unknown_path_is_404(served):
    assert served.request("GET", "/v2/snaps/info/sc-served").status == 404


# -- the request log -------------------------------------------------------------------------


def test_every_request_is_one_log_line(served):
    context = [context_entry(SNAP_ID, 1, ZERO, "latest/stable")]
    served.actions([install_action(NAME, "candidate")])
    scheduled = {"Snap-Refresh-Reason": "scheduled", "Snap-Device-Architecture": "amd64"}
    served.actions([refresh_action(SNAP_ID)], context, headers=scheduled)
    served.actions([install_action("sc-nowhere", "stable")])
    served.request("GET", f"/v2/assertions/snap-declaration/16/{SNAP_ID}")
    served.request("GET", f"/download/{NAME}_1.snap")
    lines = served.log_lines()
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/v2/snaps/refresh", 200),
        ("POST", "/v2/snaps/refresh", 200),
        ("POST", "/v2/snaps/refresh", 200),
        ("GET", f"/v2/assertions/snap-declaration/16/{SNAP_ID}", 200),
        ("GET", f"/download/{NAME}_1.snap", 200),
    ]
    assert all(line["time"].endswith("Z") and line["catalog"] for line in lines)
    install, refresh, unknown, assertion, download = lines
    assert install["request"]["actions"][0]["name"] == NAME
    assert install["results"] == [
        {
            "result": "install",
            "instance-key": "install-1",
            "name": NAME,
            "revision": 4,
            "epoch": {"read": [0, 1], "write": [1]},
            "effective-channel": "candidate",
            "why": served.store.fresh_install("candidate").why,
        }
    ]
    assert refresh["request"]["context"] == context
    assert refresh["headers"] == scheduled  # an auto-refresh says so
    assert refresh["results"][0]["revision"] == 2
    assert refresh["results"][0]["why"] == served.store.refresh("stable", 1, ZERO).why
    assert unknown["results"][0]["code"] == "name-not-found"
    assert assertion["assertion"] == f"snap-declaration/16/{SNAP_ID}"
    assert download["file"] == f"{NAME}_1.snap" and download["bytes"] > 0


# -- catalog changes -------------------------------------------------------------------------


def test_a_rewritten_catalog_is_read_again(served, tmp_path):
    before = only_result(served.actions([install_action(NAME, "stable")]))
    assert before["snap"]["revision"] == 2
    store = served.store.release("stable", 4, Epoch.from_string("1*"))
    served.writer.write(served.catalog, [catalog_snap(tmp_path / "blobs", NAME, store)])
    after = only_result(served.actions([install_action(NAME, "stable")]))
    assert after["snap"]["revision"] == 4
    digests = [line["catalog"] for line in served.log_lines()]
    assert digests[0] != digests[1]


def test_a_swapped_catalog_directory_is_read_again(tmp_path, keys):
    """The carrier swaps a symlink between catalog generations."""
    writer = CatalogWriter(keys)
    first = release_all(Store(), [("stable", 1, "0")])
    second = first.release("stable", 2, ZERO)
    writer.write(tmp_path / "catalog.1", [catalog_snap(tmp_path / "b", NAME, first)])
    writer.write(tmp_path / "catalog.2", [catalog_snap(tmp_path / "b", NAME, second)])
    link = tmp_path / "catalog"
    link.symlink_to("catalog.1")
    with running_server(link, tmp_path) as server:
        assert only_result(server.actions([install_action(NAME)]))["snap"]["revision"] == 1
        (tmp_path / "catalog.next").symlink_to("catalog.2")
        (tmp_path / "catalog.next").replace(link)
        assert only_result(server.actions([install_action(NAME)]))["snap"]["revision"] == 2


def test_a_bad_rewritten_catalog_is_a_500_naming_it(served, tmp_path):
    catalog_json = served.catalog / "catalog.json"
    good = catalog_json.read_text()
    catalog_json.write_text(good.replace('"format": 1', '"format": 7'))
    response = served.actions([install_action(NAME, "stable")])
    assert response.status == 500
    message = response.json()["error-list"][0]["message"]
    assert message == "catalog.json: format is 7, this server reads 1"
    catalog_json.write_text(good)
    assert only_result(served.actions([install_action(NAME, "stable")]))["snap"]["revision"] == 2


def test_close_and_unrelease_through_the_model(tmp_path, keys):
    """The channel log's close and unrelease events: a closed candidate forwards to stable; a
    release reopens it; unreleasing that release closes it again."""
    writer = CatalogWriter(keys)
    catalog = tmp_path / "catalog"
    store = release_all(Store(), [("stable", 1, "0"), ("candidate", 2, "0")])
    steps = [
        (store, (2, "candidate")),
        (store := store.close("candidate"), (1, "stable")),
        (store := store.release("candidate", 3, ZERO), (3, "candidate")),
        (store := store.unrelease("candidate"), (1, "stable")),
    ]
    writer.write(catalog, [catalog_snap(tmp_path / "b", NAME, steps[0][0])])
    with running_server(catalog, tmp_path) as server:
        for state, expected in steps:
            writer.write(catalog, [catalog_snap(tmp_path / "b", NAME, state)])
            result = only_result(server.actions([install_action(NAME, "candidate")]))
            assert (result["snap"]["revision"], result["effective-channel"]) == expected
            answer = state.fresh_install("candidate")
            assert (answer.revision, answer.channel) == expected
            context = [context_entry(SNAP_ID, 2, ZERO, "latest/candidate")]
            refreshed = only_result(server.actions([refresh_action(SNAP_ID)], context))
            answer = state.refresh("candidate", 2, ZERO)
            assert (refreshed["snap"]["revision"], refreshed["effective-channel"]) == (
                answer.revision,
                answer.channel,
            )


def test_an_event_the_model_refuses_is_one_line(tmp_path):
    import json

    store = release_all(Store(), [("stable", 1, "0")])
    catalog = CatalogWriter().write(
        tmp_path / "catalog", [catalog_snap(tmp_path / "b", NAME, store)]
    )
    document = json.loads((catalog / "catalog.json").read_text())
    document["snaps"][NAME]["events"].append({"event": "unrelease", "channel": "beta"})
    (catalog / "catalog.json").write_text(json.dumps(document))
    with pytest.raises(RuntimeError) as failure, running_server(catalog, tmp_path):
        pass
    assert (
        str(failure.value)
        .strip()
        .endswith(
            f"server_program: catalog.json: snaps.{NAME}.events[2]: unrelease 'beta':"
            " channel beta is closed: there is nothing to unrelease"
        )
    )


def test_a_bad_catalog_at_start_is_one_line(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "catalog.json").write_text('{"format": 1, "snaps": {"x": {"snap-id": 3}}}')
    with pytest.raises(RuntimeError) as failure, running_server(catalog, tmp_path):
        pass
    assert (
        str(failure.value)
        .strip()
        .endswith("server_program: catalog.json: snaps.x.snap-id: expected str, got 3")
    )


def test_tracks(tmp_path, keys):
    """A bare track means its stable risk; a track's closed risk follows that track's less
    risky ones, never latest's."""
    store = release_all(Store(), [("stable", 1, "0"), ("2.0/stable", 2, "0"), ("2.0/beta", 3, "0")])
    catalog = CatalogWriter(keys).write(
        tmp_path / "catalog", [catalog_snap(tmp_path / "b", NAME, store)]
    )
    with running_server(catalog, tmp_path) as server:

        def install(channel: str) -> tuple[int, str]:
            result = only_result(server.actions([install_action(NAME, channel)]))
            return result["snap"]["revision"], result["effective-channel"]

        assert install("2.0") == (2, "2.0/stable")
        assert install("2.0/stable") == (2, "2.0/stable")
        assert install("2.0/candidate") == (2, "2.0/stable")
        assert install("2.0/edge") == (3, "2.0/beta")
        assert install("latest/beta") == (1, "stable")
        missing = only_result(server.actions([install_action(NAME, "3.0/stable")]))
        assert missing["error"]["code"] == "revision-not-found"
        assert [r["channel"] for r in missing["error"]["extra"]["releases"]] == [
            "latest/stable",
            "2.0/stable",
            "2.0/beta",
        ]
