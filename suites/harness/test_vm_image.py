"""qemu:// code that needs no VM: the image recipe, mke2fs's argv, the machine's argv (no NIC,
sockets in the record, equal for a save and its resume), the accelerator's choice (this
machine's PVM /dev/kvm means TCG), the saved state's key, and the console bridge's probe and
hand-over against a fake console.

The real VM is tested in suites/hosts/test_qemu.py (run with --host qemu://bookworm).
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from snapconform.hosts import qemu_console, qemu_state, qemu_vm
from snapconform.hosts.base import open_host
from snapconform.hosts.qemu import QemuHost
from snapconform.images import golden, lxd_image, vm_image

TCG = qemu_vm.Accelerator("tcg", "test")


# -- the image ------------------------------------------------------------------------------


def test_the_image_is_the_lxd_tree_with_a_kernel_and_the_guest_agent() -> None:
    recipe = vm_image.VmImageRecipe("bookworm")
    assert set(golden.BASE_PACKAGES) <= set(recipe.packages)
    assert {"linux-image-amd64", "qemu-guest-agent"} <= set(recipe.packages)
    files = vm_image.tweak_files()
    assert lxd_image.tweak_files().items() <= files.items()  # one recipe, extended
    assert files["etc/resolv.conf"] == ""
    assert files["etc/fstab"].split()[:3] == ["/dev/vda", "/", "ext4"]
    autologin = files["etc/systemd/system/serial-getty@.service.d/snapconform-autologin.conf"]
    assert "ExecStart=\n" in autologin and "--autologin root" in autologin
    assert files["etc/initramfs-tools/conf.d/snapconform"] == "MODULES=list\n"
    assert files["etc/initramfs-tools/modules"].split() == ["virtio_pci", "virtio_blk", "ext4"]
    links = vm_image.tweak_links()
    assert lxd_image.tweak_links().items() <= links.items()  # sshd and timers masked
    wanted = "etc/systemd/system/getty.target.wants/serial-getty@hvc0.service"
    assert links[wanted] == "/lib/systemd/system/serial-getty@.service"
    assert not [path for path in files if "freezer" in path or "udevd" in path]


def test_the_key_names_the_release_and_changes_with_the_recipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = vm_image.VmImageRecipe("bookworm").key
    assert key.startswith("vm-bookworm-") and len(key) == len("vm-bookworm-") + 12
    assert vm_image.VmImageRecipe("bookworm").key == key
    assert vm_image.VmImageRecipe("trixie").key.startswith("vm-trixie-")
    monkeypatch.setattr(vm_image, "DISK_SIZE", "8G")
    assert vm_image.VmImageRecipe("bookworm").key != key
    with pytest.raises(ValueError, match="unknown release"):
        vm_image.VmImageRecipe("buster")


def test_the_kernel_command_line_keeps_apparmor_out_without_apparmor_0() -> None:
    line = vm_image.KERNEL_COMMAND_LINE.split()
    assert "root=/dev/vda" in line and "console=ttyS0" in line
    assert "lsm=lockdown,capability,landlock,yama,bpf" in line
    assert not [word for word in line if word.startswith("apparmor")]


def test_mke2fs_makes_the_disk_from_the_tree_without_mounting(tmp_path: Path) -> None:
    argv = vm_image.mke2fs_argv(tmp_path / "tree", tmp_path / "root.img")
    assert argv[0] == "mke2fs" and argv[-1] == vm_image.DISK_SIZE
    assert argv[argv.index("-t") + 1] == "ext4"
    assert argv[argv.index("-d") + 1] == str(tmp_path / "tree")


def test_kernel_version_of_reads_the_one_kernel_in_boot(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    with pytest.raises(Exception, match="0 kernels"):
        vm_image.kernel_version_of(tmp_path)
    (tmp_path / "boot/vmlinuz-6.1.0-41-amd64").write_bytes(b"")
    (tmp_path / "boot/config-6.1.0-41-amd64").write_bytes(b"")
    assert vm_image.kernel_version_of(tmp_path) == "6.1.0-41-amd64"
    (tmp_path / "boot/vmlinuz-6.1.0-42-amd64").write_bytes(b"")
    with pytest.raises(Exception, match="2 kernels"):
        vm_image.kernel_version_of(tmp_path)


def test_the_seed_script_is_the_lxd_one() -> None:
    image = vm_image.VmImage(Path("/x"), vm_image.VmImageRecipe("bookworm"), "2.57.6", "6.1", 0)
    script = image.seed_script()
    assert script.splitlines()[1] == "snap wait system seed.loaded"
    assert "snap set system refresh.hold=" in script  # 2.57 has no --hold
    assert image.disk == Path("/x/root.img") and image.kernel == Path("/x/vmlinuz")


# -- the machine ----------------------------------------------------------------------------


def spec(accelerator: qemu_vm.Accelerator = TCG) -> qemu_vm.MachineSpec:
    return qemu_vm.MachineSpec(Path("/k"), Path("/i"), vm_image.KERNEL_COMMAND_LINE, accelerator)


def test_the_machine_has_no_network_and_its_sockets_in_the_record(tmp_path: Path) -> None:
    argv = qemu_vm.machine_argv(spec(), tmp_path / "disk.qcow2", tmp_path)
    assert argv[0] == "qemu-system-x86_64"
    assert argv[argv.index("-nic") + 1] == "none" and "-nodefaults" in argv
    assert "-no-reboot" in argv  # a rebooting guest is a dead host
    assert not [arg for arg in argv if "hostfwd" in arg or arg.startswith("user")]
    assert argv[argv.index("-append") + 1] == vm_image.KERNEL_COMMAND_LINE
    sockets = [arg for arg in argv if ".sock" in arg]
    assert len(sockets) == 3 and all(str(tmp_path) in arg for arg in sockets)
    assert "virtconsole,chardev=shell,id=hvc0" in argv
    assert "virtserialport,chardev=qga,id=qgaport,name=org.qemu.guest_agent.0" in argv
    assert argv[argv.index("-accel") + 1] == "tcg,thread=multi"


def test_a_resume_is_the_same_machine_as_the_save(tmp_path: Path) -> None:
    """Loading a migration needs the same devices: only the record's paths may differ."""
    first = qemu_vm.machine_argv(spec(), tmp_path / "rec-a/disk.qcow2", tmp_path / "rec-a")
    second = qemu_vm.machine_argv(spec(), tmp_path / "rec-b/disk.qcow2", tmp_path / "rec-b")
    assert [arg.replace("rec-a", "rec-b") for arg in first] == second


def test_the_saved_state_key_follows_the_machine_and_qemu() -> None:
    image = vm_image.VmImage(Path("/x"), vm_image.VmImageRecipe("bookworm"), "2.57.6", "6.1", 0)
    key = qemu_state.state_key(image, spec(), "QEMU emulator version 7.2.22")
    assert key.startswith(image.recipe.key + "-tcg-")
    assert qemu_state.state_key(image, spec(), "QEMU emulator version 8.0") != key
    kvm = qemu_vm.Accelerator("kvm", "test")
    assert qemu_state.state_key(image, spec(kvm), "QEMU emulator version 7.2.22").startswith(
        image.recipe.key + "-kvm-"
    )


def test_pvm_kvm_means_tcg_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(qemu_vm.ENV_ACCEL, raising=False)
    modules, device = tmp_path / "module", tmp_path / "kvm"
    (modules / "kvm").mkdir(parents=True)
    (modules / "kvm_pvm").mkdir()
    assert qemu_vm.choose_accelerator(modules, tmp_path / "none").reason.startswith("no ")
    device.write_bytes(b"")
    chosen = qemu_vm.choose_accelerator(modules, device)
    assert chosen.name == "tcg" and "PVM" in chosen.reason
    assert chosen.argv == ["-accel", "tcg,thread=multi", "-cpu", "max"]
    (modules / "kvm_intel").mkdir()
    assert qemu_vm.choose_accelerator(modules, device) == qemu_vm.Accelerator(
        "kvm", f"{device} (kvm_intel)"
    )
    monkeypatch.setenv(qemu_vm.ENV_ACCEL, "tcg")
    assert qemu_vm.choose_accelerator(modules, device).name == "tcg"


def test_this_machine_gets_an_accelerator_without_failing() -> None:
    chosen = qemu_vm.choose_accelerator()
    assert chosen.name in ("kvm", "tcg") and chosen.reason
    if Path("/sys/module/kvm_pvm").is_dir() and not Path("/sys/module/kvm_intel").is_dir():
        assert chosen.name == "tcg" or os.environ.get(qemu_vm.ENV_ACCEL) == "kvm"


def test_the_url_is_checked_and_options_refused() -> None:
    host = open_host("qemu://bookworm")
    assert isinstance(host, QemuHost) and host.offline and not host.alive()
    with pytest.raises(ValueError, match="unknown release"):
        open_host("qemu://buster")
    with pytest.raises(ValueError, match="unknown option"):
        open_host("qemu://bookworm", identity="/x")
    with pytest.raises(ValueError, match="unknown query key"):
        open_host("qemu://bookworm?snapd=testkeys")


# -- the console bridge ---------------------------------------------------------------------


def test_a_probe_never_holds_the_marker_it_prints() -> None:
    line = qemu_console.probe("abc123").decode()
    assert "scqabc123" not in line and line.endswith("scq abc123\n")


def fake_console(guest: socket.socket, booting_probes: int) -> None:
    """A guest shell that ignores the first probes (getty still logging in), then runs each
    printf probe line, then echoes what it is sent once the bridge has handed over."""
    buffer = b""
    while True:
        data = guest.recv(4096)
        if not data:
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            line = line.lstrip(b"\x15")
            if line.startswith(b"printf"):
                if booting_probes:
                    booting_probes -= 1
                    continue
                token = line.rsplit(b" ", 1)[1]
                guest.sendall(b"motd and a prompt\n# scq" + token + b"\n")
            else:
                guest.sendall(b"ran: " + line + b"\n")


def test_the_bridge_waits_for_a_shell_then_hands_over_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bridge, guest = socket.socketpair()
    worker = threading.Thread(target=fake_console, args=(guest, 1), daemon=True)
    worker.start()
    monkeypatch.setattr(qemu_console, "PROBE_INTERVAL", 0.3)
    try:
        rest = qemu_console.wait_for_shell(bridge, timeout=10)
        assert b"scq" not in rest  # nothing of the probes reaches the framed shell
        bridge.sendall(b"echo hi\n")
        assert bridge.recv(100) == b"ran: echo hi\n"
    finally:
        bridge.close()  # the fake guest then reads end of file and returns
        worker.join(timeout=5)
        guest.close()
