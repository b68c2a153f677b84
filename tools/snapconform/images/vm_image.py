"""The VM image: the golden recipe's Debian tree plus a kernel, as an ext4 disk, built offline.

The same tree as the LXD image (mmdebstrap of the golden BASE_PACKAGES from this machine's
mirror, the nsswitch/resolv.conf tweak, masked timers and sshd, the offline stand-ins staged in
``/root/standins`` and installed at the VM's first boot by ``lxd_image.seed_script``), plus:

- ``linux-image-amd64`` (the distribution's kernel) with a small initrd (initramfs-tools'
  ``MODULES=list``: virtio and ext4 only), both copied out for qemu's ``-kernel``/``-initrd``;
- ``qemu-guest-agent``, the channel the host backend runs commands and writes files through
  (``guest-exec``, ``guest-file-*`` on a virtio-serial port);
- root logged in on the serial consoles (``ttyS0``, and ``hvc0``, the virtio console the framed
  shell drives): a ``serial-getty@.service`` drop-in with ``--autologin root``;
- an fstab for ``/dev/vda``.

The tree becomes a raw ext4 image with ``mke2fs -d`` (no mounting, no loop device), then the
tree is removed. Cached under ``CACHE/vm-images/KEY`` (KEY names the release and a hash of this
recipe), built under a ``.build-*`` name and renamed into place; phases are printed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from snapconform.hosts.base import HostError
from snapconform.images import cache, golden, lxd_image, standins
from snapconform.images.chroot import run_in_tree
from snapconform.images.releases import aptopts, check_release
from snapconform.images.snappack import require_tools

# Bump when anything below changes in a way the hashed texts do not show.
VM_IMAGE_RECIPE = "vm-image-v1"
VM_PACKAGES = ("linux-image-amd64", "qemu-guest-agent")
PACKAGES = golden.BASE_PACKAGES + VM_PACKAGES
DISK_SIZE = "4G"  # sparse: the tree takes ~1 GB of it
FILESYSTEM_LABEL = "snapconform"
STANDINS_DIR = lxd_image.STANDINS_DIR
BUILD_TOOLS = {"mmdebstrap": "mmdebstrap", "mksquashfs": "squashfs-tools", "mke2fs": "e2fsprogs"}
# Only what finds and mounts the root disk; udev loads the rest from it.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4")
SHELL_CONSOLE = "hvc0"  # the virtio console the framed shell drives

_AUTOLOGIN = """\
[Service]
# snapconform: root is logged in on every serial console (ttyS0, hvc0): the VM has no network
# and no password, the host drives it through these consoles and the guest agent.
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 - $TERM
"""
_FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"
_INITRAMFS_CONF = "MODULES=list\n"

# The kernel's command line. AppArmor is left out (lsm= without it): `apparmor=0` alone falls
# back to SELinux, whose matchpathcon warning then ends up in every hook's error text
# (hosts.md §B). net.ifnames=0: a NIC added later (the ssh forward) is eth0.
KERNEL_COMMAND_LINE = (
    "root=/dev/vda rw console=ttyS0 net.ifnames=0 lsm=lockdown,capability,landlock,yama,bpf "
    "panic=-1 systemd.show_status=0"
)


def tweak_files() -> dict[str, str]:
    """Files written into the tree (relative path -> text): the LXD image's, and the VM's."""
    files = dict(lxd_image.tweak_files())
    files.update(
        {
            "etc/fstab": _FSTAB,
            "etc/systemd/system/serial-getty@.service.d/snapconform-autologin.conf": _AUTOLOGIN,
            "etc/initramfs-tools/conf.d/snapconform": _INITRAMFS_CONF,
            "etc/initramfs-tools/modules": "".join(f"{m}\n" for m in INITRAMFS_MODULES),
        }
    )
    return files


def tweak_links() -> dict[str, str]:
    """Symlinks written into the tree: the LXD image's masked timers and sshd units, and the
    getty on hvc0 enabled (systemd's generator misses it: the virtio console appears after it
    ran, so without this no shell ever answers there)."""
    links = dict(lxd_image.tweak_links())
    links[f"etc/systemd/system/getty.target.wants/serial-getty@{SHELL_CONSOLE}.service"] = (
        "/lib/systemd/system/serial-getty@.service"
    )
    return links


@dataclass(frozen=True)
class VmImageRecipe:
    release: str

    def __post_init__(self) -> None:
        check_release(self.release)

    @property
    def packages(self) -> tuple[str, ...]:
        return PACKAGES

    @property
    def aptopts(self) -> tuple[str, ...]:
        return aptopts(self.release)

    @property
    def key(self) -> str:
        """The cache entry's name: vm-RELEASE-DIGEST."""
        recipe = {
            "recipe": VM_IMAGE_RECIPE,
            "golden": golden.IMAGE_RECIPE,
            "lxd": lxd_image.LXD_IMAGE_RECIPE,
            **standins.recipe_fields(),
            "release": self.release,
            "packages": self.packages,
            "aptopts": self.aptopts,
            "files": tweak_files(),
            "nsswitch": golden.nsswitch_hosts_files_only("hosts: files dns"),
            "links": tweak_links(),
            "disk": [DISK_SIZE, FILESYSTEM_LABEL],
        }
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        return f"vm-{self.release}-{digest[:12]}"


@dataclass(frozen=True)
class VmImage:
    entry: Path
    recipe: VmImageRecipe
    snapd_version: str
    kernel_version: str
    build_seconds: float

    @property
    def disk(self) -> Path:
        """The raw ext4 root disk (never written: boots put a qcow2 overlay over it)."""
        return self.entry / "root.img"

    @property
    def kernel(self) -> Path:
        return self.entry / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.entry / "initrd.img"

    @property
    def command_line(self) -> str:
        return KERNEL_COMMAND_LINE

    def seed_script(self, now: datetime.datetime | None = None) -> str:
        """What the first boot runs once snapd is up: the stand-ins and the refresh hold."""
        return lxd_image.seed_script(self.snapd_version, now)


def images_root(cache_dir: Path | None = None) -> Path:
    return cache.cache_root(cache_dir) / "vm-images"


def mke2fs_argv(tree: Path, disk: Path, size: str = DISK_SIZE) -> list[str]:
    """mke2fs making ``disk`` an ext4 file system holding ``tree`` (owners, modes, links kept)."""
    return [
        "mke2fs",
        "-q",
        "-F",
        "-t",
        "ext4",
        "-L",
        FILESYSTEM_LABEL,
        "-d",
        str(tree),
        str(disk),
        size,
    ]


_KERNEL_NAME = re.compile(r"vmlinuz-(\d\S*)")


def kernel_version_of(tree: Path) -> str:
    """The one kernel version /boot holds (HostError when there is none, or several)."""
    versions = sorted(
        match.group(1)
        for path in (tree / "boot").glob("vmlinuz-*")
        if (match := _KERNEL_NAME.fullmatch(path.name))
    )
    if len(versions) != 1:
        raise HostError(f"{tree}/boot holds {len(versions)} kernels ({versions}); expected one")
    return versions[0]


def _load(entry: Path, recipe: VmImageRecipe) -> VmImage | None:
    try:
        meta = json.loads((entry / "meta.json").read_text())
        image = VmImage(
            entry,
            recipe,
            meta["snapd_version"],
            meta["kernel_version"],
            float(meta.get("build_seconds", 0)),
        )
    except (OSError, ValueError, KeyError):
        return None
    if not all(path.is_file() for path in (image.disk, image.kernel, image.initrd)):
        return None
    return image


def find_image(recipe: VmImageRecipe, cache_dir: Path | None = None) -> VmImage | None:
    """The cached image for ``recipe``, or None (nothing is built)."""
    return _load(images_root(cache_dir) / recipe.key, recipe)


def ensure_image(recipe: VmImageRecipe, cache_dir: Path | None = None) -> VmImage:
    """The cached image for ``recipe``, built first when there is none."""

    def build(build_dir: Path) -> None:
        require_tools(BUILD_TOOLS)
        _build(recipe, build_dir)

    return cache.ensure_entry(
        images_root(cache_dir),
        recipe.key,
        lambda entry: _load(entry, recipe),
        build,
        what="VM image",
        after_build=lambda: prune_superseded(recipe, cache_dir),
    )


def prune_superseded(recipe: VmImageRecipe, cache_dir: Path | None = None) -> list[str]:
    """Remove the release's cached entries of other recipes (with their saved VM states)."""
    root = images_root(cache_dir)
    actions = []
    for old in sorted(root.glob(f"vm-{recipe.release}-*")):
        if old.is_dir() and old.name != recipe.key:
            cache.remove_tree(old)
            cache.lock_path(root, old.name).unlink(missing_ok=True)
            actions.append(f"removed superseded VM image {old.name}")
    return actions


def _build(recipe: VmImageRecipe, build_dir: Path) -> None:
    started = time.monotonic()
    build_dir.mkdir(parents=True)
    rootfs = build_dir / "rootfs"
    cache.progress(f"building the {recipe.release} VM image in {build_dir} (~2-3 min)")
    golden.mmdebstrap_tree(
        recipe.release,
        recipe.packages,
        recipe.aptopts,
        rootfs,
        build_dir / "mmdebstrap.log",
        "[1/4]",
    )
    cache.progress("[2/4] writing config tweaks, a small initrd, the core/snapd stand-ins")
    golden.write_tree_config(rootfs, tweak_files(), tweak_links())
    run_in_tree(
        rootfs,
        "update-initramfs -u -k all",
        build_dir / "initramfs.log",
        label="update-initramfs",
        timeout=600,
    )
    snaps = standins.build_standins(rootfs, build_dir / "standins")
    staging = rootfs / STANDINS_DIR.lstrip("/")
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(snaps.snapd, staging / "snapd.snap")
    shutil.copyfile(snaps.core, staging / "core.snap")
    snapd_version = golden.snapd_version_of(rootfs)
    kernel_version = kernel_version_of(rootfs)
    cache.progress(f"[3/4] kernel {kernel_version} and its initrd out of /boot")
    shutil.copyfile(rootfs / f"boot/vmlinuz-{kernel_version}", build_dir / "vmlinuz")
    shutil.copyfile(rootfs / f"boot/initrd.img-{kernel_version}", build_dir / "initrd.img")
    cache.progress(f"[4/4] mke2fs -d: the tree as a {DISK_SIZE} ext4 disk (sparse)")
    disk = build_dir / "root.img"
    done = subprocess.run(mke2fs_argv(rootfs, disk), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HostError(f"mke2fs -d {rootfs} failed: {(done.stderr or done.stdout).strip()[-400:]}")
    cache.remove_tree(rootfs)
    shutil.rmtree(build_dir / "standins", ignore_errors=True)
    meta = {
        "key": recipe.key,
        "release": recipe.release,
        "packages": list(recipe.packages),
        "snapd_version": snapd_version,
        "kernel_version": kernel_version,
        "initrd_bytes": (build_dir / "initrd.img").stat().st_size,
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (build_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    cache.progress(f"VM image {recipe.key} ready in {meta['build_seconds']} s")
