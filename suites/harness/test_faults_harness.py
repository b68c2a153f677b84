"""Offline checks of the fault machinery: the host program's report read into an Interruption,
the result a waiting command would have given, and the interrupted step's JSON round trip."""

from __future__ import annotations

import subprocess
import sys

from snapconform.conformance.operations import InstallFile, Revert, SetSystem, operation_from_json
from snapconform.conformance.ops_faults import Interrupted, interruptible
from snapconform.harness import fault_program
from snapconform.harness.faults import TaskSeen, fault_command, interruption_of, result_of
from snapconform.model import snapd as model
from snapconform.model.faults import KillPoint

TASKS = [
    {"kind": "prerequisites", "summary": "Ensure prerequisites", "status": "Done"},
    {
        "kind": "run-hook",
        "summary": 'Run pre-refresh hook of "a" snap if present',
        "status": "Doing",
    },
    {"kind": "link-snap", "summary": "Make snap available", "status": "Do"},
    {"kind": "run-hook", "summary": 'Run post-refresh hook of "a" snap if present', "status": "Do"},
    {"kind": "run-hook", "summary": 'Run health check of "a" snap', "status": "Done"},
]


def _report(final_status: str = "Done", err: str | None = None) -> dict:
    return {
        "started": True,
        "change": "12",
        "point": {"task": 1, "status": "Doing", "delay_ms": 250},
        "seen": {"reached": True, "index": 1, "tasks": TASKS, "polls": 40},
        "killed_after": 1.5,
        "settle": {
            "settled": True,
            "snapd_back": True,
            "started_by_hand": False,
            "settle_seconds": 2.0,
            "status": final_status,
            "err": err,
            "tasks": TASKS,
            "mounts": ["/snap/a/x1", "/snap/a/x2", "/snap/a_k1/x1", "/snap/core/x1"],
            "unit": {"NRestarts": "3"},
        },
    }


def test_the_report_reads_into_an_interruption():
    report = _report()
    seen = interruption_of(report, "snapd", report["settle"])
    assert seen.started and seen.reached and seen.settled and seen.back == "systemd"
    assert seen.point_label == "run-hook[pre-refresh] Doing"
    # the hooks whose task had not finished: pre-refresh (Doing) and post-refresh (Do)
    assert seen.rerunnable == {"pre-refresh", "post-refresh"}
    assert seen.mounted("a") == {"x1", "x2"} and seen.mounted("a_k1") == {"x1"}
    assert TaskSeen("run-hook", 'Run health check of "a" snap', "Do").hook == "check-health"
    assert seen.to_json()["restarts"] == "3"


def test_the_result_is_what_a_waiting_command_gives():
    argv = ["snap", "install", "--dangerous", "/f.snap"]
    report = _report("Error", "cannot perform the following tasks:\n- x (boom)")
    result = result_of(argv, report, interruption_of(report, "snapd", report["settle"]), 3.0)
    assert (
        result.exit_code == 1 and result.error == "cannot perform the following tasks: - x (boom)"
    )
    done = _report()
    assert result_of(argv, done, interruption_of(done, "power", done["settle"]), 1.0).ok
    refused = {"started": False, "exit_code": 1, "output": "error: cannot install"}
    result = result_of(argv, refused, interruption_of(refused, "snapd", None), 0.5)
    assert (result.exit_code, result.error, result.interruption.started) == (
        1,
        "cannot install",
        False,
    )


def test_an_interrupted_step_round_trips_through_json():
    snap = model.SnapFile("sc-a", "2.0", hooks=(model.HookPlan("post-refresh", marker="m"),))
    for step in (InstallFile(snap), Revert("sc-a", "x1")):
        operation = Interrupted(step, KillPoint(5, "Done", 40, "power"))
        assert operation_from_json(operation.to_json()) == operation
    assert not interruptible(SetSystem("refresh.retain", "2"))


def test_the_reproducer_command_names_the_point():
    command = fault_command(["snap", "revert", "sc-a"], 3, "Doing", 250)
    assert command.startswith("python3 /var/tmp/snapconform/faults.py interrupt --task 3")
    assert "--delay-ms 250 --action kill --settle 240 -- snap revert sc-a" in command


def test_the_host_program_refuses_anything_but_snap():
    done = subprocess.run(
        [
            sys.executable,
            fault_program.__file__,
            "interrupt",
            "--task",
            "0",
            "--status",
            "Doing",
            "--",
            "ls",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "snap SUBCOMMAND" in done.stderr
    assert fault_program.reached("Doing", "Doing") and not fault_program.reached("Do", "Doing")
    assert fault_program.reached("Undoing", "Done") and not fault_program.reached("Doing", "Done")


def test_reproducers_ship_the_fault_program_and_run_the_step_through_it():
    from snapconform.conformance.reproducer import shell_script, spread_task

    first, second = model.SnapFile("sc-a", "1.0"), model.SnapFile("sc-a", "2.0")
    steps = [InstallFile(first), Interrupted(InstallFile(second), KillPoint(3, "Doing", 250))]
    history = {
        "host": {"url": "nspawn://bookworm", "snapd": "2.57.6"},
        "steps": [
            {
                "step": number,
                "operation": operation.to_json(),
                "expected": {"ok": True, "why": "", "hooks": []},
                "observed": {"state": {}},
                "verdict": "pass",
                "mismatches": [],
            }
            for number, operation in enumerate(steps, start=1)
        ],
    }
    script = shell_script(history)
    assert "cat > /var/tmp/snapconform/faults.py <<'SNAPCONFORM_FAULTS'" in script
    assert fault_program.__doc__.splitlines()[0] in script
    assert "faults.py interrupt --task 3 --status Doing --delay-ms 250" in script
    task, files = spread_task(history, "an interrupted refresh")
    assert files["faults.py"].startswith('"""Runs ON THE HOST')
    assert "install -D -m 0755 faults.py /var/tmp/snapconform/faults.py" in task


def test_the_pasted_program_of_a_shrunk_history_imports_the_kill_point():
    from snapconform.conformance.shrink import python_program

    steps = [InstallFile(model.SnapFile("sc-a", "1.0"))]
    steps.append(Interrupted(Revert("sc-a", "x1"), KillPoint(3, "Done", 40)))
    program = python_program(steps)
    namespace: dict = {}
    exec(compile(program, "test_minimal.py", "exec"), namespace)  # it imports what it names
    assert "KillPoint(task=3, status='Done', delay_ms=40, how='snapd')" in program
    assert "test_minimal_divergence" in namespace
