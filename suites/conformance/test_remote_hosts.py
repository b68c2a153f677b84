"""ssh:// and local:// against REAL snapd: the snapd of one nspawn container, reached two ways.

- ssh://: an sshd started inside the container (Debian's own sshd_config and PAM), listening on
  the container's loopback only, with a host key and a client key made here. The container's
  network is private, so the controller's ssh client goes through a ProxyCommand that runs the
  container's busybox nc in the container's network namespace.
- local://: snapconform itself, copied into the container and run there as root, where
  /run/snapd.socket is local.
- ssh:// into a VM (run with --host qemu://RELEASE): the qemu:// image's sshd, reached through
  a NIC hot-plugged with only a 127.0.0.1 port forward (the guest reaches nothing).

Every step is checked against the model as on nspawn://. The sshd (a transient unit, with every
session it forked) and the container are stopped when the module is done.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import snapconform
from snapconform.conformance.operations import (
    InstallFile,
    Operation,
    Revert,
    RunApp,
    fixture_spec,
)
from snapconform.conformance.session import ConformanceRun, HostSession
from snapconform.harness.fixtures import build_snap
from snapconform.hosts.base import HostUnavailable, open_host
from snapconform.hosts.nspawn import NspawnHost, unavailable_reason
from snapconform.hosts.qemu import QemuHost
from snapconform.hosts.qemu import unavailable_reason as qemu_unavailable_reason
from snapconform.hosts.ssh import SshHost
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance

SSHD_UNIT = "sc-sshd"  # the transient unit the sshd runs in, inside the container
HOST_KEY = "/etc/ssh/sc_host_key"
INSIDE = "/root/snapconform"  # where the package is unpacked inside the container


@dataclass(frozen=True)
class Sshd:
    url: str
    options: dict[str, Any]

    def host(self) -> SshHost:
        host = open_host(self.url, **self.options)
        assert isinstance(host, SshHost)
        return host


def run_inside(container: NspawnHost, script: str, timeout: float = 60.0) -> str:
    done = container.run(script, timeout=timeout)
    assert done.returncode == 0, f"{script!r} exited {done.returncode}:\n{done.stdout}"
    return done.stdout


def snap_names(container: NspawnHost) -> list[str]:
    listing = run_inside(container, "snap list --unicode=never --color=never")
    return [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]


def tcp_listeners(container: NspawnHost, port: int) -> list[str]:
    """Addresses listening on ``port`` in the container, as /proc/net/tcp{,6} shows them."""
    text = run_inside(container, "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null || true")
    rows = [line.split() for line in text.splitlines()]
    return [row[1] for row in rows if row[3:4] == ["0A"] and row[1].endswith(f":{port:04X}")]


@pytest.fixture(scope="module")
def container(configured_host_url: str) -> Iterator[NspawnHost]:
    url = configured_host_url
    if not url.startswith("nspawn://"):
        pytest.skip(
            f"reaches an nspawn container's snapd over ssh:// and local://; this run drives {url}"
        )
    reason = unavailable_reason(url)
    if reason:
        pytest.skip(reason)
    host = open_host(url)
    assert isinstance(host, NspawnHost)
    try:
        host.start()
    except HostUnavailable as exc:
        pytest.skip(f"no container: {exc}")
    try:
        yield host
    finally:
        host.stop()


def make_ssh_keys(tmp_path_factory: pytest.TempPathFactory, known_as: str) -> Path:
    """A client key, a host key, authorized_keys, and a known_hosts accepting only that host
    key for ``known_as`` (the client must reach the sshd made here)."""
    missing = [tool for tool in ("ssh", "ssh-keygen") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed here (apt-get install openssh-client)")
    keys = tmp_path_factory.mktemp("ssh-keys")
    keys.chmod(0o700)
    for name in ("client_key", "host_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True
        )
    (keys / "known_hosts").write_text(f"{known_as} " + (keys / "host_key.pub").read_text())
    authorized = keys / "authorized_keys"
    authorized.write_text((keys / "client_key.pub").read_text())
    authorized.chmod(0o600)
    return keys


@pytest.fixture(scope="module")
def sshd(container: NspawnHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    keys = make_ssh_keys(tmp_path_factory, "127.0.0.1")
    authorized = keys / "authorized_keys"
    container.put_file(authorized, "/root/.ssh/authorized_keys")
    container.put_file(keys / "host_key", HOST_KEY)
    if tcp_listeners(container, 22):
        pytest.fail("something already listens on port 22 in the container (ssh.service masked?)")
    sshd_argv = [
        "/usr/sbin/sshd", "-D", "-e",
        "-o", "ListenAddress=127.0.0.1",
        "-o", "Port=22",
        "-o", f"HostKey={HOST_KEY}",
        "-o", "PasswordAuthentication=no",
    ]  # fmt: skip
    # A transient unit, so that stopping it stops the sshd and every session it forked.
    run_inside(
        container,
        "chmod 700 /root/.ssh && mkdir -p /run/sshd && "
        f"systemd-run --quiet --unit={SSHD_UNIT} {shlex.join(sshd_argv)}",
    )
    try:
        deadline = time.monotonic() + 10
        while not tcp_listeners(container, 22):
            if time.monotonic() > deadline:
                journal = container.run(f"journalctl -u {SSHD_UNIT} --no-pager", timeout=30)
                pytest.fail(f"the sshd in the container did not listen:\n{journal.stdout}")
            time.sleep(0.05)
        options = {
            "identity": keys / "client_key",
            "known_hosts": keys / "known_hosts",
            "proxy_command": container.loopback_proxy_command(22),
        }
        yield Sshd("ssh://root@127.0.0.1:22", options)
    finally:
        if container.alive():
            container.run(f"systemctl stop {SSHD_UNIT}", timeout=30)


def test_sshd_listens_on_the_container_loopback_only(sshd: Sshd, container: NspawnHost) -> None:
    assert tcp_listeners(container, 22) == ["0100007F:0016"]


def test_hosts_check_over_ssh(sshd: Sshd, container: NspawnHost) -> None:
    options = sshd.options
    result = subprocess.run(
        [
            *(sys.executable, "-m", "snapconform", "hosts", "check", sshd.url),
            *("--identity", str(options["identity"])),
            *("--known-hosts", str(options["known_hosts"])),
            *("--proxy-command", options["proxy_command"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert container.image is not None
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["snapd", container.image.snapd_version]
    assert "kind: ssh" in lines and "target: root@127.0.0.1" in lines


def epoch_scenario(name: str) -> list[Operation]:
    """Install x1, write data, refresh to a file with epoch 1*, write again, revert."""
    return [
        InstallFile(SnapFile(name, "1.0")),
        RunApp(name, "v1"),
        InstallFile(SnapFile(name, "2.0", epoch_yaml="1*")),
        RunApp(name, "v2"),
        Revert(name),
    ]


def test_conformance_run_over_ssh(sshd: Sshd, names, test_artifacts: Path) -> None:
    session = HostSession(sshd.url, artifacts=test_artifacts, host_options=sshd.options)
    try:
        session.start()
        assert session.shell is not None
        assert session.shell.run('echo "$SSH_CONNECTION"').output.startswith("127.0.0.1 ")
        run = ConformanceRun(session)
        name = names.fresh()
        records = run.run(epoch_scenario(name))
        run.save_history(test_artifacts / "history.json")
    finally:
        session.stop()
    assert [record.verdict for record in records] == ["pass"] * len(records)
    assert run.last_observation is not None
    after = run.last_observation.instance(name)
    assert after.current == "x1" and after.sequence == ("x1", "x2")
    assert after.revision("x1").data == frozenset({"v1"})


def test_reset_over_ssh_removes_only_suite_snaps(sshd: Sshd, container: NspawnHost, names) -> None:
    other = f"keep-{secrets.token_hex(3)}"  # not a suite name: reset must leave it alone
    suite = names.fresh()
    for name in (other, suite):
        snap = build_snap(fixture_spec(SnapFile(name, "1.0")))
        container.put_file(snap, f"/root/{snap.name}")
        run_inside(container, f"snap install --dangerous {shlex.quote('/root/' + snap.name)}")
    before = snap_names(container)
    assert {other, suite} <= set(before)

    sshd.host().reset()

    after = snap_names(container)
    assert not [name for name in after if name.startswith("sc-")]
    assert after == [name for name in before if not name.startswith("sc-")]
    assert {other, "core", "snapd"} <= set(after)
    run_inside(container, f"snap remove --purge {shlex.quote(other)}", timeout=120)


def history_of(operations: list[Operation]) -> dict[str, Any]:
    """A minimal history.json (what `replay` reads) for these operations."""
    steps = [
        {"step": index, "operation": operation.to_json(), "verdict": "pass"}
        for index, operation in enumerate(operations, start=1)
    ]
    return {"steps": steps}


def test_local_host_inside_the_container(container: NspawnHost, names, tmp_path: Path) -> None:
    # The package as imported here (a checkout or an installed wheel), without caches.
    package = Path(snapconform.__file__).parent
    archive = tmp_path / "snapconform.tar"
    with tarfile.open(archive, "w", dereference=True) as tar:  # templates is a symlink
        tar.add(package, arcname="snapconform", filter=_no_cache)
    container.put_file(archive, f"{INSIDE}/snapconform.tar")
    history = tmp_path / "history.json"
    history.write_text(json.dumps(history_of(epoch_scenario(names.fresh()))))
    container.put_file(history, f"{INSIDE}/history.json")
    run_inside(container, f"tar -C {INSIDE} -xf {INSIDE}/snapconform.tar")
    python = f"cd {INSIDE} && PYTHONPATH={INSIDE} python3 -m snapconform"

    checked = container.run(f"{python} hosts check local://", timeout=120)
    assert checked.returncode == 0, checked.stdout
    assert "kind: local" in checked.stdout.splitlines()
    assert container.image is not None
    assert f"snapd: {container.image.snapd_version}" in checked.stdout.splitlines()

    replayed = container.run(
        f"{python} replay {INSIDE}/history.json --host local:// --artifacts {INSIDE}/artifacts",
        timeout=300,
    )
    assert replayed.returncode == 0, replayed.stdout
    assert replayed.stdout.splitlines()[-1] == "5 passed, 0 failed"


def _no_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name or info.name.endswith(".pyc") else info


# -- ssh:// into a VM: the qemu:// image, its port 22 forwarded to this machine's loopback ----


@pytest.fixture(scope="module")
def vm_sshd(
    configured_host_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sshd, QemuHost]]:
    """A qemu:// VM with a NIC hot-plugged whose only way in is 127.0.0.1:PORT here (the guest
    reaches nothing), and an sshd in the guest behind it, with keys made here."""
    url = configured_host_url
    if not url.startswith("qemu://"):
        pytest.skip(
            f"reaches a VM's snapd over ssh:// (run with --host qemu://bookworm); this run "
            f"drives {url}"
        )
    reason = qemu_unavailable_reason(url)
    if reason:
        pytest.skip(reason)
    vm = open_host(url)
    assert isinstance(vm, QemuHost)
    vm.start()
    try:
        port = vm.forward_ssh()
        keys = make_ssh_keys(tmp_path_factory, f"[127.0.0.1]:{port}")
        vm.put_file(keys / "authorized_keys", "/root/.ssh/authorized_keys")
        vm.put_file(keys / "host_key", HOST_KEY)
        sshd_argv = [
            "/usr/sbin/sshd", "-D", "-e",
            "-o", "ListenAddress=10.0.2.15",  # the forwarded NIC only
            "-o", f"HostKey={HOST_KEY}",
            "-o", "PasswordAuthentication=no",
        ]  # fmt: skip
        run_inside(
            vm,  # type: ignore[arg-type]  # run() answers as NspawnHost's does
            "chmod 700 /root/.ssh && mkdir -p /run/sshd && "
            f"systemd-run --quiet --unit={SSHD_UNIT} {shlex.join(sshd_argv)}",
            timeout=120,
        )
        deadline = time.monotonic() + 120
        while not tcp_listeners(vm, 22):  # type: ignore[arg-type]
            if time.monotonic() > deadline:
                pytest.fail(f"the sshd in the VM did not listen:\n{vm.console_tail()}")
            time.sleep(0.5)
        options = {"identity": keys / "client_key", "known_hosts": keys / "known_hosts"}
        yield Sshd(f"ssh://root@127.0.0.1:{port}", options), vm
    finally:
        vm.stop()


def test_conformance_run_over_ssh_into_a_vm(
    vm_sshd: tuple[Sshd, QemuHost], names, test_artifacts: Path
) -> None:
    sshd, vm = vm_sshd
    assert tcp_listeners(vm, 22) == ["0F02000A:0016"]  # 10.0.2.15, the forwarded NIC only
    session = HostSession(sshd.url, artifacts=test_artifacts, host_options=sshd.options)
    try:
        session.start()
        assert session.shell is not None
        assert session.shell.run("uname -r").output == (vm.image.kernel_version if vm.image else "")
        assert session.shell.run('echo "$SSH_CONNECTION"').output.startswith("10.0.2.2 ")
        run = ConformanceRun(session)
        name = names.fresh()
        records = run.run(epoch_scenario(name))
        run.save_history(test_artifacts / "history.json")
    finally:
        session.stop()
    assert [record.verdict for record in records] == ["pass"] * len(records)
    assert run.last_observation is not None
    after = run.last_observation.instance(name)
    assert after.current == "x1" and after.sequence == ("x1", "x2")
