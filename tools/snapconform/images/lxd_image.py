"""The LXD image: the golden recipe's Debian tree, packed as an LXD split image, built offline.

The same tree as the nspawn hosts (mmdebstrap of BASE_PACKAGES, the nsswitch/resolv.conf
tweak, masked timers and sshd, the offline stand-ins), plus ``squashfuse`` and ``fuse3``: in
an LXD container snapd mounts snaps with squashfuse by itself. None of nspawn's cgroup, udev or
re-bind units go in: an unprivileged LXD container needs none of them. The stand-ins are
staged in ``/root/standins``; they are installed, and refreshes held, in the launched instance
(``seed_script``), since an image is a tree, not a booted system.

Packed as an LXD split image: ``metadata.tar.gz`` (metadata.yaml with architecture,
creation_date and properties) and ``rootfs.tar.gz`` (the tree, --numeric-owner), imported with
``lxc image import META ROOTFS --alias KEY``. Cached under ``CACHE/lxd-images/KEY`` (KEY names
the release and a hash of this recipe), built under a ``.build-*`` name and renamed into place.

A recipe may carry a ``golden.SnapdOverride`` (the store tier's test-keys build and its
SNAPPY_FORCE_API_URL drop-in): its .debs go over the archive's snapd in the tree, held, exactly
as in the golden recipe, and the image's family (``RELEASE-FLAVOUR``) keeps its cache entries
apart from the plain one's.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import platform
import shlex
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from snapconform.hosts.base import HostError
from snapconform.images import cache, golden, standins, store_tier
from snapconform.images.releases import aptopts, check_release
from snapconform.images.snappack import require_tools

# Bump when anything below changes in a way the hashed texts do not show.
LXD_IMAGE_RECIPE = "lxd-image-v1"
PACKAGES = golden.BASE_PACKAGES + golden.USERNS_PACKAGES
# The golden recipe's files and links an LXD container takes (not its nspawn units).
TWEAK_FILES = ("etc/resolv.conf", "etc/hostname", "etc/hosts")
STANDINS_DIR = "/root/standins"
# File capabilities are kept (sid's snap-confine has them instead of the setuid bit).
TAR_OPTIONS = ("--numeric-owner", "--xattrs", "--xattrs-include=security.capability")
BUILD_TOOLS = {"mmdebstrap": "mmdebstrap", "mksquashfs": "squashfs-tools", "tar": "tar"}
ALIAS_PREFIX = "snapconform-"

# LXD's architecture names for what platform.machine() says.
ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def tweak_files() -> dict[str, str]:
    """Files written into the tree (relative path -> text): the golden recipe's, LXD's subset."""
    golden_files = golden.tweak_files("privileged")
    return {path: golden_files[path] for path in TWEAK_FILES}


def tweak_links() -> dict[str, str]:
    """Symlinks written into the tree: the golden recipe's masked timers and sshd units."""
    masked = (*golden.MASKED_TIMERS, *golden.MASKED_SSH_UNITS)
    return {f"etc/systemd/system/{unit}": "/dev/null" for unit in masked}


@dataclass(frozen=True)
class LxdImageRecipe:
    release: str
    snapd: golden.SnapdOverride | None = None

    def __post_init__(self) -> None:
        check_release(self.release)

    @property
    def family(self) -> str:
        """Entries of one family replace each other: the release, and the snapd flavour."""
        return self.release if self.snapd is None else f"{self.release}-{self.snapd.flavour}"

    @property
    def snapd_build(self) -> str:
        """Which snapd the image runs: "archive" or the override's label."""
        return self.snapd.label if self.snapd is not None else "archive"

    @property
    def packages(self) -> tuple[str, ...]:
        return PACKAGES

    @property
    def aptopts(self) -> tuple[str, ...]:
        return aptopts(self.release)

    @property
    def key(self) -> str:
        """The cache entry's name and the image's LXD alias: snapconform-RELEASE-DIGEST."""
        recipe = {
            "recipe": LXD_IMAGE_RECIPE,
            "golden": golden.IMAGE_RECIPE,
            **standins.recipe_fields(),
            "release": self.release,
            "packages": self.packages,
            "aptopts": self.aptopts,
            "files": tweak_files(),
            "nsswitch": golden.nsswitch_hosts_files_only("hosts: files dns"),
            "links": tweak_links(),
            "architecture": lxd_architecture(),
            "tar": TAR_OPTIONS,
        }
        if self.snapd is not None:  # the plain image's key stays what it was before overrides
            recipe["snapd"] = {
                "label": self.snapd.label,
                "debs": [path.name for path in self.snapd.debs],
                "sha256": list(self.snapd.deb_sha256),
                "files": dict(self.snapd.files),
            }
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        return f"{ALIAS_PREFIX}{self.family}-{digest[:12]}"


@dataclass(frozen=True)
class LxdImage:
    entry: Path
    recipe: LxdImageRecipe
    snapd_version: str
    build_seconds: float

    @property
    def alias(self) -> str:
        return self.recipe.key

    @property
    def metadata(self) -> Path:
        return self.entry / "metadata.tar.gz"

    @property
    def rootfs(self) -> Path:
        return self.entry / "rootfs.tar.gz"


def lxd_architecture(machine: str | None = None) -> str:
    found = machine or platform.machine()
    try:
        return ARCHITECTURES[found]
    except KeyError:
        raise HostError(f"no LXD architecture name known for this machine ({found})") from None


def metadata_yaml(recipe: LxdImageRecipe, snapd_version: str, created: int) -> str:
    """LXD's metadata.yaml for the image (no templates: the tree is used as it is)."""
    snapd = snapd_version if recipe.snapd is None else recipe.snapd.label
    description = f"snapconform {recipe.release} (snapd {snapd}, offline stand-ins)"
    properties = {
        "description": description,
        "os": "debian",
        "release": recipe.release,
        "snapconform.key": recipe.key,
    }
    lines = [
        f"architecture: {json.dumps(lxd_architecture())}",
        f"creation_date: {int(created)}",
        "properties:",
        *(f"  {key}: {json.dumps(value)}" for key, value in properties.items()),
    ]
    return "\n".join(lines) + "\n"


def hold_command(snapd_version: str, now: datetime.datetime | None = None) -> str:
    """The command that holds refreshes, as the golden recipe does: `snap refresh --hold` from
    2.58, else refresh.hold at an RFC3339 time HOLD_DAYS ahead (2.57 refuses "forever")."""
    if golden.snapd_at_least(snapd_version, 2, 58):
        return "snap refresh --hold"
    moment = now or datetime.datetime.now(datetime.UTC)
    ends = moment + datetime.timedelta(days=golden.HOLD_DAYS)
    return "snap set system refresh.hold=" + shlex.quote(ends.strftime("%Y-%m-%dT%H:%M:%SZ"))


def seed_script(snapd_version: str, now: datetime.datetime | None = None) -> str:
    """What a launched instance runs once (snapd seeded): install the stand-ins, hold refreshes."""
    return "\n".join(
        [
            "set -e",
            "snap wait system seed.loaded",
            f"snap install --dangerous {STANDINS_DIR}/snapd.snap",
            f"snap install --dangerous {STANDINS_DIR}/core.snap",
            hold_command(snapd_version, now),
            f"rm -rf {STANDINS_DIR}",
        ]
    )


def images_root(cache_dir: Path | None = None) -> Path:
    return cache.cache_root(cache_dir) / "lxd-images"


def _load(entry: Path, recipe: LxdImageRecipe) -> LxdImage | None:
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    image = LxdImage(entry, recipe, meta["snapd_version"], float(meta.get("build_seconds", 0)))
    if not (image.metadata.is_file() and image.rootfs.is_file()):
        return None
    return image


def ensure_image(recipe: LxdImageRecipe, cache_dir: Path | None = None) -> LxdImage:
    """The cached image files for ``recipe``, built first when there are none."""

    def build(build_dir: Path) -> None:
        require_tools(BUILD_TOOLS)
        _build(recipe, build_dir)

    return cache.ensure_entry(
        images_root(cache_dir),
        recipe.key,
        lambda entry: _load(entry, recipe),
        build,
        what="LXD image",
        after_build=lambda: prune_superseded(recipe, cache_dir),
    )


def prune_superseded(recipe: LxdImageRecipe, cache_dir: Path | None = None) -> list[str]:
    """Remove the cached entries of the recipe's family made by other recipes (nothing reads
    them once imported: LXD keeps its own copy); other families (the store tier's) stay."""
    root = images_root(cache_dir)
    actions = []
    for old in sorted(root.glob(f"{ALIAS_PREFIX}{recipe.family}-*")):
        if old.is_dir() and old.name != recipe.key and family_of(old.name) == recipe.family:
            cache.remove_tree(old)
            cache.lock_path(root, old.name).unlink(missing_ok=True)
            actions.append(f"removed superseded LXD image {old.name}")
    return actions


def family_of(key: str) -> str | None:
    """The family in an image key (``snapconform-FAMILY-DIGEST``), or None for another name."""
    if not key.startswith(ALIAS_PREFIX):
        return None
    family, _, digest = key.removeprefix(ALIAS_PREFIX).rpartition("-")
    return family if family and len(digest) == 12 else None


def apply_tweaks(rootfs: Path) -> None:
    golden.write_tree_config(rootfs, tweak_files(), tweak_links())


def pack_rootfs(rootfs: Path, out: Path) -> None:
    """The tree as LXD's rootfs tarball: its top is the tree's /, owners by number."""
    partial = out.with_name(f".{out.name}.partial")
    argv = ["tar", *TAR_OPTIONS, "-C", str(rootfs), "-czf", str(partial), "."]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise HostError(f"packing {rootfs} failed: {(result.stderr or '').strip()[-300:]}")
    partial.replace(out)


def pack_metadata(text: str, directory: Path) -> Path:
    """``directory``/metadata.tar.gz holding ``text`` as metadata.yaml (root-owned, 0644)."""
    out = directory / "metadata.tar.gz"
    partial = directory / ".metadata.tar.gz.partial"
    data = text.encode()
    member = tarfile.TarInfo("metadata.yaml")
    member.size, member.mode, member.mtime = len(data), 0o644, int(time.time())
    with tarfile.open(partial, "w:gz") as archive:
        archive.addfile(member, io.BytesIO(data))
    partial.replace(out)
    return out


def _build(recipe: LxdImageRecipe, build_dir: Path) -> None:
    started = time.monotonic()
    build_dir.mkdir(parents=True)
    rootfs = build_dir / "rootfs"
    cache.progress(
        f"building the {recipe.release} LXD image ({recipe.snapd_build} snapd) in {build_dir}"
        " (~1 min)"
    )
    golden.mmdebstrap_tree(
        recipe.release,
        recipe.packages,
        recipe.aptopts,
        rootfs,
        build_dir / "mmdebstrap.log",
        "[1/3]",
    )
    cache.progress("[2/3] writing config tweaks and building the core/snapd stand-ins")
    apply_tweaks(rootfs)
    if recipe.snapd is not None:
        cache.progress(f"[2/3] installing snapd {recipe.snapd.label} over the archive's")
        golden.install_snapd_override(rootfs, recipe.snapd, build_dir / "override.log")
        if recipe.snapd.flavour == store_tier.FLAVOUR and not store_tier.trusts_test_root(rootfs):
            raise HostError(f"{recipe.snapd.label}: the snapd installed lacks the test keys")
    snaps = standins.build_standins(rootfs, build_dir / "standins")
    staging = rootfs / STANDINS_DIR.lstrip("/")
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(snaps.snapd, staging / "snapd.snap")
    shutil.copyfile(snaps.core, staging / "core.snap")
    snapd_version = golden.snapd_version_of(rootfs)
    cache.progress("[3/3] packing metadata.yaml and the rootfs tarball")
    pack_metadata(metadata_yaml(recipe, snapd_version, int(time.time())), build_dir)
    pack_rootfs(rootfs, build_dir / "rootfs.tar.gz")
    cache.remove_tree(rootfs)
    shutil.rmtree(build_dir / "standins", ignore_errors=True)
    meta = {
        "key": recipe.key,
        "release": recipe.release,
        "packages": list(recipe.packages),
        "snapd_version": snapd_version,
        "snapd_build": recipe.snapd_build,
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (build_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    cache.progress(f"LXD image {recipe.key} ready in {meta['build_seconds']} s")
