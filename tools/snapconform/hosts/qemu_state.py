"""The seeded VM, saved once: what every qemu:// start and reset resumes from.

Made the first time a machine (image, accelerator, memory, command line, devices: see
``MachineSpec.identity``) is asked for: a cold boot of the image on a qcow2 overlay, the seed
script through the guest agent (snapd seeded, the stand-ins installed, refreshes held), ``sync``,
then QMP ``stop`` and a migration of the whole machine to ``state.bin``. The overlay
(``disk.qcow2``, over the image's raw disk) and the state are kept together under
``CACHE/vm-states/KEY`` (KEY: the image's key and a hash of the machine and qemu's version),
built under a ``.build-*`` name and renamed into place under a lock, like the images. A state
whose refresh hold ends within golden.HOLD_MARGIN is made again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from snapconform.hosts.base import HostError
from snapconform.hosts.qemu_vm import MachineSpec, Vm, overlay_argv, qemu_version
from snapconform.images import cache, golden
from snapconform.images.vm_image import VmImage

STATE_RECIPE = "vm-state-v1"
SEED_TIMEOUT = 900.0  # seed.loaded, two stand-in installs and a hold, under TCG


@dataclass(frozen=True)
class SeededState:
    entry: Path
    snapd_version_text: str
    hold_until: str | None
    cold_boot_seconds: float
    seed_seconds: float
    save_seconds: float

    @property
    def disk(self) -> Path:
        return self.entry / "disk.qcow2"

    @property
    def state(self) -> Path:
        return self.entry / "state.bin"


def states_root(cache_dir: Path | None = None) -> Path:
    return cache.cache_root(cache_dir) / "vm-states"


def state_key(image: VmImage, spec: MachineSpec, qemu: str) -> str:
    recipe = {"recipe": STATE_RECIPE, "qemu": qemu, "machine": spec.identity}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"{image.recipe.key}-{spec.accelerator.name}-{digest[:12]}"


_HOLD = re.compile(r"refresh\.hold='?([0-9TZ:-]+)'?")


def _load(entry: Path) -> SeededState | None:
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    state = SeededState(
        entry=entry,
        snapd_version_text=meta.get("snap_version", ""),
        hold_until=meta.get("hold_until"),
        cold_boot_seconds=float(meta.get("cold_boot_seconds", 0)),
        seed_seconds=float(meta.get("seed_seconds", 0)),
        save_seconds=float(meta.get("save_seconds", 0)),
    )
    if not (state.disk.is_file() and state.state.is_file()):
        return None
    if state.hold_until:
        ends = datetime.datetime.fromisoformat(state.hold_until.replace("Z", "+00:00"))
        if ends - datetime.datetime.now(datetime.UTC) < golden.HOLD_MARGIN:
            return None
    return state


def ensure_seeded_state(
    image: VmImage, spec: MachineSpec, cache_dir: Path | None = None
) -> SeededState:
    """The saved seeded VM for ``image`` on ``spec``, made first (~2-3 min under TCG)."""
    root = states_root(cache_dir)
    key = state_key(image, spec, qemu_version())

    def remove_superseded() -> list[str]:
        removed = []
        for old in sorted(root.glob(f"vm-{image.recipe.release}-*")):
            if old.is_dir() and old.name != key and not old.name.startswith(image.recipe.key):
                cache.remove_tree(old)  # a state of a superseded image
                removed.append(f"removed the saved VM state {old.name}")
        return removed

    return cache.ensure_entry(
        root,
        key,
        _load,
        lambda build_dir: _make(image, spec, build_dir, key),
        what="the saved VM state",
        after_build=remove_superseded,
    )


def _make(image: VmImage, spec: MachineSpec, build_dir: Path, key: str) -> None:
    build_dir.mkdir(parents=True)
    disk = build_dir / "disk.qcow2"
    made = subprocess.run(
        overlay_argv(image.disk, "raw", disk), capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        raise HostError(f"qemu-img create failed: {made.stderr.strip()}")
    slow = " (TCG: ~1-2 min)" if spec.accelerator.name == "tcg" else ""
    cache.progress(f"[1/3] cold boot of {image.recipe.key} ({spec.accelerator.name}){slow}")
    vm = Vm(spec, label="seed")
    try:
        cold_boot = vm.cold_boot(disk)
        cache.progress(f"[2/3] guest up after {cold_boot:.1f} s; seeding snapd (stand-ins, hold)")
        started = time.monotonic()
        agent = vm.guest()
        seed_script = image.seed_script()
        seeded = agent.exec(["/bin/bash", "-c", seed_script], SEED_TIMEOUT)
        if seeded.exit_code != 0:
            raise HostError(f"seeding the VM failed (exit {seeded.exit_code}):\n{seeded.output}")
        version = agent.exec(["/usr/bin/snap", "version"], 120)
        synced = agent.exec(["/bin/sync"], 120)
        if version.exit_code != 0 or synced.exit_code != 0:
            raise HostError(f"the seeded VM does not answer `snap version`: {version.output}")
        seed_seconds = time.monotonic() - started
        cache.progress(f"[3/3] seeded in {seed_seconds:.1f} s; saving the VM's state")
        save_seconds = vm.save(build_dir / "state.bin")
    finally:
        vm.kill()
    hold = _HOLD.search(seed_script)
    meta = {
        "key": key,
        "image": image.recipe.key,
        "machine": spec.identity,
        "snap_version": version.output,
        "hold_until": hold.group(1) if hold else None,
        "cold_boot_seconds": round(cold_boot, 1),
        "seed_seconds": round(seed_seconds, 1),
        "save_seconds": round(save_seconds, 1),
        "state_bytes": (build_dir / "state.bin").stat().st_size,
        "saved_at": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    (build_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    cache.progress(
        f"saved VM state {key}: cold boot {cold_boot:.1f} s, seed {seed_seconds:.1f} s, "
        f"save {save_seconds:.1f} s, {meta['state_bytes'] >> 20} MiB"
    )
