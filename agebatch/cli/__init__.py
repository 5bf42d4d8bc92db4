"""The `agebatch` command: run · backfill · catalog · predict · evaluate · train · demo ·
bench · offers · report.

One module per command (run.py holds run and backfill); each adds its parser and handler.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agebatch.cli import bench, catalog, demo, evaluate, offers, predict, report, run, train
from agebatch.cli.options import configure_logging
from agebatch.errors import CoverageRefused, InputError

COMMANDS = (run, catalog, predict, evaluate, train, demo, bench, offers, report)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `agebatch` command; returns the exit status: 0 done, 1 a backfill
    with failed days, 2 bad input or an output folder that cannot take the day (one
    sentence), 3 the coverage gate refused the day, 130 interrupted."""
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except CoverageRefused as error:
        print(f"agebatch: refused: {error}", file=sys.stderr)
        return 3
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
