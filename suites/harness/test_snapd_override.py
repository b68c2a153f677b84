"""Any snapd under test, offline: the .debs and source trees a user names (real .debs made with
dpkg-deb), the host URL query they become, the image recipe keyed by the files' hashes, and one
clear line for every bad input (from pytest's own command line too)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from snapconform.hosts.base import open_host
from snapconform.hosts.nspawn import NspawnHost
from snapconform.images import snapd_override, store_tier
from snapconform.images.debs import dpkg_refusal, read_deb
from snapconform.images.snapd_override import (
    BadSnapdInput,
    SnapdRequest,
    check_source_tree,
    request_from_query,
    resolve,
    resolve_debs,
    tree_hash,
    with_snapd_query,
)

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
REPO = Path(__file__).resolve().parents[2]


def make_deb(
    where: Path,
    package: str = "snapd",
    version: str = "2.68.3-1",
    source: str | None = "snapd",
    architecture: str = "amd64",
    binary: bytes | None = None,
) -> Path:
    """A real .deb built by dpkg-deb (control fields as given; optionally a snapd binary)."""
    root = where / f"{package}-{version}-root"
    (root / "DEBIAN").mkdir(parents=True)
    control = [f"Package: {package}", f"Version: {version}", f"Architecture: {architecture}"]
    control += [f"Source: {source} ({version})"] if source else []
    control += ["Maintainer: nobody <nobody@example.invalid>", "Description: test package"]
    (root / "DEBIAN/control").write_text("\n".join(control) + "\n")
    if binary is not None:
        (root / "usr/lib/snapd").mkdir(parents=True)
        (root / "usr/lib/snapd/snapd").write_bytes(binary)
    deb = where / f"{package}_{version}_{architecture}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(root)
    return deb


def make_source_tree(where: Path, source: str = "snapd", version: str = "2.57.6-1") -> Path:
    tree = where / "snapd-src"
    (tree / "debian").mkdir(parents=True)
    (tree / "debian/control").write_text(f"Source: {source}\nSection: devel\n\nPackage: snapd\n")
    (tree / "debian/changelog").write_text(f"snapd ({version}) bookworm; urgency=medium\n")
    (tree / "asserts/systestkeys").mkdir(parents=True)
    (tree / "asserts/systestkeys/trusted.go").write_text("package systestkeys\n")
    (tree / "run-checks").write_text("#!/bin/sh\n")
    return tree


def test_a_deb_reads_as_what_its_control_says(tmp_path: Path) -> None:
    deb = read_deb(make_deb(tmp_path, "snap-confine", "2.68.3-1"))
    assert (deb.package, deb.version, deb.source) == ("snap-confine", "2.68.3-1", "snapd")
    assert len(deb.sha256) == 64
    # no Source: field means the source is the package itself
    assert read_deb(make_deb(tmp_path, "snapd", "1.0", source=None)).source == "snapd"


def test_debs_and_a_directory_of_them(tmp_path: Path) -> None:
    snapd = make_deb(tmp_path)
    confine = make_deb(tmp_path, "snap-confine")
    found = resolve_debs([tmp_path])
    assert [deb.package for deb in found] == ["snap-confine", "snapd"]
    assert [deb.path for deb in resolve_debs([snapd, confine])] == [confine, snapd]


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda d: [d / "missing.deb"], "missing.deb: no such file"),
        (lambda d: [d], "the directory holds no .deb files"),
        (
            lambda d: [d / "not-a.deb"],
            "not-a.deb is not a Debian package (dpkg-deb: error:",
        ),
        (
            lambda d: [make_deb(d, "hello", "2.10-3", source="hello")],
            "is hello 2.10-3, built from the source package 'hello', not from snapd's",
        ),
        (
            lambda d: [make_deb(d, "snap-confine")],
            "holds no snapd package (only snap-confine)",
        ),
        (
            lambda d: [make_deb(d), make_deb(d, "snap-confine", "2.57.6-1")],
            "mixes snapd versions 2.57.6-1, 2.68.3-1",
        ),
        (
            lambda d: [make_deb(d, architecture="arm64")],
            "is for arm64; this machine's images are",
        ),
    ],
)
def test_bad_debs_get_one_line(tmp_path: Path, build, needle: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "not-a.deb").write_text("hello\n")
    target = tmp_path / "empty" if needle.startswith("the directory") else tmp_path
    with pytest.raises(BadSnapdInput) as raised:
        resolve_debs(build(target))
    message = str(raised.value)
    assert needle in message and "\n" not in message, message


def test_a_deb_named_twice(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = make_deb(tmp_path / "a"), make_deb(tmp_path / "b")
    with pytest.raises(BadSnapdInput, match="gives snapd more than once"):
        resolve_debs([one, two])


def test_source_trees(tmp_path: Path) -> None:
    tree = make_source_tree(tmp_path)
    assert check_source_tree(tree) == "2.57.6-1"
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(BadSnapdInput, match="has no debian/ directory: not a Debian-packaged"):
        check_source_tree(plain)
    with pytest.raises(BadSnapdInput, match="no such directory"):
        check_source_tree(tmp_path / "nope")
    other = make_source_tree(tmp_path / "o", source="hello")
    with pytest.raises(BadSnapdInput, match="debian/control builds hello, not snapd"):
        check_source_tree(other)


def test_a_tree_is_keyed_by_its_content(tmp_path: Path) -> None:
    tree = make_source_tree(tmp_path)
    first = tree_hash(tree)
    (tree / ".git").mkdir()
    (tree / ".git/HEAD").write_text("ref: refs/heads/main\n")
    assert tree_hash(tree) == first  # VCS state is not content
    copy = tmp_path / "elsewhere"
    shutil.copytree(tree, copy, symlinks=True)
    assert tree_hash(copy) == first  # where it is does not matter
    (tree / "run-checks").chmod(0o755)
    moded = tree_hash(tree)
    assert moded != first
    (tree / "run-checks").write_text("#!/bin/sh\nexit 1\n")
    assert tree_hash(tree) not in (first, moded)
    (tree / "link").symlink_to("run-checks")
    assert tree_hash(tree) != moded


def test_the_host_url_query(tmp_path: Path) -> None:
    snapd = make_deb(tmp_path)
    confine = make_deb(tmp_path, "snap-confine")
    url = with_snapd_query("nspawn://bookworm", [snapd, confine])
    assert url == f"nspawn://bookworm?snapd-deb={snapd},{confine}"
    assert request_from_query(open_host(url).spec.query) == SnapdRequest(debs=(snapd, confine))
    store = with_snapd_query("nspawn://bookworm?snapd=testkeys", [snapd])
    assert store == f"nspawn://bookworm?snapd=testkeys&snapd-deb={snapd}"
    tree = make_source_tree(tmp_path)
    assert with_snapd_query("nspawn://sid", source=tree) == f"nspawn://sid?snapd-source={tree}"
    assert with_snapd_query("nspawn://sid") == "nspawn://sid"
    with pytest.raises(BadSnapdInput, match="already names a snapd build"):
        with_snapd_query(url, [snapd])
    comma = tmp_path / "a,b"
    comma.mkdir()
    with pytest.raises(BadSnapdInput, match="a path with a comma cannot go in a host URL"):
        with_snapd_query("nspawn://bookworm", [make_deb(comma)])
    with pytest.raises(ValueError, match="unknown query key 'snapd-debs'"):
        open_host("nspawn://bookworm?snapd-debs=/x.deb")
    with pytest.raises(BadSnapdInput, match="not both"):
        open_host(f"nspawn://bookworm?snapd-deb={snapd}&snapd-source={tree}")


def test_the_image_is_keyed_by_the_files_hashes_not_their_paths(tmp_path: Path) -> None:
    snapd = make_deb(tmp_path)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(snapd, moved / snapd.name)
    here = resolve(SnapdRequest(debs=(snapd,)), "bookworm", "privileged", store=False)
    there = resolve(SnapdRequest(debs=(moved / snapd.name,)), "bookworm", "privileged", store=False)
    assert here.recipe.key == there.recipe.key
    assert here.recipe.family == "bookworm-privileged-deb"
    assert here.recipe.snapd_build.startswith("deb 2.68.3-1 sha256:")
    assert here.facts["snapd_build_version"] == "2.68.3-1"
    assert here.facts["snapd_build_from"] == str(snapd)
    assert here.facts["snapd_build_sha256"] == f"{snapd.name} {read_deb(snapd).sha256}"
    other = make_deb(tmp_path / "moved", version="2.68.3-2")
    assert (
        resolve(SnapdRequest(debs=(other,)), "bookworm", "privileged", store=False).recipe.key
        != here.recipe.key
    )


def test_the_store_tier_takes_only_a_test_keys_build(tmp_path: Path) -> None:
    key_id = store_tier.TEST_ROOT_KEY_ID.encode()
    (tmp_path / "plain").mkdir()
    (tmp_path / "testkeys").mkdir()
    plain = make_deb(tmp_path / "plain", binary=b"\x7fELF snapd without the test root")
    testkeys = make_deb(tmp_path / "testkeys", binary=b"\x7fELF ..." + key_id + b"...")
    assert not snapd_override.deb_trusts_test_root(plain)
    assert snapd_override.deb_trusts_test_root(testkeys)
    from snapconform.hosts.base import HostUnavailable

    with pytest.raises(HostUnavailable, match="is not a test-keys build of snapd"):
        resolve(SnapdRequest(debs=(plain,)), "bookworm", "privileged", store=True)


def test_the_nspawn_host_says_which_build_it_will_run(tmp_path: Path) -> None:
    snapd = make_deb(tmp_path)
    host = open_host(f"nspawn://trixie?snapd-deb={snapd}")
    assert isinstance(host, NspawnHost)
    assert host.recipe is None  # resolved at start, when the image is made
    assert host.describe()["snapd_build"] == "deb"
    assert open_host("nspawn://trixie").describe()["snapd_build"] == "archive"


# What dpkg printed when trixie's snapd 2.68.3 .deb went into a bookworm tree (run 2026-12-01).
DPKG_REFUSED = """\
Selecting previously unselected package snapd.
(Reading database ... 10432 files and directories currently installed.)
Preparing to unpack .../snapd_2.68.3-3+deb13u1+b7_amd64.deb ...
dpkg: dependency problems prevent configuration of snapd:
 snapd depends on libc6 (>= 2.38); however:
  Version of libc6:amd64 on system is 2.36-9+deb12u14.
 snapd depends on libfoo; however:
  Package libfoo is not installed.

dpkg: error processing package snapd (--install):
 dependency problems - leaving unconfigured
Errors were encountered while processing:
 snapd
"""


def test_dpkg_refusal_is_one_line() -> None:
    assert dpkg_refusal(DPKG_REFUSED) == (
        "dpkg refused: snapd depends on libc6 (>= 2.38): Version of libc6:amd64 on system is "
        "2.36-9+deb12u14; snapd depends on libfoo: Package libfoo is not installed"
    )
    assert dpkg_refusal("Setting up snapd (2.57.6-1) ...\n") is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--snapd-deb", "/nonexistent/snapd.deb"], "--snapd-deb /nonexistent/snapd.deb: no such"),
        (["--snapd-source", "/"], "--snapd-source / has no debian/ directory"),
    ],
)
def test_pytest_refuses_bad_input_in_one_line(args: list[str], needle: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *args,
            "suites/conformance/test_bad_input.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"ERROR: {needle}" in done.stderr
    assert "Traceback" not in done.stderr
