"""`python -m snapconform table PLAN.yaml [--host URL]`: the transition table a release plan
produces; with --host, replayed on real snapd and each cell marked confirmed or diverged."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from snapconform.model.plan import FORMATS, PlanError, Table, evaluate, parse_plan, render
from snapconform.reports import diagrams
from snapconform.reports.flows import CellObservation

if TYPE_CHECKING:
    from snapconform.conformance.plan_replay import Replay

PROG = "snapconform table"
DEFAULT_ARTIFACTS = Path("artifacts/table")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "table",
        help="print the table of revisions a release plan gives each user",
        description=(
            "Play a release plan (YAML: channels, users, steps) against the store model and "
            "print, per step, what each channel holds and what each user has, with a footnote "
            "per change saying which rule decided it. With --host, replay it on real snapd "
            "(the host's store tier, the store served inside it) and mark every cell as "
            "confirmed by snapd or diverged; exit 1 on any divergence, 2 on bad input, 3 on a "
            "host fault."
        ),
    )
    parser.add_argument("plan", type=Path, metavar="PLAN.yaml", help="the release plan")
    parser.add_argument(
        "--format",
        choices=FORMATS + diagrams.FORMATS,
        default="text",
        help="output format (default: text); html, svg and mermaid draw one flow per user",
    )
    parser.add_argument(
        "--host",
        default=None,
        metavar="URL",
        help="replay the plan on this host's snapd (nspawn://bookworm runs its store tier, "
        "nspawn://bookworm?snapd=testkeys, built on first use)",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=DEFAULT_ARTIFACTS,
        metavar="DIR",
        help="with --host: where the replay's history and transcript go (default %(default)s)",
    )
    parser.set_defaults(func=run)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    path: Path = args.plan
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _fail(f"cannot read {path}: {reason}", 2)
    try:
        table = evaluate(parse_plan(text, str(path)))
    except PlanError as exc:
        return _fail(str(exc), 2)
    if args.host is not None:
        return replay(args, table, path)
    if args.format in diagrams.FORMATS:
        try:
            drawn = diagrams.render_diagram(table, args.format, title=path.name)
        except diagrams.DiagramError as exc:
            return _fail(str(exc), 2)
        sys.stdout.write(drawn)
        return 0
    sys.stdout.write(render(table, args.format))
    return 0


class _Terminated(Exception):
    """SIGTERM or SIGHUP: unwind like Ctrl-C, so the host is stopped."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(signal.Signals(signum).name)


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def observations_of(result: Replay) -> dict[tuple[int, str], CellObservation]:
    """What snapd showed per cell, as the drawings take it (cells absent from both the model
    and snapd are left plain)."""
    return {
        key: CellObservation(
            verdict.status,
            None if verdict.confirmed else verdict.shown,
            result.snapd if verdict.confirmed else f"the model says {verdict.expected_text}",
        )
        for key, verdict in result.cells.items()
        if verdict.expected is not None or verdict.observed.revision is not None
    }


def replay(args: argparse.Namespace, table: Table, path: Path) -> int:
    from snapconform.conformance import plan_replay
    from snapconform.hosts.base import HostError, HostUnavailable

    try:
        plan_replay.check_replayable(table, str(path))
    except PlanError as exc:
        return _fail(str(exc), 2)
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        result = plan_replay.replay_plan(table, args.host, args.artifacts, say=_say)
    except ValueError as exc:  # a URL that names no host
        return _fail(str(exc), 2)
    except HostUnavailable as exc:
        return _fail(f"no host to replay on: {exc}", 3)
    except HostError as exc:
        return _fail(f"host fault (not a verdict on snapd): {exc}", 3)
    except (KeyboardInterrupt, _Terminated) as exc:
        return _fail(f"interrupted ({exc or 'Ctrl-C'}); the host was stopped", 130)
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is _terminate:  # a host backend may have chained after us
                signal.signal(sig, handler)
    _say(result.snapd)
    if args.format in diagrams.FORMATS:
        try:
            drawn = diagrams.render_diagram(
                table, args.format, observations_of(result), title=f"{path.name} on {result.snapd}"
            )
        except diagrams.DiagramError as exc:
            return _fail(str(exc), 2)
        sys.stdout.write(drawn)
        for line in [*result.notes(), plan_replay.verdict_line(result)]:
            _say(line)
    else:
        sys.stdout.write(plan_replay.render_observed(result, args.format))
    return 1 if result.diverged else 0
