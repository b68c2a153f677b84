"""``qemu://RELEASE``: Debian RELEASE's snapd in a full VM (its own, stock Debian kernel).

The image (snapconform.images.vm_image) is the golden recipe's Debian tree plus the
distribution's kernel, a small initrd and qemu-guest-agent, made into an ext4 disk with
``mke2fs -d``. The VM has no network (``-nic none``) and AppArmor off (``lsm=`` without it).
The seeded VM is saved once (qemu_state: cold boot, seed, QMP migration to a file) and every
start() and reset() resumes from it (qemu_vm: ``-incoming``, ``cont``, the guest's clock set):
about 2-10 s, against 1-2 minutes for a cold boot under TCG. Each resume runs on a fresh qcow2
overlay, so a reset never goes through snapd.

- The framed shell is root's autologin shell on the virtio console ``hvc0``, reached through
  qemu_console.py (a raw-mode bridge to the console's unix socket).
- Files and setup commands go through the guest agent (``guest-file-*``, ``guest-exec``).
- ``forward_ssh()`` hot-plugs a NIC whose only way in is a port on this machine's 127.0.0.1
  (``-netdev user,restrict=on,hostfwd=...``): the guest still reaches nothing; ssh:// is tested
  through it.

KVM is used where /dev/kvm is a vendor KVM; elsewhere (as on these machines, whose /dev/kvm is
KVM's PVM flavour, which cannot boot a stock kernel) the VM runs under TCG, with a warning:
operations then take 15-35 s each. describe() says which and why.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from typing import ClassVar

from snapconform.hosts import qemu_console
from snapconform.hosts.base import Host, HostError, HostSpec, HostUnavailable
from snapconform.hosts.cleanup import sweep
from snapconform.hosts.nspawn_container import CommandOutput
from snapconform.hosts.qemu_monitor import MonitorError
from snapconform.hosts.qemu_state import SeededState, ensure_seeded_state
from snapconform.hosts.qemu_vm import (
    QEMU_TOOLS,
    TCG_WARNING,
    Accelerator,
    MachineSpec,
    Vm,
    choose_accelerator,
)
from snapconform.images import releases, vm_image
from snapconform.images.cache import progress
from snapconform.images.snappack import missing_tools

RELEASE_NAME = re.compile(r"[a-z][a-z0-9.-]*")
PUT_TIMEOUT = 120.0


def unavailable_reason(url: str = "qemu://bookworm") -> str | None:
    """Why this machine cannot run qemu hosts right now (no side effects), or None."""
    if os.geteuid() != 0:
        return f"{url} needs root (the image build runs mmdebstrap; records live in /run)"
    missing = missing_tools({**QEMU_TOOLS, **vm_image.BUILD_TOOLS})
    if missing:
        return f"{url} needs " + ", ".join(
            f"{exe} (apt-get install {pkg})" for exe, pkg in sorted(missing.items())
        )
    return None


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class QemuHost(Host):
    """A VM of ``RELEASE`` under qemu, resumed from its saved seeded state at every reset."""

    QUERY_OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, spec: HostSpec, *, cache_dir: Path | None = None, **options: object) -> None:
        release = spec.hostname
        if not release:
            raise ValueError(
                f"host URL {spec.raw!r}: qemu:// needs a release, e.g. qemu://bookworm"
            )
        if spec.path not in ("", "/") or spec.user or spec.port:
            raise ValueError(f"host URL {spec.raw!r}: qemu:// takes only a release name")
        if not RELEASE_NAME.fullmatch(release):
            raise ValueError(f"host URL {spec.raw!r}: {release!r} is not a release name")
        if release not in releases.RELEASES:
            raise ValueError(
                f"host URL {spec.raw!r}: unknown release {release!r}; "
                f"known: {', '.join(releases.RELEASES)}"
            )
        if options:
            raise ValueError(f"{spec.raw}: unknown option(s) {', '.join(sorted(options))}")
        super().__init__(spec)
        self.release = release
        self.recipe = vm_image.VmImageRecipe(release)
        self.cache_dir = cache_dir
        self.image: vm_image.VmImage | None = None
        self.accelerator: Accelerator | None = None
        self.saved: SeededState | None = None
        self.vm: Vm | None = None
        self.last_resume_seconds: float | None = None

    @property
    def url(self) -> str:
        return self.spec.raw or f"qemu://{self.release}"

    # -- lifecycle ---------------------------------------------------------------------------
    def preflight(self) -> None:
        reason = unavailable_reason(self.url)
        if reason:
            raise HostUnavailable(reason)

    def machine(self) -> MachineSpec:
        assert self.image is not None and self.accelerator is not None
        return MachineSpec(
            kernel=self.image.kernel,
            initrd=self.image.initrd,
            command_line=self.image.command_line,
            accelerator=self.accelerator,
        )

    def start(self) -> None:
        if self.vm is not None:
            if self.vm.alive():
                return
            self.stop()  # it died: clear what it left before resuming anew
        self.preflight()
        for action in sweep():
            print(f"snapconform: cleanup of a killed run: {action}", file=sys.stderr)
        if self.image is None:
            self.image = vm_image.ensure_image(self.recipe, self.cache_dir)
        if self.accelerator is None:
            self.accelerator = choose_accelerator()
            if self.accelerator.name == "tcg":
                progress(
                    f"{self.url} runs under TCG emulation ({self.accelerator.reason}): "
                    + TCG_WARNING
                )
        if self.saved is None:
            self.saved = ensure_seeded_state(self.image, self.machine(), self.cache_dir)
        self._resume()

    def _resume(self) -> None:
        assert self.saved is not None
        vm = Vm(self.machine(), label="run")
        self.vm = vm
        try:
            self.last_resume_seconds = vm.resume(self.saved.disk, self.saved.state)
        except BaseException:
            vm.kill()
            self.vm = None
            raise

    def reset(self) -> None:
        """Back to the saved seeded VM: kill this one, resume the state on a fresh overlay."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.vm is not None:
            self.vm.kill()
            self.vm = None

    def alive(self) -> bool:
        return self.vm is not None and self.vm.alive()

    def _running(self) -> Vm:
        if self.vm is None or not self.vm.alive():
            raise HostError(f"{self.url} is not running")
        return self.vm

    # -- shell and files ---------------------------------------------------------------------
    def shell_argv(self) -> list[str]:
        bridge = Path(qemu_console.__file__)
        return [sys.executable, "-I", str(bridge), str(self._running().shell_socket)]

    def run(self, script: str, timeout: float = 60.0) -> CommandOutput:
        """Run a bash script in the VM through the guest agent (setup and tests, no terminal)."""
        try:
            done = self._running().guest().exec(["/bin/bash", "-c", script], timeout)
        except MonitorError as exc:
            raise HostError(f"{self.url}: {exc}") from exc
        return CommandOutput(done.exit_code, done.output)

    def put_file(self, local: Path, remote: str) -> None:
        if not remote.startswith("/"):
            raise ValueError(f"remote path must be absolute: {remote!r}")
        mode = Path(local).stat().st_mode & 0o7777
        partial = f"{remote}.sc-partial"
        agent = self._running().guest()
        try:
            made = agent.exec(["/bin/mkdir", "-p", "--", os.path.dirname(remote)], PUT_TIMEOUT)
            if made.exit_code == 0:
                agent.write_file(partial, Path(local).read_bytes(), PUT_TIMEOUT)
                made = agent.exec(
                    ["/bin/sh", "-c", 'chmod "$1" -- "$2" && mv -f -- "$2" "$3"', "put_file",
                     f"{mode:o}", partial, remote],
                    PUT_TIMEOUT,
                )  # fmt: skip
        except MonitorError as exc:
            raise HostError(f"{self.url}: cannot write {remote}: {exc}") from exc
        if made.exit_code != 0:
            raise HostError(f"{self.url}: cannot write {remote}: {made.output.strip()}")

    def forward_ssh(self, port: int | None = None) -> int:
        """Make the guest's port 22 reachable at 127.0.0.1:PORT here (only there); returns
        PORT. The NIC goes with the next reset. An sshd must still be started in the guest."""
        vm = self._running()
        if vm.forwarded_ssh_port is None:
            vm.forward_ssh(port or free_loopback_port())
        assert vm.forwarded_ssh_port is not None
        return vm.forwarded_ssh_port

    # -- facts -------------------------------------------------------------------------------
    @property
    def offline(self) -> bool:
        return True

    @property
    def vm_pid(self) -> int | None:
        """qemu's PID (None when stopped)."""
        return self.vm.pid if self.vm is not None else None

    def console_tail(self, lines: int = 25) -> str:
        return self.vm.console_tail(lines) if self.vm is not None else "(not running)"

    def describe(self) -> dict[str, str]:
        facts = {
            "url": self.url,
            "kind": "qemu",
            "release": self.release,
            "snapd_build": "archive",
            "network": "none (-nic none)",
            "apparmor": "off (lsm= without apparmor)",
            "reset": "resume the saved seeded VM (-incoming) on a fresh qcow2 overlay",
        }
        if self.accelerator is not None:
            facts["accelerator"] = f"{self.accelerator.name}: {self.accelerator.reason}"
        if self.image is not None:
            facts["image"] = self.image.recipe.key
            facts["kernel"] = self.image.kernel_version
            facts["snapd"] = self.image.snapd_version
        if self.saved is not None:
            facts["cold_boot_seconds"] = f"{self.saved.cold_boot_seconds:.1f}"
            facts["seed_seconds"] = f"{self.saved.seed_seconds:.1f}"
        if self.last_resume_seconds is not None:
            facts["resume_seconds"] = f"{self.last_resume_seconds:.1f}"
        if self.vm is not None and self.vm.forwarded_ssh_port is not None:
            facts["network"] = f"ssh only: 127.0.0.1:{self.vm.forwarded_ssh_port} -> guest:22"
        return facts


BACKEND = QemuHost
