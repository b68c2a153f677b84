"""qemu:// against a real VM: resume of the saved seeded VM, the framed shell on its console,
files through the guest agent, a reset by resume that forgets everything, no network, a run
killed with SIGKILL, and (on a PVM /dev/kvm like these machines') the stock kernel that KVM
cannot boot.

A VM under TCG is slow (the first start builds the image and seeds the VM: ~5-7 min; each
resume 5-15 s, each snap operation 15-35 s), so these run only when the run drives a qemu host:
``tox -e conformance -- --host qemu://bookworm -k test_qemu`` (or ``suites/hosts/test_qemu.py``
directly). They skip otherwise, and where qemu cannot run, saying why. Each test prints what it
measured.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapconform.harness.shell import Shell
from snapconform.hosts import cleanup
from snapconform.hosts.base import open_host
from snapconform.hosts.nspawn_records import STATE_ROOT, same_process
from snapconform.hosts.qemu import QemuHost, unavailable_reason
from snapconform.hosts.qemu_vm import probe_kvm_boot

pytestmark = pytest.mark.conformance


@pytest.fixture(scope="module")
def vm_url(configured_host_url: str) -> str:
    if not configured_host_url.startswith("qemu://"):
        pytest.skip(
            "the VM tests run with --host qemu://RELEASE (minutes under TCG); "
            f"this run drives {configured_host_url}"
        )
    reason = unavailable_reason(configured_host_url)
    if reason:
        pytest.skip(reason)
    return configured_host_url


@pytest.fixture(scope="module")
def vm(vm_url: str) -> Iterator[QemuHost]:
    host = open_host(vm_url)
    assert isinstance(host, QemuHost)
    started = time.monotonic()
    host.start()
    print(f"\nstart: {time.monotonic() - started:.1f} s; {host.describe()}")
    try:
        yield host
    finally:
        host.stop()


def test_the_vm_runs_the_image_kernel_without_apparmor_or_network(vm: QemuHost) -> None:
    assert vm.image is not None and vm.accelerator is not None
    facts = vm.describe()
    assert facts["accelerator"].startswith(vm.accelerator.name + ": ")
    with Shell(vm) as shell:
        assert shell.run("uname -r").output == vm.image.kernel_version
        command_line = shell.run("cat /proc/cmdline").output.split()
        assert "lsm=lockdown,capability,landlock,yama,bpf" in command_line
        assert (
            shell.run("cat /sys/kernel/security/lsm").output
            == "lockdown,capability,landlock,yama,bpf"
        )
        assert shell.run("ls /sys/class/net").output.split() == ["lo"]  # -nic none
        assert shell.run("tty").exit_code != 0  # commands see a pipe, not the console
        version = shell.run("snap version", timeout=120)
        assert version.exit_code == 0 and vm.image.snapd_version in version.output
        listed = shell.run("snap list --unicode=never --color=never", timeout=120).output
        assert {line.split()[0] for line in listed.splitlines()[1:]} == {"core", "snapd"}


def test_files_go_in_through_the_guest_agent(vm: QemuHost, tmp_path: Path) -> None:
    local = tmp_path / "payload"
    data = bytes(range(256)) * 600  # binary, and more than one guest-file-write chunk
    local.write_bytes(data)
    local.chmod(0o750)
    started = time.monotonic()
    vm.put_file(local, "/var/tmp/scq/deep/payload")
    print(f"\nput_file of {len(data)} bytes: {time.monotonic() - started:.2f} s")
    done = vm.run("sha256sum /var/tmp/scq/deep/payload; stat -c %a /var/tmp/scq/deep/payload")
    assert done.returncode == 0
    digest, _name, mode = done.stdout.split()
    assert digest == hashlib.sha256(data).hexdigest() and mode == "750"
    assert vm.run("ls /var/tmp/scq/deep").stdout.split() == ["payload"]  # no partial file left


def test_a_shell_closed_and_opened_again_gets_a_fresh_login(vm: QemuHost) -> None:
    with Shell(vm) as first:
        first.run("export SCQ_LEFT=1")
        login = first.run("echo $$").output
    started = time.monotonic()
    with Shell(vm) as second:
        print(f"\nsecond shell after exit: {time.monotonic() - started:.1f} s")
        assert second.run("echo ${SCQ_LEFT:-unset}").output == "unset"
        assert second.run("echo $$").output != login


def test_reset_resumes_the_saved_vm_and_forgets_changes(vm: QemuHost) -> None:
    with Shell(vm) as shell:
        shell.run_checked("touch /root/scq-mark && snap set system refresh.retain=4", timeout=120)
    pid_before = vm.vm_pid
    started = time.monotonic()
    vm.reset()
    took = time.monotonic() - started
    print(f"\nreset (kill + resume): {took:.1f} s, resume {vm.describe()['resume_seconds']} s")
    assert vm.vm_pid != pid_before and vm.alive()
    with Shell(vm) as shell:
        assert shell.run("test -e /root/scq-mark").exit_code == 1
        retain = shell.run("snap get system refresh.retain", timeout=120)
        assert retain.exit_code != 0 or retain.output.strip() != "4"
        # The clock was set at resume: the guest does not live at the time of the save.
        guest_now = float(shell.run("date +%s").output)
        assert abs(guest_now - time.time()) < 60


CONTROLLER = """
import sys, time
from snapconform.hosts.base import open_host
host = open_host(sys.argv[1])
host.start()
print(host.vm.record, host.vm_pid, flush=True)
time.sleep(900)
"""


def test_a_killed_run_leaves_no_vm(vm_url: str, vm: QemuHost) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, vm_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        pytest.fail(
            "the controller did not start a VM: "
            + (process.stderr.read() if process.stderr else "")
        )
    record_text, pid_text = line.split()
    record, qemu = Path(record_text), int(pid_text)
    start = int(Path(f"/proc/{qemu}/stat").read_text().rsplit(")", 1)[1].split()[19])
    assert record.parent == STATE_ROOT and (record / "supervisor").is_file()
    assert any(str(qemu) in entry for entry in cleanup.leftovers(process.pid)["processes"])
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while same_process(qemu, start) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not same_process(qemu, start), "qemu outlived the run that started it"
    assert record.exists()  # SIGKILL: the record (overlay, sockets) is left for the sweep
    actions = cleanup.sweep()
    assert f"removed {record}" in actions and not record.exists()
    assert vm.alive(), "the sweep must leave a live run's VM alone"
    assert cleanup.leftovers(process.pid) == {key: [] for key in cleanup.leftovers(process.pid)}


def test_pvm_kvm_cannot_boot_the_stock_kernel(vm: QemuHost) -> None:
    if not Path("/sys/module/kvm_pvm").is_dir() or Path("/sys/module/kvm_intel").is_dir():
        pytest.skip("no PVM-flavoured /dev/kvm here")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm cannot be opened")
    assert vm.image is not None and vm.accelerator is not None
    assert vm.accelerator.name == "tcg" and "PVM" in vm.accelerator.reason
    assert not probe_kvm_boot(vm.image.kernel, timeout=20), (
        "the stock kernel printed its banner under PVM KVM: the TCG fallback may be needless"
    )
