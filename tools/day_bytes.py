"""How many bytes a published day takes: generated days of several sizes through `run_day`.

    python tools/day_bytes.py /tmp/day-bytes 400 4000

Prints, per day size, the bytes of the day's version under OUT (every table, its footers and
the run record) and the bytes per receipt between the sizes: the figures behind
agebatch.preflight.BYTES_PER_RECEIPT and BYTES_PER_DAY.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import sys
from pathlib import Path

from agebatch.pipeline import run_day
from agebatch.predict.model import load_model
from agebatch.sample import make_sample_day

DAY = dt.date(2026, 11, 24)


def day_bytes(out: Path, day: dt.date) -> int:
    """Bytes of the files of the day's current version under out."""
    version = (out / ".days" / day.isoformat()).resolve()
    return sum(p.stat().st_size for p in version.rglob("*") if p.is_file())


def main(work: Path, sizes: list[int]) -> None:
    model = load_model()
    measured = []
    for receipts in sizes:
        root = work / str(receipts)
        shutil.rmtree(root, ignore_errors=True)
        sample = make_sample_day(root / "data", DAY, receipts=receipts, seed=1)
        config = sample.config(root / "out", photo_kind="crops")
        run_day(config, DAY, model=model)
        size = day_bytes(config.out, DAY)
        measured.append((receipts, size))
        print(f"{receipts:>7} receipts: {size:>9} bytes ({size / receipts:.1f} per receipt)")
    for (r0, b0), (r1, b1) in itertools.pairwise(measured):
        slope = (b1 - b0) / (r1 - r0)
        print(f"{r0}->{r1}: {slope:.1f} bytes per extra receipt, {b0 - slope * r0:.0f} fixed")


if __name__ == "__main__":
    main(Path(sys.argv[1]), [int(n) for n in sys.argv[2:]])
