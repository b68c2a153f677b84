"""The LXD daemon that ``hosts create`` uses: the one already running, else one started by hand.

A user's machine runs its own LXD (the snap, or Debian's package under systemd): it is used as
it is. Where none answers and we are root on Debian or Ubuntu without systemd as PID 1 (these
machines), ``ensure_daemon`` installs ``lxd lxd-client`` with apt-get if they are missing,
starts ``lxd --group root --logfile=FILE`` in the background in a session of its own, waits
with ``lxd waitready`` and initialises it (``lxd init --preseed``: a ``dir`` storage pool, no
networks, a default profile holding only the root disk). Its PID and start time go into
``/run/snapconform/lxd-daemon.json``; ``stop_daemon_if_ours`` (the last ``hosts delete``) stops
exactly that process, by PID, unmounts what it mounted, and empties again (or removes) its
state, log and cache directories where they were empty (or absent) before it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from snapconform.hosts.base import HostError, HostUnavailable
from snapconform.hosts.lxd_instance import last_line, lxc, lxc_ok
from snapconform.hosts.nspawn_records import (
    STATE_ROOT,
    mounts_under,
    process_start_time,
    same_process,
)
from snapconform.images.snappack import missing_tools

RECORD = STATE_ROOT / "lxd-daemon.json"
LOGFILE = STATE_ROOT / "lxd-daemon.log"
STATE_DIR = Path("/var/lib/lxd")  # Debian's package keeps its state here
# ... and the instances' logs and its cache here (it leaves a deleted instance's logs behind)
DAEMON_DIRS = (STATE_DIR, Path("/var/log/lxd"), Path("/var/cache/lxd"))
PACKAGES = ("lxd", "lxd-client")
TOOLS = {"lxd": "lxd", "lxc": "lxd-client"}
WAITREADY_SECONDS = 120
STOP_SECONDS = 30.0
POOL = "default"

PRESEED = f"""\
config: {{}}
networks: []
storage_pools:
- name: {POOL}
  driver: dir
profiles:
- name: default
  description: snapconform's LXD daemon; instances get no network
  devices:
    root:
      path: /
      pool: {POOL}
      type: disk
"""

Say = Callable[[str], None]


@dataclass(frozen=True)
class DaemonRecord:
    """The daemon we started: PID and kernel start time (so a reused PID is never signalled)."""

    pid: int
    start_time: int | None
    logfile: str
    state_dir: str
    # The daemon's directories that were empty or absent before it started, with their mode,
    # owner and group then (None: absent): emptied (all three put back) or removed at its stop.
    fresh_dirs: dict[str, list[int] | None] = field(default_factory=dict)

    def alive(self) -> bool:
        return same_process(self.pid, self.start_time)


def read_record(path: Path | None = None) -> DaemonRecord | None:
    try:
        return DaemonRecord(**json.loads((path or RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_record(record: DaemonRecord, path: Path | None = None) -> None:
    path = path or RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(asdict(record), indent=2) + "\n")
    partial.replace(path)


def daemon_answers() -> bool:
    """Whether an LXD daemon answers the lxc client (false when there is no client)."""
    try:
        return lxc("query", "/1.0", timeout=20).returncode == 0
    except HostError:
        return False


def pid1_is_systemd() -> bool:
    with contextlib.suppress(OSError):
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    return False


def is_debian_like(os_release: Path = Path("/etc/os-release")) -> bool:
    try:
        text = os_release.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE") and any(
            name in value.strip('"').split() for name in ("debian", "ubuntu")
        ):
            return True
    return False


def why_we_cannot_start_one() -> str | None:
    """Why ``ensure_daemon`` may not start a daemon here, or None when it may."""
    if os.geteuid() != 0:
        return "not running as root"
    if pid1_is_systemd():
        return "systemd runs this machine: start its own (systemctl start lxd, or snap install lxd)"
    if not is_debian_like():
        return "this is not Debian or Ubuntu (install and start LXD yourself)"
    return None


def install_packages(say: Say) -> None:
    missing = missing_tools(TOOLS)
    if not missing:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    say(f"LXD is not installed; running: {' '.join(command)}")
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if done.returncode != 0 or missing_tools(TOOLS):
        raise HostUnavailable(
            f"installing {' '.join(PACKAGES)} failed: {last_line(done.stderr or done.stdout)}"
        )


def fresh_dirs(paths: tuple[Path, ...]) -> dict[str, list[int] | None]:
    """Of ``paths``, those that are empty (-> [mode, uid, gid]) or absent (-> None) now."""
    found: dict[str, list[int] | None] = {}
    for path in paths:
        try:
            if not any(path.iterdir()):
                info = path.stat()
                found[str(path)] = [info.st_mode & 0o7777, info.st_uid, info.st_gid]
        except FileNotFoundError:
            found[str(path)] = None
        except OSError:
            continue
    return found


def start_daemon(say: Say) -> DaemonRecord:
    """Start ``lxd`` by hand, wait until it answers, initialise it; returns its record."""
    fresh = fresh_dirs(DAEMON_DIRS)
    LOGFILE.parent.mkdir(parents=True, exist_ok=True)
    say(f"no LXD daemon answers; starting one: lxd --group root --logfile={LOGFILE}")
    with open(LOGFILE.with_suffix(".out"), "ab") as out:
        process = subprocess.Popen(
            ["lxd", "--group", "root", f"--logfile={LOGFILE}"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # it outlives `hosts create`, and no terminal's signals
            close_fds=True,
        )
    record = DaemonRecord(
        pid=process.pid,
        start_time=process_start_time(process.pid),
        logfile=str(LOGFILE),
        state_dir=str(STATE_DIR),
        fresh_dirs=fresh,
    )
    write_record(record)
    ready = subprocess.run(
        ["lxd", "waitready", f"--timeout={WAITREADY_SECONDS}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if ready.returncode != 0 or process.poll() is not None:
        stop_daemon(record, say)
        raise HostError(
            f"the LXD daemon did not get ready ({last_line(ready.stderr)}); its log: "
            + " / ".join(_tail(LOGFILE, 3))
        )
    if not _initialised():
        lxc_preseed()
    return record


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ["(no log)"]


def _initialised() -> bool:
    return bool(json.loads(lxc_ok("query", "/1.0/storage-pools") or "[]"))


def lxc_preseed() -> None:
    done = subprocess.run(
        ["lxd", "init", "--preseed"], input=PRESEED, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise HostError(f"`lxd init --preseed` failed: {last_line(done.stderr or done.stdout)}")


def ensure_daemon(say: Say) -> DaemonRecord | None:
    """An LXD daemon that answers: the running one (None), else one we start (its record)."""
    if daemon_answers():
        if not _initialised():
            raise HostUnavailable(
                "this machine's LXD has no storage pool; initialise it (lxd init), with a dir pool"
            )
        record = read_record()
        return record if record is not None and record.alive() else None
    reason = why_we_cannot_start_one()
    if reason:
        raise HostUnavailable(f"no LXD daemon answers here, and none can be started: {reason}")
    stale = read_record()
    if stale is not None and not stale.alive():
        RECORD.unlink(missing_ok=True)
    install_packages(say)
    return start_daemon(say)


def stop_daemon(record: DaemonRecord, say: Say) -> list[str]:
    """Stop the daemon ``record`` names (by PID: SIGTERM, then SIGKILL), unmount what it left
    mounted under its state directory and, when that was empty before, empty it again."""
    actions: list[str] = []
    if record.alive():
        os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while record.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if record.alive():
            os.kill(record.pid, signal.SIGKILL)
            while record.alive() and time.monotonic() < deadline + 10:
                time.sleep(0.1)
        actions.append(f"stopped the LXD daemon we started (PID {record.pid})")
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(record.pid, os.WNOHANG)  # reap it if it is our child
    state_dir = Path(record.state_dir)
    for point in mounts_under(state_dir):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
        actions.append(f"unmounted {point}")
    for name, before in sorted(record.fresh_dirs.items()):
        directory = Path(name)
        if not directory.is_dir() or mounts_under(directory):
            continue
        if before is None:
            subprocess.run(["rm", "-rf", "--one-file-system", str(directory)], check=False)
            actions.append(f"removed {directory} (the daemon made it)")
            continue
        entries = sorted(directory.iterdir())
        for entry in entries:
            subprocess.run(["rm", "-rf", "--one-file-system", str(entry)], check=False)
        mode, uid, gid = before
        os.chown(directory, uid, gid)
        directory.chmod(mode)
        if entries:
            actions.append(f"emptied {directory} (it was empty before the daemon started)")
    for log in (Path(record.logfile), Path(record.logfile).with_suffix(".out")):
        if log.parent == STATE_ROOT:  # ours, not a user's
            log.unlink(missing_ok=True)
    RECORD.unlink(missing_ok=True)
    for action in actions:
        say(action)
    return actions


def instance_names() -> list[str]:
    """Every instance on the daemon (any project's default view)."""
    return [line.strip() for line in lxc_ok("list", "--format", "csv", "-c", "n").splitlines()]


def stop_daemon_if_ours(say: Say) -> list[str]:
    """When the daemon is the one we started and no instance is left on it, stop it."""
    record = read_record()
    if record is None:
        return []
    if not record.alive():
        RECORD.unlink(missing_ok=True)
        return []
    if [name for name in instance_names() if name]:
        return []
    return stop_daemon(record, say)
