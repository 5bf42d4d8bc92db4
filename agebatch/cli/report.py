"""`agebatch report`: the published day as one self-contained HTML page (see docs/report.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agebatch.cli.options import DAY


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `report` command."""
    from agebatch.reports.html import CURRENCY, REPORT_DAYS

    report = sub.add_parser(
        "report",
        help="write the HTML report of a published day",
        description="Write one self-contained HTML page (inline SVG charts, no script, nothing "
        "loaded from the network) of a published day: age-group shares raw and corrected, "
        "their trend, category mix, coverage, the alcohol review list and cashier rates, "
        "offers. With --store, the page holds that store's figures only.",
    )
    report.add_argument("--out", type=Path, required=True, help="the output root (OUT)")
    report.add_argument(
        "--html", type=Path, required=True, metavar="FILE", help="the page to write (.html)"
    )
    report.add_argument("--day", type=DAY, help="YYYY-MM-DD (default: the latest published)")
    report.add_argument(
        "--days",
        type=int,
        default=REPORT_DAYS,
        help=f"published days of the trend, the day included (default: {REPORT_DAYS})",
    )
    report.add_argument(
        "--currency",
        default=CURRENCY,
        metavar="CODE",
        help=f"the amounts' currency, an ISO 4217 code such as EUR (default: {CURRENCY})",
    )
    report.add_argument("--store", help="one store's page, for its manager (default: the chain)")
    report.add_argument(
        "--restricted-out",
        type=Path,
        metavar="DIR",
        help="where the run published receipt_ages, alcohol_checks and cashier_compliance, if "
        "not under --out (the run's --restricted-out)",
    )
    report.add_argument(
        "--model",
        type=Path,
        metavar="MODEL.keras",
        help="the model whose card states its measured error (default: the bundled one)",
    )
    report.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Write the page and say where it is."""
    from agebatch.predict.card import ModelCard
    from agebatch.predict.model import bundled_model_path
    from agebatch.reports.html import write_report

    card = ModelCard.read(args.model or bundled_model_path())
    path, data = write_report(
        args.out,
        args.html,
        args.day,
        args.days,
        args.store,
        card,
        args.restricted_out,
        args.currency.upper(),
    )
    who = f"store {data.store}" if data.store else f"the chain and {len(data.stores)} stores"
    print(f"Wrote the report of {data.day} ({who}, trend over {len(data.trend_days)} days):")
    print(f"  {path.resolve().as_uri()}")
    return 0
