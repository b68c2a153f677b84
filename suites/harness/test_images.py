"""The images room without building anything: the mirror read from apt sources, the test-keys
build's cache (keying, the keys' extraction and modes, the source-version check), the store
tier's recipe, the image families' pruning, and host URL queries."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from snapconform.hosts.base import HostError, HostSpec, HostUnavailable, open_host
from snapconform.hosts.cleanup import prune_snapd_builds
from snapconform.hosts.nspawn import NspawnHost
from snapconform.images import chroot, golden, mirror, snapd_build, store_tier
from snapconform.images.snapd_build import SnapdBuild

# -- the mirror ------------------------------------------------------------------------------

DEB822 = """\
# a comment line
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

THIRD_PARTY = """\
Types: deb
URIs: https://vendor.example/node
Suites: nodistro
Components: main
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian.gpg] http://one.example/debian bookworm main contrib
deb-src http://one.example/debian bookworm main
deb http://one.example/debian-security bookworm-security main
"""


def _apt(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True)
    for relative, text in files.items():
        (root / relative).write_text(text)
    return root


@pytest.fixture(autouse=True)
def _no_mirror_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mirror.MIRROR_ENV, raising=False)
    monkeypatch.delenv(mirror.SECURITY_MIRROR_ENV, raising=False)


def test_deb822_sources_name_both_mirrors(tmp_path: Path) -> None:
    root = _apt(
        tmp_path,
        {"sources.list.d/aa-node.sources": THIRD_PARTY, "sources.list.d/debian.sources": DEB822},
    )
    assert mirror.debian_mirror(root) == "http://mirror.example/debian"
    assert mirror.security_mirror(root) == "http://mirror.example/debian-security"


def test_one_line_sources_list_comes_first(tmp_path: Path) -> None:
    root = _apt(tmp_path, {"sources.list": ONE_LINE, "sources.list.d/debian.sources": DEB822})
    assert mirror.debian_mirror(root) == "http://one.example/debian"
    assert mirror.security_mirror(root) == "http://one.example/debian-security"


def test_disabled_stanzas_continuations_and_several_uris(tmp_path: Path) -> None:
    text = (
        "Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: sid\n"
        "Components: main\n\n"
        "Types: deb deb-src\nURIs: http://a.example/debian/\n http://b.example/debian\n"
        "Suites: trixie\nComponents: main\n"
    )
    entries = mirror.parse_deb822(text, "x.sources")
    assert [e.uri for e in entries] == ["http://a.example/debian/", "http://b.example/debian"]
    assert entries[0].types == ("deb", "deb-src")
    root = _apt(tmp_path, {"sources.list.d/x.sources": text})
    assert mirror.debian_mirror(root) == "http://a.example/debian"
    assert mirror.security_mirror(root) is None


def test_no_debian_mirror_is_one_clear_error(tmp_path: Path) -> None:
    ubuntu = "deb http://archive.example/ubuntu noble main\n"
    root = _apt(tmp_path, {"sources.list": ubuntu, "sources.list.d/n.sources": THIRD_PARTY})
    with pytest.raises(HostUnavailable, match=r"no Debian archive mirror .* set SNAPCONFORM_DEB"):
        mirror.debian_mirror(root)
    with pytest.raises(HostUnavailable):
        mirror.debian_mirror(tmp_path / "missing")


def test_the_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mirror.MIRROR_ENV, "http://local.example/debian/")
    monkeypatch.setenv(mirror.SECURITY_MIRROR_ENV, "http://local.example/security")
    root = _apt(tmp_path, {})
    assert mirror.debian_mirror(root) == "http://local.example/debian"
    assert mirror.security_mirror(root) == "http://local.example/security"


def test_build_tree_sources_per_release() -> None:
    assert snapd_build.source_lines("sid", "http://m/debian", "http://m/sec") == [
        "deb http://m/debian sid main",
        "deb-src http://m/debian sid main",
    ]
    bookworm = snapd_build.source_lines("bookworm", "http://m/debian", "http://m/sec")
    assert bookworm[-2:] == [
        "deb http://m/sec bookworm-security main",
        "deb-src http://m/sec bookworm-security main",
    ]
    assert "deb-src http://m/debian bookworm-updates main" in bookworm
    no_security = snapd_build.source_lines("trixie", "http://m/debian", None)
    assert not any("security" in line for line in no_security)
    keys = {snapd_build.buildd_recipe_key("trixie", lines) for lines in (bookworm, no_security)}
    assert len(keys) == 2


# -- the test keys ---------------------------------------------------------------------------

FAKE_BLOCK = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: fake\n\n"
    "RkFLRSBLRVkgTUFURVJJQUwgRk9SIFRFU1RTIE9OTFk={n}\n=abcd\n"
    "-----END PGP PRIVATE KEY BLOCK-----"
)
FAKE_TRUSTED_GO = f"""\
package systestkeys

const (
\tTestRootPrivKey = `{FAKE_BLOCK.format(n="1")}
`

\tencodedTestRootAccount = `type: account
authority-id: testrootorg
`

\tTestStorePrivKey = `{FAKE_BLOCK.format(n="2")}
`
)
"""


def test_keys_come_from_the_raw_string_literals() -> None:
    keys = snapd_build.extract_test_keys(FAKE_TRUSTED_GO)
    assert set(keys) == {"store.key", "root.key"}
    assert keys["root.key"] == FAKE_BLOCK.format(n="1") + "\n"
    assert keys["store.key"] == FAKE_BLOCK.format(n="2") + "\n"


def test_a_missing_or_malformed_key_names_the_constant_only() -> None:
    without_store = FAKE_TRUSTED_GO.replace("TestStorePrivKey", "SomethingElse")
    with pytest.raises(HostError, match="no raw-string constant TestStorePrivKey") as caught:
        snapd_build.extract_test_keys(without_store)
    assert "RkFLRSBL" not in str(caught.value)
    truncated = FAKE_TRUSTED_GO.replace("-----END PGP PRIVATE KEY BLOCK-----\n`\n)", "`\n)")
    with pytest.raises(HostError, match="TestStorePrivKey is not an armored") as caught:
        snapd_build.extract_test_keys(truncated)
    assert "RkFLRSBL" not in str(caught.value)


def test_keys_are_written_for_root_only(tmp_path: Path) -> None:
    keys_dir = tmp_path / "entry/keys"
    snapd_build.write_keys(snapd_build.extract_test_keys(FAKE_TRUSTED_GO), keys_dir)
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    for name in ("store.key", "root.key"):
        assert stat.S_IMODE((keys_dir / name).stat().st_mode) == 0o600
    snapd_build.write_keys({"store.key": "again\n", "root.key": "again\n"}, keys_dir)
    assert (keys_dir / "store.key").read_text() == "again\n"


# -- the build cache -------------------------------------------------------------------------

MADISON = """\
     snapd | 2.57.6-1+deb12u1+b2 | http://m/debian bookworm/main amd64 Packages
     snapd | 2.57.6-1+deb12u2 | http://m/debian-security bookworm-security/main Sources
     snapd | 2.57.6-1+deb12u1 | http://m/debian bookworm/main Sources
snapd-glib | 1.63-5 | http://m/debian bookworm/main Sources
"""


def test_source_version_of_the_release_suite() -> None:
    assert snapd_build.parse_madison(MADISON, "bookworm") == "2.57.6-1+deb12u1"
    assert snapd_build.parse_madison(MADISON, "bookworm-security") == "2.57.6-1+deb12u2"
    assert snapd_build.parse_madison(MADISON, "sid") is None


def _fake_build(cache_dir: Path, release: str, version: str, deb_text: str = "deb") -> Path:
    entry = snapd_build.builds_root(cache_dir) / snapd_build.entry_name(release, version)
    (entry / "debs").mkdir(parents=True)
    deb = entry / "debs" / f"snapd_{version}_amd64.deb"
    deb.write_text(deb_text)
    snapd_build.write_keys(snapd_build.extract_test_keys(FAKE_TRUSTED_GO), entry / "keys")
    meta = {
        "release": release,
        "source_version": version,
        "debs": [{"file": deb.name, "size": deb.stat().st_size, "sha256": "ab" * 32}],
        "build_seconds": 321.0,
    }
    (entry / "meta.json").write_text(json.dumps(meta))
    return entry


def _record_check(cache_dir: Path, release: str, version: str, age: float = 0.0) -> None:
    path = snapd_build.builds_root(cache_dir) / f".checked-{release}.json"
    path.write_text(json.dumps({"source_version": version, "checked_at": time.time() - age}))


def test_finished_builds_are_found_and_half_built_ones_are_not(tmp_path: Path) -> None:
    assert snapd_build.testkeys_dir("bookworm", tmp_path) is None
    entry = _fake_build(tmp_path, "bookworm", "2.57.6-1+deb12u1")
    build = snapd_build.load_build(entry)
    assert build is not None
    assert build.debs == (entry / "debs/snapd_2.57.6-1+deb12u1_amd64.deb",)
    assert build.label == "testkeys 2.57.6-1+deb12u1"
    assert build.build_seconds == 321.0
    assert snapd_build.testkeys_dir("bookworm", tmp_path) == entry / "keys"
    assert snapd_build.testkeys_dir("trixie", tmp_path) is None
    (entry / "keys/root.key").unlink()
    assert snapd_build.load_build(entry) is None
    other = _fake_build(tmp_path, "bookworm", "2.57.6-1+deb12u2")
    (other / "debs/snapd_2.57.6-1+deb12u2_amd64.deb").write_text("truncated")
    assert snapd_build.load_build(other) is None
    assert snapd_build.testkeys_dir("bookworm", tmp_path) is None


def test_the_checked_version_wins_over_the_newest(tmp_path: Path) -> None:
    old = _fake_build(tmp_path, "sid", "2.77.1-1")
    new = _fake_build(tmp_path, "sid", "2.77.1-2")
    os.utime(old / "meta.json", (1, 1))
    os.utime(old, (1, 1))
    assert snapd_build.testkeys_dir("sid", tmp_path) == new / "keys"
    _record_check(tmp_path, "sid", "2.77.1-1")
    assert snapd_build.testkeys_dir("sid", tmp_path) == old / "keys"


def test_a_recent_check_needs_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_build(tmp_path, "bookworm", "2.57.6-1+deb12u1")
    _record_check(tmp_path, "bookworm", "2.57.6-1+deb12u1", age=60)

    def no_tree(*args: object) -> Path:
        raise AssertionError("the build tree must not be touched")

    monkeypatch.setattr(snapd_build, "_buildd_tree", no_tree)
    build = snapd_build.ensure_testkeys_build("bookworm", tmp_path, progress=print)
    assert build.source_version == "2.57.6-1+deb12u1"


def test_offline_an_old_check_falls_back_to_the_last_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_build(tmp_path, "bookworm", "2.57.6-1+deb12u1")
    _record_check(tmp_path, "bookworm", "2.57.6-1+deb12u1", age=snapd_build.SOURCE_CHECK_SECONDS)

    def unreachable(*args: object) -> Path:
        raise HostError("apt-get update failed (exit 100)\nmore detail")

    said: list[str] = []
    monkeypatch.setattr(snapd_build, "_buildd_tree", unreachable)
    build = snapd_build.ensure_testkeys_build("bookworm", tmp_path, progress=said.append)
    assert build.source_version == "2.57.6-1+deb12u1"
    assert said == [
        "cannot check bookworm's snapd source version (apt-get update failed (exit 100)); "
        "using the cached build 2.57.6-1+deb12u1"
    ]
    assert not list(snapd_build.builds_root(tmp_path).glob(".build-*"))
    with pytest.raises(HostError, match="apt-get update failed"):
        snapd_build.ensure_testkeys_build("trixie", tmp_path, progress=said.append)


def test_unknown_release_and_odd_versions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown release 'buster'"):
        snapd_build.ensure_testkeys_build("buster", tmp_path)
    with pytest.raises(HostError, match="unexpected snapd source version"):
        snapd_build.entry_name("sid", "2.77/../../x")


# -- the store tier's image ------------------------------------------------------------------


def _build(version: str, sha: str, release: str = "bookworm") -> SnapdBuild:
    return SnapdBuild(
        release=release,
        source_version=version,
        debs=(Path(f"/cache/snapd_{version}_amd64.deb"),),
        keys_dir=Path("/cache/keys"),
        build_seconds=1.0,
        deb_sha256=(sha,),
    )


def test_store_tier_key_follows_the_build() -> None:
    archive = golden.ImageRecipe("bookworm", "privileged")
    one = store_tier.store_recipe("bookworm", "privileged", _build("2.57.6-1+deb12u1", "a" * 64))
    same = store_tier.store_recipe("bookworm", "privileged", _build("2.57.6-1+deb12u1", "a" * 64))
    rebuilt = store_tier.store_recipe(
        "bookworm", "privileged", _build("2.57.6-1+deb12u1", "b" * 64)
    )
    newer = store_tier.store_recipe("bookworm", "privileged", _build("2.57.6-1+deb12u2", "a" * 64))
    assert one.key == same.key
    assert len({archive.key, one.key, rebuilt.key, newer.key}) == 4
    assert archive.family == "bookworm-privileged"
    assert one.family == "bookworm-privileged-testkeys"
    assert one.key.startswith("bookworm-privileged-testkeys-")
    assert archive.snapd_build == "archive"
    assert one.snapd_build == "testkeys 2.57.6-1+deb12u1"
    files = dict(one.snapd.files) if one.snapd else {}
    dropin = files["etc/systemd/system/snapd.service.d/snapconform-store.conf"]
    assert "Environment=SNAPPY_FORCE_API_URL=http://127.0.0.1:8190\n" in dropin
    assert "Environment=SNAPPY_TESTING=1\n" in dropin
    assert store_tier.STORE_URL.endswith(f"127.0.0.1:{store_tier.STORE_PORT}")
    with pytest.raises(ValueError, match="a sid snapd build cannot go into a bookworm image"):
        store_tier.store_recipe("bookworm", "privileged", _build("2.77.1-1", "a" * 64, "sid"))


def test_test_root_key_is_found_across_read_boundaries(tmp_path: Path) -> None:
    binary = tmp_path / "usr/lib/snapd/snapd"
    binary.parent.mkdir(parents=True)
    key_id = store_tier.TEST_ROOT_KEY_ID.encode()
    binary.write_bytes(b"\0" * 1000 + key_id[:10] + key_id[10:] + b"\0" * 10)
    for chunk in (7, 1005, 1 << 20):
        assert store_tier.binary_trusts_test_root(binary, chunk=chunk)
    assert store_tier.trusts_test_root(tmp_path)
    binary.write_bytes(b"\0" * 1000 + key_id[:-1] + b"\0")
    assert not store_tier.trusts_test_root(tmp_path)


def _image_entry(images: Path, name: str, age: float) -> Path:
    entry = images / name
    (entry / "rootfs").mkdir(parents=True)
    (entry / "meta.json").write_text("{}")
    when = time.time() - age
    os.utime(entry / "meta.json", (when, when))
    return entry


def test_pruning_keeps_each_family_current(tmp_path: Path) -> None:
    images = golden.images_root(tmp_path)
    archive = golden.ImageRecipe("bookworm", "privileged")
    store_new = store_tier.store_recipe(
        "bookworm", "privileged", _build("2.57.6-1+deb12u2", "a" * 64)
    )
    current = _image_entry(images, archive.key, 3 * 86400)
    old_archive = _image_entry(images, "bookworm-privileged-000000000000", 2 * 86400)
    testkeys_old = _image_entry(images, "bookworm-privileged-testkeys-111111111111", 2 * 86400)
    testkeys_new = _image_entry(images, store_new.key, 2 * 3600)
    # Building the archive image prunes its own family only.
    assert golden.prune_images(tmp_path, 86400, only=archive) == [
        "removed superseded image bookworm-privileged-000000000000"
    ]
    assert testkeys_old.exists() and current.exists()
    # Building the store tier's keeps the archive family alone.
    assert golden.prune_images(tmp_path, 0, only=store_new) == [
        "removed superseded image bookworm-privileged-testkeys-111111111111"
    ]
    assert not old_archive.exists() and not testkeys_old.exists()
    assert current.exists() and testkeys_new.exists()
    # A full prune keeps the current archive key and the newest of the other families.
    assert golden.prune_images(tmp_path) == []


# -- host URLs -------------------------------------------------------------------------------


def test_a_query_is_parsed() -> None:
    spec = HostSpec.parse("nspawn://bookworm?snapd=testkeys")
    assert (spec.hostname, spec.query) == ("bookworm", {"snapd": "testkeys"})
    assert HostSpec.parse("nspawn://bookworm").query == {}
    with pytest.raises(ValueError, match="'snapd' is given twice"):
        HostSpec.parse("nspawn://bookworm?snapd=testkeys&snapd=archive")
    with pytest.raises(ValueError, match="cannot read the query 'snapd'"):
        HostSpec.parse("nspawn://bookworm?snapd")


def test_the_store_tier_url() -> None:
    host = open_host("nspawn://trixie?snapd=testkeys")
    assert isinstance(host, NspawnHost)
    assert host.store_url == "http://127.0.0.1:8190"
    assert host.describe()["snapd_build"] == "testkeys"  # its version is known once started
    assert host.recipe is None
    archive = open_host("nspawn://trixie?snapd=archive")
    assert archive.store_url is None
    assert archive.describe()["snapd_build"] == "archive"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "nspawn://bookworm?snapd=stock",
            r"snapd='stock' is not allowed; allowed values of snapd: archive, testkeys",
        ),
        (
            "nspawn://bookworm?store=1",
            r"unknown query key 'store' for nspawn://; allowed: cpu, snapd",
        ),
        ("local://?snapd=testkeys", r"unknown query key 'snapd' for local://; allowed: none"),
    ],
)
def test_unknown_query_keys_and_values_are_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_host(url)


def test_the_build_runs_in_a_private_namespace(tmp_path: Path) -> None:
    script = chroot.chroot_script(tmp_path / "tree", "make", overlay_upper=tmp_path / "ov")
    assert "mount -t overlay" in script and f"lowerdir={tmp_path}/tree," in script
    assert f"mount -t proc proc {tmp_path}/ov/root/proc" in script
    assert script.splitlines()[-1].startswith(f"exec chroot {tmp_path}/ov/root env -i")
    argv = chroot.namespace_argv(script)
    assert argv[argv.index("unshare") :][:7] == [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
    ]
    with pytest.raises(HostError, match="holds ',' or ':'"):
        chroot.chroot_script(tmp_path / "a,b", "true", overlay_upper=tmp_path / "ov")


def test_phases_and_heartbeats_are_said(tmp_path: Path) -> None:
    script = "\n".join(
        [chroot.phase("[1/2] first", "some detail"), "sleep 0.3", chroot.phase("[2/2] second")]
    )
    said: list[str] = []
    log = tmp_path / "run.log"
    code = chroot.run_logged(
        ["sh", "-c", script + "\nexit 3"], log, label="job", heartbeat=0.0, say=said.append
    )
    assert code == 3
    assert said[0] == "job: [1/2] first: some detail"
    assert "job: [2/2] second" in said
    beats = [line for line in said if "elapsed" in line]
    assert beats and beats[0].startswith("job: still at [1/2] first, ")
    assert "snapconform-phase: [1/2] first | some detail" in log.read_text()


def test_a_refused_download_is_named_in_one_line(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text(
        "Err:1 http://m/debian trixie/main snapd 2.68.3-3+deb13u1 (dsc)\n  404  Not Found\n"
        "E: Failed to fetch http://m/debian/pool/main/s/snapd/snapd_2.68.3-3%2bdeb13u1.dsc"
        "  404  Not Found [IP: 192.0.2.1 80]\n"
        "E: Failed to fetch http://m/debian/pool/main/s/snapd/snapd_2.68.3.orig.tar.gz"
        "  404  Not Found [IP: 192.0.2.1 80]\n"
        "E: Failed to fetch some archives.\n"
    )
    assert chroot.failure_reason(log) == (
        "the mirror answered HTTP 404 for snapd_2.68.3-3+deb13u1.dsc, snapd_2.68.3.orig.tar.gz"
    )
    log.write_text("dpkg-buildpackage: error: debian/rules binary subprocess returned exit 2\n")
    assert chroot.failure_reason(log) is None


def test_pruning_snapd_builds_keeps_the_latest(tmp_path: Path) -> None:
    old = _fake_build(tmp_path, "sid", "2.77.1-1")
    new = _fake_build(tmp_path, "sid", "2.77.1-2")
    _record_check(tmp_path, "sid", "2.77.1-2")
    assert prune_snapd_builds(tmp_path) == ["removed superseded snapd build sid-2.77.1-1"]
    assert not old.exists() and new.exists()
    assert prune_snapd_builds(tmp_path) == []
