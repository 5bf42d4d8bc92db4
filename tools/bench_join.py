"""Time the join on a generated day: 1M receipts and 1M photos at 500 stores x 4 registers.

    .venv/bin/python tools/bench_join.py [--receipts 1000000] [--stores 500] [--registers 4]

Prints the generation time, then the whole join_day (k from the config) and each declared
model's time within it, from the runner's debug lines (matching is receipt_captures). A
developer tool, not shipped in the package; tests/tools/test_bench_join.py runs it small.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import resource
import time

import numpy as np
import pyarrow as pa

from agebatch.config import default_age_bounds
from agebatch.duck import connect
from agebatch.transform.compliance import ComplianceInputs
from agebatch.transform.join import join_day

DAY = dt.date(2026, 11, 24)
OPEN_S, CLOSE_S = 7 * 3600, 23 * 3600
SKUS = 40


def make_day(
    receipts: int, stores: int, registers: int, seed: int = 0
) -> tuple[pa.Table, pa.Table, pa.Table, int]:
    """Lines, catalog and photos of a busy day, as Arrow tables built in memory, and how many
    registers have a camera 90 s fast.

    Each register takes receipts spread over 07:00-23:00 (at 2000 registers, one every
    ~115 s); 90% of shoppers are photographed 2-15 s before paying, 5% of photos are bursts
    (a second shot in the same second), 5% show passers-by who buy nothing, 5% are named in a
    manifest, and 1% of registers have a camera 90 s fast. About 1M photos per 1M receipts.
    """
    rng = np.random.default_rng(seed)
    n_reg = stores * registers
    register = rng.integers(0, n_reg, receipts)
    start = np.datetime64(DAY.isoformat(), "us")
    paid_s = rng.uniform(OPEN_S, CLOSE_S, receipts).round()
    paid = start + (paid_s * 1e6).astype("timedelta64[us]")
    store_ids = np.array([f"S{s:03d}" for s in range(stores)])
    register_ids = np.array([f"R{r + 1}" for r in range(registers)])
    store_of, register_of = store_ids[register // registers], register_ids[register % registers]
    receipt_ids = np.char.add("T", np.arange(receipts).astype(str))

    items = rng.integers(1, 6, receipts)
    line_of = np.repeat(np.arange(receipts), items)
    quantity = rng.integers(1, 4, len(line_of)).astype(float)
    sku = rng.integers(0, SKUS, len(line_of))
    lines = pa.table(
        {
            "receipt_id": receipt_ids[line_of],
            "store_id": store_of[line_of],
            "register_id": register_of[line_of],
            "cashier_id": np.char.add("C", (register[line_of] % 997).astype(str)),
            "paid_at": paid[line_of],
            "sku": np.char.add("SKU", sku.astype(str)),
            "quantity": quantity,
            "amount": pa.array((quantity * (1 + sku)).round(2)).cast(pa.decimal128(18, 2)),
        }
    )
    catalog = pa.table(
        {
            "sku": [f"SKU{i}" for i in range(SKUS)],
            "category": [f"cat{i % 8}" for i in range(SKUS)],
            "age_restricted": [i % 8 == 0 for i in range(SKUS)],
        }
    )

    shot = rng.random(receipts) < 0.9
    fast = rng.random(n_reg) < 0.01
    taken_s = paid_s - rng.integers(2, 16, receipts) + np.where(fast[register], 90, 0)
    own, own_reg = np.flatnonzero(shot), register[shot]
    n_extra = int(0.05 * receipts)
    burst = rng.choice(own, n_extra)
    passer_reg = rng.integers(0, n_reg, n_extra)
    all_reg = np.concatenate([own_reg, register[burst], passer_reg])
    all_s = np.concatenate(
        [taken_s[own], taken_s[burst], rng.uniform(OPEN_S, CLOSE_S, n_extra).round()]
    )
    n = len(all_s)
    named = np.full(n, None, dtype=object)
    pick = np.flatnonzero(rng.random(len(own)) < 0.05)
    named[pick] = receipt_ids[own[pick]]
    status = rng.choice(np.array(["ok", "no_face", "unreadable"]), n, p=[0.9, 0.07, 0.03])
    captures = pa.table(
        {
            "photo": np.char.add(np.char.add("P", np.arange(n).astype(str)), ".jpg"),
            "store_id": store_ids[all_reg // registers],
            "register_id": register_ids[all_reg % registers],
            "captured_at": start + (all_s * 1e6).astype("timedelta64[us]"),
            "predicted_age": pa.array(
                np.where(status == "ok", rng.uniform(16, 80, n).round(1), np.nan),
                from_pandas=True,
            ),
            "status": status,
            "receipt_id": pa.array(named, pa.string()),
        }
    )
    return lines, catalog, captures, int(fast.sum())


class _Timings(logging.Handler):
    """Collects the runner's 'Built <model> in <s> s' lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        name, seconds = record.args
        self.seconds[name] = seconds


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Generate the day, run join_day once and print its time and each model's; returns the
    seconds of the whole and of each model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=1_000_000)
    parser.add_argument("--stores", type=int, default=500)
    parser.add_argument("--registers", type=int, default=4)
    args = parser.parse_args(argv)
    # one warning per drifted camera
    logging.getLogger("agebatch.transform.join").setLevel(logging.ERROR)
    runner = logging.getLogger("agebatch.transform.runner")
    timings, level = _Timings(), runner.level
    runner.addHandler(timings)
    runner.setLevel(logging.DEBUG)

    started = time.perf_counter()
    lines, catalog, captures, fast = make_day(args.receipts, args.stores, args.registers)
    print(
        f"generated {args.receipts:,} receipts ({lines.num_rows:,} lines) and "
        f"{captures.num_rows:,} photos at {args.stores * args.registers:,} registers "
        f"in {time.perf_counter() - started:.1f} s"
    )
    try:
        with connect() as con:
            started = time.perf_counter()
            tables = join_day(
                con,
                day=DAY,
                lines=lines,
                catalog=catalog,
                captures=captures,
                model_version="bench",
                age_bounds=default_age_bounds(),
                window_before_s=120.0,
                window_after_s=5.0,
                compliance=ComplianceInputs(legal_age=18.0, challenge_age=25.0, margin=0.0),
            )
            whole = time.perf_counter() - started
    finally:
        runner.removeHandler(timings)
        runner.setLevel(level)
    status = tables["receipt_ages"].column("status").to_pylist()
    drifted = sum(tables["till_clocks"].column("drift_suspected").to_pylist())
    print(
        f"join_day: {whole:.1f} s  ({status.count('matched'):,} matched, "
        f"{status.count('no_photo'):,} no_photo; {drifted} registers flagged for drift, "
        f"{fast} generated with a camera 90 s fast)"
    )
    for name, seconds in timings.seconds.items():
        print(f"  {name:<24} {seconds:6.2f} s")
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory {peak_gib:.1f} GiB")
    return {"join_day": whole, **timings.seconds}


if __name__ == "__main__":
    main()
