"""`python -m snapconform COMMAND`: one sub-command per module in snapconform.commands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes `register(subparsers) -> None`; its parser sets `func(args) -> int`.
COMMAND_MODULES = ("table", "bench", "replay", "hosts", "matrix")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snapconform",
        description="Drive real snapd and check it against a reference model.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"snapconform.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"snapconform.commands.{name}":
                raise
            continue  # a command not written yet is simply not offered
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("snapconform: interrupted", file=sys.stderr)
        return 130
