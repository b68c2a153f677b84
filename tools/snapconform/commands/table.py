"""`python -m snapconform table PLAN.yaml`: the transition table a release plan produces."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from snapconform.model.plan import FORMATS, PlanError, evaluate, parse_plan, render
from snapconform.reports import diagrams

PROG = "snapconform table"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "table",
        help="print the table of revisions a release plan gives each user",
        description=(
            "Play a release plan (YAML: channels, users, steps) against the store model and "
            "print, per step, what each channel holds and what each user has, with a footnote "
            "per change saying which rule decided it."
        ),
    )
    parser.add_argument("plan", type=Path, metavar="PLAN.yaml", help="the release plan")
    parser.add_argument(
        "--format",
        choices=FORMATS + diagrams.FORMATS,
        default="text",
        help="output format (default: text); html, svg and mermaid draw one flow per user",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.plan
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"{PROG}: cannot read {path}: {reason}", file=sys.stderr)
        return 2
    try:
        table = evaluate(parse_plan(text, str(path)))
    except PlanError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.format in diagrams.FORMATS:
        try:
            drawn = diagrams.render_diagram(table, args.format, title=path.name)
        except diagrams.DiagramError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        sys.stdout.write(drawn)
        return 0
    sys.stdout.write(render(table, args.format))
    return 0
