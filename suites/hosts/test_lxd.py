"""lxd:// against a real LXD: an instance made with `hosts create`, its CPU pin, a reset out of a
frozen snapd, a killed instance as a host fault, what stop() leaves behind (and what it leaves
to another session), the forced restart of an instance without a snapshot, and `hosts
delete`.

Needs root and an LXD daemon that answers (`python -m snapconform hosts create lxd://NAME`
starts one where none runs; these tests do not): skips otherwise, naming what is missing. The
module makes its own instance (sc-test-XXXXXX) from the cached image and deletes it at the end.
Each test prints what it measured.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapconform.conformance.operations import InstallFile, Remove
from snapconform.conformance.session import ConformanceRun, HostFaultVerdict, HostSession
from snapconform.harness.fixtures import FixtureSpec, HookBehaviour, build_snap
from snapconform.harness.shell import Shell
from snapconform.hosts import lxd_daemon, lxd_instance
from snapconform.hosts.base import open_host
from snapconform.hosts.lxd import LxdHost
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance

REPO = Path(__file__).resolve().parents[2]


def hosts_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapconform", "hosts", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def inside(name: str, script: str) -> str:
    done = lxd_instance.run_in(name, script, timeout=120)
    assert done.returncode == 0, f"{script!r} exited {done.returncode}: {done.stdout}{done.stderr}"
    return done.stdout


def suite_snaps(name: str) -> list[str]:
    listing = inside(name, "snap list --unicode=never --color=never 2>&1 || true")
    return [line.split()[0] for line in listing.splitlines()[1:] if line.startswith("sc-")]


def facts_of(name: str) -> lxd_instance.InstanceFacts:
    facts = lxd_instance.instance_facts(name)
    assert facts is not None, f"{name} is gone"
    return facts


def lxd_host(name: str) -> LxdHost:
    host = open_host(f"lxd://{name}")
    assert isinstance(host, LxdHost)
    return host


def install(host: LxdHost, snap: str, hooks: tuple[HookBehaviour, ...] = ()) -> None:
    """Install a fixture snap through a framed shell on ``host`` (pinned as every run is)."""
    local = build_snap(FixtureSpec(snap, "1.0", hooks=hooks))
    remote = f"/var/tmp/{local.name}"
    host.put_file(local, remote)
    with Shell(host) as shell:
        done = shell.run(f"snap install --dangerous {remote} </dev/null 2>&1", timeout=120)
    assert done.exit_code == 0, done.output


@pytest.fixture(scope="module")
def made() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("lxd:// tests need root (LXD's client talks to a root-owned socket)")
    if not lxd_daemon.daemon_answers():
        pytest.skip(
            "no LXD daemon answers here (`python -m snapconform hosts create lxd://NAME` "
            "installs and starts one where none runs)"
        )
    name = f"sc-test-{secrets.token_hex(3)}"
    started = time.monotonic()
    created = hosts_cli("create", f"lxd://{name}", "--release", "bookworm")
    took = time.monotonic() - started
    assert created.returncode == 0, created.stderr
    print(f"hosts create: {took:.1f} s\n{created.stdout}")
    try:
        yield name
    finally:
        deleted = hosts_cli("delete", f"lxd://{name}")
        assert deleted.returncode == 0, deleted.stderr
        assert lxd_instance.instance_facts(name) is None
        again = hosts_cli("delete", f"lxd://{name}")
        assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr


def test_create_makes_a_seeded_offline_pinned_instance_with_its_snapshot(made: str) -> None:
    facts = facts_of(made)
    assert facts.running and facts.made_by_snapconform
    assert facts.config[lxd_instance.MARK] == "bookworm"
    assert lxd_instance.SNAPSHOT in facts.snapshots
    raw = lxd_instance.lxc_ok("config", "show", made, "--expanded")
    assert "type: nic" not in raw  # no network at all
    assert inside(made, "stat -c '%F %a' /dev/fuse").strip() == "character special file 666"
    assert inside(made, "ls /sys/class/net").split() == ["lo"]
    listing = inside(made, "snap list --unicode=never --color=never")
    assert [line.split()[:3] for line in listing.splitlines()[1:]] == [
        ["core", "standin", "x1"],
        ["snapd", "standin", "x1"],
    ]
    assert inside(made, "snap get system refresh.hold").strip().startswith("20")
    cpu = facts.pinned_cpu
    assert cpu is not None
    assert lxd_instance.probe_cpus(made) == {cpu: True}  # only that CPU, and it keeps a namespace


def test_creating_it_again_is_refused_and_changes_nothing(made: str) -> None:
    before = facts_of(made)
    again = hosts_cli("create", f"lxd://{made}")
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr == (
        f"snapconform hosts: LXD instance {made!r} exists already (hosts delete lxd://{made})\n"
    )
    assert facts_of(made).pid == before.pid


def test_the_host_pins_its_shell_and_stop_leaves_no_suite_snap(made: str) -> None:
    host = lxd_host(made)
    host.start()
    try:
        cpu = host.pinned_cpu
        assert cpu is not None and facts_of(made).pinned_cpu == cpu
        with Shell(host) as shell:
            affinity = shell.run("taskset -pc $$", timeout=30)
        assert affinity.output.strip().endswith(f": {cpu}")
        # hooks run snap-confine's mount namespace: the CPU the pin is for
        install(host, "sc-lxdpin", hooks=(HookBehaviour("install"), HookBehaviour("configure")))
        assert suite_snaps(made) == ["sc-lxdpin"]
        assert host.describe()["reset"] == "restore sc-pristine"
    finally:
        started = time.monotonic()
        host.stop()
        print(f"stop: {time.monotonic() - started:.2f} s")
    assert suite_snaps(made) == []
    assert facts_of(made).running


def test_a_frozen_snapd_is_reset_by_restoring_the_snapshot(made: str) -> None:
    host = lxd_host(made)
    host.start()
    try:
        install(host, "sc-lxdfrozen")
        boot = facts_of(made).pid
        inside(made, 'kill -STOP "$(systemctl show --property=MainPID --value snapd)"')
        started = time.monotonic()
        host.reset()
        took = time.monotonic() - started
        print(f"reset out of a frozen snapd: {took:.2f} s")
        assert took < 60
        assert facts_of(made).pid != boot and host.alive()
        assert suite_snaps(made) == []
        assert host.pinned_cpu is not None and facts_of(made).pinned_cpu == host.pinned_cpu
        with Shell(host) as shell:
            assert shell.run("snap version", timeout=30).exit_code == 0
    finally:
        host.stop()


def test_stop_removes_only_what_its_session_installed(made: str) -> None:
    """A second session on the same instance (a replay in a child process) removes its own
    snaps at stop, through snapd; the first keeps its snaps, its shell and its boot."""
    first, second = lxd_host(made), lxd_host(made)
    first.start()
    try:
        install(first, "sc-lxdfirst")
        second.start()
        assert second.pinned_cpu == first.pinned_cpu  # a pin that passes is left alone
        install(second, "sc-lxdsecond")
        second.stop()
        assert suite_snaps(made) == ["sc-lxdfirst"]
        assert first.alive()
        with Shell(first) as shell:
            assert shell.run("snap list sc-lxdfirst", timeout=30).exit_code == 0
    finally:
        first.stop()
    assert suite_snaps(made) == []


def test_a_restore_by_another_session_makes_this_one_not_alive(made: str) -> None:
    first, second = lxd_host(made), lxd_host(made)
    first.start()
    second.start()
    try:
        assert first.alive()
        second.reset()
        assert second.alive() and not first.alive()  # its shells and pin went with that boot
    finally:
        second.stop()
        first.stop()


def test_a_killed_instance_is_a_host_fault_and_the_next_run_gets_a_fresh_host(
    made: str, tmp_path: Path
) -> None:
    """The instance's init killed from outside (as test_host_faults kills an nspawn container's
    PID 1): the step is a host fault, not a verdict on snapd, and the next run restores the
    snapshot and works."""
    session = HostSession(f"lxd://{made}", artifacts=tmp_path)
    try:
        session.start()
        run = ConformanceRun(session)
        run.step(InstallFile(SnapFile("sc-lxdkilled", "1.0")))
        init = facts_of(made).pid
        assert init is not None
        os.kill(init, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(HostFaultVerdict):
            run.step(Remove("sc-lxdkilled"))
        declared = time.monotonic() - started
        assert run.history[-1].to_json()["verdict"] == "host-fault"
        assert not session.host.alive()
        resets, started = session.resets, time.monotonic()
        fresh = ConformanceRun(session)
        reset = time.monotonic() - started
        print(f"killed instance: host fault declared in {declared:.2f} s, reset {reset:.2f} s")
        assert session.resets == resets + 1 and session.host.alive()
        assert facts_of(made).pid not in (None, init)
        assert fresh.step(InstallFile(SnapFile("sc-lxdkilled2", "1.0"))).verdict == "pass"
        assert fresh.last_observation.instance("sc-lxdkilled2").sequence == ("x1",)
        assert "sc-lxdkilled" not in suite_snaps(made)  # went with the restore
    finally:
        session.stop()
    assert suite_snaps(made) == []


def test_without_a_snapshot_reset_is_a_forced_restart(made: str) -> None:
    """(Last: it deletes the instance's snapshot.) An instance of the user's own, with no
    pristine snapshot, is reset by a forced restart and then loses the suite's snaps."""
    lxd_instance.lxc_ok("delete", f"{made}/{lxd_instance.SNAPSHOT}")
    own_limits = facts_of(made).config.get(lxd_instance.LIMITS_CPU)
    host = lxd_host(made)
    host.start()
    try:
        assert host.describe()["reset"] == "forced restart"
        install(host, "sc-lxdrestart")
        boot = facts_of(made).pid
        inside(made, 'kill -STOP "$(systemctl show --property=MainPID --value snapd)"')
        started = time.monotonic()
        host.reset()
        print(f"reset by forced restart: {time.monotonic() - started:.2f} s")
        assert facts_of(made).pid != boot and host.alive()
        assert suite_snaps(made) == []
        install(host, "sc-lxdrestart2")
    finally:
        host.stop()
    assert suite_snaps(made) == []
    assert facts_of(made).config.get(lxd_instance.LIMITS_CPU) == own_limits  # its own, back


def test_delete_refuses_an_instance_it_did_not_make(made: str) -> None:
    foreign = f"sc-foreign-{secrets.token_hex(3)}"
    lxd_instance.lxc_ok("init", "--empty", foreign, "--profile", "snapconform")
    try:
        refused = hosts_cli("delete", f"lxd://{foreign}")
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert "was not made by `snapconform hosts create`" in refused.stderr
        assert lxd_instance.instance_facts(foreign) is not None
    finally:
        lxd_instance.lxc("delete", "--force", foreign)
