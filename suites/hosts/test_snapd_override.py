"""Any snapd under test, against a real container: a .deb given in the host URL
(``nspawn://RELEASE?snapd-deb=FILE``, what ``--snapd-deb`` makes) is what runs, held, named by
its hash in describe(); and a build the release cannot take is refused in dpkg's words.

The .deb is the release's own test-keys build (snapd_build.py; the store tier needs it anyway,
~6 min on 2 cores the first time): a binary that is not the archive's, so the test can tell
which one runs. Needs root and systemd-nspawn (skips otherwise, naming what is missing).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapconform.hosts.base import HostUnavailable, open_host
from snapconform.hosts.nspawn import NspawnHost, unavailable_reason
from snapconform.images import snapd_build, store_tier
from snapconform.images.debs import read_deb
from snapconform.images.snapd_override import with_snapd_query

RELEASE = os.environ.get("SNAPCONFORM_TEST_NSPAWN_RELEASE", "bookworm")


@pytest.fixture(scope="module")
def testkeys_deb() -> Path:
    reason = unavailable_reason(f"nspawn://{RELEASE}")
    if reason:
        pytest.skip(reason)
    try:
        build = snapd_build.ensure_testkeys_build(RELEASE)
    except HostUnavailable as exc:
        pytest.skip(f"no test-keys snapd build of {RELEASE} can be made here: {exc}")
    return build.debs[0]


@pytest.fixture(scope="module")
def deb_host(testkeys_deb: Path) -> Iterator[NspawnHost]:
    host = open_host(with_snapd_query(f"nspawn://{RELEASE}", [testkeys_deb]))
    assert isinstance(host, NspawnHost)
    host.start()
    try:
        yield host
    finally:
        host.stop()


def test_the_given_deb_is_what_runs_and_it_is_held(
    deb_host: NspawnHost, testkeys_deb: Path
) -> None:
    deb = read_deb(testkeys_deb)
    facts = deb_host.describe()
    assert facts["snapd_build"].startswith(f"deb {deb.version} sha256:")
    assert facts["snapd_build_sha256"] == f"{testkeys_deb.name} {deb.sha256}"
    assert facts["snapd_build_from"] == str(testkeys_deb)
    assert facts["snapd"] == deb.version
    assert deb_host.image is not None and deb_host.image.recipe.family.endswith("-deb")
    # the test-keys binary, not the archive's, and no store drop-in on the plain tier
    assert store_tier.trusts_test_root(deb_host.image.rootfs)
    assert not (deb_host.image.rootfs / store_tier.DROPIN_PATH).exists()
    shown = deb_host.run("dpkg-query -W -f '${Version}' snapd; echo; apt-mark showhold", 60)
    assert shown.returncode == 0, shown.stdout
    version, *held = shown.stdout.split()
    assert version == deb.version and "snapd" in held
    assert deb_host.run("systemctl is-active snapd", 60).stdout.strip() == "active"


def test_the_same_file_elsewhere_reuses_the_image(
    deb_host: NspawnHost, testkeys_deb: Path, tmp_path: Path
) -> None:
    copy = tmp_path / testkeys_deb.name
    copy.write_bytes(testkeys_deb.read_bytes())
    other = open_host(with_snapd_query(f"nspawn://{RELEASE}", [copy]))
    assert isinstance(other, NspawnHost) and deb_host.image is not None
    other.image = other._ensure_image()  # cached: no build, no boot
    assert other.image.entry == deb_host.image.entry
