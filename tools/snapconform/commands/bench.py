"""`python -m snapconform bench --host URL`: what the harness costs, measured on real snapd.

Everything runs on the store tier of --host (nspawn://R becomes nspawn://R?snapd=testkeys: the
release's own snapd built with the test keys, the store served inside the host), so every row
and every ratio comes from one snapd on one host in one run (this machine is shared and noisy:
figures from different runs do not compare). Where the store tier cannot be made (e.g. trixie:
no snapd source on the mirror), the local rows run on --host itself and the store rows say why
they are missing. --no-store skips them.

In one run, on one host:
- warm start (boot to `seed.loaded`, image cached) and reset (pristine again);
- install, local refresh, revert and remove of `--dangerous` files, and a store install and a
  store refresh (`snap install NAME`, `snap refresh NAME` from the served store), each timed
  through the framed shell and the same command sent raw (a fresh `bash -c` through the host's
  own entry, e.g. nsenter), interleaved so both see the same snapd state and machine load; the
  overhead ratio and operations a minute;
- where a refresh's time goes: per refresh, from snapd's /v2/changes, the time before the
  change exists (for the store: the bulk fetch-assertions POST, assertion GETs, the refresh
  POST), its tasks, the wait for check-rerefresh (which retries every 0.5 s until the change's
  other tasks are done: overlord/snapstate/handlers.go reRefreshRetryTimeout), and the CLI's
  tail (it polls the change);
- model-checked steps a minute: the local cycle and the store cycle through ConformanceRun
  (predict, perform, observe over the REST API, compare).
Targets (issue 3): overhead <= 10%, >= 60 operations a minute, reset <= 3 s, warm start <= 10 s;
(issue 4): >= 40 model-checked steps a minute; (issue 7): a store refresh costs at most 1.5 x a
local `--dangerous` refresh: the median over rounds and both paths of each round's store refresh
over the same round's local refresh (paired: seconds apart, so under the same machine load; the
ratios of the medians are printed too).
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
from typing import Any

from snapconform.hosts.base import DEFAULT_HOST_URL, HostError, HostUnavailable

TARGETS = {
    "overhead_ratio": 0.10,
    "operations_per_minute": 60.0,
    "reset_seconds": 3.0,
    "warm_start_seconds": 10.0,
    "checked_steps_per_minute": 40.0,
    "store_refresh_over_local_refresh": 1.5,
}
LOWER_IS_BETTER = (
    "overhead_ratio",
    "reset_seconds",
    "warm_start_seconds",
    "store_refresh_over_local_refresh",
)
CYCLE = ("install", "refresh", "revert", "remove")
STORE_ROWS = ("store-install", "store-refresh")
# Timed refreshes whose snapd change is read back for the phases.
PHASED = ("refresh", "store-refresh")
PHASES = ("before_change", "tasks", "rerefresh_wait", "after_change")
CHANGES_PROGRAM_PATH = "/var/tmp/snapconform/bench_changes.py"  # noqa: S108
# Runs on the host (its python3, stdlib only): snapd's newest change, its spawn and ready times
# and when its last task other than check-rerefresh was ready, as seconds since the epoch.
CHANGES_PROGRAM = r"""
import calendar, json, socket, time

def get(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("/run/snapd.socket")
    sock.sendall(("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path).encode())
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])

def stamp(text):
    # snapd's times are UTC, e.g. 2026-12-01T09:40:33.410400279Z
    if not text:
        return None
    head, _, fraction = text.rstrip("Z").partition(".")
    whole = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    return whole + float("0." + (fraction or "0"))

change = max(get("/v2/changes?select=all")["result"], key=lambda c: int(c["id"]))
others = [stamp(t.get("ready-time")) for t in change["tasks"] if t["kind"] != "check-rerefresh"]
others = [t for t in others if t is not None]
print(json.dumps({
    "id": change["id"], "kind": change["kind"], "status": change["status"],
    "spawn": stamp(change["spawn-time"]), "ready": stamp(change.get("ready-time")),
    "tasks_ready": max(others) if others else None,
}))
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="time the harness against raw commands")
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST_URL,
        help="host URL (default %(default)s); its store tier runs every row",
    )
    parser.add_argument(
        "--rounds", type=int, default=8, help="install/refresh/revert/remove cycles"
    )
    parser.add_argument("--resets", type=int, default=3, help="resets to time")
    parser.add_argument(
        "--no-store", action="store_true", help="no store rows: run on --host as given"
    )
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


def store_commands(name: str) -> dict[str, str]:
    quoted = shlex.quote(name)
    return {
        "store-install": f"snap install {quoted}",
        "store-refresh": f"snap refresh {quoted}",
        "store-remove": f"snap remove --purge {quoted}",
    }


def phases_of(change: dict[str, Any], started: float, duration: float) -> dict[str, float] | None:
    """A timed refresh split at its change's spawn, its last task other than check-rerefresh,
    and its ready time (seconds; the host shares this machine's clock)."""
    spawn, ready, tasks_ready = change.get("spawn"), change.get("ready"), change.get("tasks_ready")
    if spawn is None or ready is None or tasks_ready is None:
        return None
    return {
        "before_change": spawn - started,
        "tasks": tasks_ready - spawn,
        "rerefresh_wait": ready - tasks_ready,
        "after_change": started + duration - ready,
    }


def _median_phases(samples: list[dict[str, float]]) -> dict[str, float]:
    return {phase: round(statistics.median(s[phase] for s in samples), 3) for phase in PHASES}


class _Bench:
    """The timed rows of one run: harness and raw paths of each command, interleaved."""

    def __init__(self, session: Any, store: bool) -> None:
        assert session.shell is not None
        self.session = session
        self.shell = session.shell
        self.raw = raw_runner(session.host.shell_argv())
        pin = session.host.pinned_cpu
        self.wrap: Callable[[str], str] = (
            (lambda cmd: f"taskset -c {pin} {cmd}") if pin is not None else (lambda cmd: cmd)
        )
        self.store = store
        rows = CYCLE + (STORE_ROWS if store else ())
        self.times: dict[str, dict[str, list[float]]] = {
            path: {row: [] for row in rows} for path in ("harness", "raw")
        }
        self.phases: dict[str, list[dict[str, float]]] = {row: [] for row in PHASED}
        # per path and round, each store refresh's wait for check-rerefresh (None: unread)
        self.waits: dict[str, list[float | None]] = {"harness": [], "raw": []}
        self.shell.put_text(CHANGES_PROGRAM_PATH, CHANGES_PROGRAM)

    def send(self, path: str, command: str) -> tuple[float, float]:
        """(wall-clock start, seconds) of one command sent through `path`."""
        started = time.time()
        if path == "harness":
            result = self.shell.run(command, timeout=300)
            if result.exit_code != 0:
                raise HostError(f"{command} failed: {result.output[-500:]}")
            return started, result.duration
        return started, self.raw(self.wrap(command))

    def timed(self, path: str, row: str, command: str) -> None:
        started, seconds = self.send(path, command)
        self.times[path][row].append(seconds)
        if row in PHASED:
            split = self.split(started, seconds)
            if split is not None:
                self.phases[row].append(split)
            if row == "store-refresh":
                self.waits[path].append(None if split is None else split["rerefresh_wait"])

    def split(self, started: float, seconds: float) -> dict[str, float] | None:
        """The phases of the command just timed, from snapd's newest change."""
        found = self.shell.run(f"python3 {CHANGES_PROGRAM_PATH}", timeout=60)
        try:
            change = json.loads(found.output.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return None
        return phases_of(change, started, seconds)


def store_ratios(bench: _Bench, per_op: dict[str, dict[str, float]]) -> dict[str, float]:
    """The store refresh over the local --dangerous refresh. Paired: each round's store refresh
    over the same round's local refresh on the same path (seconds apart, so under the same
    load), the median of those ratios over both paths; also the ratio of the raw medians, the
    harness's, and the paired ratio without check-rerefresh's wait (what the 0.5 s tick costs)."""
    paired: list[float] = []
    untick: list[float] = []
    for path in ("harness", "raw"):
        local, store = bench.times[path]["refresh"], bench.times[path]["store-refresh"]
        waits = bench.waits[path]
        for index, (mine, theirs) in enumerate(zip(store, local, strict=True)):
            paired.append(mine / theirs)
            wait = waits[index] if index < len(waits) else None
            if wait is not None:
                untick.append((mine - wait) / theirs)
    ratios = {
        "store_refresh_over_local_refresh": round(statistics.median(paired), 2),
        "store_refresh_over_local_refresh_raw_medians": round(
            per_op["store-refresh"]["raw_s"] / per_op["refresh"]["raw_s"], 2
        ),
        "store_refresh_over_local_refresh_harness_medians": round(
            per_op["store-refresh"]["harness_s"] / per_op["refresh"]["harness_s"], 2
        ),
    }
    if untick:
        ratios["store_refresh_over_local_refresh_without_tick"] = round(
            statistics.median(untick), 2
        )
    return ratios


def run(args: argparse.Namespace) -> int:
    from snapconform.conformance.session import HostSession, store_tier_url

    if args.rounds < 1 or args.resets < 0:
        print("snapconform bench: --rounds must be >= 1 and --resets >= 0", file=sys.stderr)
        return 2
    try:
        url = args.host if args.no_store else store_tier_url(args.host)
        session = HostSession(url, artifacts=Path("artifacts/bench"))
    except ValueError as exc:
        print(f"snapconform bench: {exc}", file=sys.stderr)
        return 2
    figures: dict[str, Any] = {"host": url, "requested_host": args.host}
    try:
        try:
            _prepare(session)
        except HostUnavailable as exc:
            if url == args.host:
                raise
            reason = f"the store tier {url} cannot be made here: {exc}"
            print(f"snapconform bench: {reason}; local rows only, on {args.host}", file=sys.stderr)
            figures["store_rows_missing"] = reason
            session = HostSession(args.host, artifacts=Path("artifacts/bench"))
            url = figures["host"] = args.host
            _prepare(session)
        _measure(session, args, figures)
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


def _prepare(session: Any) -> None:
    """What the warm start must not include: the image (and a test-keys snapd build, with its
    source-version check) made or checked once, untimed."""
    from snapconform.hosts.nspawn import NspawnHost

    host = session.host
    host.preflight()
    if isinstance(host, NspawnHost) and host.image is None:
        host.image = host._ensure_image()


def _measure(session: Any, args: argparse.Namespace, figures: dict[str, Any]) -> None:
    from snapconform.conformance.operations import InstallFile, Remove, Revert
    from snapconform.conformance.session import ConformanceRun, NameAllocator
    from snapconform.conformance.store_steps import Release, StoreInstall, StoreRefresh, StoreWorld
    from snapconform.harness.fixtures import FixtureSpec, build_snap
    from snapconform.model.snapd import SnapFile
    from snapconform.model.store_catalog import StoreCatalog

    figures["warm_start_seconds"] = round(_timed(session.host.start), 2)
    session.started = True
    resets = [_timed(session.host.reset) for _ in range(args.resets)]
    session.attach()
    if resets:
        figures["reset_seconds"] = round(statistics.median(resets), 2)
    lines = session.snapd_version_text.splitlines()
    figures["snapd"] = next((line for line in lines if line.startswith("snapd")), lines[0])
    figures["snapd_build"] = session.host.describe().get("snapd_build", "?")
    store = session.host.store_url is not None
    figures["store_tier"] = store
    assert session.shell is not None and session.client is not None
    client = session.client
    bench = _Bench(session, store)
    names = NameAllocator("sc-bench")
    name = names.fresh()
    local = [build_snap(FixtureSpec(name, version)) for version in ("1.0", "2.0")]
    remote = tuple(client.upload(path) for path in local)
    commands = cycle_commands(name, remote)  # type: ignore[arg-type]
    if store:
        served = session.served_store()
        store_name = names.fresh()
        first, second = SnapFile(store_name, "1.0"), SnapFile(store_name, "2.0")
        world_one = StoreWorld(StoreCatalog().release(store_name, "stable", 1, first))
        world_two = StoreWorld(world_one.catalog.release(store_name, "stable", 2, second))
        from_store = store_commands(store_name)
    for index in range(args.rounds):
        # alternate which path goes first so neither always meets a cold cache
        order = ("harness", "raw") if index % 2 == 0 else ("raw", "harness")
        for path in order:
            for op in CYCLE:
                bench.timed(path, op, commands[op])
            if store:
                served.publish(world_one)  # untimed: the publisher's side
                bench.timed(path, "store-install", from_store["store-install"])
                served.publish(world_two)
                bench.timed(path, "store-refresh", from_store["store-refresh"])
                bench.send(path, from_store["store-remove"])
    rows = CYCLE + (STORE_ROWS if store else ())
    per_op = {}
    for op in rows:
        h = statistics.median(bench.times["harness"][op])
        r = statistics.median(bench.times["raw"][op])
        per_op[op] = {
            "harness_s": round(h, 3),
            "raw_s": round(r, 3),
            "overhead": round(h / r - 1, 3),
        }
    total_h = sum(sum(times) for times in bench.times["harness"].values())
    total_r = sum(sum(times) for times in bench.times["raw"].values())
    figures["operations"] = per_op
    figures["samples"] = {
        path: {row: [round(t, 3) for t in times] for row, times in rows_of.items()}
        for path, rows_of in bench.times.items()
    }
    figures["overhead_ratio"] = round(total_h / total_r - 1, 3)
    timed = sum(len(times) for times in bench.times["harness"].values())
    figures["operations_per_minute"] = round(60 * timed / total_h, 1)
    figures["refresh_phases"] = {
        row: _median_phases(samples) for row, samples in bench.phases.items() if samples
    }
    if store:
        figures.update(store_ratios(bench, per_op))

    # Model-checked steps: the same cycles with prediction, observation and comparison.
    conformance = ConformanceRun(session)
    started = time.monotonic()
    steps = 0
    for _ in range(args.rounds):
        checked = names.fresh()
        one, two = SnapFile(checked, "1.0"), SnapFile(checked, "2.0")
        for operation in (
            InstallFile(one),
            InstallFile(two),
            Revert(checked),
            Remove(checked, purge=True),
        ):
            conformance.step(operation)
            steps += 1
    figures["checked_steps_per_minute"] = round(60 * steps / (time.monotonic() - started), 1)
    if store:
        # Store-backed: publisher steps (cheap, checked too) and snapd's install, refresh and
        # remove; only the snapd steps are counted, the time is all of it.
        conformance = ConformanceRun(session)
        started = time.monotonic()
        steps = 0
        for _ in range(args.rounds):
            checked = names.fresh()
            one, two = SnapFile(checked, "1.0"), SnapFile(checked, "2.0")
            for operation in (
                Release(one, "stable", 1),
                StoreInstall(checked),
                Release(two, "stable", 2),
                StoreRefresh(checked),
                Remove(checked, purge=True),
            ):
                conformance.step(operation)
                steps += 0 if isinstance(operation, Release) else 1
        seconds = time.monotonic() - started
        figures["store_checked_steps_per_minute"] = round(60 * steps / seconds, 1)
        conformance.close()


def print_report(figures: dict[str, Any]) -> None:
    tier = " (store tier: every row on this one snapd)" if figures.get("store_tier") else ""
    build = figures.get("snapd_build", "?")
    print(f"host {figures['host']}{tier}  ({figures.get('snapd', '?')}, build {build})")
    print(f"{'operation':14s} {'harness s':>10s} {'raw s':>8s} {'overhead':>9s}")
    for op, row in figures.get("operations", {}).items():
        print(f"{op:14s} {row['harness_s']:10.3f} {row['raw_s']:8.3f} {row['overhead']:9.1%}")
    if "store_rows_missing" in figures:
        print(f"store-install, store-refresh: not measured ({figures['store_rows_missing']})")
    for row, split in figures.get("refresh_phases", {}).items():
        parts = ", ".join(f"{phase.replace('_', ' ')} {split[phase]:.3f}" for phase in PHASES)
        print(f"{row} phases (median s): {parts}")
    for key, target in TARGETS.items():
        if key not in figures:
            continue
        value = figures[key]
        lower = key in LOWER_IS_BETTER
        met = value <= target if lower else value >= target
        bound = "<=" if lower else ">="
        print(f"{key:32s} {value!s:>8}  target {bound} {target}  {'met' if met else 'MISSED'}")
    notes = {
        "store_refresh_over_local_refresh_raw_medians": "ratio of the raw medians",
        "store_refresh_over_local_refresh_harness_medians": "ratio of the harness medians",
        "store_refresh_over_local_refresh_without_tick": "paired, without check-rerefresh's wait",
    }
    for key, note in notes.items():
        if key in figures:
            print(
                f"{'  ' + key.removeprefix('store_refresh_over_local_refresh_'):32s} "
                f"{figures[key]!s:>8}  ({note})"
            )
    if "store_checked_steps_per_minute" in figures:
        value = figures["store_checked_steps_per_minute"]
        print(f"{'store_checked_steps_per_minute':32s} {value!s:>8}  (no target)")
