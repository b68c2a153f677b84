"""The store tier, ``nspawn://RELEASE?snapd=testkeys``, against a real container: the release's
own snapd built with the test keys runs, trusts testrootorg and is pointed at the served
store's URL, while the default image keeps the archive's binary.

Needs root and systemd-nspawn (skips otherwise, naming what is missing). The first run on a
machine builds snapd (~6 min on 2 cores) and the store tier's image (~1.5 min). The release
is bookworm unless SNAPCONFORM_TEST_NSPAWN_RELEASE names another.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

import pytest

from snapconform.hosts.base import HostUnavailable, open_host
from snapconform.hosts.nspawn import NspawnHost, unavailable_reason
from snapconform.images import snapd_build, store_tier

RELEASE = os.environ.get("SNAPCONFORM_TEST_NSPAWN_RELEASE", "bookworm")
KEY_ID = store_tier.TEST_ROOT_KEY_ID


@contextlib.contextmanager
def _started(url: str) -> Iterator[NspawnHost]:
    reason = unavailable_reason(url)
    if reason:
        pytest.skip(reason)
    made = open_host(url)
    assert isinstance(made, NspawnHost)
    try:
        made.start()
    except HostUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def store_host() -> Iterator[NspawnHost]:
    with _started(f"nspawn://{RELEASE}?snapd=testkeys") as host:
        yield host


def ok(host: NspawnHost, script: str) -> str:
    done = host.run(script, timeout=120)
    assert done.returncode == 0, done.stdout
    return done.stdout


def test_snapd_runs_and_answers(store_host: NspawnHost) -> None:
    assert ok(store_host, "systemctl is-active snapd").strip() == "active"
    answer = json.loads(
        ok(store_host, "curl -sS --unix-socket /run/snapd.socket http://localhost/v2/system-info")
    )
    assert answer["status-code"] == 200
    assert answer["result"]["version"] == store_host.describe()["snapd"]
    assert ok(store_host, "readlink /proc/$(pidof snapd)/exe").strip() == "/usr/lib/snapd/snapd"


def test_snap_version_names_the_build(store_host: NspawnHost) -> None:
    build = store_host.snapd_build
    assert build is not None and build.release == RELEASE
    lines = ok(store_host, "snap version").splitlines()
    assert lines[0].split()[0] == "snap"
    snapd_line = next(line for line in lines if line.startswith("snapd"))
    assert snapd_line.split()[1] == store_host.describe()["snapd"]
    # The package is the build's (the same version string as the archive's, minus any binNMU
    # suffix), and held.
    assert ok(store_host, "dpkg-query -W -f '${Version}' snapd") == build.source_version
    assert "snapd" in ok(store_host, "apt-mark showhold").split()


def test_the_binary_trusts_testrootorg(store_host: NspawnHost) -> None:
    assert store_host.image is not None
    assert store_tier.trusts_test_root(store_host.image.rootfs)
    ok(store_host, f"grep -q -a -F {KEY_ID} /usr/lib/snapd/snapd")
    # snapd's own assertion database holds the test root account, compiled in.
    known = ok(store_host, "snap known account account-id=testrootorg")
    assert "account-id: testrootorg\n" in known


def test_snapd_is_pointed_at_the_served_store(store_host: NspawnHost) -> None:
    environment = ok(store_host, "systemctl show snapd -p Environment").strip()
    assert environment.startswith("Environment=")
    variables = environment.removeprefix("Environment=").split()
    assert f"SNAPPY_FORCE_API_URL={store_tier.STORE_URL}" in variables
    assert "SNAPPY_TESTING=1" in variables
    assert store_host.store_url == "http://127.0.0.1:8190"
    # The store is served inside the container: its loopback is the only network there is.
    assert ok(store_host, "ls /sys/class/net").split() == ["lo"]


def test_describe_says_which_snapd(store_host: NspawnHost) -> None:
    facts = store_host.describe()
    build = store_host.snapd_build
    assert build is not None
    assert facts["snapd_build"] == f"testkeys {build.source_version}"
    assert facts["image"].startswith(f"{RELEASE}-{store_host.mode}-testkeys-")


def test_the_keys_are_in_the_cache_for_root_only(store_host: NspawnHost) -> None:
    build = store_host.snapd_build
    assert build is not None
    keys_dir = snapd_build.testkeys_dir(RELEASE, store_host.cache_dir)
    assert keys_dir == build.keys_dir
    assert keys_dir.stat().st_mode & 0o777 == 0o700
    for name in ("store.key", "root.key"):
        path = keys_dir / name
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----\n")


def test_the_default_image_keeps_the_archive_binary() -> None:
    with _started(f"nspawn://{RELEASE}") as host:
        assert host.describe()["snapd_build"] == "archive"
        assert host.store_url is None
        assert host.image is not None
        assert not store_tier.trusts_test_root(host.image.rootfs)
        assert host.run(f"grep -q -a -F {KEY_ID} /usr/lib/snapd/snapd").returncode == 1
        assert ok(host, "systemctl show snapd -p Environment").strip() == "Environment="
        assert ok(host, "snap known account account-id=testrootorg").strip() == ""
        assert "snapd" not in ok(host, "apt-mark showhold").split()
