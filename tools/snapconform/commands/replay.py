"""`python -m snapconform replay HISTORY.json [--host URL]`: re-run a saved history on a host and
re-check every step against the model; optionally write the reproducers for it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from snapconform.hosts.base import DEFAULT_HOST_URL, HostError, HostUnavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay", help="re-run a saved history (history.json) on a host and re-check it"
    )
    parser.add_argument("history", type=Path, help="a history.json saved by a conformance run")
    parser.add_argument("--host", default=DEFAULT_HOST_URL, help="host URL (default %(default)s)")
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts/replay"), help="where to write results"
    )
    parser.add_argument(
        "--reproducers", action="store_true", help="also write reproduce.sh and a spread task"
    )
    parser.set_defaults(func=run)


class BadHistory(ValueError):
    """The file is not a history this command can replay."""


def load_history(path: Path) -> dict:
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadHistory(f"{path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise BadHistory(f"{path}: not JSON ({exc})") from None
    if not isinstance(history, dict) or not isinstance(history.get("steps"), list):
        raise BadHistory(f"{path}: no `steps` list (is it a history.json?)")
    return history


def run(args: argparse.Namespace) -> int:
    from snapconform.conformance.reproducer import load_steps, write_reproducers
    from snapconform.conformance.session import ConformanceRun, HostSession

    try:
        history = load_history(args.history)
        steps = load_steps(history)
    except BadHistory as exc:
        print(f"snapconform replay: {exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError) as exc:
        print(f"snapconform replay: {args.history}: bad step: {exc}", file=sys.stderr)
        return 2
    if args.reproducers:
        try:
            written = write_reproducers(history, args.artifacts, f"replay of {args.history}")
        except ValueError as exc:  # ReproducerError (no cached test-keys build), a bad release
            print(f"snapconform replay: cannot write reproducers: {exc}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}")
    try:
        session = HostSession(args.host, artifacts=args.artifacts)
    except ValueError as exc:
        print(f"snapconform replay: {exc}", file=sys.stderr)
        return 2
    divergences = 0
    known: dict[str, int] = {}
    conformance = None
    try:
        session.start()
        conformance = ConformanceRun(session, stop_on_divergence=False)
        print(f"# {session.describe().get('snapd', '')} on {args.host}")
        for step in steps:
            record = conformance.step(step.operation)
            recorded = step.record.get("verdict", "?")
            print(f"{record.index:3d} {record.verdict:10s} (recorded: {recorded}) {record.command}")
            for mismatch in record.mismatches:
                print(f"      {mismatch}")
            for key in record.known:
                known[key] = known.get(key, 0) + 1
            divergences += record.verdict == "divergence"
    except HostUnavailable as exc:
        print(f"snapconform replay: {exc}", file=sys.stderr)
        return 2
    except HostError as exc:
        print(f"snapconform replay: host fault, not a verdict on snapd: {exc}", file=sys.stderr)
        return 3
    finally:
        # Written whatever happened: the steps up to a fault are what a person reads next.
        if conformance is not None:
            conformance.save_history(args.artifacts / "history.json")
        session.stop()
    for key, count in sorted(known.items()):
        print(f"known divergence {key}: {count} step(s) (see snapconform.conformance.known)")
    passed = len(steps) - divergences - sum(known.values())
    print(f"{passed} passed, {divergences} failed")
    return 1 if divergences else 0
