"""How long reading a big day's transactions takes, and its peak memory (figures for the docs).

`python -m agebatch.inputs.bench --receipts 1000000 [--corrupt]` writes a CSV of three lines per
receipt (500 stores, 4 registers each) to a scratch folder, then reads it with read_lines in a
fresh process and prints seconds, lines kept, that process's peak RSS and the quarantined
receipts. With --corrupt, one line in the middle of the file has a quantity of `nan`; with
--broken, one line in the middle has a field too many (its fields do not parse).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agebatch.duck import connect

DAY = dt.date(2026, 10, 25)


def write_day(folder: Path, receipts: int, corrupt: bool, broken: bool = False) -> Path:
    """A CSV of 3 lines per receipt for DAY; with corrupt, one line has quantity nan; with
    broken, one line has an extra field."""
    path = folder / f"{DAY}.csv"
    bad = (receipts * 3) // 2 if corrupt else -1
    extra = (receipts * 3) // 2 if broken else -1
    with connect() as con:
        con.execute(
            f"""
            copy (
                select
                    'r' || (i // 3) as receipt_id,
                    'S' || lpad(((i // 3) % 500)::varchar, 3, '0') as store_id,
                    'R' || ((i // 3) % 4) as register_id,
                    'C' || ((i // 3) % 2000) as cashier_id,
                    strftime(
                        $day::timestamp + to_seconds((i // 3) % 86000), '%Y-%m-%d %H:%M:%S'
                    ) as paid_at,
                    'SKU' || (i % 997) as sku,
                    case when i = {bad} then 'nan' else (1 + i % 3)::varchar end as quantity,
                    ((1 + i % 3) * 1.25)::decimal(18, 2)::varchar
                    || case when i = {extra} then ',x' else '' end as amount
                from range({receipts * 3}) as t(i)
            ) to '{path}' (header, delimiter ',', quote '')
            """,
            {"day": DAY},
        )
    return path


def _read(folder: str) -> None:
    """In this process: read the day and print seconds, lines and peak RSS as JSON."""
    from agebatch.inputs.transactions import read_lines

    started = time.perf_counter()
    from agebatch.config import RunConfig

    zone = RunConfig.model_fields["timezone"].default  # the run's default, written once there
    read = read_lines(Path(folder), DAY, zone)
    seconds = time.perf_counter() - started
    peak_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    figures = {"seconds": round(seconds, 2), "lines": read.lines.num_rows, "peak_mib": peak_mib}
    listed = read.quarantined.select(["receipt_id", "line", "rule"]).to_pylist()
    print(json.dumps({**figures, "quarantined": listed}))


def main() -> None:
    """Write the day, read it in a fresh process, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=1_000_000)
    parser.add_argument("--corrupt", action="store_true")
    parser.add_argument("--broken", action="store_true")
    parser.add_argument("--read", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        _read(args.read)
        return
    with tempfile.TemporaryDirectory(prefix="agebatch-bench-") as folder:
        write_day(Path(folder), args.receipts, args.corrupt, args.broken)
        command = [sys.executable, "-m", "agebatch.inputs.bench", "--read", folder]
        print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
