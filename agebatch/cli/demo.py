"""`agebatch demo`: generate a sample day, run the nightly flow on it, show what came out."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
from pathlib import Path

import duckdb

from agebatch.analytics_db import default_path
from agebatch.cli.options import DAY
from agebatch.config import PhotoKind, RunConfig, age_group_labels, yesterday
from agebatch.errors import InputError
from agebatch.reports.summary import example_query
from agebatch.sample import DEMO_PREFERENCES, DrawnFaces, make_sample_day
from agebatch.transform.shares import group_of, shares, total_variation

MARKER = ".agebatch-demo"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `demo` command."""
    demo = sub.add_parser(
        "demo",
        help="generate a sample day and run the nightly flow on it",
        description="Generate a sample day (stores, receipts, face images, transactions, "
        "catalog) under --workdir, run the nightly Prefect flow on it and publish there too.",
    )
    demo.add_argument(
        "--workdir", type=Path, default=Path("agebatch-demo"), help="default: %(default)s"
    )
    demo.add_argument(
        "--faces",
        type=Path,
        help="labelled faces (labels.csv + final_files/) to build the day from real faces",
    )
    demo.add_argument(
        "--receipts", type=int, default=DEMO_RECEIPTS, help="per day (default: %(default)s)"
    )
    demo.add_argument(
        "--day", type=DAY, help="the (last) day to generate, YYYY-MM-DD (default: yesterday)"
    )
    demo.add_argument(
        "--days", type=int, default=1, help="days to generate, ending on --day (default: 1)"
    )
    demo.add_argument("--seed", type=int, default=7, help="default: %(default)s")
    demo.add_argument("--model", type=Path, help="a .keras model with its card (default: bundled)")
    demo.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Run the demo."""
    return run_demo(
        args.workdir,
        faces=args.faces,
        receipts=args.receipts,
        seed=args.seed,
        model=args.model,
        day=args.day,
        days=args.days,
    )


DEMO_RECEIPTS = 2000  # a day's receipts over the demo's 3 stores (docs/safeguards.md: why)
RECEIPTS_PER_REGISTER = 120  # a till's receipts in the generated day's 8:00-24:00


def registers_for(receipts: int, stores: int = 3) -> int:
    """Tills per store so that a generated day's receipts fit in its opening hours."""
    return max(2, -(-receipts // (stores * RECEIPTS_PER_REGISTER)))


def run_demo(
    workdir: Path,
    *,
    faces: Path | None = None,
    receipts: int = DEMO_RECEIPTS,
    seed: int = 7,
    model: Path | None = None,
    day: dt.date | None = None,
    days: int = 1,
) -> int:
    """Generate sample days (the last one `day`, default yesterday) under workdir, run the flow
    on each, print where it went."""
    workdir = workdir.resolve()
    data, out = workdir / "data", workdir / "out"
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / MARKER).exists():
        raise InputError(f"{workdir} is not empty and not an agebatch demo folder: pick another.")
    if days < 1:
        raise InputError(f"--days {days} must be at least 1.")
    # The demo's own generated inputs and outputs, made anew, so its figures are always the same.
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).touch()
    day = day or yesterday(RunConfig.model_fields["timezone"].default)
    source = f"real labelled faces from {faces}" if faces else "generated cartoon faces"
    samples = []
    for back in range(days - 1, -1, -1):
        each = day - dt.timedelta(days=back)
        print(f"Generating {receipts} receipts for {each} from {source} under {data} …")
        # Each day its own receipts; the last day always has the seed's own, so the latest day
        # holds the same figures whatever --days says.
        samples.append(
            make_sample_day(
                data,
                each,
                receipts=receipts,
                registers=registers_for(receipts),
                seed=seed + back,
                faces=faces,
                writer=None if faces else DrawnFaces(aligned=False),
                preferences=DEMO_PREFERENCES,
            )
        )
    sample = samples[-1]
    # The demo's cartoon faces (sample.cartoon_face: the bundled model ages them across every
    # group) are not framed like aligned crops; the demo says what its cameras save, as a chain
    # would for cameras it knows. Real faces (--faces) are judged by auto.
    kind = {} if faces else {"photo_kind": PhotoKind.CROPS}
    config = sample.config(out, model=model, **kind)

    # Prefect keeps its state in the demo folder unless the user points it at a server.
    os.environ.setdefault("PREFECT_HOME", str(workdir / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect gives its temporary server 20 s to start; a fresh database on a busy 2-core
    # machine can take longer (seen here), which would fail the quick start.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from agebatch.flows.nightly import nightly

    for each in samples:
        result = nightly(config=config, day=each.day)
    reports = config.reports_folder(day).parent
    tables = ", ".join(
        sorted(p.name for p in out.iterdir() if p.is_dir() and p.name[0] != "." and p != reports)
    )
    shown = f"{samples[0].day} to {day}" if days > 1 else f"{day}"
    print(f"\nPublished Parquet for {shown} under {out}/: {tables}.")
    print(f"Views over every dataset, for SQL tools: {default_path(out)}")
    _print_shares(out, day, config.age_groups, sample.truth if faces else None)
    _print_alcohol(out, day)
    _print_offers(out, config.age_groups, real_faces=faces is not None)
    print(f"\nThe report of {day}, to open in a browser (one page per store beside it):")
    print(f"  {Path(str(result['report'])).as_uri()}")
    print("\nQuery it yourself:")
    print(f"  {example_query(out)}")
    print(f"  duckdb -readonly {default_path(out)}    (the DuckDB CLI: pip install duckdb-cli)")
    if not faces:
        print(
            "\nNote: the faces are generated drawings, so these ages say nothing about the model;"
            " run with --faces DIR to build the day from real labelled faces."
        )
    return 0


def _query(out: Path, day: dt.date, table: str, select: str) -> list[tuple]:
    """Run `select` over one published table's day, which it names `t`."""
    return duckdb.sql(
        "with t as (select * from read_parquet($glob, hive_partitioning = true) where day = $day)"
        f" {select}",
        params={"glob": str(out / table / "*" / "*.parquet"), "day": day},
    ).fetchall()


def _print_alcohol(out: Path, day: dt.date) -> None:
    """Print the day's alcohol sales to review, by reason, the cashiers with most flags, the
    flag threshold's expected error rates, and the missed ID checks."""
    reasons = _query(
        out, day, "alcohol_checks", "select reason, count(*) from t group by 1 order by 1"
    )
    print(
        "\nAlcohol sales to review (alcohol_checks): " + ", ".join(f"{n} {r}" for r, n in reasons)
    )
    cashiers = _query(
        out,
        day,
        "cashier_compliance",
        "select store_id, cashier_id, flagged_receipts, restricted_receipts, flagged_rate "
        "from t order by flagged_rate desc, flagged_receipts desc limit 3",
    )
    print("Cashiers with the highest flagged rate (cashier_compliance):")
    for store, cashier, flagged, restricted, rate in cashiers:
        print(
            f"  {store} {cashier}: {flagged} of {restricted} restricted sales flagged ({rate:.0%})"
        )
    ((recorded, missed, threshold, teen_miss, adult_flag),) = _query(
        out,
        day,
        "runs",
        "select age_checks_recorded, missed_checks, flag_threshold, expected_teen_miss, "
        "expected_adult_flag from t order by started_at desc limit 1",
    )
    if teen_miss is not None:
        print(
            f"Flag threshold {threshold:g} years: the model card expects {teen_miss:.0%} of "
            f"13-17-year-olds to look older (missed) and {adult_flag:.0%} of adults 25+ flagged."
        )
    if not recorded:
        print("Age checks were not recorded (no age_check column): missed checks not counted.")
        return
    print(f"Missed ID checks (young-looking shopper, no check recorded): {missed}")
    cashiers = _query(
        out,
        day,
        "cashier_compliance",
        "select store_id, cashier_id, missed_receipts, flagged_receipts, missed_rate from t "
        "where missed_receipts > 0 order by missed_rate desc, missed_receipts desc limit 3",
    )
    print("Cashiers with the highest missed-check rate (cashier_compliance):")
    for store, cashier, missed, flagged, rate in cashiers:
        print(f"  {store} {cashier}: {missed} of {flagged} flagged sales not checked ({rate:.0%})")


def _print_offers(out: Path, bounds: tuple[int, ...], real_faces: bool) -> None:
    """Print the chain's first offer per group and kind, and what the generator planted."""
    from agebatch.reports.offers import offer_lines, read_offers

    _, table = read_offers(out)
    print(
        "\nWhat to offer each age group (age_group_affinity; each store: "
        f"agebatch offers --out {out}):"
    )
    for line in offer_lines(table[table["level"] == "chain"], top=1)[1:]:
        print(line)
    planted = ", ".join(
        f"{group_of([p.low], bounds)[0]} pick {p.item} {p.factor:g} times as often"
        for p in DEMO_PREFERENCES
    )
    print(f"Planted in the generated day (by true age): {planted}.")
    if not real_faces:
        print(
            "The drawn faces' ages are not the shoppers' ages, so these offers need not show "
            "the planted ones; with --faces DIR they can."
        )


def _print_shares(out: Path, day: dt.date, bounds: tuple[int, ...], truth) -> None:
    """Print the day's published chain shares per age group, as age_group_shares states them
    ('withheld' where a store has too few shoppers of the group; with real faces, the true
    ones beside them)."""
    rows = _query(
        out, day, "receipt_ages", "select receipt_id, age_group from t where status = 'matched'"
    )
    groups = [label for label, *_ in age_group_labels(bounds)]
    chain = dict(
        _query(out, day, "age_group_shares", "select age_group, share from t where level = 'chain'")
    )
    shown = ["withheld" if chain.get(group) is None else f"{chain[group]:.1%}" for group in groups]
    header = f"  {'age group':<10} {'published':>9}"
    print(f"\nShare of photographed shoppers per age group ({len(rows)} receipts):")
    if truth is None:
        print(header)
        for group, text in zip(groups, shown, strict=True):
            print(f"  {group:<10} {text:>9}")
        print("  withheld: fewer than 5 shoppers of the group at some store (docs/safeguards.md)")
        return
    true_age = truth.set_index("receipt_id")["true_age"]
    true = shares(group_of([true_age[r] for r, _ in rows], bounds), groups)
    published = shares([group for _, group in rows], groups)
    print(f"{header} {'true':>7}")
    for group, text, t in zip(groups, shown, true, strict=True):
        print(f"  {group:<10} {text:>9} {t:>7.1%}")
    print(
        f"Distance from the true shares (total variation): {total_variation(published, true):.3f}"
    )
