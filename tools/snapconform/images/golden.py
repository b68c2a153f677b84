"""The golden tree: a Debian release with its snapd, seeded once, that every boot overlays.

Built once per machine and cached under ``$XDG_CACHE_HOME/snapconform/images/`` (default
``~/.cache``), keyed by release, mode and a hash of this recipe (packages, tweaks, stand-ins,
and for the store tier the test-keys build). Steps: mmdebstrap a minbase tree; write the
config-only tweaks; for the store tier, install the test-keys snapd over the archive's and
hold it; build the offline stand-ins from the tree; boot the tree once, writable, install the
stand-ins and hold refreshes; record `snap version`; stop; rename the finished entry into place.
A half-built entry is never used (it lives under a ``.build-*`` name until the final rename),
and a lock file keeps two builders from racing.

How the tree is booted is the host backend's business: it hands ``ensure_image`` a
``FirstBoot`` callback, so this room never imports a backend.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from snapconform.hosts.base import HostError, HostUnavailable
from snapconform.images import cache, mirror, standins
from snapconform.images.chroot import run_in_tree
from snapconform.images.debs import dpkg_refusal
from snapconform.images.releases import DEFAULT_MODES, MODES, RELEASES, aptopts, check_release

__all__ = ["DEFAULT_MODES", "MODES", "RELEASES", "FirstBoot", "GoldenImage", "ImageRecipe"]

# Bump when anything below changes in a way the hashed texts do not show.
IMAGE_RECIPE = "golden-v1"

BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "udev",
    "snapd",
    "squashfs-tools",
    "curl",
    "python3",
    "busybox-static",  # the core stand-in's /bin/sh and applets
    # For the tests that drive this snapd as a borrowed host: ssh:// (an sshd on the
    # container's loopback, started only by those tests) and local:// (snapconform itself run
    # inside, with the dependencies a `pip install` would bring: its replays and reproducers
    # sign store assertions).
    "openssh-server",
    "python3-pexpect",
    "python3-yaml",
    "python3-cryptography",
)
USERNS_PACKAGES = ("squashfuse", "fuse3")  # snapd mounts snaps with squashfuse by itself

# A refresh hold on 2.57 is a time; snapd caps it at 90 days. A cached image whose hold ends
# within this margin is rebuilt rather than let snapd try to auto-refresh mid-run.
HOLD_DAYS = 89
HOLD_MARGIN = datetime.timedelta(days=7)

SUPERSEDED_KEEP_SECONDS = 24 * 3600
BUILD_BOOT_TIMEOUT = 300.0
POWEROFF_TIMEOUT = 30.0

_UNIT_FREEZER_RW = """\
[Unit]
Description=snapconform: make the cgroup v1 freezer writable for snap-confine
# systemd-nspawn mounts cgroup v1 controllers read-only; snap-confine creates
# /sys/fs/cgroup/freezer/snap.NAME and fails with "Read-only file system" otherwise.
DefaultDependencies=no
ConditionPathIsMountPoint=/sys/fs/cgroup/freezer
Before=sysinit.target snapd.socket snapd.service

[Service]
Type=oneshot
RemainAfterExit=yes
# Only this mount's flag: a remount of the hierarchy itself is refused ("mount point is busy")
# as soon as it has child groups.
ExecStart=/bin/mount -o remount,bind,rw /sys/fs/cgroup/freezer

[Install]
WantedBy=sysinit.target
"""

_UDEV_DROPIN = """\
[Unit]
# /sys is read-only in the container; udevd must run anyway or snapd's
# `udevadm control --reload-rules` fails ("cannot reload udev rules").
ConditionPathIsReadWrite=
"""

_UNIT_REBIND = """\
[Unit]
Description=snapconform: re-bind /sys, /proc and /dev onto themselves (user namespace)
# In a user namespace the kernel file systems nspawn mounted are locked together;
# snap-confine's `umount --lazy /var/lib/snapd/hostfs/sys` then fails with EINVAL.
DefaultDependencies=no
Before=sysinit.target snapd.socket snapd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --rbind /sys /sys
ExecStart=/bin/mount --rbind /proc /proc
ExecStart=/bin/mount --rbind /dev /dev

[Install]
WantedBy=sysinit.target
"""

MASKED_TIMERS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
)
MASKED_SSH_UNITS = ("ssh.service", "ssh.socket")

_HOSTS = """\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
127.0.1.1\tsnapconform
"""


def tweak_files(mode: str) -> dict[str, str]:
    """Config files written into the tree (relative path -> text). snapd itself is untouched."""
    files = {
        # Store calls fail at once ("no such host") instead of ~34 s of retries.
        "etc/resolv.conf": "",
        "etc/hostname": "snapconform\n",
        "etc/hosts": _HOSTS,
        "etc/systemd/system/snapconform-freezer-rw.service": _UNIT_FREEZER_RW,
    }
    for unit in (
        "systemd-udevd.service",
        "systemd-udevd-control.socket",
        "systemd-udevd-kernel.socket",
    ):
        files[f"etc/systemd/system/{unit}.d/snapconform.conf"] = _UDEV_DROPIN
    if mode == "userns":
        files["etc/systemd/system/snapconform-rebind.service"] = _UNIT_REBIND
    return files


def tweak_links(mode: str) -> dict[str, str]:
    """Symlinks written into the tree (relative path -> target): enabled and masked units."""
    links = {
        "etc/systemd/system/sysinit.target.wants/snapconform-freezer-rw.service": (
            "/etc/systemd/system/snapconform-freezer-rw.service"
        ),
    }
    # Maintenance jobs that would only fail offline or add CPU noise mid-run.
    for timer in MASKED_TIMERS:
        links[f"etc/systemd/system/{timer}"] = "/dev/null"
    # No sshd at boot: a test that needs one starts it on loopback with its own key.
    for unit in MASKED_SSH_UNITS:
        links[f"etc/systemd/system/{unit}"] = "/dev/null"
    if mode == "userns":
        links["etc/systemd/system/sysinit.target.wants/snapconform-rebind.service"] = (
            "/etc/systemd/system/snapconform-rebind.service"
        )
        links["etc/systemd/system/sys-kernel-debug.mount"] = "/dev/null"
        links["etc/systemd/system/sys-kernel-tracing.mount"] = "/dev/null"
    return links


def nsswitch_hosts_files_only(text: str) -> str:
    """nsswitch.conf with name resolution from /etc/hosts only (no DNS, no waiting)."""
    lines = [
        "hosts:          files" if line.startswith("hosts:") else line for line in text.splitlines()
    ]
    if not any(line.startswith("hosts:") for line in lines):
        lines.append("hosts:          files")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SnapdOverride:
    """Locally built snapd packages installed over the archive's (``dpkg -i``, then held), and
    the config files that go with them (relative path, text)."""

    flavour: str  # names the image family, e.g. "testkeys"
    label: str  # which snapd this is, for reports: "testkeys 2.57.6-1+deb12u1"
    debs: tuple[Path, ...]
    deb_sha256: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]*", self.flavour):
            raise ValueError(f"bad snapd flavour {self.flavour!r}")
        if len(self.debs) != len(self.deb_sha256) or not self.debs:
            raise ValueError("a snapd override needs one sha256 per .deb, and at least one .deb")


@dataclass(frozen=True)
class ImageRecipe:
    release: str
    mode: str
    snapd: SnapdOverride | None = field(default=None)

    def __post_init__(self) -> None:
        check_release(self.release)
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {', '.join(MODES)}")

    @property
    def packages(self) -> tuple[str, ...]:
        extra = USERNS_PACKAGES if self.mode == "userns" else ()
        return BASE_PACKAGES + extra

    @property
    def aptopts(self) -> tuple[str, ...]:
        return aptopts(self.release)

    @property
    def snapd_build(self) -> str:
        """Which snapd the image runs: "archive" (Debian's binary) or the override's label."""
        return self.snapd.label if self.snapd is not None else "archive"

    @property
    def family(self) -> str:
        """Entries of one family replace each other (release, mode and snapd flavour)."""
        base = f"{self.release}-{self.mode}"
        return f"{base}-{self.snapd.flavour}" if self.snapd is not None else base

    @property
    def key(self) -> str:
        recipe = {
            "recipe": IMAGE_RECIPE,
            **standins.recipe_fields(),
            "release": self.release,
            "mode": self.mode,
            "packages": self.packages,
            "aptopts": self.aptopts,
            "files": tweak_files(self.mode),
            "nsswitch": nsswitch_hosts_files_only("hosts: files dns"),
            "links": tweak_links(self.mode),
        }
        if self.snapd is not None:  # archive keys stay as they were before overrides existed
            recipe["snapd"] = {
                "label": self.snapd.label,
                "debs": [path.name for path in self.snapd.debs],
                "sha256": list(self.snapd.deb_sha256),
                "files": dict(self.snapd.files),
            }
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        return f"{self.family}-{digest[:12]}"


@dataclass(frozen=True)
class GoldenImage:
    entry: Path
    recipe: ImageRecipe
    snapd_version: str
    snap_version_text: str
    hold_until: str | None
    build_seconds: float

    @property
    def rootfs(self) -> Path:
        return self.entry / "rootfs"

    @property
    def snapd_build(self) -> str:
        return self.recipe.snapd_build


class FirstBoot(Protocol):
    """How a host backend boots a tree once to seed it (given to ``ensure_image``)."""

    def __call__(self, rootfs: Path, mode: str, scripts: Sequence[str]) -> list[str]:
        """Boot ``rootfs`` writable (no overlay) until snapd has seeded, run each bash script
        in order, shut down cleanly; return each script's output. A script that exits non-zero
        raises HostError carrying its output."""
        ...


def images_root(cache_dir: Path | None = None) -> Path:
    return cache.cache_root(cache_dir) / "images"


def snapd_version_of(tree: Path) -> str:
    info = (tree / "usr/lib/snapd/info").read_text()
    match = re.search(r"^VERSION=(\S+)$", info, re.MULTILINE)
    if not match:
        raise HostError(f"{tree}/usr/lib/snapd/info has no VERSION line")
    return match.group(1)


def snapd_at_least(version: str, major: int, minor: int) -> bool:
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        return False
    return (int(match.group(1)), int(match.group(2))) >= (major, minor)


def _load(entry: Path, recipe: ImageRecipe) -> GoldenImage | None:
    """The finished entry, or None when it is missing, unreadable or its hold runs out soon."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        snap_version_text = (entry / "snap-version.txt").read_text()
    except (OSError, ValueError):
        return None
    if not (entry / "rootfs/usr/lib/snapd/info").is_file():
        return None
    hold_until = meta.get("hold_until")
    if hold_until:
        ends = datetime.datetime.fromisoformat(hold_until.replace("Z", "+00:00"))
        if ends - datetime.datetime.now(datetime.UTC) < HOLD_MARGIN:
            return None
    return GoldenImage(
        entry=entry,
        recipe=recipe,
        snapd_version=meta["snapd_version"],
        snap_version_text=snap_version_text,
        hold_until=hold_until,
        build_seconds=float(meta.get("build_seconds", 0.0)),
    )


def ensure_image(
    recipe: ImageRecipe, cache_dir: Path | None = None, *, first_boot: FirstBoot
) -> GoldenImage:
    """The cached golden image for ``recipe``, built first (booted once with ``first_boot``)
    when there is none."""
    return cache.ensure_entry(
        images_root(cache_dir),
        recipe.key,
        lambda entry: _load(entry, recipe),
        lambda build_dir: _build(recipe, build_dir, first_boot),
        what="golden image",
        # A process still on an older recipe keeps its entry for a day.
        after_build=lambda: prune_images(cache_dir, SUPERSEDED_KEEP_SECONDS, only=recipe),
    )


def _family_of(entry_name: str) -> str:
    return entry_name.rsplit("-", 1)[0]  # the key is FAMILY-DIGEST


def prune_images(
    cache_dir: Path | None = None, min_age: float = 0.0, only: ImageRecipe | None = None
) -> list[str]:
    """Remove image entries that a newer one of their family superseded (at least ``min_age``
    seconds old) and that no running container uses; with ``only``, just that recipe's family
    (its own key is current). Without it the current archive keys are the recipes' own, and in
    other families (the store tier's) the newest entry is current. Returns what it did."""
    images = images_root(cache_dir)
    if not images.is_dir():
        return []
    entries = [p for p in sorted(images.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if only is not None:
        entries = [p for p in entries if _family_of(p.name) == only.family]
        current = {only.key}
    else:
        current = {ImageRecipe(r, m).key for r in RELEASES for m in MODES}
        archive_families = {_family_of(key) for key in current}
        newest: dict[str, tuple[float, str]] = {}
        for path in entries:
            family = _family_of(path.name)
            if family in archive_families:
                continue
            mtime = _mtime(path / "meta.json")
            if family not in newest or mtime > newest[family][0]:
                newest[family] = (mtime, path.name)
        current |= {name for _mtime, name in newest.values()}
    in_use = set()
    with contextlib.suppress(OSError):
        for record in Path("/run/snapconform").glob("*/tree"):
            in_use.add(record.read_text().strip())
    actions = []
    for old in entries:
        if old.name in current or str(old / "rootfs") in in_use:
            continue
        if time.time() - _mtime(old / "meta.json", default=time.time() - min_age) < min_age:
            continue
        cache.remove_tree(old)
        cache.lock_path(images, old.name).unlink(missing_ok=True)
        actions.append(f"removed superseded image {old.name}")
    return actions


def _mtime(path: Path, default: float = 0.0) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return default


def mmdebstrap_tree(
    release: str,
    packages: tuple[str, ...],
    aptopts: tuple[str, ...],
    rootfs: Path,
    log: Path,
    step: str,
) -> None:
    """A minbase tree of `release` with `packages`, from this machine's Debian mirror (shared
    by every image recipe); `step` prefixes the progress line (e.g. "[1/4]")."""
    archive = mirror.debian_mirror()
    cache.progress(f"{step} mmdebstrap {release} from {archive}")
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(packages),
        *(f"--aptopt={opt}" for opt in aptopts),
        release,
        str(rootfs),
        archive,
    ]
    with open(log, "w") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise HostError(f"mmdebstrap {release} failed (exit {result.returncode}):\n{tail}")


def install_snapd_override(rootfs: Path, override: SnapdOverride, log: Path) -> None:
    """Install the override's .debs over the tree's snapd (dpkg -i, held) and write its files."""
    staging = rootfs / "root/snapconform-debs"
    staging.mkdir(parents=True, exist_ok=True)
    names = []
    for deb in override.debs:
        shutil.copyfile(deb, staging / deb.name)
        names.append(f"/root/snapconform-debs/{deb.name}")
    packages = [deb.name.split("_", 1)[0] for deb in override.debs]
    script = "\n".join(
        [
            # The same version as the archive's without its binNMU suffix: a downgrade.
            shlex.join(["dpkg", "-i", *names]),
            shlex.join(["apt-mark", "hold", *packages]),
            "rm -rf /root/snapconform-debs",
        ]
    )
    try:
        run_in_tree(rootfs, script, log, label=f"installing {override.label}", timeout=600)
    except HostError:
        # A build this release cannot take (its dependencies) cannot be made here: one line.
        refusal = dpkg_refusal(log.read_text(errors="replace")) if log.is_file() else None
        if refusal is None:
            raise
        raise HostUnavailable(f"snapd {override.label} cannot be installed: {refusal}") from None
    for relative, text in override.files:
        path = rootfs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _build(recipe: ImageRecipe, build_dir: Path, first_boot: FirstBoot) -> None:
    started = time.monotonic()
    build_dir.mkdir(parents=True)
    rootfs = build_dir / "rootfs"
    cache.progress(
        f"building the {recipe.release} golden image ({recipe.snapd_build} snapd) in {build_dir}"
        " (first time: ~1-2 min)"
    )
    mmdebstrap_tree(
        recipe.release,
        recipe.packages,
        recipe.aptopts,
        rootfs,
        build_dir / "mmdebstrap.log",
        "[1/4]",
    )

    cache.progress("[2/4] writing config tweaks and building the core/snapd stand-ins")
    apply_tweaks(rootfs, recipe.mode)
    if recipe.snapd is not None:
        cache.progress(f"[2/4] installing snapd {recipe.snapd.label} over the archive's")
        install_snapd_override(rootfs, recipe.snapd, build_dir / "override.log")
    snaps = standins.build_standins(rootfs, build_dir / "standins")
    staging = rootfs / "root/standins"
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(snaps.snapd, staging / "snapd.snap")
    shutil.copyfile(snaps.core, staging / "core.snap")

    snapd_version = snapd_version_of(rootfs)
    hold_until = None
    if snapd_at_least(snapd_version, 2, 58):
        hold = "snap refresh --hold"
    else:  # 2.57 has no --hold and refuses refresh.hold=forever
        ends = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=HOLD_DAYS)
        hold_until = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
        hold = f"snap set system refresh.hold={shlex.quote(hold_until)}"

    cache.progress(f"[3/4] first boot (snapd {snapd_version}): seeding, installing stand-ins")
    prepare = "\n".join(
        [
            "set -e",
            "snap install --dangerous /root/standins/snapd.snap",
            "snap install --dangerous /root/standins/core.snap",
            hold,
            "rm -rf /root/standins",
        ]
    )
    _prepared, version = first_boot(rootfs, recipe.mode, [prepare, "snap version"])
    cache.progress("[4/4] first boot done; storing the image")

    (build_dir / "snap-version.txt").write_text(version)
    meta = {
        "key": recipe.key,
        "family": recipe.family,
        "release": recipe.release,
        "mode": recipe.mode,
        "packages": list(recipe.packages),
        "snapd_version": snapd_version,
        "snapd_build": recipe.snapd_build,
        "hold_until": hold_until,
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (build_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    cache.progress(f"golden image {recipe.key} ready in {meta['build_seconds']} s")


def apply_tweaks(rootfs: Path, mode: str) -> None:
    """Write the config-only tweaks of the recipe into ``rootfs``."""
    write_tree_config(rootfs, tweak_files(mode), tweak_links(mode))


def write_tree_config(rootfs: Path, files: dict[str, str], links: dict[str, str]) -> None:
    """Name resolution from /etc/hosts only, then `files` (path -> text) and `links` (path ->
    target) written into ``rootfs``, replacing what is there (shared by every image recipe)."""
    nsswitch = rootfs / "etc/nsswitch.conf"
    nsswitch.write_text(nsswitch_hosts_files_only(nsswitch.read_text()))
    for relative, text in files.items():
        path = rootfs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
    for relative, target in links.items():
        path = rootfs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
