"""The golden tree: a Debian release with stock snapd, seeded once, that every boot overlays.

Built once per machine and cached under ``$XDG_CACHE_HOME/snapconform/images/`` (default
``~/.cache``), keyed by release, mode and a hash of this recipe (packages, tweaks, stand-ins).
Steps: mmdebstrap a minbase tree; write the config-only tweaks (snapd stays stock); build the
offline stand-ins from the tree; boot the tree once, writable, install the stand-ins and hold
refreshes; record `snap version`; stop; rename the finished entry into place. A half-built
entry is never used (it lives under a ``.build-*`` name until the final rename), and a lock file
keeps two builders from racing.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from snapconform import paths
from snapconform.hosts import standins
from snapconform.hosts.base import HostError

RELEASES = ("bookworm", "trixie", "sid")
MODES = ("privileged", "userns")
DEFAULT_MODES = {"bookworm": "privileged", "trixie": "privileged", "sid": "userns"}
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "SNAPCONFORM_DEBIAN_MIRROR"

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
    # inside, which needs these two besides the standard library).
    "openssh-server",
    "python3-pexpect",
    "python3-yaml",
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
class ImageRecipe:
    release: str
    mode: str

    def __post_init__(self) -> None:
        if self.release not in RELEASES:
            raise ValueError(f"unknown release {self.release!r}; known: {', '.join(RELEASES)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {', '.join(MODES)}")

    @property
    def packages(self) -> tuple[str, ...]:
        extra = USERNS_PACKAGES if self.mode == "userns" else ()
        return BASE_PACKAGES + extra

    @property
    def aptopts(self) -> tuple[str, ...]:
        # Testing and unstable Release files may look expired against this machine's clock.
        if self.release == "bookworm":
            return ()
        return ('Acquire::Check-Valid-Until "false"',)

    @property
    def key(self) -> str:
        recipe = {
            "recipe": IMAGE_RECIPE,
            "standins": standins.STANDINS_RECIPE,
            "standin_version": standins.STANDIN_SNAPD_VERSION,
            "core_yaml": standins.CORE_YAML,
            "snapd_yaml": standins.SNAPD_YAML,
            "release": self.release,
            "mode": self.mode,
            "packages": self.packages,
            "aptopts": self.aptopts,
            "files": tweak_files(self.mode),
            "nsswitch": nsswitch_hosts_files_only("hosts: files dns"),
            "links": tweak_links(self.mode),
        }
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        return f"{self.release}-{self.mode}-{digest[:12]}"


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


def cache_root(cache_dir: Path | None = None) -> Path:
    """``cache_dir`` if given, else snapconform's per-machine cache (see snapconform.paths)."""
    return Path(cache_dir) if cache_dir is not None else paths.cache_root()


def progress(message: str) -> None:
    print(f"snapconform: {message}", file=sys.stderr, flush=True)


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


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another builder ({lock_path})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_image(
    recipe: ImageRecipe, cache_dir: Path | None = None, cpu: int | None = None
) -> GoldenImage:
    """The cached golden image for ``recipe``, built first when there is none."""
    images = cache_root(cache_dir) / "images"
    entry = images / recipe.key
    image = _load(entry, recipe)
    if image is not None:
        return image
    with _locked(images / f".{recipe.key}.lock"):
        image = _load(entry, recipe)
        if image is not None:
            return image
        for stale in images.glob(f".build-{recipe.key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        build_dir = images / f".build-{recipe.key}-{os.getpid()}"
        try:
            _build(recipe, build_dir, cpu)
            if entry.exists():  # an unusable old entry (e.g. its refresh hold runs out)
                retired = images / f".retired-{recipe.key}-{os.getpid()}"
                entry.rename(retired)
                shutil.rmtree(retired, ignore_errors=True)
            build_dir.rename(entry)
            # A process still on an older recipe keeps its entry for a day.
            for action in prune_images(cache_dir, SUPERSEDED_KEEP_SECONDS, only=recipe):
                progress(action)
        finally:
            if build_dir.exists():
                shutil.rmtree(build_dir, ignore_errors=True)
    image = _load(entry, recipe)
    if image is None:
        raise HostError(f"golden image {entry} was built but cannot be read back")
    return image


def prune_images(
    cache_dir: Path | None = None, min_age: float = 0.0, only: ImageRecipe | None = None
) -> list[str]:
    """Remove image entries an older recipe built (at least ``min_age`` seconds ago) that no
    running container uses; with ``only``, just that release and mode. Returns what it did."""
    images = cache_root(cache_dir) / "images"
    current = {ImageRecipe(r, m).key for r in RELEASES for m in MODES}
    in_use = set()
    with contextlib.suppress(OSError):
        for record in Path("/run/snapconform").glob("*/tree"):
            in_use.add(record.read_text().strip())
    pattern = f"{only.release}-{only.mode}-*" if only else "*-*-*"
    actions = []
    for old in sorted(images.glob(pattern)) if images.is_dir() else []:
        if old.name.startswith(".") or old.name in current or str(old / "rootfs") in in_use:
            continue
        try:
            age = time.time() - (old / "meta.json").stat().st_mtime
        except OSError:
            age = min_age
        if age < min_age:
            continue
        retired = images / f".retired-{old.name}-{os.getpid()}"
        old.rename(retired)
        shutil.rmtree(retired, ignore_errors=True)
        (images / f".{old.name}.lock").unlink(missing_ok=True)
        actions.append(f"removed superseded image {old.name}")
    return actions


def _build(recipe: ImageRecipe, build_dir: Path, cpu: int | None) -> None:
    started = time.monotonic()
    build_dir.mkdir(parents=True)
    rootfs = build_dir / "rootfs"
    mirror = os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)
    progress(f"building the {recipe.release} golden image in {build_dir} (first time: ~1-2 min)")
    progress(f"[1/4] mmdebstrap {recipe.release} from {mirror}")
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(recipe.packages),
        *(f"--aptopt={opt}" for opt in recipe.aptopts),
        recipe.release,
        str(rootfs),
        mirror,
    ]
    log = build_dir / "mmdebstrap.log"
    with open(log, "w") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise HostError(f"mmdebstrap {recipe.release} failed (exit {result.returncode}):\n{tail}")

    progress("[2/4] writing config tweaks and building the core/snapd stand-ins")
    apply_tweaks(rootfs, recipe.mode)
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

    progress(f"[3/4] first boot (snapd {snapd_version}): seeding, installing stand-ins")
    # nspawn imports this module; importing it here keeps the dependency one-way at load time.
    from snapconform.hosts.nspawn import NspawnContainer

    container = NspawnContainer(rootfs, mode=recipe.mode, cpu=cpu, overlay=False)
    try:
        container.boot(timeout=BUILD_BOOT_TIMEOUT)
        script = "\n".join(
            [
                "set -e",
                "snap install --dangerous /root/standins/snapd.snap",
                "snap install --dangerous /root/standins/core.snap",
                hold,
                "rm -rf /root/standins",
            ]
        )
        done = container.run(script, timeout=300)
        if done.returncode != 0:
            raise HostError(
                f"preparing the {recipe.release} image failed (exit {done.returncode}):\n"
                + done.stdout
            )
        version = container.run("snap version", timeout=60)
        if version.returncode != 0:
            raise HostError(f"`snap version` failed in the new image:\n{version.stdout}")
        progress("[4/4] stopping the first boot and storing the image")
        container.poweroff(timeout=POWEROFF_TIMEOUT)
    finally:
        container.kill()

    (build_dir / "snap-version.txt").write_text(version.stdout)
    meta = {
        "key": recipe.key,
        "release": recipe.release,
        "mode": recipe.mode,
        "packages": list(recipe.packages),
        "snapd_version": snapd_version,
        "hold_until": hold_until,
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (build_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    progress(f"golden image {recipe.key} ready in {meta['build_seconds']} s")


def apply_tweaks(rootfs: Path, mode: str) -> None:
    """Write the config-only tweaks of the recipe into ``rootfs``."""
    nsswitch = rootfs / "etc/nsswitch.conf"
    nsswitch.write_text(nsswitch_hosts_files_only(nsswitch.read_text()))
    for relative, text in tweak_files(mode).items():
        path = rootfs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
    for relative, target in tweak_links(mode).items():
        path = rootfs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
