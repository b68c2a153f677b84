"""Host faults (issue 3 §6): a hung command, a frozen snapd and a killed container each end a step
with a host-fault verdict, never a verdict on snapd, and the next run gets a fresh host; a pytest
run interrupted with SIGINT or SIGTERM leaves nothing of its containers behind.

Each test writes what it measured (time to declare the fault, time of the reset after it) to
its artifacts directory as fault-timing.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from snapconform.conformance.operations import InstallFile, Operation, Remove
from snapconform.conformance.session import ConformanceRun, HostFaultVerdict
from snapconform.harness.operations import SnapCommandResult
from snapconform.harness.shell import INTERRUPT_GRACE
from snapconform.hosts.cleanup import leftovers
from snapconform.hosts.nspawn import STATE_ROOT, process_start_time, same_process
from snapconform.hosts.nspawn import unavailable_reason as nspawn_unavailable
from snapconform.model import snapd as model
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance

HANG_TIMEOUT = 3.0  # seconds a hanging step gets before it is interrupted
# A fault is declared after the timeout plus at most the shell's interrupt grace; the rest is
# room for the step's upload and a busy machine.
DECLARE_WITHIN = HANG_TIMEOUT + INTERRUPT_GRACE + 2.0
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Hang(Operation):
    """A command that never ends on its own; the model expects nothing of it."""

    kind: ClassVar[str] = "hang"
    seconds: int = 1000
    timeout: float = HANG_TIMEOUT

    def predict(self, state, locate):
        return model.Outcome(state=state, error=None, hooks_run=(), why="not a snap command")

    def perform(self, client, locate):
        result = client.shell.run(self.shell(locate), timeout=self.timeout)
        return SnapCommandResult(("sleep", str(self.seconds)), result.exit_code, result.output, 0.0)

    def shell(self, locate):
        return f"sleep {self.seconds:d}"


def v(name: str, version: str) -> SnapFile:
    return SnapFile(name, version)


def fault_at(run: ConformanceRun, operation: Operation) -> tuple[HostFaultVerdict, float]:
    """The host fault ``operation`` ends in, and the seconds it took to be declared."""
    started = time.monotonic()
    with pytest.raises(HostFaultVerdict) as raised:
        run.step(operation)
    took = time.monotonic() - started
    assert not isinstance(raised.value, AssertionError)  # not a divergence: no snapd verdict
    record = run.history[-1].to_json()
    assert record["verdict"] == "host-fault" and record["fault"]
    assert record["observed"]["exit_code"] is None
    return raised.value, took


def fresh_run_works(host_session, names) -> tuple[ConformanceRun, float]:
    """The next run: it resets the host (timed), which answers and installs a snap."""
    resets = host_session.resets
    started = time.monotonic()
    run = ConformanceRun(host_session)
    reset_took = time.monotonic() - started
    assert host_session.resets == resets + 1 and host_session.host.alive()
    name = names.fresh()
    assert run.step(InstallFile(v(name, "1.0"))).verdict == "pass"
    assert run.last_observation.instance(name).sequence == ("x1",)
    return run, reset_took


def save_timing(test_artifacts: Path, **figures: float) -> None:
    rounded = {key: round(value, 3) for key, value in figures.items()}
    (test_artifacts / "fault-timing.json").write_text(json.dumps(rounded, indent=2) + "\n")
    print(f"fault timing: {rounded}")


def test_a_hanging_command_is_a_host_fault_and_the_next_run_gets_a_fresh_host(
    host_session, conformance, names, test_artifacts
):
    fault, took = fault_at(conformance, Hang())
    assert "timed out after 3 s" in str(fault)
    assert HANG_TIMEOUT <= conformance.history[-1].duration < DECLARE_WITHIN
    assert host_session.broken
    _run, reset_took = fresh_run_works(host_session, names)
    save_timing(test_artifacts, declared_after=took, reset=reset_took)


def test_a_frozen_snapd_is_a_host_fault_after_the_step_timeout(
    host_session, conformance, names, test_artifacts
):
    name = names.fresh()
    conformance.step(InstallFile(v(name, "1.0")))
    # SIGSTOP: snapd keeps its socket, so `snap` connects and then waits for ever.
    frozen = host_session.shell.run(
        'kill -STOP "$(systemctl show --property=MainPID --value snapd)"', timeout=30
    )
    assert frozen.exit_code == 0, frozen.output
    conformance.step_timeout = HANG_TIMEOUT
    fault, took = fault_at(conformance, InstallFile(v(name, "2.0")))
    assert "timed out after 3 s" in str(fault) and "snap install" in str(fault)
    assert HANG_TIMEOUT <= conformance.history[-1].duration < DECLARE_WITHIN
    _run, reset_took = fresh_run_works(host_session, names)
    save_timing(test_artifacts, declared_after=took, reset=reset_took)


def test_a_killed_container_is_a_host_fault_and_the_next_run_gets_a_fresh_host(
    host_session, conformance, names, test_artifacts
):
    pid1 = getattr(host_session.host, "container_pid", None)
    if pid1 is None:
        pytest.skip(f"{host_session.url} has no container whose PID 1 this test could kill")
    record_dir = host_session.host.container.state
    name = names.fresh()
    conformance.step(InstallFile(v(name, "1.0")))
    os.kill(pid1, signal.SIGKILL)
    fault, took = fault_at(conformance, Remove(name))
    assert "end of file" in str(fault) or "cannot write" in str(fault)
    assert not host_session.host.alive()
    _run, reset_took = fresh_run_works(host_session, names)
    assert host_session.host.container_pid != pid1
    assert not record_dir.exists()  # the dead container's record went with the reset
    save_timing(test_artifacts, declared_after_kill=took, reset=reset_took)


# -- a whole pytest run interrupted ---------------------------------------------------------


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        parent = _parent(pid)
        if parent is None:
            return False
        if parent == ancestor:
            return True
        pid = parent
    return False


def _hanging_sleep_of(owner: int) -> int | None:
    """The `sleep 1000` of the Hang step a pytest run ``owner`` started, once it runs."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", b"1000"] and _descends_from(int(proc.name), owner):
            return int(proc.name)
    return None


def _wait_for(what: str, probe, child: subprocess.Popen[str], timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        if child.poll() is not None:
            output = child.stdout.read() if child.stdout else ""
            pytest.fail(f"the pytest run ended (exit {child.returncode}) before {what}:\n{output}")
        time.sleep(0.05)
    pytest.fail(f"no {what} within {timeout:g} s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_pytest_run_leaves_nothing_behind(signum, tmp_path, pytestconfig):
    url = pytestconfig.getoption("--host") or ""
    if not url.startswith("nspawn://"):
        url = f"nspawn://{pytestconfig.getoption('--snapd-release') or 'bookworm'}"
    reason = nspawn_unavailable(url)
    if reason:
        pytest.skip(reason)
    orphans_before = set(leftovers()["orphaned_loop_devices"])
    hanging = test_a_hanging_command_is_a_host_fault_and_the_next_run_gets_a_fresh_host
    test = f"{Path(__file__).resolve()}::{hanging.__name__}"
    argv = [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider"]
    argv += ["--host", url, "--artifacts", str(tmp_path / "artifacts")]
    child = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        container_up = _wait_for(
            "its container's PID 1",
            lambda: [
                record
                for record in (STATE_ROOT.glob(f"{child.pid}-*") if STATE_ROOT.is_dir() else [])
                if (record / "pid1").exists()
            ],
            child,
            timeout=120,
        )
        sleep = _wait_for("its hanging step", lambda: _hanging_sleep_of(child.pid), child, 60)
        sleep_started = process_start_time(sleep)
        child.send_signal(signum)
        output, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    assert child.returncode == (2 if signum == signal.SIGINT else -signal.SIGTERM), output
    assert container_up and not same_process(sleep, sleep_started)
    left = leftovers(child.pid)
    left["orphaned_loop_devices"] = [
        name for name in left["orphaned_loop_devices"] if name not in orphans_before
    ]
    assert left == {kind: [] for kind in left}, output
    if signum == signal.SIGINT:  # pytest tore its session down: its own check found nothing
        report = json.loads((tmp_path / "artifacts" / "leftovers.json").read_text())
        assert report["owner"] == child.pid
        assert all(items == [] for kind, items in report.items() if kind != "owner")
