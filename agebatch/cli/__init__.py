"""The `agebatch` command: run · backfill · catalog · predict · evaluate · train · demo ·
bench · offers.

One module per command (run.py holds run and backfill); each adds its parser and handler.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agebatch.cli import bench, catalog, demo, evaluate, offers, predict, run, train
from agebatch.cli.options import configure_logging
from agebatch.errors import InputError

COMMANDS = (run, catalog, predict, evaluate, train, demo, bench, offers)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `agebatch` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except InputError as error:
        print(f"agebatch: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "agebatch: interrupted; nothing was published for the day in progress.", file=sys.stderr
        )
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="agebatch",
        description="Checkout photos -> predicted ages -> age-group analytics as Parquet.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
