"""Runs ON THE HOST (python3, standard library only): interrupts one snapd change at a kill point.

`interrupt` starts a snap command with `--no-wait` (snap prints the change's id), polls
/v2/changes/ID until the change's task number TASK (modulo the number of tasks) has entered
STATUS (Doing: it left Do; Done: its do handler finished, whatever followed), waits DELAY
milliseconds, then kills snapd (`systemctl kill -s KILL snapd.service`: every process of the
unit) or freezes it (`-s STOP`, for a power cut the controller does next). With `--settle S` it
then waits up to S seconds for snapd to come back and the change to be ready. `settle` does only
the waiting. Each prints one JSON document on its last line.

The harness copies this file to the host; the shell reproducers ship it too. It must not import
snapconform: the host has only a stock python3.

Usage: python3 faults.py interrupt --task N --status Doing|Done [--delay-ms D]
           [--action kill|freeze] [--settle S] -- snap SUBCOMMAND ARGS...
       python3 faults.py settle --change ID [--settle S]
"""

import argparse
import http.client
import json
import socket
import subprocess
import sys
import time

SNAPD_SOCKET = "/run/snapd.socket"
UNIT = "snapd.service"
POLL_SECONDS = 0.002
READY = ("Done", "Undone", "Error", "Hold")
# Statuses a task has once its do handler has finished (Done, then maybe undone later).
PAST_DOING = ("Done", "Undo", "Undoing", "Undone", "Error", "Hold")
START_TIMEOUT = 120.0  # seconds the snap command may take to print its change id
REACH_TIMEOUT = 300.0  # seconds to wait for the kill point
BACK_BY_ITSELF = 30.0  # seconds systemd gets to restart snapd before we start it


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def rest_get(path: str, timeout: float = 10.0) -> dict:
    conn = UnixHTTPConnection(SNAPD_SOCKET, timeout)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read() or b"{}")
    finally:
        conn.close()


def get_change(change_id: str) -> dict:
    return rest_get(f"/v2/changes/{change_id}").get("result") or {}


def tasks_of(change: dict) -> list[dict]:
    return [
        {"kind": t.get("kind"), "summary": t.get("summary"), "status": t.get("status")}
        for t in change.get("tasks") or []
    ]


def unit_facts() -> dict:
    done = subprocess.run(
        ["systemctl", "show", UNIT, "-p", "NRestarts,ActiveState,SubState,MainPID"],
        capture_output=True,
        text=True,
        check=False,
    )
    facts = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        facts[key] = value
    return facts


def reached(status: str, wanted: str) -> bool:
    if wanted == "Doing":
        return status != "Do"
    return status in PAST_DOING


def start(argv: list[str]) -> tuple[str | None, int, str]:
    """Run the snap command with --no-wait after its sub-command: (change id, exit, output)."""
    command = [*argv[:2], "--no-wait", *argv[2:]]
    done = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    change = lines[-1].strip() if lines else ""
    if done.returncode != 0 or not change.isdigit():
        return None, done.returncode, done.stdout
    return change, 0, done.stdout


def wait_for_point(change_id: str, task: int, wanted: str) -> dict:
    """Poll until the kill point: what was seen last before it (or the change ended first)."""
    began = time.monotonic()
    polls = 0
    tasks: list[dict] = []
    while True:
        try:
            change = get_change(change_id)
        except (OSError, http.client.HTTPException, ValueError):
            change = {}  # snapd slow to answer (a loaded machine): ask again
        polls += 1
        tasks = tasks_of(change)
        if tasks:
            index = task % len(tasks)
            status = tasks[index]["status"]
            if reached(status, wanted):
                return {"reached": True, "index": index, "tasks": tasks, "polls": polls}
            if change.get("ready"):
                return {"reached": False, "index": index, "tasks": tasks, "polls": polls}
        if time.monotonic() - began > REACH_TIMEOUT:
            return {
                "reached": False,
                "index": None,
                "tasks": tasks,
                "polls": polls,
                "timeout": True,
            }
        time.sleep(POLL_SECONDS)


def signal_snapd(action: str) -> float:
    began = time.monotonic()
    signal_name = "KILL" if action == "kill" else "STOP"
    subprocess.run(["systemctl", "kill", "-s", signal_name, UNIT], check=False)
    return time.monotonic() - began


def answers() -> bool:
    try:
        rest_get("/v2/system-info", timeout=5)
        return True
    except (OSError, http.client.HTTPException, ValueError):
        return False


def settle(change_id: str, bound: float, killed_pid: str | None = None) -> dict:
    """Wait (at most `bound` s) for snapd to answer again and the change to be ready."""
    began, wall = time.monotonic(), time.time()
    started_by_hand = False
    while not answers():
        gave_up = unit_facts().get("ActiveState") == "failed"  # e.g. its start limit was hit
        if not started_by_hand and (gave_up or time.monotonic() - began > BACK_BY_ITSELF):
            # systemd gave up or never restarted it: start it, and say so.
            subprocess.run(["systemctl", "reset-failed", UNIT], check=False)
            subprocess.run(["systemctl", "start", "--no-block", UNIT], check=False)
            started_by_hand = True
        if time.monotonic() - began > bound:
            return {"settled": False, "snapd_back": False, "started_by_hand": started_by_hand}
        time.sleep(0.1)
    back_after = time.monotonic() - began
    change: dict = {}
    while time.monotonic() - began <= bound:
        try:
            change = get_change(change_id)
        except (OSError, http.client.HTTPException, ValueError):
            change = {}
        if change.get("ready"):
            break
        time.sleep(0.05)
    facts = unit_facts()
    return {
        "settled": bool(change.get("ready")),
        "snapd_back": True,
        "back_after": round(back_after, 3),
        "settle_seconds": round(time.monotonic() - began, 3),
        "started_by_hand": started_by_hand,
        "restarted": killed_pid is None or facts.get("MainPID") != killed_pid,
        "unit": facts,
        "status": change.get("status"),
        "err": change.get("err"),
        "tasks": tasks_of(change),
        "mounts": snap_mounts(),
        "retries": retries_since(wall - 60),
    }


def retries_since(epoch: float) -> list[str]:
    """snapd's journal lines about retried requests since `epoch` (a store that was down)."""
    done = subprocess.run(
        ["journalctl", "-u", UNIT, "-o", "cat", "--no-pager", f"--since=@{int(epoch)}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in done.stdout.splitlines() if "etry" in line][-20:]


def snap_mounts() -> list[str]:
    """Mount points /snap/INSTANCE/REV in this mount namespace (snapd's)."""
    found = set()
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            for line in handle:
                point = line.split()[4]
                parts = point.split("/")
                if len(parts) == 4 and parts[1] == "snap" and parts[3]:
                    found.add(point)
    except OSError:
        pass
    return sorted(found)


def interrupt(args: argparse.Namespace) -> dict:
    began = time.monotonic()
    change_id, exit_code, output = start(args.argv)
    if change_id is None:
        return {"started": False, "exit_code": exit_code, "output": output}
    seen = wait_for_point(change_id, args.task, args.status)
    if args.delay_ms:
        time.sleep(args.delay_ms / 1000)
    killed_pid = unit_facts().get("MainPID") if args.action == "kill" else None
    took = signal_snapd(args.action)
    report = {
        "started": True,
        "change": change_id,
        "output": output,
        "point": {"task": args.task, "status": args.status, "delay_ms": args.delay_ms},
        "action": args.action,
        "seen": seen,
        "signal_seconds": round(took, 3),
        "killed_after": round(time.monotonic() - began, 3),
    }
    if args.action == "kill" and args.settle:
        report["settle"] = settle(change_id, args.settle, killed_pid)
    return report


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("interrupt")
    run.add_argument("--task", type=int, required=True)
    run.add_argument("--status", choices=("Doing", "Done"), required=True)
    run.add_argument("--delay-ms", type=int, default=0)
    run.add_argument("--action", choices=("kill", "freeze"), default="kill")
    run.add_argument("--settle", type=float, default=0.0)
    run.add_argument("argv", nargs="+")
    wait = sub.add_parser("settle")
    wait.add_argument("--change", required=True)
    wait.add_argument("--settle", type=float, default=120.0)
    args = parser.parse_args()
    if args.mode == "interrupt":
        if args.argv[0] != "snap" or len(args.argv) < 2:
            parser.error("the command must be `snap SUBCOMMAND ...`")
        report = interrupt(args)
    else:
        report = settle(args.change, args.settle)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
