"""`python -m snapconform bench --host URL`: what the harness costs, measured on real snapd.

In one run, on one host:
- warm start (boot to `seed.loaded`, image cached) and reset (pristine again);
- install, local refresh, revert and remove, each timed through the framed shell and the same
  command sent raw (a fresh `bash -c` through the host's own entry, e.g. nsenter), interleaved so
  both see the same snapd state and machine load; the overhead ratio and operations a minute;
- model-checked steps a minute: the same cycle through ConformanceRun (predict, perform,
  observe over the REST API, compare).
Targets (issue 3): overhead <= 10%, >= 60 operations a minute, reset <= 3 s, warm start <= 10 s;
(issue 4): >= 40 model-checked steps a minute.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from snapconform.hosts.base import DEFAULT_HOST_URL, HostError, HostUnavailable

TARGETS = {
    "overhead_ratio": 0.10,
    "operations_per_minute": 60.0,
    "reset_seconds": 3.0,
    "warm_start_seconds": 10.0,
    "checked_steps_per_minute": 40.0,
}
CYCLE = ("install", "refresh", "revert", "remove")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="time the harness against raw commands")
    parser.add_argument("--host", default=DEFAULT_HOST_URL, help="host URL (default %(default)s)")
    parser.add_argument(
        "--rounds", type=int, default=8, help="install/refresh/revert/remove cycles"
    )
    parser.add_argument("--resets", type=int, default=3, help="resets to time")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.set_defaults(func=run)


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def raw_runner(argv: list[str]) -> Callable[[str], float]:
    """Send one command the cheapest way the host allows: its shell argv with `-c COMMAND`."""

    def run_raw(command: str) -> float:
        started = time.monotonic()
        result = subprocess.run(
            [*argv, "-c", command], stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            raise HostError(
                f"raw command failed ({result.returncode}): {command}: "
                f"{result.stdout.decode(errors='replace')[-500:]}"
            )
        return elapsed

    return run_raw


def cycle_commands(name: str, files: tuple[str, str]) -> dict[str, str]:
    first, second = (shlex.quote(path) for path in files)
    return {
        "install": f"snap install --dangerous {first}",
        "refresh": f"snap install --dangerous {second}",
        "revert": f"snap revert {shlex.quote(name)}",
        "remove": f"snap remove --purge {shlex.quote(name)}",
    }


def run(args: argparse.Namespace) -> int:
    from snapconform.conformance.operations import InstallFile, Remove, Revert
    from snapconform.conformance.session import ConformanceRun, HostSession, NameAllocator
    from snapconform.harness.fixtures import FixtureSpec, build_snap
    from snapconform.model.snapd import SnapFile

    if args.rounds < 1 or args.resets < 0:
        print("snapconform bench: --rounds must be >= 1 and --resets >= 0", file=sys.stderr)
        return 2
    try:
        session = HostSession(args.host, artifacts=Path("artifacts/bench"))
    except ValueError as exc:
        print(f"snapconform bench: {exc}", file=sys.stderr)
        return 2
    figures: dict[str, object] = {"host": args.host}
    try:
        figures["warm_start_seconds"] = round(_timed(session.host.start), 2)
        session.started = True
        resets = [_timed(session.host.reset) for _ in range(args.resets)]
        session.attach()
        if resets:
            figures["reset_seconds"] = round(statistics.median(resets), 2)
        figures["snapd"] = session.snapd_version_text.splitlines()[0]
        assert session.shell is not None and session.client is not None
        shell, client = session.shell, session.client
        raw = raw_runner(session.host.shell_argv())
        names = NameAllocator("sc-bench")
        name = names.fresh()
        local = [build_snap(FixtureSpec(name, version)) for version in ("1.0", "2.0")]
        remote = tuple(client.upload(path) for path in local)
        commands = cycle_commands(name, remote)  # type: ignore[arg-type]
        pin = session.host.pinned_cpu
        wrap = (lambda cmd: f"taskset -c {pin} {cmd}") if pin is not None else (lambda cmd: cmd)
        harness_times: dict[str, list[float]] = {op: [] for op in CYCLE}
        raw_times: dict[str, list[float]] = {op: [] for op in CYCLE}
        for index in range(args.rounds):
            # alternate which path goes first so neither always meets a cold cache
            order = ("harness", "raw") if index % 2 == 0 else ("raw", "harness")
            for path in order:
                for op in CYCLE:
                    if path == "harness":
                        result = shell.run(commands[op], timeout=300)
                        if result.exit_code != 0:
                            raise HostError(f"{commands[op]} failed: {result.output[-500:]}")
                        harness_times[op].append(result.duration)
                    else:
                        raw_times[op].append(raw(wrap(commands[op])))
        per_op = {}
        for op in CYCLE:
            h, r = statistics.median(harness_times[op]), statistics.median(raw_times[op])
            per_op[op] = {
                "harness_s": round(h, 3),
                "raw_s": round(r, 3),
                "overhead": round(h / r - 1, 3),
            }
        total_h = sum(sum(times) for times in harness_times.values())
        total_r = sum(sum(times) for times in raw_times.values())
        figures["operations"] = per_op
        figures["overhead_ratio"] = round(total_h / total_r - 1, 3)
        figures["operations_per_minute"] = round(60 * args.rounds * len(CYCLE) / total_h, 1)

        # Model-checked steps: the same cycle with prediction, observation and comparison.
        conformance = ConformanceRun(session)
        started = time.monotonic()
        steps = 0
        for _ in range(args.rounds):
            checked = names.fresh()
            first, second = SnapFile(checked, "1.0"), SnapFile(checked, "2.0")
            for operation in (
                InstallFile(first),
                InstallFile(second),
                Revert(checked),
                Remove(checked, purge=True),
            ):
                conformance.step(operation)
                steps += 1
        figures["checked_steps_per_minute"] = round(60 * steps / (time.monotonic() - started), 1)
    except HostUnavailable as exc:
        print(f"snapconform bench: {exc}", file=sys.stderr)
        return 2
    except HostError as exc:
        print(f"snapconform bench: host fault: {exc}", file=sys.stderr)
        return 3
    finally:
        session.stop()
    print_report(figures)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


def print_report(figures: dict[str, object]) -> None:
    print(f"host {figures['host']}  ({figures.get('snapd', '?')})")
    print(f"{'operation':10s} {'harness s':>10s} {'raw s':>8s} {'overhead':>9s}")
    for op, row in figures.get("operations", {}).items():  # type: ignore[union-attr]
        print(f"{op:10s} {row['harness_s']:10.3f} {row['raw_s']:8.3f} {row['overhead']:9.1%}")
    for key, target in TARGETS.items():
        if key not in figures:
            continue
        value = figures[key]
        lower_is_better = key in ("overhead_ratio", "reset_seconds", "warm_start_seconds")
        met = value <= target if lower_is_better else value >= target  # type: ignore[operator]
        bound = "<=" if lower_is_better else ">="
        print(f"{key:26s} {value!s:>8}  target {bound} {target}  {'met' if met else 'MISSED'}")
