"""`python -m snapconform matrix --host URL --host URL ... --artifacts DIR`: the release matrix.

Runs the conformance suite (or a ``-k`` selection) on each host: one pytest subprocess per host
(``-n N`` at a time), each with its own artifacts directory ``DIR/hosts/SLUG/`` and junit.xml,
so every host's run is a whole run (report.html included). Then writes ``DIR/matrix.json``,
``matrix.md`` and ``matrix.html`` (snapconform.reports.matrix): scenarios x hosts, the
divergences and known divergences with the versions they show on, and the model's
version-dependent facts with the versions where each was seen.

Exit status: 0 when no host shows an unexplained divergence or a host fault; 1 when some host
shows an unexplained divergence (a failed test that is not a host fault); 2 when none does but a
host faulted (a test error, or a failure at a host-fault step) or could not be made at all (and
for bad input). Skipped tests (a store tier this machine cannot build, say) count for nothing.
Interrupted (Ctrl-C, SIGTERM), each pytest gets SIGINT, which stops its containers and writes
its report; what finished is still written to the matrix; exit 130.

The Hypothesis profile is ``ci`` unless HYPOTHESIS_PROFILE says otherwise: derandomized, so
every host is given the same examples.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

DEFAULT_SUITES = ("suites/conformance",)
DEFAULT_PROFILE = "ci"
HEARTBEAT_SECONDS = 120.0
STOP_GRACE_SECONDS = 90.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "matrix",
        help="run the conformance suite on several hosts and write the release matrix",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="URL",
        dest="hosts",
        help="a host URL (repeat: nspawn://bookworm, nspawn://trixie, nspawn://sid, lxd://NAME, "
        "ssh://..., any URL `tox -e conformance -- --host` takes)",
    )
    parser.add_argument(
        "--snapd-deb",
        action="append",
        default=[],
        metavar="FILE",
        help="run this snapd build on every host (repeatable; see README: any snapd under test)",
    )
    parser.add_argument(
        "--snapd-source",
        metavar="DIR",
        help="build this snapd source tree and run it on every host",
    )
    parser.add_argument("-k", dest="keyword", metavar="EXPR", help="pytest -k selection")
    parser.add_argument(
        "-n", dest="parallel", type=int, default=1, metavar="N", help="hosts run at once (1)"
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts/matrix"),
        help="where the matrix and each host's run go (default %(default)s)",
    )
    parser.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="PATH",
        help=f"test paths to run (repeatable; default {' '.join(DEFAULT_SUITES)})",
    )
    parser.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        help="after --: more arguments for every pytest (e.g. -- -x)",
    )
    parser.set_defaults(func=run)


class BadInput(ValueError):
    """The command line cannot make a matrix (the message is one line)."""


def host_slug(url: str) -> str:
    """A directory name for a host: its scheme and name, and a hash of the whole URL when more
    than that names it (a query, a user, a port)."""
    scheme, _, rest = url.partition("://")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", rest.split("?", 1)[0]).strip("-.") or "host"
    slug = f"{scheme}-{name}"[:60]
    if rest != rest.split("?", 1)[0] or not re.fullmatch(r"[A-Za-z0-9_.-]*", rest):
        slug += "-" + hashlib.sha256(url.encode()).hexdigest()[:8]
    return slug


def check_hosts(urls: Sequence[str]) -> list[str]:
    """The hosts' URLs, each checked the way its backend would (one line for a bad one)."""
    from snapconform.hosts.base import open_host

    if not urls:
        raise BadInput("give at least one --host URL (e.g. --host nspawn://bookworm)")
    seen: set[str] = set()
    for url in urls:
        if url in seen:
            raise BadInput(f"--host {url} is given twice")
        seen.add(url)
        try:
            open_host(url)
        except ValueError as exc:
            raise BadInput(str(exc).splitlines()[0]) from None
    slugs = [host_slug(url) for url in urls]
    if len(set(slugs)) != len(slugs):
        raise BadInput("two --host URLs name the same directory; make them differ by more")
    return list(urls)


def check_snapd_options(args: argparse.Namespace) -> list[str]:
    """The pytest options that ask for the snapd build (paths made absolute, checked)."""
    if not args.snapd_deb and not args.snapd_source:
        return []
    from snapconform.images.snapd_override import BadSnapdInput, with_snapd_query

    try:
        with_snapd_query("nspawn://", args.snapd_deb, args.snapd_source)
    except BadSnapdInput as exc:
        raise BadInput(str(exc)) from None
    options: list[str] = []
    for deb in args.snapd_deb:
        options += ["--snapd-deb", str(Path(deb).absolute())]
    if args.snapd_source:
        options += ["--snapd-source", str(Path(args.snapd_source).absolute())]
    return options


def pytest_argv(
    url: str, directory: Path, suites: Sequence[str], keyword: str | None, extra: Sequence[str]
) -> list[str]:
    argv = [sys.executable, "-m", "pytest", *suites, "--host", url]
    argv += ["--artifacts", str(directory), f"--junitxml={directory / 'junit.xml'}"]
    argv += ["-p", "no:cacheprovider", "-ra", "-q"]
    if keyword:
        argv += ["-k", keyword]
    return [*argv, *extra]


class HostProcess:
    """One host's pytest, its output in its artifacts directory."""

    def __init__(self, url: str, directory: Path, argv: list[str], env: dict[str, str]) -> None:
        self.url = url
        self.directory = directory
        self.argv = argv
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.started: float | None = None
        self.seconds: float | None = None
        self.exit_status: int | None = None
        self.cancelled = False

    @property
    def log(self) -> Path:
        return self.directory / "pytest.log"

    def run(self, say: Callable[[str], None]) -> None:
        if self.cancelled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        say(f"{self.url}: started ({shlex.join(self.argv[1:])}); log {self.log}")
        self.started = time.monotonic()
        with open(self.log, "wb") as out:
            # Its own session: a terminal's Ctrl-C reaches only us, and we pass it on once.
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.exit_status = self.process.wait()
        self.seconds = round(time.monotonic() - self.started, 1)

    def interrupt(self) -> None:
        """SIGINT: pytest stops its containers and writes its report."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGINT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def _say(message: str) -> None:
    print(f"snapconform matrix: {message}", file=sys.stderr, flush=True)


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def run_hosts(processes: Sequence[HostProcess], parallel: int) -> bool:
    """Run every host's pytest, ``parallel`` at a time; True unless interrupted."""
    interrupted = threading.Event()
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if interrupted.is_set():
            return
        interrupted.set()
        _say(f"signal {signum}: stopping every host's run (each stops its containers)")
        for process in processes:
            process.cancelled = True
            process.interrupt()

    previous = {
        signum: signal.signal(signum, on_signal)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            running = [
                f"{p.url} ({_elapsed(time.monotonic() - p.started)})"
                for p in processes
                if p.started is not None and p.exit_status is None
            ]
            if running:
                _say("running: " + ", ".join(running))

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            futures = [pool.submit(process.run, _say) for process in processes]
            while not all(future.done() for future in futures):
                time.sleep(0.5)
                if interrupted.is_set():
                    _wait_or_kill(processes)
            for future in futures:
                future.result()
        return not interrupted.is_set()
    finally:
        done.set()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait_or_kill(processes: Sequence[HostProcess]) -> None:
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        if all(p.process is None or p.process.poll() is not None for p in processes):
            return
        time.sleep(0.5)
    for process in processes:
        process.kill()
    from snapconform.hosts.cleanup import sweep

    for action in sweep():  # what a killed pytest left (its containers, mounts)
        _say(f"cleanup: {action}")


def _finished_line(url: str, matrix: dict, status: int | None, seconds: float | None) -> str:
    host = next(h for h in matrix["hosts"] if h["url"] == url)
    totals = host["totals"]
    counts = ", ".join(f"{n} {verdict}" for verdict, n in totals.items() if n)
    extra = "" if host["status"] == "ran" else f" [{host['status']}: {host['note']}]"
    timing = f" in {_elapsed(seconds)}" if seconds is not None else ""
    return f"{url}: {counts or 'no tests'}{extra} (pytest exit {status}){timing}"


def run(args: argparse.Namespace) -> int:
    from snapconform.reports.matrix import (
        MATRIX_HTML,
        MATRIX_MD,
        HostRun,
        verdict_sentence,
        write_matrix,
    )
    from snapconform.reports.runs import load_run

    extra = list(args.pytest_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    try:
        urls = check_hosts(args.hosts)
        snapd_options = check_snapd_options(args)
        if args.parallel < 1:
            raise BadInput(f"-n must be at least 1, not {args.parallel}")
        suites = args.suite or list(DEFAULT_SUITES)
        missing = [path for path in suites if not Path(path).exists()]
        if missing:
            raise BadInput(
                f"no {missing[0]} here: run matrix from snapconform's checkout, or give --suite"
            )
    except BadInput as exc:
        print(f"snapconform matrix: {exc}", file=sys.stderr)
        return 2
    base = args.artifacts.resolve()
    env = dict(os.environ)
    env.setdefault("HYPOTHESIS_PROFILE", DEFAULT_PROFILE)
    processes = []
    hosts = []
    for url in urls:
        directory = base / "hosts" / host_slug(url)
        argv = pytest_argv(url, directory, suites, args.keyword, [*snapd_options, *extra])
        processes.append(HostProcess(url, directory, argv, env))
        hosts.append(HostRun(url, host_slug(url), directory))
    selection = " ".join(
        part
        for part in (
            f"-k {shlex.quote(args.keyword)}" if args.keyword else "",
            " ".join(shlex.quote(s) for s in suites) if args.suite else "",
            shlex.join(snapd_options) if snapd_options else "",
        )
        if part
    )
    _say(
        f"{len(urls)} hosts, {args.parallel} at a time, HYPOTHESIS_PROFILE="
        f"{env['HYPOTHESIS_PROFILE']}; artifacts {base}"
    )
    completed = run_hosts(processes, args.parallel)
    for process, host in zip(processes, hosts, strict=True):
        host.exit_status, host.seconds = process.exit_status, process.seconds
        if process.exit_status is None:
            host.note = "interrupted before it started" if process.cancelled else "did not run"
        elif (process.directory / "run.json").is_file():
            host.run = load_run(process.directory)
        else:
            host.note = (
                f"pytest exit {process.exit_status} with no run.json: {_last_line(process.log)}"
            )
    matrix = write_matrix(base, hosts, selection, interrupted=not completed)
    for process in processes:
        if process.exit_status is not None:
            _say(_finished_line(process.url, matrix, process.exit_status, process.seconds))
    summary = matrix["summary"]
    _say(f"{verdict_sentence(summary)}; wrote {base / MATRIX_MD} and {base / MATRIX_HTML}")
    if not completed:
        return 130
    return int(summary["exit_status"])


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:300] if lines else "empty log"
