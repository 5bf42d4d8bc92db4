"""`agebatch catalog`: write the analytics database, one DuckDB view per dataset over OUT."""

from __future__ import annotations

import argparse
from pathlib import Path

from agebatch.analytics_db import write_analytics_db
from agebatch.cli.options import add_config_options
from agebatch.config import RunConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `catalog` command."""
    catalog = sub.add_parser(
        "catalog",
        help="write the DuckDB file analysts' tools open (one view per dataset)",
        description="Write a DuckDB database with one view per published dataset over OUT "
        "(every day, hive partitioning, union by name, exact types, column descriptions), "
        "for the DuckDB CLI, DBeaver, Metabase or Superset. Each run refreshes it too.",
    )
    add_config_options(catalog, RunConfig, only=("out",))
    catalog.add_argument(
        "--db",
        type=Path,
        help=RunConfig.model_fields["analytics_db"].description,
    )
    catalog.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Write the database and say how to open it."""
    db, views = write_analytics_db(args.out, args.db)
    print(f"Wrote {db}: views {', '.join(views)}")
    print(f"Open it with the DuckDB CLI: duckdb -readonly {db}")
    return 0
