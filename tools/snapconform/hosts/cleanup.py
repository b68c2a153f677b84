"""Remove what a killed run left behind: our containers, cgroups, loop devices and records.

Each nspawn container keeps a record under /run/snapconform/ID (see nspawn.py), and so does
each qemu VM, in the same format (see qemu_vm.py: its qemu is the record's supervisor). A
record whose owner process is gone belongs to a killed run: its processes (checked by PID *and*
start time, so a reused PID is never touched), cgroups, loop devices backed by its overlay, and
mounts are removed. Nothing without such a record is touched, except cgroups under our own
group name and unfinished image builds no builder holds a lock on. `leftovers(owner)` lists,
without touching anything, what the containers of one run (by its PID) left, through the same
discovery.

    python -m snapconform.hosts.cleanup [--force] [--prune-images] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from snapconform.hosts import qemu_state
from snapconform.hosts.nspawn_records import (
    CGROUP_GROUP,
    STATE_ROOT,
    cgroup_hierarchies,
    cgroup_pids,
    device_ids,
    loop_devices_backed_by,
    mount_table,
    read_pid,
    remove_cgroup,
    remove_record,
    same_process,
    snapd_loop_devices,
)
from snapconform.images import cache, golden, releases, snapd_build, vm_image


def _owner_alive(record: Path) -> bool:
    owner = read_pid(record, "owner")
    return bool(owner) and same_process(*owner)  # type: ignore[misc]


def _records() -> list[Path]:
    """Every container record (a directory named after the container's ID)."""
    if not STATE_ROOT.is_dir():
        return []
    return sorted(p for p in STATE_ROOT.iterdir() if p.is_dir())


def _container_groups() -> list[Path]:
    """Every container's cgroup (named after its ID) under our group name, in every hierarchy."""
    groups: list[Path] = []
    for hierarchy in cgroup_hierarchies():
        parent = hierarchy / CGROUP_GROUP
        if parent.is_dir():
            groups += sorted(p for p in parent.iterdir() if p.is_dir())
    return groups


def sweep(force: bool = False, cache_dir: Path | None = None) -> list[str]:
    """Remove leftovers of killed runs (with ``force``, of live runs too); returns what was done."""
    actions: list[str] = []
    for record in _records():
        if _owner_alive(record) and not force:
            continue
        actions += remove_record(record)
    records = {record.name for record in _records()}
    for group in _container_groups():
        if group.name not in records:
            actions += remove_cgroup(group)
            actions.append(f"removed orphaned cgroup {group}")
    if not records:
        for hierarchy in cgroup_hierarchies():
            with contextlib.suppress(OSError):
                (hierarchy / CGROUP_GROUP).rmdir()
    actions += _sweep_builds(cache_dir)
    return actions


def _pids() -> list[int]:
    return sorted(int(proc.name) for proc in Path("/proc").iterdir() if proc.name.isdigit())


def _mount_namespaces() -> dict[str, int]:
    """Every mount namespace a process holds ("mnt:[ID]") -> one PID in it."""
    found: dict[str, int] = {}
    for pid in _pids():
        with contextlib.suppress(OSError):
            found.setdefault(os.readlink(f"/proc/{pid}/ns/mnt"), pid)
    return found


def _process_line(pid: int) -> str:
    """``pid`` and its command line (its name in brackets when it has none, e.g. exiting)."""
    try:
        text = (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode("utf-8", "replace")
        )
        text = text.strip() or f"[{Path(f'/proc/{pid}/comm').read_text().strip()}]"
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} " + " ".join(text.split())[:160]


def leftovers(owner: int | None = None) -> dict[str, list[str]]:
    """What the containers of the run ``owner`` (a PID; default this process) left on this
    machine, found as the sweep finds it; nothing is changed. Empty lists: nothing is left.

    Container IDs start with their owner's PID, so records and cgroups are told apart by name.
    Mounts are looked for in every mount namespace a process holds (the overlay lives in the
    supervisor's private one). Loop devices are ours when a record of ours claims their backing
    device; ``orphaned_loop_devices`` are snapd's loop devices whose backing device no record
    and no mount claims: some snapconform run leaked them, which one cannot be told.
    """
    owner = os.getpid() if owner is None else owner
    prefix = f"{owner}-"
    records = [record for record in _records() if record.name.startswith(prefix)]
    groups = [group for group in _container_groups() if group.name.startswith(prefix)]
    pids: set[int] = set()
    for group in groups:
        pids |= cgroup_pids(group)
    for record in records:
        for name in ("pid1", "supervisor"):
            found = read_pid(record, name)
            if found and same_process(*found):
                pids.add(found[0])
    # A supervisor or nspawn that left its cgroups still names its record on its command line.
    state_prefix = str(STATE_ROOT / prefix).encode()
    for pid in _pids():
        with contextlib.suppress(OSError):
            if state_prefix in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
    mounts: list[str] = []
    mounted_devices: set[str] = set()
    for namespace, pid in sorted(_mount_namespaces().items()):
        for device, point in mount_table(Path(f"/proc/{pid}/mountinfo")):
            mounted_devices.add(device)
            if point.startswith(str(STATE_ROOT / prefix)):
                mounts.append(f"{point} (in {namespace}, held by {_process_line(pid)})")
    ours: set[str] = set()
    claimed: set[str] = set()
    for record in _records():
        claimed |= device_ids(record)
        if record in records:
            ours |= device_ids(record)
    return {
        "records": [str(record) for record in records],
        "processes": [_process_line(pid) for pid in sorted(pids)],
        "cgroups": [str(group) for group in groups],
        "mounts": mounts,
        "loop_devices": loop_devices_backed_by(ours),
        "orphaned_loop_devices": [
            name
            for name, device in snapd_loop_devices()
            if device not in claimed and device not in mounted_devices
        ],
    }


def _sweep_builds(cache_dir: Path | None) -> list[str]:
    """Unfinished image and snapd builds whose builder is gone (nobody holds their lock)."""
    return (
        cache.sweep_unfinished(golden.images_root(cache_dir))
        + cache.sweep_unfinished(snapd_build.builds_root(cache_dir))
        + cache.sweep_unfinished(vm_image.images_root(cache_dir))  # qemu://: images, saved VMs
        + cache.sweep_unfinished(qemu_state.states_root(cache_dir))
    )


def prune_snapd_builds(cache_dir: Path | None = None) -> list[str]:
    """Remove test-keys snapd builds other than each release's latest (images copy the .deb)."""
    actions: list[str] = []
    for release in releases.RELEASES:
        latest = snapd_build.latest_build(release, cache_dir)
        if latest is not None:
            actions += snapd_build.prune_builds(release, latest.source_version, cache_dir)
    return actions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snapconform.hosts.cleanup",
        description="Remove containers, cgroups, loop devices and records of killed runs.",
    )
    parser.add_argument(
        "--force", action="store_true", help="also remove containers whose owner still runs"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="image cache to check")
    parser.add_argument(
        "--prune-images",
        action="store_true",
        help="also remove cached golden images of older recipes that no container uses, and "
        "test-keys snapd builds of older source versions",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("cleanup needs root (it kills containers and detaches loop devices)")
        return 2
    actions = sweep(force=args.force, cache_dir=args.cache_dir)
    if args.prune_images:
        actions += golden.prune_images(args.cache_dir)
        actions += prune_snapd_builds(args.cache_dir)
    for action in actions:
        print(action)
    if not actions:
        print("nothing to clean up")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["leftovers", "main", "remove_record", "sweep"]
