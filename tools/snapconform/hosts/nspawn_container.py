"""One boot of a tree under systemd-nspawn, on a fresh overlay over it or (first boot) on it.

The supervisor runs in a private mount namespace holding a tmpfs, an overlayfs over the tree and
a tmpfs on /run/systemd; the container runs there with no network and pinned to one CPU. Its
record under /run/snapconform/ID (see nspawn_records.py) lets cleanup remove what a killed run
left. The nspawn:// backend (nspawn.py) and the golden recipe's first boot both use this.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from snapconform.hosts.base import HostError, HostUnavailable
from snapconform.hosts.nspawn_records import (
    CGROUP_GROUP,
    KILL_TIMEOUT,
    STATE_ROOT,
    cgroup_hierarchies,
    cgroup_pids,
    process_start_time,
    remove_record,
    same_process,
)

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin"
LOOP_DEVICES_MIN = 64
BOOT_TIMEOUT = 120.0
FIRST_BOOT_TIMEOUT = 300.0
FIRST_BOOT_SCRIPT_TIMEOUT = 300.0
POWEROFF_TIMEOUT = 30.0
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOWER_PROBE = "usr/lib/snapd/info"  # a regular file every golden tree has
REBOOT_MARK = "reboot"  # in the record: boot again when PID 1 dies (a power cut)

# -- the container's processes -------------------------------------------------------------------


def container_pid1(groups: list[Path]) -> int | None:
    """The container's PID 1 (its own PID namespace says 1) among the processes of our groups."""
    for group in groups:
        for pid in sorted(cgroup_pids(group)):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    if len(ids) >= 2 and ids[-1] == "1" and comm != "systemd-nspawn":
                        return pid
    return None


def ensure_loop_devices() -> list[str]:
    """Paths of the loop device nodes the container gets (created on the controller if needed).

    The container's /dev is private: every loop device snapd may be handed by /dev/loop-control
    must exist before the container starts.
    """
    highest = -1  # the highest loop device the kernel has allocated (in use or not)
    for device in Path("/sys/block").glob("loop[0-9]*"):
        with contextlib.suppress(ValueError):
            highest = max(highest, int(device.name[4:]))
    count = max(LOOP_DEVICES_MIN, highest + 1 + 32)
    paths = []
    for number in range(count):
        node = Path(f"/dev/loop{number}")
        if not node.exists():
            os.mknod(node, 0o660 | 0o060000, os.makedev(7, number))
        paths.append(str(node))
    return paths


# -- one container ---------------------------------------------------------------------------

_LIVE: set[NspawnContainer] = set()
_HANDLERS_INSTALLED = False
_LOCK = threading.Lock()


def _stop_all() -> None:
    for container in list(_LIVE):
        with contextlib.suppress(Exception):
            container.kill()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    previous = _PREVIOUS_HANDLERS.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_PREVIOUS_HANDLERS: dict[int, Any] = {}


def _install_cleanup_handlers() -> None:
    global _HANDLERS_INSTALLED
    with _LOCK:
        if _HANDLERS_INSTALLED:
            return
        atexit.register(_stop_all)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                _PREVIOUS_HANDLERS[signum] = signal.getsignal(signum)
                signal.signal(signum, _on_signal)
        _HANDLERS_INSTALLED = True


def choose_cpu() -> int:
    """The allowed CPU with the fewest of our running containers on it."""
    allowed = sorted(os.sched_getaffinity(0))
    load = dict.fromkeys(allowed, 0)
    if STATE_ROOT.is_dir():
        for record in STATE_ROOT.glob("*/cpu"):
            with contextlib.suppress(OSError, ValueError):
                cpu = int(record.read_text())
                if cpu in load:
                    load[cpu] += 1
    return min(allowed, key=lambda cpu: (load[cpu], cpu))


@dataclass
class CommandOutput:
    returncode: int
    stdout: str  # stdout and stderr together


class NspawnContainer:
    """One boot of a tree under systemd-nspawn, on a fresh overlay or (image build) the tree."""

    def __init__(self, tree: Path, *, mode: str, cpu: int | None, overlay: bool = True) -> None:
        self.tree = Path(tree)
        if overlay and any(mark in str(self.tree) for mark in ",:"):
            # overlayfs takes its layers as a comma- and colon-separated option string.
            raise HostError(f"cannot overlay {self.tree}: its path holds ',' or ':'")
        self.mode = mode
        self.cpu = choose_cpu() if cpu is None else cpu
        self.overlay = overlay
        self.id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.state = STATE_ROOT / self.id
        self.groups = [parent / CGROUP_GROUP / self.id for parent in cgroup_hierarchies()]
        self.process: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def boot(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Start the container and wait until snapd says `seed.loaded`."""
        if not self.groups:
            raise HostUnavailable("nspawn://: no cgroup hierarchy (name=systemd or v2) to use")
        _install_cleanup_handlers()
        self.state.mkdir(parents=True)
        _LIVE.add(self)
        self._record("owner", f"{os.getpid()} {process_start_time(os.getpid())}")
        self._record("cpu", str(self.cpu))
        self._record("tree", str(self.tree))
        for group in self.groups:
            group.mkdir(parents=True, exist_ok=True)
        self._record("cgroups", "\n".join(str(g) for g in self.groups))
        script = self._launch_script()
        console = open(self.state / "console.log", "wb")  # noqa: SIM115 (lives with the process)
        # When the thread that starts the supervisor dies (even by SIGKILL), the supervisor gets
        # SIGTERM and kills the container. Only the main thread lives as long as the run does.
        argv = []
        if threading.current_thread() is threading.main_thread():
            argv += ["setpriv", "--pdeathsig", "TERM"]
        argv += ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        env = dict(os.environ)
        if self.mode == "userns":
            env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"
        try:
            # A session of its own: a terminal's Ctrl-C reaches this process, which cleans up,
            # and never the container directly.
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        finally:
            console.close()
        self._record("supervisor", f"{self.process.pid} {process_start_time(self.process.pid)}")
        deadline = time.monotonic() + timeout
        self.pid1 = self._wait_for_pid1(deadline)
        self._record("pid1", f"{self.pid1} {process_start_time(self.pid1)}")
        self._wait_for_seed(deadline)

    def _launch_script(self) -> str:
        """The supervisor: runs in a private mount namespace, holds the container's mounts.

        It runs nspawn as a child rather than exec'ing it, so that when the thread that
        started it dies (SIGKILL included: setpriv's parent-death signal) it can still kill
        every process of the container's cgroup.
        """
        q = shlex.quote
        lines = ["set -eu"]
        for group in self.groups:
            lines.append(f"echo $$ > {q(str(group / 'cgroup.procs'))}")
        procs = f"find {q(str(self.groups[0]))} -name cgroup.procs -exec cat {{}} +"
        lines += [
            "kill_container() {",
            f"  for pid in $({procs}); do",
            '    [ "$pid" = "$$" ] || kill -9 "$pid" 2>/dev/null || true',
            "  done",
            "  exit 137",
            "}",
            "trap kill_container TERM HUP INT",
        ]
        root = self.state / "root"
        if self.overlay:
            rw = self.state / "rw"
            probe = root / ".snapconform-probe"
            lines += [
                f"mkdir -p {q(str(root))} {q(str(rw))}",
                f"mount -t tmpfs -o mode=0755 snapconform-rw {q(str(rw))}",
                f"mkdir {q(str(rw / 'upper'))} {q(str(rw / 'work'))}",
                "mount -t overlay -o "
                + q(f"lowerdir={self.tree},upperdir={rw / 'upper'},workdir={rw / 'work'}")
                + f" snapconform-root {q(str(root))}",
                # The devices overlayfs reports for its files (one for the upper layer, one
                # for the lower): cleanup.py detaches loop devices backed by files on these.
                f": > {q(str(probe))}",
                f"stat -c %d {q(str(root))} {q(str(probe))} {q(str(root / LOWER_PROBE))}"
                f" > {q(str(self.state / 'loopdevs'))}",
                f"rm {q(str(probe))}",
            ]
        else:
            root = self.tree
        lines += [
            # nspawn writes under /run/systemd: keep that in this namespace only.
            "mkdir -p /run/systemd",
            "mount -t tmpfs -o mode=0755 snapconform-run /run/systemd",
            # A power cut (power_cycle) leaves a `reboot` mark and kills PID 1: the container
            # boots again on the same overlay, which this namespace keeps. Without the mark
            # the supervisor ends with nspawn, as before.
            "while :; do",
            "  " + shlex.join(self._nspawn_argv(root)) + " &",
            "  nspawn=$!",
            # wait returns early when a trapped signal arrives; the trap then runs.
            '  status=0; wait "$nspawn" || status=$?',
            f"  [ -e {q(str(self.state / REBOOT_MARK))} ] || exit $status",
            f"  rm -f {q(str(self.state / REBOOT_MARK))}",
            "done",
        ]
        return "\n".join(lines)

    def _nspawn_argv(self, root: Path) -> list[str]:
        argv = [
            "taskset",
            "-c",
            str(self.cpu),
            "systemd-nspawn",
            "--quiet",
            f"--directory={root}",
            "--boot",
            f"--machine=snapconform-{self.id.rsplit('-', 1)[1]}",
            "--register=no",
            "--keep-unit",  # without a systemd host, nspawn otherwise wants the system bus
            "--capability=all",
            "--private-network",
            "--console=read-only",  # the console goes to console.log, for boot errors
            "--resolv-conf=off",
            "--link-journal=no",
            "--timezone=off",
        ]
        if self.mode == "userns":
            argv += [
                "--private-users=identity",
                "--private-users-ownership=off",
                "--bind=/dev/fuse",
            ]
        else:
            argv.append("--bind=/dev/loop-control")
            argv += [f"--bind={node}" for node in ensure_loop_devices()]
        return argv

    def _wait_for_pid1(self, deadline: float) -> int:
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise HostError(
                    f"systemd-nspawn ended (exit {self.process.returncode}) during boot:\n"
                    + self.console_tail()
                )
            pid = container_pid1(self.groups)
            if pid is not None:
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return pid
            time.sleep(0.02)
        raise HostError("the container's systemd did not start in time:\n" + self.console_tail())

    def _wait_for_seed(self, deadline: float) -> None:
        last = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise HostError("the container died during boot:\n" + self.console_tail())
            remaining = max(0.2, deadline - time.monotonic())
            done = self.run("snap wait system seed.loaded", timeout=remaining)
            if done.returncode == 0:
                return
            last = done.stdout.strip()
            time.sleep(0.1)
        raise HostError(
            "snapd did not reach seed.loaded in time"
            + (f" (last answer: {last})" if last else "")
            + ":\n"
            + self.console_tail()
        )

    def alive(self) -> bool:
        return (
            self.pid1 is not None
            and self.process is not None
            and self.process.poll() is None
            and same_process(self.pid1, self._recorded_start("pid1"))
        )

    def poweroff(self, timeout: float) -> None:
        """Shut the container down cleanly (used once, after the image's first boot)."""
        if not self.alive() or self.process is None:
            return
        subprocess.run(
            [*self.enter_argv(), "systemctl", "--no-block", "poweroff"],
            capture_output=True,
            check=False,
            timeout=30,
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)

    def power_cycle(self, timeout: float = BOOT_TIMEOUT) -> None:
        """A power cut: SIGKILL PID 1 (every process of the container dies with it), then boot
        the same tree on the SAME overlay (its upper layer survives in the supervisor's
        namespace) and wait for snapd's seed. The kernel's page cache is shared with the
        controller, so writes made before the cut are not lost: a cut tests snapd's restart
        from what it had written, not torn writes."""
        if not self.alive() or self.pid1 is None or not self.overlay:
            raise HostError("power cycle: the container is not running on an overlay")
        old = self.pid1
        (self.state / REBOOT_MARK).write_text("")
        with contextlib.suppress(ProcessLookupError):
            os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while same_process(old, self._recorded_start("pid1")) and time.monotonic() < deadline:
            time.sleep(0.02)
        new = None
        while new is None and time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise HostError("the supervisor ended at the power cut:\n" + self.console_tail())
            found = container_pid1(self.groups)
            with contextlib.suppress(OSError):
                if (
                    found not in (None, old)
                    and Path(f"/proc/{found}/comm").read_text().strip() == "systemd"
                ):
                    new = found
            time.sleep(0.02)
        if new is None:
            raise HostError(
                "the container did not boot after the power cut:\n" + self.console_tail()
            )
        self.pid1 = new
        self._record("pid1", f"{new} {process_start_time(new)}")
        self._wait_for_seed(deadline)

    def kill(self) -> None:
        """SIGKILL the container and remove every trace of it; safe to call twice."""
        if self.pid1 is not None and same_process(self.pid1, self._recorded_start("pid1")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                # No PID 1 yet, or nspawn lingers: the supervisor's trap kills the cgroup.
                self.process.terminate()
                try:
                    self.process.wait(timeout=KILL_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=KILL_TIMEOUT)
        if self.state.exists():
            remove_record(self.state)
        _LIVE.discard(self)
        self.pid1 = None

    # -- commands ----------------------------------------------------------------------------
    def enter_argv(self) -> list[str]:
        """argv prefix that runs a command inside the container, pinned to its CPU."""
        if self.pid1 is None:
            raise HostError("the container is not running")
        return [
            "taskset",
            "-c",
            str(self.cpu),
            "nsenter",
            "--target",
            str(self.pid1),
            "--all",
            "--root",
            "--wd",
            "env",
            "-i",
            "TERM=dumb",
            f"PATH={CONTAINER_PATH}",
            "HOME=/root",
            "LANG=C.UTF-8",
        ]

    def run(self, script: str, timeout: float) -> CommandOutput:
        """Run a bash script inside the container (for preparation, not for the tests)."""
        argv = [*self.enter_argv(), "bash", "--noprofile", "--norc", "-c", script]
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            output = exc.stdout or b""
            return CommandOutput(124, output.decode(errors="replace") + "\n[timed out]")
        return CommandOutput(done.returncode, done.stdout.decode(errors="replace"))

    def put_file(self, local: Path, remote: str) -> None:
        """Copy ``local`` to the absolute path ``remote`` inside the container (parents made).

        The copy is done by a process inside the container so that the container's own
        symlinks (/var/run -> /run, ...) resolve there and never onto the controller.
        """
        if not remote.startswith("/"):
            raise ValueError(f"remote path must be absolute: {remote!r}")
        mode = Path(local).stat().st_mode & 0o7777
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" -- "$1"'
        argv = [*self.enter_argv(), "sh", "-c", script, "put_file", remote, f"{mode:o}"]
        with open(local, "rb") as source:
            done = subprocess.run(argv, stdin=source, capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            raise HostError(
                f"cannot put {local} at {remote}: {done.stderr.decode(errors='replace').strip()}"
            )

    # -- records -----------------------------------------------------------------------------
    def _record(self, name: str, value: str) -> None:
        (self.state / name).write_text(value + "\n")

    def _recorded_start(self, name: str) -> int | None:
        try:
            return int((self.state / name).read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return None

    def console_tail(self, lines: int = 25) -> str:
        try:
            text = (self.state / "console.log").read_bytes().decode(errors="replace")
        except OSError:
            return "(no console output)"
        text = ANSI_ESCAPE.sub("", text.replace("\r", ""))
        return "\n".join(text.splitlines()[-lines:]) or "(no console output)"


def first_boot(rootfs: Path, mode: str, scripts: Sequence[str], cpu: int | None) -> list[str]:
    """Boot ``rootfs`` itself (no overlay) once, run ``scripts`` in order, power it off.

    This is the golden recipe's first boot (snapconform.images.golden.FirstBoot), given to it
    by NspawnHost: the image room never imports a backend.
    """
    container = NspawnContainer(rootfs, mode=mode, cpu=cpu, overlay=False)
    outputs = []
    try:
        container.boot(timeout=FIRST_BOOT_TIMEOUT)
        for script in scripts:
            done = container.run(script, timeout=FIRST_BOOT_SCRIPT_TIMEOUT)
            if done.returncode != 0:
                raise HostError(
                    f"first boot of {rootfs}: a step failed (exit {done.returncode}):\n"
                    + done.stdout
                )
            outputs.append(done.stdout)
        container.poweroff(timeout=POWEROFF_TIMEOUT)
    finally:
        container.kill()
    return outputs
