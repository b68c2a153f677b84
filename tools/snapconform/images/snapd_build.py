"""A release's own Debian snapd, rebuilt with the test keys, so it trusts the store we serve.

Debian's snapd source package adds the Go tag ``withtestkeys`` when ``DEB_BUILD_OPTIONS``
holds ``testkeys`` (debian/rules): the binary then also trusts the ``testrootorg`` root and
its store key (asserts/systestkeys). The build is the release's own source package in a build
tree of the same release, so the only difference from the archive's binary is that tag:

1. an mmdebstrap ``--variant=buildd`` tree of the release with deb-src lines (kept, cached);
2. ``apt-get update`` and ``apt-cache madison snapd`` in it: the release's current source version;
3. ``apt-get source snapd=V``, ``apt-get build-dep``, ``DEB_BUILD_OPTIONS="nocheck testkeys
   parallel=N" dpkg-buildpackage -b -uc -us``, on an overlay over the tree (left clean), chrooted
   in a private mount namespace (see chroot.py);
4. the snapd .deb and the test private keys (``TestStorePrivKey``, ``TestRootPrivKey`` from
   asserts/systestkeys/trusted.go of the unpacked source) go to
   ``cache_root()/snapd-builds/RELEASE-V/`` (``debs/``, ``keys/store.key``, ``keys/root.key``,
   mode 0600), which is renamed into place only when complete. The last attempt's logs stay in
   ``snapd-builds/logs-RELEASE/``.

The source version is checked again at most every ``SOURCE_CHECK_SECONDS`` (and whenever the
check cannot be trusted); a build is redone only when it changed. The keys are public test keys,
usable only against a test-keys snapd; still they are never printed, logged or committed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from snapconform.hosts.base import HostError, HostUnavailable
from snapconform.images import cache, mirror, releases
from snapconform.images.chroot import (
    failure_reason,
    format_elapsed,
    phase,
    run_in_tree,
    run_logged,
)

BUILDS_DIR = "snapd-builds"
BUILDD_RECIPE = "buildd-v1"  # bump when the build tree's recipe changes in a way not hashed
BUILDD_PACKAGES = ("ca-certificates", "dpkg-dev", "fakeroot")
BUILD_OPTIONS = ("nocheck", "testkeys")
SOURCE_CHECK_SECONDS = 6 * 3600.0
SUPERSEDED_KEEP_SECONDS = 24 * 3600.0
BUILD_TIMEOUT = 3 * 3600.0
KEYS = {"store.key": "TestStorePrivKey", "root.key": "TestRootPrivKey"}
TRUSTED_GO = "asserts/systestkeys/trusted.go"
# The binary packages the image installs; the transitional snap-confine and
# ubuntu-core-launcher, the -dev sources and the debug symbols are not kept.
KEPT_PACKAGES = ("snapd",)

Say = Callable[[str], None]


@dataclass(frozen=True)
class SnapdBuild:
    """A finished test-keys build of one release's snapd source package."""

    release: str
    source_version: str
    debs: tuple[Path, ...]
    keys_dir: Path
    build_seconds: float
    deb_sha256: tuple[str, ...]  # of ``debs``, in the same order

    @property
    def entry(self) -> Path:
        return self.keys_dir.parent

    @property
    def label(self) -> str:
        return f"testkeys {self.source_version}"


def builds_root(cache_dir: Path | None = None) -> Path:
    return cache.cache_root(cache_dir) / BUILDS_DIR


def entry_name(release: str, source_version: str) -> str:
    if not re.fullmatch(r"[0-9A-Za-z.+~:-]+", source_version):
        raise HostError(f"unexpected snapd source version {source_version!r}")
    return f"{release}-{source_version}"


# -- the keys --------------------------------------------------------------------------------


def extract_test_keys(trusted_go: str) -> dict[str, str]:
    """{file name: armored private key} for KEYS, read from the Go raw-string literals.

    Errors name what is missing, never any of the text.
    """
    found: dict[str, str] = {}
    for file_name, constant in KEYS.items():
        match = re.search(rf"\b{constant}\s*=\s*`([^`]*)`", trusted_go)
        if match is None:
            raise HostError(f"{TRUSTED_GO} has no raw-string constant {constant}")
        armored = match.group(1).strip()
        lines = armored.splitlines()
        if (
            not lines
            or lines[0].strip() != "-----BEGIN PGP PRIVATE KEY BLOCK-----"
            or lines[-1].strip() != "-----END PGP PRIVATE KEY BLOCK-----"
        ):
            raise HostError(f"{TRUSTED_GO}: {constant} is not an armored PGP private key block")
        found[file_name] = armored + "\n"
    return found


def write_keys(keys: dict[str, str], keys_dir: Path) -> None:
    """Write the keys readable by root only (directory 0700, files 0600, never world-readable
    even for a moment)."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys_dir.chmod(0o700)
    for file_name, text in keys.items():
        path = keys_dir / file_name
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)


# -- the cache -------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_build(entry: Path) -> SnapdBuild | None:
    """The finished build in ``entry``, or None when it is missing or incomplete."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        debs = tuple(entry / "debs" / item["file"] for item in meta["debs"])
        sizes = [int(item["size"]) for item in meta["debs"]]
        hashes = tuple(str(item["sha256"]) for item in meta["debs"])
        if not debs or any(d.stat().st_size != s for d, s in zip(debs, sizes, strict=True)):
            return None
        keys_dir = entry / "keys"
        if not all((keys_dir / name).is_file() for name in KEYS):
            return None
        return SnapdBuild(
            release=str(meta["release"]),
            source_version=str(meta["source_version"]),
            debs=debs,
            keys_dir=keys_dir,
            build_seconds=float(meta["build_seconds"]),
            deb_sha256=hashes,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_path(builds: Path, release: str) -> Path:
    return builds / f".checked-{release}.json"


def _read_check(builds: Path, release: str) -> tuple[str, float] | None:
    """(source version, when it was checked, as a UNIX time) of the last check, if any."""
    try:
        record = json.loads(_check_path(builds, release).read_text())
        return str(record["source_version"]), float(record["checked_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_check(builds: Path, release: str, version: str) -> None:
    path = _check_path(builds, release)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"source_version": version, "checked_at": time.time()}) + "\n")
    partial.replace(path)


def finished_builds(release: str, cache_dir: Path | None = None) -> list[SnapdBuild]:
    """Every finished build of ``release`` in the cache, newest first."""
    builds = builds_root(cache_dir)
    found = []
    for entry in builds.glob(f"{release}-*") if builds.is_dir() else []:
        build = load_build(entry)
        if build is not None and build.release == release:
            found.append((entry.stat().st_mtime, build))
    return [build for _mtime, build in sorted(found, key=lambda pair: -pair[0])]


def latest_build(release: str, cache_dir: Path | None = None) -> SnapdBuild | None:
    """The build of the source version last checked, else the newest finished one. No network."""
    releases.check_release(release)
    builds = builds_root(cache_dir)
    check = _read_check(builds, release)
    if check is not None:
        build = load_build(builds / entry_name(release, check[0]))
        if build is not None:
            return build
    found = finished_builds(release, cache_dir)
    return found[0] if found else None


def testkeys_dir(release: str, cache_dir: Path | None = None) -> Path | None:
    """keys_dir of the release's finished build (see latest_build), or None. Cheap: no network."""
    build = latest_build(release, cache_dir)
    return build.keys_dir if build is not None else None


def prune_builds(
    release: str, keep: str, cache_dir: Path | None = None, min_age: float = 0.0
) -> list[str]:
    """Remove finished builds of ``release`` other than source version ``keep`` that are at
    least ``min_age`` seconds old (images copy the .deb, so nothing running needs them)."""
    actions = []
    for build in finished_builds(release, cache_dir):
        if build.source_version == keep:
            continue
        if time.time() - (build.entry / "meta.json").stat().st_mtime < min_age:
            continue
        cache.remove_tree(build.entry)
        actions.append(f"removed superseded snapd build {build.entry.name}")
    return actions


# -- the build tree --------------------------------------------------------------------------


def source_lines(release: str, archive: str, security: str | None) -> list[str]:
    """The apt source lines of the build tree: deb and deb-src for each suite of the release."""
    lines = []
    suites = [(archive, suite) for suite in releases.ARCHIVE_SUITES[release]]
    if security is not None:
        suites += [(security, suite) for suite in releases.SECURITY_SUITES[release]]
    for uri, suite in suites:
        lines += [f"deb {uri} {suite} main", f"deb-src {uri} {suite} main"]
    return lines


def buildd_recipe_key(release: str, lines: list[str]) -> str:
    recipe = {
        "recipe": BUILDD_RECIPE,
        "release": release,
        "packages": BUILDD_PACKAGES,
        "aptopts": releases.aptopts(release),
        "sources": lines,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _buildd_tree(builds: Path, release: str, work: Path, say: Say) -> Path:
    """The cached build tree of ``release`` (built first when missing or of another recipe)."""
    archive = mirror.debian_mirror()
    security = mirror.security_mirror()
    if security is None and releases.SECURITY_SUITES[release]:
        say(f"no Debian security mirror in the apt sources: the {release} tree goes without it")
    lines = source_lines(release, archive, security)
    key = buildd_recipe_key(release, lines)
    tree = builds / f"buildd-{release}"
    try:
        if json.loads((tree / "meta.json").read_text()).get("key") == key:
            return tree / "rootfs"
    except (OSError, ValueError):
        pass
    started = time.monotonic()
    say(f"snapd build ({release}): [1/5] mmdebstrap --variant=buildd {release} (~40 s)")
    fresh = work / "buildd"
    fresh.mkdir(parents=True)
    argv = [
        "mmdebstrap",
        "--variant=buildd",
        "--include=" + ",".join(BUILDD_PACKAGES),
        *(f"--aptopt={opt}" for opt in releases.aptopts(release)),
        release,
        str(fresh / "rootfs"),
        *lines,
    ]
    log = _fresh_log(builds, release, "mmdebstrap.log")
    code = run_logged(argv, log, label=f"snapd build ({release}) [1/5] mmdebstrap", say=say)
    if code != 0:
        reason = failure_reason(log)
        raise (HostUnavailable if reason else HostError)(
            f"mmdebstrap of the {release} build tree failed (exit {code})"
            + (f": {reason}" if reason else "")
            + f"; log {log}"
        )
    meta = {"key": key, "release": release, "seconds": round(time.monotonic() - started, 1)}
    (fresh / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    cache.put_in_place(fresh, tree)
    return tree / "rootfs"


def parse_madison(text: str, release: str, package: str = "snapd") -> str | None:
    """The source version of ``package`` in suite ``release`` from `apt-cache madison` output."""
    for line in text.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) != 3 or fields[0] != package:
            continue
        where = fields[2].split()
        if len(where) >= 3 and where[-1] == "Sources" and where[-2].split("/")[0] == release:
            return fields[1]
    return None


def current_source_version(tree: Path, release: str, log: Path) -> str:
    """Refresh the tree's package lists and read the release's snapd source version."""
    script = "\n".join(["apt-get update -q", "echo '---madison---'", "apt-cache madison snapd"])
    run_in_tree(tree, script, log, label=f"snapd build ({release}) source check", timeout=600)
    text = log.read_text(errors="replace").rsplit("---madison---", 1)[-1]
    version = parse_madison(text, release)
    if version is None:
        raise HostError(f"no snapd source package in {release} (apt-cache madison; log {log})")
    return version


# -- the build -------------------------------------------------------------------------------


def build_script(release: str, version: str, jobs: int) -> str:
    """The bash script run in the build overlay: fetch, install build-deps, build."""
    options = " ".join([*BUILD_OPTIONS, f"parallel={jobs}"])
    return "\n".join(
        [
            phase("[3/5] apt-get source", f"snapd={version}"),
            "mkdir -p /build && cd /build",
            f"apt-get source -q snapd={version}",
            "src=$(find /build -mindepth 1 -maxdepth 1 -type d -name 'snapd-*')",
            phase("[4/5] apt-get build-dep", "~40 s"),
            'apt-get build-dep -y -q "$src"',
            phase(
                "[5/5] dpkg-buildpackage",
                f'DEB_BUILD_OPTIONS="{options}" dpkg-buildpackage -b -uc -us (~5 min on 2 cores)',
            ),
            'cd "$src"',
            f'DEB_BUILD_OPTIONS="{options}" dpkg-buildpackage -b -uc -us',
            "dpkg-parsechangelog -S Version > /build/source-version",
        ]
    )


def _assemble(upper: Path, release: str, version: str, result: Path, seconds: float) -> None:
    """Copy what the build made (the kept .debs, the keys) from the overlay's upper layer."""
    built = upper / "build"
    unpacked = (built / "source-version").read_text().strip()
    if unpacked != version:
        raise HostError(f"asked for snapd {version}, the unpacked source says {unpacked}")
    sources = sorted(p for p in built.iterdir() if p.is_dir() and p.name.startswith("snapd-"))
    if len(sources) != 1:
        raise HostError(f"expected one unpacked snapd source in {built}, found {len(sources)}")
    (result / "debs").mkdir(parents=True)
    debs = []
    for package in KEPT_PACKAGES:
        found = sorted(built.glob(f"{package}_*.deb"))
        if len(found) != 1:
            raise HostError(f"the build made {len(found)} {package}_*.deb files, expected one")
        target = result / "debs" / found[0].name
        shutil.copyfile(found[0], target)
        debs.append({"file": target.name, "size": target.stat().st_size, "sha256": _sha256(target)})
    trusted = (sources[0] / TRUSTED_GO).read_text()
    write_keys(extract_test_keys(trusted), result / "keys")
    meta = {
        "release": release,
        "source_version": version,
        "deb_build_options": list(BUILD_OPTIONS),
        "debs": debs,
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "build_seconds": round(seconds, 1),
    }
    (result / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def ensure_testkeys_build(
    release: str,
    cache_dir: Path | None = None,
    progress: Say = cache.progress,
    recheck_after: float = SOURCE_CHECK_SECONDS,
) -> SnapdBuild:
    """The test-keys build of ``release``'s current snapd source package, built when missing.

    Without network the source version cannot be checked: the last build is used then (said
    so), and with none there is a HostError naming the failed step.
    """
    releases.check_release(release)
    builds = builds_root(cache_dir)
    with cache.locked(cache.lock_path(builds, release)):
        cache.remove_stale_builds(builds, release)
        last = latest_build(release, cache_dir)
        check = _read_check(builds, release)
        if (
            last is not None
            and check is not None
            and check[0] == last.source_version
            and time.time() - check[1] < recheck_after
        ):
            return last
        started = time.monotonic()
        work = cache.build_dir_for(builds, release)
        work.mkdir(parents=True)
        try:
            try:
                tree = _buildd_tree(builds, release, work, progress)
                progress(f"snapd build ({release}): [2/5] apt-get update, current source version")
                check_log = _fresh_log(builds, release, "check.log")
                version = current_source_version(tree, release, check_log)
            except HostError as exc:
                if last is None:
                    raise
                progress(
                    f"cannot check {release}'s snapd source version ({_first_line(exc)}); "
                    f"using the cached build {last.source_version}"
                )
                return last
            _write_check(builds, release, version)
            entry = builds / entry_name(release, version)
            found = load_build(entry)
            if found is not None:
                return found
            if last is not None:
                progress(f"snapd {release}: source {last.source_version} -> {version}: rebuilding")
            progress(f"building {release}'s snapd {version} with test keys in {work}")
            log = _fresh_log(builds, release, "build.log")
            jobs = max(1, len(os.sched_getaffinity(0)))
            run_in_tree(
                tree,
                build_script(release, version, jobs),
                log,
                label=f"snapd build ({release})",
                overlay_upper=work / "overlay",
                timeout=BUILD_TIMEOUT,
                since=started,
            )
            seconds = time.monotonic() - started
            result = work / "result"
            _assemble(work / "overlay/upper", release, version, result, seconds)
            shutil.copyfile(log, result / "build.log")
            cache.put_in_place(result, entry)
            progress(f"snapd {version} ({release}, test keys) built in {format_elapsed(seconds)}")
            for action in prune_builds(release, version, cache_dir, SUPERSEDED_KEEP_SECONDS):
                progress(action)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    build = load_build(entry)
    if build is None:
        raise HostError(f"snapd build {entry} was made but cannot be read back")
    return build


def logs_dir(builds: Path, release: str) -> Path:
    """Where the last attempt's logs stay (a failed build's work dir is removed)."""
    return builds / f"logs-{release}"


def _fresh_log(builds: Path, release: str, name: str) -> Path:
    log = logs_dir(builds, release) / name
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    return log


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
