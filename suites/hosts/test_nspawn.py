"""The nspawn host against a real container running Debian's stock snapd.

Needs root and systemd-nspawn; skips (naming what is missing) otherwise. One container serves
the whole module. The release is bookworm unless SNAPCONFORM_TEST_NSPAWN_RELEASE names another
(trixie, sid). The first run on a machine builds the golden image (~30-60 s).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from snapconform.hosts.base import HostUnavailable, open_host
from snapconform.hosts.nspawn import NspawnHost, unavailable_reason
from snapconform.hosts.nspawn_records import cgroup_pids, loop_devices, same_process

RELEASE = os.environ.get("SNAPCONFORM_TEST_NSPAWN_RELEASE", "bookworm")


@pytest.fixture(scope="module")
def host() -> Iterator[NspawnHost]:
    reason = unavailable_reason(f"nspawn://{RELEASE}")
    if reason:
        pytest.skip(reason)
    made = open_host(f"nspawn://{RELEASE}")
    assert isinstance(made, NspawnHost)
    try:
        made.start()
    except HostUnavailable as exc:
        pytest.skip(str(exc))
    yield made
    made.stop()


def ok(host: NspawnHost, script: str) -> str:
    done = host.run(script, timeout=120)
    assert done.returncode == 0, done.stdout
    return done.stdout


def rest(host: NspawnHost, path: str) -> dict:
    text = ok(host, f"curl -sS --unix-socket /run/snapd.socket http://localhost{path}")
    return json.loads(text)


def test_snap_version_works_inside(host: NspawnHost) -> None:
    output = ok(host, "snap version")
    assert output.splitlines()[0].split()[0] == "snap"
    snapd_line = next(line for line in output.splitlines() if line.startswith("snapd"))
    assert snapd_line.split()[1] == host.describe()["snapd"]


def test_snapd_answers_on_its_socket(host: NspawnHost) -> None:
    answer = rest(host, "/v2/system-info")
    assert answer["status-code"] == 200
    assert answer["result"]["on-classic"] is True
    assert answer["result"]["version"] == host.describe()["snapd"]


def test_standins_are_installed(host: NspawnHost) -> None:
    snaps = {snap["name"]: snap for snap in rest(host, "/v2/snaps")["result"]}
    assert set(snaps) == {"core", "snapd"}
    assert snaps["core"]["type"] == "os"
    assert snaps["snapd"]["type"] == "snapd"
    # snapd never re-executes into the stand-ins: the running snapd is the distro's.
    # (the unit's main PID: `pidof snapd` failed once in CI, under load)
    main_pid = (
        "for i in $(seq 50); do p=$(systemctl show -p MainPID --value snapd.service); "
        '[ "$p" != 0 ] && readlink "/proc/$p/exe" && exit 0; sleep 0.2; done; exit 1'
    )
    assert ok(host, main_pid).strip() == "/usr/lib/snapd/snapd"


def test_container_has_no_network(host: NspawnHost) -> None:
    interfaces = ok(host, "ls /sys/class/net").split()
    assert interfaces == ["lo"]


def test_describe_and_pinning(host: NspawnHost) -> None:
    facts = host.describe()
    assert facts["kind"] == "nspawn"
    assert facts["release"] == RELEASE
    assert facts["mode"] in ("privileged", "userns")
    assert host.offline is True
    cpu = host.pinned_cpu
    assert cpu is not None
    assert host.shell_argv()[:3] == ["taskset", "-c", str(cpu)]
    assert host.container_pid is not None
    assert os.sched_getaffinity(host.container_pid) == {cpu}
    assert ok(host, "grep Cpus_allowed_list /proc/self/status").split()[-1] == str(cpu)


def test_shell_argv_gives_an_interactive_root_shell(host: NspawnHost) -> None:
    argv = host.shell_argv()
    shell = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=20, echo=False)
    try:
        shell.sendline("PS1='READY> '; stty -echo")
        shell.expect("READY> ")
        shell.sendline("echo $((6 * 7)) $(id -u) $HOSTNAME; cat /etc/debian_version >/dev/null")
        shell.expect("READY> ")
        assert shell.before.split()[:2] == ["42", "0"]
    finally:
        shell.close(force=True)


def test_put_file_creates_parents_and_keeps_mode(host: NspawnHost, tmp_path: Path) -> None:
    local = tmp_path / "tool.sh"
    local.write_text("#!/bin/sh\necho from-put-file\n")
    local.chmod(0o755)
    host.put_file(local, "/var/tmp/snapconform-test/a/b/tool.sh")
    assert ok(host, "/var/tmp/snapconform-test/a/b/tool.sh").strip() == "from-put-file"
    assert ok(host, "stat -c %a /var/tmp/snapconform-test/a/b/tool.sh").strip() == "755"


def test_put_file_resolves_symlinks_inside_the_container(host: NspawnHost, tmp_path: Path) -> None:
    local = tmp_path / "marker"
    local.write_text("inside\n")
    name = f"snapconform-put-{os.getpid()}"
    host.put_file(local, f"/var/run/{name}")  # /var/run -> /run in the container
    assert ok(host, f"cat /run/{name}").strip() == "inside"
    assert not Path(f"/run/{name}").exists()  # never the controller's /run


def test_reset_gives_a_pristine_system(host: NspawnHost) -> None:
    ok(host, "touch /root/before-reset && snap set system refresh.retain=3")
    old_pid = host.container_pid
    started = time.monotonic()
    host.reset()
    took = time.monotonic() - started
    assert host.alive()
    assert host.container_pid != old_pid
    assert host.run("test -e /root/before-reset").returncode == 1
    assert host.run("snap get system refresh.retain").returncode != 0
    assert {s["name"] for s in rest(host, "/v2/snaps")["result"]} == {"core", "snapd"}
    print(f"reset took {took:.2f} s")


def _loops_backed_by(devices: set[str]) -> list[str]:
    return [name for name, device, _file in loop_devices() if device in devices]


def test_stop_leaves_nothing_of_ours(host: NspawnHost) -> None:
    container = host.container
    assert container is not None
    record = container.state
    pid1 = container.pid1
    assert pid1 is not None
    supervisor = container.process.pid if container.process else None
    groups = list(container.groups)
    devices = set()
    if (record / "loopdevs").exists():
        for number in (record / "loopdevs").read_text().split():
            devices.add(f"{os.major(int(number))}:{os.minor(int(number))}")
    if host.describe()["mode"] == "privileged":
        assert len(_loops_backed_by(devices)) >= 2  # core and snapd are mounted from loops
    started = time.monotonic()
    host.stop()
    print(f"stop took {time.monotonic() - started:.2f} s")
    host.stop()  # idempotent
    assert not host.alive()
    assert not Path(f"/proc/{pid1}").exists()
    assert supervisor is None or not Path(f"/proc/{supervisor}").exists()
    assert not record.exists()
    for group in groups:
        assert not group.exists()
        assert not cgroup_pids(group)
    assert _loops_backed_by(devices) == []
    mounts = Path("/proc/self/mounts").read_text()
    assert str(record) not in mounts
    host.start()  # the module's later tests get a container again
    assert host.alive()


def test_a_killed_container_is_detected(host: NspawnHost) -> None:
    pid1 = host.container_pid
    assert pid1 is not None and host.alive()
    os.kill(pid1, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while host.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not host.alive()
    host.start()  # start() on a dead container clears it and boots anew
    assert host.alive()
    assert host.container_pid != pid1
    assert not same_process(pid1, None)
