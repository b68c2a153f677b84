"""Any snapd under test: the .debs a user gives, or a Debian-packaged snapd source tree built
first, installed over the image's snapd and held (golden.SnapdOverride: ``dpkg -i``, then
``apt-mark hold``).

How a host is told (the nspawn backend reads the URL's query; conftest.py and ``matrix`` turn
their ``--snapd-deb FILE`` (repeatable) and ``--snapd-source DIR`` options into it):

- ``nspawn://bookworm?snapd-deb=PATH[,PATH...]``: each PATH a .deb, or a directory whose
  ``*.deb`` are all taken. Several files are one comma-separated value (a query key is given
  once); a path holding a comma cannot be named this way: put the files in a directory.
- ``nspawn://bookworm?snapd-source=DIR``: DIR is a snapd source tree with ``debian/`` (an
  unpacked ``apt-get source snapd``, or snapd's git tree with its packaging). It is built in the
  host release's build tree (snapd_build.py's, on an overlay, the user's tree is only read) with
  ``DEB_BUILD_OPTIONS="nocheck testkeys"``, so one build serves both tiers: the test keys only
  add the testrootorg root to what snapd trusts, and the plain tier never meets that store.
  Cached under ``cache_root()/snapd-builds/source-RELEASE-TREEHASH/``, keyed by a hash of the
  tree's content (every file's path, mode and bytes; VCS directories left out).

The .debs must come from snapd's source package (``snapd``, and ``snap-confine`` and the other
binary packages it builds), one version, and include ``snapd``. The image is keyed by the files'
sha256 (ImageRecipe.key), not by their paths: the same files elsewhere reuse the image.
With ``snapd=testkeys`` too (the store tier) the build must be a test-keys one (checked before
anything is built), and the served store signs with the test keys of snapd's source.

Reports name the build (``describe()``): ``snapd_build`` is ``deb VERSION sha256:HASH`` or
``source VERSION tree:HASH``; ``snapd_build_from`` the files or the tree, ``snapd_build_sha256``
every hash in full.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from snapconform.hosts.base import HostError, HostUnavailable
from snapconform.images import cache, releases, snapd_build, store_tier
from snapconform.images.chroot import format_elapsed, phase, run_in_tree
from snapconform.images.debs import (
    BadPackage,
    DebFile,
    machine_architecture,
    read_deb,
    sha256_of,
)
from snapconform.images.golden import ImageRecipe, SnapdOverride

QUERY_DEB = "snapd-deb"
QUERY_SOURCE = "snapd-source"
SNAPD_SOURCE_PACKAGE = "snapd"
DEB_FLAVOUR = "deb"
SOURCE_FLAVOUR = "source"
SOURCE_RECIPE = "source-v1"  # bump when the source build changes in a way the key misses
SOURCE_BUILD_OPTIONS = ("nocheck", "testkeys")
VCS_DIRS = frozenset({".git", ".bzr", ".hg", ".svn"})
SNAPD_BINARY = "./usr/lib/snapd/snapd"

Say = Callable[[str], None]


class BadSnapdInput(ValueError):
    """The .debs or source tree given cannot be the snapd under test (one line says why)."""


# -- what the user asked for -----------------------------------------------------------------


@dataclass(frozen=True)
class SnapdRequest:
    """The snapd a host should run instead of its release's: .debs, or a source tree."""

    debs: tuple[Path, ...] = ()
    source: Path | None = None

    def __post_init__(self) -> None:
        if bool(self.debs) == (self.source is not None):
            raise BadSnapdInput("give either --snapd-deb files or one --snapd-source tree")

    def query(self) -> dict[str, str]:
        if self.source is not None:
            return {QUERY_SOURCE: str(self.source)}
        return {QUERY_DEB: ",".join(str(path) for path in self.debs)}


def request_from_query(query: Mapping[str, str]) -> SnapdRequest | None:
    """The request a host URL's query makes (None: the release's own snapd)."""
    debs, source = query.get(QUERY_DEB), query.get(QUERY_SOURCE)
    if debs is None and source is None:
        return None
    if debs is not None and source is not None:
        raise BadSnapdInput(f"give {QUERY_DEB}= or {QUERY_SOURCE}=, not both")
    if source is not None:
        if not source:
            raise BadSnapdInput(f"{QUERY_SOURCE}= names no directory")
        return SnapdRequest(source=Path(source))
    paths = tuple(Path(part) for part in (debs or "").split(",") if part)
    if not paths:
        raise BadSnapdInput(f"{QUERY_DEB}= names no file")
    return SnapdRequest(debs=paths)


def with_snapd_query(
    url: str, debs: Iterable[str | Path] = (), source: str | Path | None = None
) -> str:
    """``url`` with the query that asks for these .debs or this source tree (absolute paths).
    The paths are checked first: a bad one is a BadSnapdInput naming it."""
    deb_paths = [Path(path).absolute() for path in debs]
    if not deb_paths and source is None:
        return url
    request = SnapdRequest(tuple(deb_paths), Path(source).absolute() if source else None)
    if request.source is not None:
        check_source_tree(request.source)
    else:
        for path in request.debs:
            if "," in str(path):
                raise BadSnapdInput(
                    f"{path}: a path with a comma cannot go in a host URL; "
                    "put the .debs in a directory and name that"
                )
        resolve_debs(request.debs)
    if "?" in url and any(key in url.split("?", 1)[1] for key in (QUERY_DEB, QUERY_SOURCE)):
        raise BadSnapdInput(f"{url} already names a snapd build; give it once")
    query = "&".join(f"{key}={quote(value, safe='/,')}" for key, value in request.query().items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


# -- .debs -----------------------------------------------------------------------------------


def _deb_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.deb"))
            if not found:
                raise BadSnapdInput(f"--snapd-deb {path}: the directory holds no .deb files")
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise BadSnapdInput(f"--snapd-deb {path}: not a file")
        else:
            raise BadSnapdInput(f"--snapd-deb {path}: no such file")
    return files


def resolve_debs(paths: Iterable[Path]) -> tuple[DebFile, ...]:
    """The .debs the paths name, checked: readable packages, all built from snapd's source, one
    version of it, for this machine's architecture, snapd among them."""
    found: list[DebFile] = []
    for path in _deb_files(paths):
        try:
            deb = read_deb(path)
        except BadPackage as exc:
            raise BadSnapdInput(f"--snapd-deb {exc}") from None
        if deb.source != SNAPD_SOURCE_PACKAGE:
            raise BadSnapdInput(
                f"--snapd-deb {path} is {deb.package} {deb.version}, built from the source "
                f"package {deb.source!r}, not from snapd's"
            )
        found.append(deb)
    packages = [deb.package for deb in found]
    for name in sorted({name for name in packages if packages.count(name) > 1}):
        paths = ", ".join(str(deb.path) for deb in found if deb.package == name)
        raise BadSnapdInput(f"--snapd-deb gives {name} more than once ({paths})")
    versions = sorted({deb.version for deb in found})
    if len(versions) > 1:
        raise BadSnapdInput(f"--snapd-deb mixes snapd versions {', '.join(versions)}")
    if SNAPD_SOURCE_PACKAGE not in packages:
        raise BadSnapdInput(
            f"--snapd-deb holds no snapd package (only {', '.join(sorted(packages))})"
        )
    machine = machine_architecture()
    foreign = [deb for deb in found if deb.architecture not in ("all", machine)]
    if machine and foreign:
        raise BadSnapdInput(
            f"--snapd-deb {foreign[0].path} is for {foreign[0].architecture}; "
            f"this machine's images are {machine}"
        )
    return tuple(sorted(found, key=lambda deb: deb.package))


def _combined_hash(hashes: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def deb_trusts_test_root(deb: Path) -> bool:
    """Whether the snapd binary in the .deb trusts the testrootorg root (a test-keys build)."""
    with tempfile.TemporaryDirectory(prefix="snapconform-deb-") as temporary:
        binary = Path(temporary) / "snapd"
        process = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(deb)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        try:
            with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
                for member in archive:
                    if member.name == SNAPD_BINARY and member.isfile():
                        source = archive.extractfile(member)
                        assert source is not None
                        with open(binary, "wb") as out:
                            shutil.copyfileobj(source, out)
                        break
        except tarfile.TarError:
            return False
        finally:
            process.stdout.close()
            process.kill()
            process.wait()
        return binary.is_file() and store_tier.binary_trusts_test_root(binary)


# -- a source tree ---------------------------------------------------------------------------


def check_source_tree(tree: Path) -> str:
    """The snapd version the tree's debian/changelog names; BadSnapdInput unless ``tree`` is a
    Debian-packaged snapd source tree."""
    if not tree.exists():
        raise BadSnapdInput(f"--snapd-source {tree}: no such directory")
    if not tree.is_dir():
        raise BadSnapdInput(f"--snapd-source {tree}: not a directory")
    if not (tree / "debian").is_dir():
        raise BadSnapdInput(
            f"--snapd-source {tree} has no debian/ directory: not a Debian-packaged source tree"
        )
    try:
        control = (tree / "debian/control").read_text(errors="replace")
        changelog = (tree / "debian/changelog").read_text(errors="replace")
    except OSError as exc:
        raise BadSnapdInput(f"--snapd-source {tree}: cannot read debian/{exc.filename}") from None
    source = re.search(r"^Source:\s*(\S+)", control, re.MULTILINE)
    if source is None or source.group(1) != SNAPD_SOURCE_PACKAGE:
        named = source.group(1) if source else "nothing"
        raise BadSnapdInput(f"--snapd-source {tree}: debian/control builds {named}, not snapd")
    version = re.match(r"^snapd \(([^)\s]+)\)", changelog)
    if version is None:
        raise BadSnapdInput(f"--snapd-source {tree}: debian/changelog names no snapd version")
    if not (tree / snapd_build.TRUSTED_GO).is_file():
        raise BadSnapdInput(f"--snapd-source {tree} has no {snapd_build.TRUSTED_GO}")
    return version.group(1)


def tree_hash(tree: Path) -> str:
    """sha256 over every entry of the tree (relative path, type, mode bits, bytes or link
    target), in sorted order; VCS directories are left out."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(name for name in dirs if name not in VCS_DIRS)
        base = Path(root)
        for name in sorted([*files, *(d for d in dirs if (base / d).is_symlink())]):
            path = base / name
            relative = path.relative_to(tree).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                digest.update(f"L {relative} {os.readlink(path)}\0".encode())
            elif stat.S_ISREG(info.st_mode):
                digest.update(f"F {relative} {info.st_mode & 0o111:o}\0".encode())
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
                digest.update(b"\0")
    return digest.hexdigest()


def source_entry_name(release: str, digest: str) -> str:
    return f"source-{release}-{digest[:16]}"


def source_build_script(jobs: int) -> str:
    options = " ".join([*SOURCE_BUILD_OPTIONS, f"parallel={jobs}"])
    return "\n".join(
        [
            phase("[2/4] apt-get update"),
            "apt-get update -q",
            phase("[3/4] apt-get build-dep", "~40 s"),
            "apt-get build-dep -y -q /build/src",
            phase(
                "[4/4] dpkg-buildpackage",
                f'DEB_BUILD_OPTIONS="{options}" dpkg-buildpackage -b -uc -us (~5 min on 2 cores)',
            ),
            "cd /build/src",
            f'DEB_BUILD_OPTIONS="{options}" dpkg-buildpackage -b -uc -us',
        ]
    )


def _assemble_source_build(
    built: Path, tree: Path, version: str, release: str, digest: str, result: Path, seconds: float
) -> None:
    (result / "debs").mkdir(parents=True)
    debs = []
    for package in snapd_build.KEPT_PACKAGES:
        found = sorted(built.glob(f"{package}_*.deb"))
        if len(found) != 1:
            raise HostError(f"the build of {tree} made {len(found)} {package}_*.deb, expected one")
        target = result / "debs" / found[0].name
        shutil.copyfile(found[0], target)
        debs.append(
            {"file": target.name, "size": target.stat().st_size, "sha256": sha256_of(target)}
        )
    keys = snapd_build.extract_test_keys((tree / snapd_build.TRUSTED_GO).read_text())
    snapd_build.write_keys(keys, result / "keys")
    meta = {
        "release": release,
        "source_version": version,
        "source_tree": str(tree),
        "tree_sha256": digest,
        "recipe": SOURCE_RECIPE,
        "deb_build_options": list(SOURCE_BUILD_OPTIONS),
        "debs": debs,
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "build_seconds": round(seconds, 1),
    }
    (result / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def ensure_source_build(
    tree: Path, release: str, cache_dir: Path | None = None, progress: Say = cache.progress
) -> tuple[snapd_build.SnapdBuild, str]:
    """The build of the snapd source ``tree`` for ``release`` and the tree's hash; built first
    (in the release's build tree, on an overlay) when the cache has none for this content."""
    releases.check_release(release)
    version = check_source_tree(tree)
    digest = tree_hash(tree)
    builds = snapd_build.builds_root(cache_dir)
    name = source_entry_name(release, digest)
    entry = builds / name
    found = snapd_build.load_build(entry)
    if found is not None:
        return found, digest
    with cache.locked(cache.lock_path(builds, name)):
        found = snapd_build.load_build(entry)
        if found is not None:
            return found, digest
        cache.remove_stale_builds(builds, name)
        started = time.monotonic()
        work = cache.build_dir_for(builds, name)
        work.mkdir(parents=True)
        try:
            progress(f"building snapd {version} from {tree} for {release} in {work}")
            buildd = snapd_build._buildd_tree(builds, release, work, progress)
            upper = work / "overlay" / "upper"
            progress(f"snapd source build ({release}): [1/4] copying {tree} (read only)")
            shutil.copytree(
                tree,
                upper / "build" / "src",
                symlinks=True,
                ignore=lambda _dir, names: [n for n in names if n in VCS_DIRS],
            )
            log = snapd_build._fresh_log(builds, release, "source-build.log")
            jobs = max(1, len(os.sched_getaffinity(0)))
            run_in_tree(
                buildd,
                source_build_script(jobs),
                log,
                label=f"snapd source build ({release})",
                overlay_upper=work / "overlay",
                timeout=snapd_build.BUILD_TIMEOUT,
                since=started,
            )
            seconds = time.monotonic() - started
            result = work / "result"
            _assemble_source_build(upper / "build", tree, version, release, digest, result, seconds)
            shutil.copyfile(log, result / "build.log")
            cache.put_in_place(result, entry)
            progress(f"snapd {version} from {tree} built in {format_elapsed(seconds)}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    build = snapd_build.load_build(entry)
    if build is None:
        raise HostError(f"snapd build {entry} was made but cannot be read back")
    return build, digest


# -- the image's snapd -----------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedSnapd:
    """What a request comes to for one image: its recipe, the build (with the test keys, for
    the store tier) and the facts reports show."""

    recipe: ImageRecipe
    build: snapd_build.SnapdBuild | None
    facts: dict[str, str] = field(default_factory=dict)


def _any_test_keys(release: str, cache_dir: Path | None, progress: Say) -> Path:
    """A keys directory of snapd's test keys (the same in every snapd source): a finished
    build's, this release's first; built for ``release`` when there is none."""
    for candidate in (release, *releases.RELEASES):
        build = snapd_build.latest_build(candidate, cache_dir)
        if build is not None:
            return build.keys_dir
    return snapd_build.ensure_testkeys_build(release, cache_dir, progress).keys_dir


def resolve(
    request: SnapdRequest,
    release: str,
    mode: str,
    *,
    store: bool,
    cache_dir: Path | None = None,
    progress: Say = cache.progress,
) -> ResolvedSnapd:
    """The image recipe that runs the requested snapd (``store``: on the store tier, pointed at
    the served store, which needs a test-keys build). Bad input is BadSnapdInput; a store tier
    that cannot be made from these .debs is HostUnavailable."""
    files = ((store_tier.DROPIN_PATH, store_tier.DROPIN_TEXT),) if store else ()
    suffix = "store" if store else ""
    if request.source is not None:
        build, digest = ensure_source_build(request.source, release, cache_dir, progress)
        label = f"source {build.source_version} tree:{digest[:12]}"
        override = SnapdOverride(
            SOURCE_FLAVOUR + suffix, label, build.debs, build.deb_sha256, files
        )
        facts = {
            "snapd_build_version": build.source_version,
            "snapd_build_from": f"source tree {request.source} (built for {release})",
            "snapd_build_sha256": f"tree {digest}; "
            + "; ".join(f"{d.name} {h}" for d, h in zip(build.debs, build.deb_sha256, strict=True)),
        }
        return ResolvedSnapd(ImageRecipe(release, mode, override), build, facts)
    debs = resolve_debs(request.debs)
    snapd = next(deb for deb in debs if deb.package == SNAPD_SOURCE_PACKAGE)
    combined = _combined_hash(deb.sha256 for deb in debs)
    label = f"deb {snapd.version} sha256:{combined[:12]}"
    override = SnapdOverride(
        DEB_FLAVOUR + suffix,
        label,
        tuple(deb.path for deb in debs),
        tuple(deb.sha256 for deb in debs),
        files,
    )
    facts = {
        "snapd_build_version": snapd.version,
        "snapd_build_from": ", ".join(str(deb.path) for deb in debs),
        "snapd_build_sha256": "; ".join(f"{deb.path.name} {deb.sha256}" for deb in debs),
    }
    build = None
    if store:
        if not deb_trusts_test_root(snapd.path):
            raise HostUnavailable(
                f"{snapd.path} is not a test-keys build of snapd, so it cannot trust the served "
                'store; build it with DEB_BUILD_OPTIONS="testkeys" (or use --snapd-source)'
            )
        build = snapd_build.SnapdBuild(
            release=release,
            source_version=snapd.version,
            debs=override.debs,
            keys_dir=_any_test_keys(release, cache_dir, progress),
            build_seconds=0.0,
            deb_sha256=override.deb_sha256,
        )
    return ResolvedSnapd(ImageRecipe(release, mode, override), build, facts)
