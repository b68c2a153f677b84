"""What an nspawn container leaves on this machine, and how to remove it.

Each container keeps a record under /run/snapconform/ID: its owner, supervisor and PID 1 (each
a PID and its start time, so a reused PID is never touched), its cgroups, and the devices its
overlay reports (loop devices backed by files there are its). nspawn.py writes records and
cleanup.py sweeps those of killed runs; both import this module, and it imports neither.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from snapconform.hosts.base import HostError

STATE_ROOT = Path("/run/snapconform")
CGROUP_GROUP = "snapconform"
KILL_TIMEOUT = 15.0


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # fields from the state (3rd) on


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks), to tell a PID from a reused one."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def same_process(pid: int, start_time: int | None) -> bool:
    """Whether ``pid`` is still the (running, not zombie) process that started at ``start_time``."""
    fields = _stat_fields(pid)
    return (
        fields is not None
        and start_time is not None
        and fields[0] not in ("Z", "X")
        and int(fields[19]) == start_time
    )


def _cgroup_mounts() -> dict[str, Path]:
    """Mounted cgroup hierarchies: "" (v2), "name=systemd", "freezer", ... -> mount point."""
    mounts: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, (fstype, _source, options) = left.split(), right.split()[:3]
            if fstype == "cgroup2":
                mounts.setdefault("", Path(fields[4]))
            elif fstype == "cgroup":
                names = [o for o in options.split(",") if o not in ("rw", "ro")]
                mounts.setdefault(",".join(sorted(names)), Path(fields[4]))
    return mounts


def cgroup_hierarchies() -> list[Path]:
    """Where our groups go: below this process's own group in every hierarchy but cpuset.

    Being below the current group keeps the sandbox's own accounting (memory, ...) in force.
    The v1 freezer matters most: with nspawn's cgroup namespace, snap-confine's
    freezer/snap.NAME groups then land inside the container's group, not beside another
    container's.
    """
    mounts = _cgroup_mounts()
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _hierarchy, controllers, path = line.split(":", 2)
            key = ",".join(sorted(controllers.split(","))) if controllers else ""
            if "cpuset" in key.split(",") or key not in mounts:
                continue  # a cpuset group needs cpus and mems before anything can join
            found.append(mounts[key] / path.lstrip("/"))
    return found


def cgroup_pids(group: Path) -> set[int]:
    pids: set[int] = set()
    if not group.is_dir():
        return pids
    for procs in group.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(line) for line in procs.read_text().split())
    return pids


def remove_cgroup(group: Path, timeout: float = KILL_TIMEOUT) -> list[str]:
    """SIGKILL every process left in ``group`` and below, then remove the groups, deepest first."""
    removed: list[str] = []
    deadline = time.monotonic() + timeout
    while group.is_dir():
        pids = cgroup_pids(group)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                removed.append(f"killed process {pid} left in {group}")
        if not pids:
            dirs = sorted(
                (p for p in group.rglob("*") if p.is_dir()),
                key=lambda p: len(p.parts),
                reverse=True,
            )
            for directory in [*dirs, group]:
                with contextlib.suppress(FileNotFoundError):
                    directory.rmdir()
            if not group.exists():
                break
        if time.monotonic() > deadline:
            raise HostError(f"cannot empty cgroup {group}: {sorted(cgroup_pids(group))} remain")
        time.sleep(0.05)
    return removed


def read_pid(record: Path, name: str) -> tuple[int, int | None] | None:
    try:
        fields = (record / name).read_text().split()
        return int(fields[0]), (int(fields[1]) if fields[1:] and fields[1] != "None" else None)
    except (OSError, ValueError, IndexError):
        return None


def mount_table(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[tuple[str, str]]:
    """(device "MAJ:MIN", mount point) of every mount in one mount namespace."""
    found = []
    with contextlib.suppress(OSError):
        for line in mountinfo.read_text().splitlines():
            fields = line.split()
            found.append((fields[2], fields[4].replace("\\040", " ")))
    return found


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace, deepest first."""
    found = [
        point
        for _device, point in mount_table()
        if point == str(path) or point.startswith(str(path) + "/")
    ]
    return sorted(found, key=len, reverse=True)


def loop_devices() -> list[tuple[str, str, str]]:
    """Every loop device in use: (name, backing file's device "MAJ:MIN", backing file)."""
    if shutil.which("losetup") is None:
        return []
    done = subprocess.run(
        ["losetup", "--list", "--json", "--output", "NAME,BACK-MAJ:MIN,BACK-FILE"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        return []
    return [
        (
            str(loop.get("name", "")).strip(),
            str(loop.get("back-maj:min", "")).strip(),
            str(loop.get("back-file", "")).strip(),
        )
        for loop in json.loads(done.stdout).get("loopdevices", [])
    ]


def snapd_loop_devices() -> list[tuple[str, str]]:
    """Loop devices backed by a snap in snapd's store: (name, backing file's device)."""
    return [
        (name, device)
        for name, device, path in loop_devices()
        if path.startswith("/var/lib/snapd/snaps/")
    ]


def loop_devices_backed_by(devices: set[str]) -> list[str]:
    """snapd's loop devices whose backing file lives on one of ``devices`` ("MAJ:MIN")."""
    return [name for name, device in snapd_loop_devices() if device in devices]


def device_ids(record: Path) -> set[str]:
    """The overlay's (and its tmpfs's) device numbers as "MAJ:MIN", when the record has them."""
    ids = set()
    with contextlib.suppress(OSError, ValueError):
        for number in (record / "loopdevs").read_text().split():
            value = int(number)
            ids.add(f"{os.major(value)}:{os.minor(value)}")
    return ids


def remove_record(record: Path) -> list[str]:
    """Kill and remove everything the record ``record`` names; returns what was done."""
    actions: list[str] = []
    for name in ("pid1", "supervisor"):
        found = read_pid(record, name)
        if found and same_process(*found):
            with contextlib.suppress(ProcessLookupError):
                os.kill(found[0], signal.SIGKILL)
                actions.append(f"killed {name} process {found[0]}")
    supervisor = read_pid(record, "supervisor")
    if supervisor:
        deadline = time.monotonic() + KILL_TIMEOUT
        while same_process(*supervisor) and time.monotonic() < deadline:
            time.sleep(0.02)
    with contextlib.suppress(OSError):
        for line in (record / "cgroups").read_text().split():
            group = Path(line)
            if group.is_dir():
                actions += remove_cgroup(group)
                actions.append(f"removed cgroup {group}")
    # A device number is only ours while no other live record claims it.
    others: set[str] = set()
    if STATE_ROOT.is_dir():
        for other in STATE_ROOT.iterdir():
            if other != record and other.is_dir():
                others |= device_ids(other)
    for loop in loop_devices_backed_by(device_ids(record) - others):
        subprocess.run(["losetup", "--detach", loop], capture_output=True, check=False)
        actions.append(f"detached {loop}")
    for point in mounts_under(record):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
        actions.append(f"unmounted {point}")
    shutil.rmtree(record, ignore_errors=True)
    actions.append(f"removed {record}")
    return actions
