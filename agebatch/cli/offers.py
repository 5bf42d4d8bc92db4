"""`agebatch offers`: what to offer each age group, from the published age_group_affinity."""

from __future__ import annotations

import argparse
from pathlib import Path

from agebatch.cli.options import DAY


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `offers` command."""
    offers = sub.add_parser(
        "offers",
        help="print the ranked offers per age group of a published day",
        description="Print, per store (and for the chain) and age group, the categories and "
        "products the group buys more often than the shoppers as a whole: those whose lift "
        "interval lies wholly above 1, ranked by its lower end (see docs/offers.md). The ages "
        "are the model's estimates, and a lift is a correlation, not a cause.",
    )
    offers.add_argument("--out", type=Path, required=True, help="the output root (OUT)")
    offers.add_argument("--day", type=DAY, help="YYYY-MM-DD (default: the latest published)")
    offers.add_argument("--store", help="one store (default: every store and the chain)")
    offers.add_argument("--group", help="one age group, e.g. 18-24 (default: every group)")
    offers.add_argument(
        "--top", type=int, default=3, help="offers per group and kind of item (default: 3)"
    )
    offers.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Print the offers, store by store, then the chain's."""
    from agebatch.reports.offers import offer_lines, read_offers, window_note

    day, table = read_offers(args.out, args.day, args.store, args.group)
    print(f"Offers for {day} ({window_note(table)}):")
    for line in offer_lines(table, args.top):
        print(line)
    return 0
