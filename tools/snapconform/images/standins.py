"""The offline stand-ins for the `core` and `snapd` snaps, built from a release's own tree.

Offline, snapd cannot fetch `core` (the base of every app without `base:`) nor, from 2.66 on,
the `snapd` snap it wants before any app install. Two tiny unsigned snaps, installed once with
`snap install --dangerous` into the golden tree, satisfy it without touching snapd itself:

- `core` (type os): a static busybox with its applet links (hooks and apps run `/bin/sh` from the
  base), the release's own static `snap-exec` and `snapctl` (snap-confine looks for snap-exec
  inside a base named core), and the directories snap-confine mounts onto.
- `snapd` (type snapd): only `usr/lib/snapd/info` and, when the release ships one, its
  snap-confine AppArmor profile (for hosts with AppArmor; harmless elsewhere).

Neither carries snapd binaries, and both claim STANDIN_SNAPD_VERSION, the oldest snapd we drive
(bookworm's upstream 2.57.6, which sorts below every Debian revision of it such as
2.57.6-1+deb12u1+b2). snapd re-executes into a core/snapd snap whose info VERSION is equal to or
newer than its own, so a low version plus no binaries means the distro's snapd always runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from snapconform.images.snappack import pack_snap

STANDIN_SNAPD_VERSION = "2.57.6"

# Where snap-confine bind-mounts host directories inside a `core` base (must exist in the base).
CORE_MOUNT_POINTS = (
    "dev",
    "etc",
    "home",
    "root",
    "proc",
    "sys",
    "tmp",
    "var/snap",
    "var/lib/snapd",
    "var/tmp",
    "var/log",
    "run",
    "usr/src",
    "media",
    "mnt",
    "snap",
    "lib/modules",
    "lib/firmware",
    "usr/bin",
    "usr/sbin",
    "bin",
    "sbin",
    "var/lib/extrausers",
)

BUSYBOX_IN_TREE = ("usr/bin/busybox", "bin/busybox")
SNAP_CONFINE_PROFILE = "etc/apparmor.d/usr.lib.snapd.snap-confine.real"

# Bump when the layout below changes: it is part of the golden image's cache key.
STANDINS_RECIPE = "standins-v1"

CORE_YAML = """\
name: core
version: standin
summary: offline stand-in for the core base (busybox, snap-exec, snapctl)
description: Built by snapconform from the release's own files; carries no snapd.
type: os
"""

SNAPD_YAML = """\
name: snapd
version: standin
summary: offline stand-in for the snapd snap
description: Built by snapconform; carries no snapd binaries, so snapd never re-executes into it.
type: snapd
"""

INFO_TEXT = f"VERSION={STANDIN_SNAPD_VERSION}\n"


@dataclass(frozen=True)
class StandinSnaps:
    core: Path
    snapd: Path


def recipe_fields() -> dict[str, str]:
    """What of the stand-ins an image's cache key depends on (every image recipe holds them)."""
    return {
        "standins": STANDINS_RECIPE,
        "standin_version": STANDIN_SNAPD_VERSION,
        "core_yaml": CORE_YAML,
        "snapd_yaml": SNAPD_YAML,
    }


def _busybox(tree: Path) -> Path:
    for relative in BUSYBOX_IN_TREE:
        candidate = tree / relative
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    raise FileNotFoundError(
        f"no static busybox in {tree} (looked for {', '.join(BUSYBOX_IN_TREE)}); "
        "the golden tree must include busybox-static"
    )


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _copy_executable(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(0o755)


def busybox_applets(busybox_names: str) -> list[str]:
    """Applet paths (relative, e.g. ``bin/sh``) from the output of ``busybox --list-full``."""
    return [line.strip().lstrip("/") for line in busybox_names.splitlines() if line.strip()]


def populate_core(tree: Path, root: Path, applets: list[str]) -> None:
    """Lay out the core stand-in under ``root`` from the release tree ``tree``."""
    for mount_point in CORE_MOUNT_POINTS:
        (root / mount_point).mkdir(parents=True, exist_ok=True)
    _write(root / "meta/snap.yaml", CORE_YAML)
    _write(root / "usr/lib/snapd/info", INFO_TEXT)
    _copy_executable(_busybox(tree), root / "bin/busybox")
    for applet in applets:
        link = root / applet
        if applet == "bin/busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(root / "bin/busybox", link.parent))
    for tool in ("snap-exec", "snapctl"):
        _copy_executable(tree / "usr/lib/snapd" / tool, root / "usr/lib/snapd" / tool)
    snapctl_link = root / "usr/bin/snapctl"
    if snapctl_link.is_symlink() or snapctl_link.exists():
        snapctl_link.unlink()
    snapctl_link.symlink_to("../lib/snapd/snapctl")


def populate_snapd(tree: Path, root: Path) -> None:
    """Lay out the snapd stand-in under ``root``."""
    _write(root / "meta/snap.yaml", SNAPD_YAML)
    _write(root / "usr/lib/snapd/info", INFO_TEXT)
    profile = tree / SNAP_CONFINE_PROFILE
    if profile.is_file():
        target = root / "etc/apparmor.d/usr.lib.snapd.snap-confine"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(profile, target)


def build_standins(tree: Path, out_dir: Path) -> StandinSnaps:
    """Build core.snap and snapd.snap into ``out_dir`` from the release tree ``tree``."""
    # The busybox is static, so the controller can ask it for its applets directly.
    listing = subprocess.run(
        [str(_busybox(tree)), "--list-full"], capture_output=True, text=True, check=True
    )
    applets = busybox_applets(listing.stdout)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="standins-", dir=out_dir) as scratch:
        core_root = Path(scratch) / "core"
        snapd_root = Path(scratch) / "snapd"
        populate_core(tree, core_root, applets)
        populate_snapd(tree, snapd_root)
        return StandinSnaps(
            core=pack_snap(core_root, out_dir / "core_standin.snap"),
            snapd=pack_snap(snapd_root, out_dir / "snapd_standin.snap"),
        )
