"""`agebatch run` (one day) and `agebatch backfill` (a range of days)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from agebatch.cli.options import DAY, ProgressBars, add_config_options, run_config
from agebatch.config import RunConfig
from agebatch.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `run` and `backfill` commands."""
    run = sub.add_parser(
        "run",
        help="run one day",
        description="Run the nightly job for one day. Every setting can also come from an "
        "AGEBATCH_<SETTING> environment variable (e.g. AGEBATCH_OUT); flags win.",
    )
    run.add_argument("--day", type=DAY, help="YYYY-MM-DD (default: yesterday)")
    add_config_options(run, RunConfig, required=False)
    run.set_defaults(handler=command_run)

    backfill = sub.add_parser(
        "backfill",
        help="run a range of days",
        description="Run every day from --start to --end (inclusive); each day is published "
        "whole or not at all, and a failed day does not stop the others.",
    )
    backfill.add_argument("--start", type=DAY, required=True, help="first day, YYYY-MM-DD")
    backfill.add_argument("--end", type=DAY, required=True, help="last day, YYYY-MM-DD")
    add_config_options(backfill, RunConfig, required=False)
    backfill.set_defaults(handler=command_backfill)


def command_run(args: argparse.Namespace) -> int:
    """Run one day and print what it published."""
    from agebatch.pipeline import run_day
    from agebatch.reports.summary import print_summary

    config = run_config(args)
    if config.sharded:
        run_flow(config, args.day or config.yesterday())
        return 0
    with ProgressBars() as bars:
        published = run_day(config, args.day or config.yesterday(), progress=bars.new)
    print_summary(published, config.out)
    return 0


def run_flow(config: RunConfig, day: dt.date) -> None:
    """Run one day through the nightly flow, whose predict stage runs in shards on Dask (a
    Prefect task runner needs a flow run: the API of PREFECT_API_URL, else a temporary one)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from agebatch.flows.nightly import nightly

    with _prefect_api():
        figures = nightly(config=config, day=day)
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")
    print(f"Published {day} under {config.out}/")


@contextmanager
def _prefect_api() -> Iterator[None]:
    """The Prefect API of PREFECT_API_URL, else Prefect's temporary local server, shared with the
    Dask workers (without a URL each worker process would start a server of its own)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    # The instance Prefect itself would start; it stops at exit, after the run's logs are sent.
    server = SubprocessASGIServer()
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url  # inherited by local worker processes
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield


def command_backfill(args: argparse.Namespace) -> int:
    """Run each day of a range; report the days that failed (exit status 1 if any)."""
    from agebatch.pipeline import run_day
    from agebatch.predict.model import load_model
    from agebatch.preflight import check_settings
    from agebatch.reports.summary import print_summary

    if args.end < args.start:
        raise InputError(f"--end {args.end} is before --start {args.start}.")
    config = run_config(args)
    check_settings(config)  # each day's inputs are checked again as it runs
    model = None if config.sharded else load_model(config.model)
    days = [args.start + dt.timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    failed: list[str] = []
    for day in days:
        print(f"== {day}", file=sys.stderr)
        try:
            if config.sharded:
                run_flow(config, day)
                continue
            with ProgressBars() as bars:
                published = run_day(config, day, model=model, progress=bars.new)
        except InputError as error:
            print(f"agebatch: {day} not published: {error}", file=sys.stderr)
            failed.append(day.isoformat())
            continue
        print_summary(published, config.out)
    done = len(days) - len(failed)
    print(
        f"Backfill: {done} of {len(days)} days published"
        + (f"; failed: {', '.join(failed)}" if failed else ".")
    )
    return 1 if failed else 0
