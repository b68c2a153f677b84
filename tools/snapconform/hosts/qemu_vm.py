"""One qemu process running a VM image: its argv, its record, cold boot, save and resume.

The machine (``machine_argv``) is the same for a cold boot and for a resume, as loading a saved
state needs: an i440fx PC, no NIC at all (``-nic none``), the root disk on virtio-blk, the
virtio console ``hvc0`` (the framed shell, via qemu_console.py) and the guest agent's port on
virtio-serial, each served on a unix socket in the VM's record directory, and ttyS0 (the kernel
and systemd console) written to ``console.log`` there. The root disk is always a qcow2 overlay:
over the image's raw ext4 disk for the cold boot that seeds, over the seeded disk for every
resume, so neither is ever written after it was made.

Every VM keeps a record under /run/snapconform/OWNERPID-qemu-TOKEN, in the format of the nspawn
containers' records (``owner`` and ``supervisor``, each a PID and its start time; see
nspawn_records.py), so ``cleanup.sweep()`` stops the qemu of a killed run and removes its
record, overlay and sockets, and ``cleanup.leftovers()`` lists them; qemu is also started with a
parent-death signal, so it dies with the process that started it.

The accelerator: KVM where /dev/kvm is a vendor KVM (kvm_intel, kvm_amd) that opens; TCG
otherwise. This machine's /dev/kvm comes from ``kvm_pvm``, KVM's PVM flavour, which only runs
guest kernels built for PVM: a stock Debian kernel never gets past its decompressor there
(``probe_kvm_boot`` shows it), so that is detected and TCG used, with a warning.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from snapconform.hosts.base import HostError, HostUnavailable
from snapconform.hosts.nspawn_records import (
    STATE_ROOT,
    process_start_time,
    remove_record,
    same_process,
)
from snapconform.hosts.qemu_monitor import GuestAgent, MonitorError, Qmp

QEMU = "qemu-system-x86_64"
QEMU_TOOLS = {QEMU: "qemu-system-x86", "qemu-img": "qemu-utils", "setpriv": "util-linux"}
MEMORY_MB = 2048
CPUS = 2
QMP_TIMEOUT = 30.0
COLD_BOOT_TIMEOUT = 600.0  # to the guest agent answering, under TCG on a loaded machine
RESUME_TIMEOUT = 180.0
KILL_TIMEOUT = 15.0
ENV_ACCEL = "SNAPCONFORM_QEMU_ACCEL"  # "tcg" or "kvm": overrides the detection
VENDOR_KVM_MODULES = ("kvm_intel", "kvm_amd")
TCG_WARNING = "operations take 15-35 s each (an install with hooks up to ~50 s)"


@dataclass(frozen=True)
class Accelerator:
    name: str  # "kvm" or "tcg"
    reason: str  # why this one, for describe() and the warning

    @property
    def argv(self) -> list[str]:
        if self.name == "kvm":
            return ["-accel", "kvm", "-cpu", "host"]
        return ["-accel", "tcg,thread=multi", "-cpu", "max"]


def choose_accelerator(
    sys_module: Path = Path("/sys/module"), kvm: Path = Path("/dev/kvm")
) -> Accelerator:
    """KVM where it can boot a stock kernel, else TCG (never an error)."""
    forced = os.environ.get(ENV_ACCEL, "").strip().lower()
    if forced in ("tcg", "kvm"):
        return Accelerator(forced, f"{ENV_ACCEL}={forced}")
    if not kvm.exists():
        return Accelerator("tcg", f"no {kvm} on this machine")
    vendors = [name for name in VENDOR_KVM_MODULES if (sys_module / name).is_dir()]
    if not vendors:
        if (sys_module / "kvm_pvm").is_dir():
            return Accelerator(
                "tcg",
                "/dev/kvm is KVM's PVM flavour (kvm_pvm), which cannot boot a stock guest kernel",
            )
        return Accelerator("tcg", "/dev/kvm has no kvm_intel or kvm_amd behind it")
    try:
        os.close(os.open(kvm, os.O_RDWR))
    except OSError as exc:
        return Accelerator("tcg", f"cannot open {kvm}: {exc.strerror}")
    return Accelerator("kvm", f"{kvm} ({vendors[0]})")


def probe_kvm_boot(kernel: Path, timeout: float = 20.0) -> bool:
    """Whether ``kernel`` gets as far as printing its banner under ``-accel kvm`` (no disk)."""
    with tempfile.TemporaryDirectory(prefix="snapconform-kvm-probe-") as scratch:
        log = Path(scratch) / "serial.log"
        argv = [
            QEMU, "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults",
            "-display", "none", "-no-reboot", "-kernel", str(kernel),
            "-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1", "-serial", f"file:{log}",
        ]  # fmt: skip
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                with contextlib.suppress(OSError):
                    if b"Linux version" in log.read_bytes():
                        return True
                time.sleep(0.2)
            with contextlib.suppress(OSError):
                return b"Linux version" in log.read_bytes()
            return False
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=KILL_TIMEOUT)


@dataclass(frozen=True)
class MachineSpec:
    """What a VM boots; everything here must be equal between a save and its resume."""

    kernel: Path
    initrd: Path
    command_line: str
    accelerator: Accelerator
    memory_mb: int = MEMORY_MB
    cpus: int = CPUS

    @property
    def identity(self) -> dict[str, object]:
        """What a saved state depends on (hashed into its cache key)."""
        return {
            "accelerator": self.accelerator.argv,
            "memory_mb": self.memory_mb,
            "cpus": self.cpus,
            "command_line": self.command_line,
            "devices": DEVICE_LAYOUT,
        }


DEVICE_LAYOUT = "pc/virtio-blk/virtio-serial(hvc0,qga)/rng/ttyS0-file/no-nic-v1"


def machine_argv(spec: MachineSpec, disk: Path, record: Path) -> list[str]:
    """qemu's argv for ``spec`` with ``disk`` (qcow2) as root and sockets under ``record``."""
    return [
        QEMU,
        "-name", f"snapconform,process=scq-{record.name}",
        "-machine", "pc",
        *spec.accelerator.argv,
        "-smp", str(spec.cpus),
        "-m", str(spec.memory_mb),
        "-nodefaults", "-no-user-config", "-display", "none",
        "-no-reboot",  # a guest that panics or reboots ends qemu: a dead host, not a new boot
        "-nic", "none",  # no network; a loopback-only ssh forward is hot-plugged on demand
        "-kernel", str(spec.kernel),
        "-initrd", str(spec.initrd),
        "-append", spec.command_line,
        "-drive", f"file={disk},if=none,id=root,format=qcow2,cache=unsafe",
        "-device", "virtio-blk-pci,drive=root,id=rootdisk",
        "-object", "rng-random,filename=/dev/urandom,id=rng",
        "-device", "virtio-rng-pci,rng=rng,id=rngdev",
        "-device", "virtio-serial-pci,id=vserial",
        "-chardev", f"socket,id=shell,path={record / 'shell.sock'},server=on,wait=off",
        "-device", "virtconsole,chardev=shell,id=hvc0",
        "-chardev", f"socket,id=qga,path={record / 'qga.sock'},server=on,wait=off",
        "-device", "virtserialport,chardev=qga,id=qgaport,name=org.qemu.guest_agent.0",
        "-chardev", f"file,id=serial0,path={record / 'console.log'}",
        "-serial", "chardev:serial0",
        "-qmp", f"unix:{record / 'qmp.sock'},server=on,wait=off",
    ]  # fmt: skip


def overlay_argv(backing: Path, backing_format: str, overlay: Path) -> list[str]:
    return [
        "qemu-img", "create", "-q", "-f", "qcow2",
        "-b", str(backing), "-F", backing_format, str(overlay),
    ]  # fmt: skip


def qemu_version() -> str:
    try:
        done = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostUnavailable(f"{QEMU} does not run: {exc}") from None
    return done.stdout.splitlines()[0].strip() if done.stdout else "unknown"


_LIVE: set[Vm] = set()
_LOCK = threading.Lock()
_ATEXIT = False


def _stop_all() -> None:
    for vm in list(_LIVE):
        with contextlib.suppress(Exception):
            vm.kill()


class Vm:
    """One qemu process and its record directory."""

    def __init__(self, spec: MachineSpec, *, label: str = "vm") -> None:
        self.spec = spec
        self.record = STATE_ROOT / f"{os.getpid()}-qemu-{label}-{secrets.token_hex(3)}"
        self.process: subprocess.Popen[bytes] | None = None
        self.pid_start: int | None = None
        self.qmp: Qmp | None = None
        self.agent: GuestAgent | None = None
        self.forwarded_ssh_port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def launch(self, disk: Path, extra: list[str] | None = None) -> None:
        """Start qemu on ``disk`` (qcow2) with ``extra`` arguments (-S, -incoming ...)."""
        global _ATEXIT
        self.record.mkdir(parents=True, exist_ok=True)
        (self.record / "kind").write_text("qemu\n")
        (self.record / "owner").write_text(f"{os.getpid()} {process_start_time(os.getpid())}\n")
        argv = machine_argv(self.spec, disk, self.record) + (extra or [])
        (self.record / "argv").write_text(shlex.join(argv) + "\n")
        if threading.current_thread() is threading.main_thread():
            argv = ["setpriv", "--pdeathsig", "KILL", *argv]  # dies with this process
        with _LOCK:
            if not _ATEXIT:
                atexit.register(_stop_all)
                _ATEXIT = True
            _LIVE.add(self)
        log = open(self.record / "qemu.log", "wb")  # noqa: SIM115 (closed after Popen)
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        except OSError as exc:
            self.kill()
            raise HostUnavailable(f"cannot start {QEMU}: {exc}") from None
        finally:
            log.close()
        self.pid_start = process_start_time(self.process.pid)
        (self.record / "supervisor").write_text(f"{self.process.pid} {self.pid_start}\n")
        try:
            self.qmp = Qmp(self.record / "qmp.sock", timeout=QMP_TIMEOUT)
        except MonitorError as exc:
            detail = self.qemu_log_tail()
            self.kill()
            raise HostError(f"qemu did not start: {exc}\n{detail}") from None

    def connect_agent(self, timeout: float) -> GuestAgent:
        """The guest agent, once it answers (after a cold boot: once the guest is up)."""
        if self.agent is None:
            self.agent = GuestAgent(self.record / "qga.sock")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.agent.sync(timeout=min(30.0, max(deadline - time.monotonic(), 1.0)))
                return self.agent
            except MonitorError:
                if not self.alive():
                    raise HostError(f"the VM died while booting:\n{self.console_tail()}") from None
                if time.monotonic() > deadline:
                    raise HostError(
                        f"the VM's guest agent did not answer within {timeout:g} s; console:\n"
                        + self.console_tail()
                    ) from None

    def cold_boot(self, disk: Path, timeout: float = COLD_BOOT_TIMEOUT) -> float:
        """Boot ``disk`` from scratch; return the seconds until the guest agent answered."""
        started = time.monotonic()
        self.launch(disk)
        self.connect_agent(timeout)
        return time.monotonic() - started

    def resume(self, saved_disk: Path, state: Path, timeout: float = RESUME_TIMEOUT) -> float:
        """Load the saved ``state`` on a fresh overlay (in the record) over ``saved_disk``,
        `cont`, set the guest's clock; return the seconds until the guest agent answered."""
        started = time.monotonic()
        self.record.mkdir(parents=True, exist_ok=True)
        disk = self.record / "disk.qcow2"
        made = subprocess.run(
            overlay_argv(saved_disk, "qcow2", disk), capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            self.kill()
            raise HostError(f"qemu-img create failed: {made.stderr.strip()}")
        self.launch(disk, ["-S", "-incoming", "exec:cat " + shlex.quote(str(state))])
        assert self.qmp is not None
        try:
            self.qmp.wait_incoming(timeout)
            self.qmp.command("cont", QMP_TIMEOUT)
        except MonitorError as exc:
            detail = self.qemu_log_tail()
            self.kill()
            raise HostError(f"resuming the saved VM failed: {exc}\n{detail}") from None
        agent = self.connect_agent(timeout)
        done = agent.exec(["/bin/date", "-u", "-s", f"@{time.time():.3f}"], 30)
        if done.exit_code != 0:
            raise HostError(f"cannot set the guest's clock: {done.output.strip()}")
        return time.monotonic() - started

    def save(self, state: Path, timeout: float = 600.0) -> float:
        """Stop the VM and write its state to ``state``; return the seconds it took."""
        started = time.monotonic()
        assert self.qmp is not None
        if self.agent is not None:
            self.agent.close()  # no client on the agent's socket in the saved state
            self.agent = None
        self.qmp.save_state(state, timeout)
        return time.monotonic() - started

    def alive(self) -> bool:
        return (
            self.process is not None
            and self.process.poll() is None
            and same_process(self.process.pid, self.pid_start)
        )

    def kill(self) -> None:
        """SIGKILL qemu (ours: PID and start time) and remove the record; safe to call twice."""
        for channel in (self.agent, self.qmp):
            if channel is not None:
                channel.close()
        self.agent = self.qmp = None
        if self.process is not None:
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=KILL_TIMEOUT)
        if self.record.exists():
            remove_record(self.record)
        _LIVE.discard(self)

    # -- what the host backend uses ----------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def shell_socket(self) -> Path:
        return self.record / "shell.sock"

    def guest(self) -> GuestAgent:
        if self.agent is None:
            return self.connect_agent(60.0)
        return self.agent

    def forward_ssh(self, port: int) -> None:
        """Hot-plug a NIC whose only way in is 127.0.0.1:``port`` here -> the guest's port 22
        (``restrict=on``: the guest reaches nothing), and bring it up in the guest."""
        assert self.qmp is not None
        self.qmp.command(
            "netdev_add",
            QMP_TIMEOUT,
            type="user",
            id="sshnet",
            restrict=True,
            hostfwd=[{"str": f"tcp:127.0.0.1:{int(port)}-:22"}],
        )
        self.qmp.command(
            "device_add", QMP_TIMEOUT, driver="virtio-net-pci", netdev="sshnet", id="sshnic"
        )
        script = (
            "for i in $(seq 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.2; done; "
            "busybox ip addr add 10.0.2.15/24 dev eth0 && busybox ip link set eth0 up"
        )
        done = self.guest().exec(["/bin/sh", "-c", script], 120)
        if done.exit_code != 0:
            raise HostError(f"the forwarded NIC did not come up in the guest: {done.output}")
        self.forwarded_ssh_port = int(port)

    def console_tail(self, lines: int = 25) -> str:
        return _tail(self.record / "console.log", lines, "(no console output)")

    def qemu_log_tail(self, lines: int = 10) -> str:
        return _tail(self.record / "qemu.log", lines, "(qemu printed nothing)")


def _tail(path: Path, lines: int, empty: str) -> str:
    try:
        text = path.read_bytes().decode(errors="replace").replace("\r", "")
    except OSError:
        return empty
    return "\n".join(text.splitlines()[-lines:]) or empty
