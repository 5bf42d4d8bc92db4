"""A generated day at busy tills, with the photo each receipt must get.

Receipts at each register are 30-90 s apart. A photographed shopper is photographed 1-20 s
before paying, so their photo is nearer their own payment (at most 20 s) than any other
receipt's (at least 30 + 1 s), and it falls in no later receipt's window (the next payment is
at least 30 - 20 = 10 s after the photo, more than the 5 s the window reaches after payment).
So the right answer is always defined: a shopper's own photo, or no_photo when the shot was
missed; never a neighbour's photo. Some shots come as a burst of two in one second (the second
one without a face), some photos are named in a manifest with their receipt_id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from tests.conftest import DAY, captures_frame

REGISTERS = (("S1", "R1"), ("S1", "R2"))
GAP_S = (30, 90)
PHOTO_LAG_S = (1, 20)
WINDOW_BEFORE_S, WINDOW_AFTER_S = 120.0, 5.0
STATUS_RANK = {"ok": 0, "no_face": 1, "unreadable": 2}
LINES_SCHEMA = pa.schema(
    [(c, pa.string()) for c in ("receipt_id", "store_id", "register_id", "cashier_id")]
    + [("paid_at", pa.timestamp("us")), ("paid_at_utc", pa.timestamp("us"))]
    + [("sku", pa.string()), ("quantity", pa.float64()), ("amount", pa.float64())]
)


@dataclass
class Receipt:
    """One generated receipt and the truth about its shopper's photo."""

    receipt_id: str
    store_id: str
    register_id: str
    paid_at: dt.datetime
    amounts: list[float]
    paid_at_utc: dt.datetime | None = None
    photo: str | None = None  # the photo it must get
    status: str = "no_photo"  # the status it must get
    shots: list[tuple] = field(default_factory=list)  # captures_frame rows


@dataclass(frozen=True)
class BusyDay:
    """A day's inputs for join_day and the expected (photo, status) of each receipt."""

    lines: pa.Table
    captures: pd.DataFrame
    expected: dict[str, tuple[str | None, str]]
    sales: float


def burst_winner(shots: list[tuple]) -> tuple:
    """The shot that counts in a one-second burst: a readable one, then the last by name."""
    best = min(STATUS_RANK[shot[5]] for shot in shots)
    return max((shot for shot in shots if STATUS_RANK[shot[5]] == best), key=lambda s: s[0])


def busy_day(
    missing: float,
    *,
    receipts: int = 60,
    seed: int = 0,
    named: float = 0.2,
    bursts: float = 0.1,
    registers: tuple[tuple[str, str], ...] = REGISTERS,
    start: dt.datetime | None = None,
    gap_s: tuple[int, int] = GAP_S,
    camera_ahead_s: dict[tuple[str, str], float] | None = None,
    zone: ZoneInfo | None = None,
    utc: bool = False,
) -> BusyDay:
    """`receipts` receipts per register, a `missing` share of shoppers not photographed.

    Times are true instants from `start`; a camera in camera_ahead_s writes its photos' times
    that many seconds late. With a zone, `start` is UTC and the tills and cameras write the
    zone's wall clock (paid_at, captured_at), and with utc also the UTC times (paid_at_utc,
    captured_at_utc) as if the inputs carried offsets.
    """
    rng = np.random.default_rng(seed)
    start = start or dt.datetime.combine(DAY, dt.time(12, 0))
    ahead = camera_ahead_s or {}
    made: list[Receipt] = []
    for store_id, register_id in registers:
        paid_at = start
        missed = set(rng.choice(receipts, round(missing * receipts), replace=False).tolist())
        skew = dt.timedelta(seconds=ahead.get((store_id, register_id), 0.0))
        for n in range(receipts):
            paid_at += dt.timedelta(seconds=int(rng.integers(gap_s[0], gap_s[1] + 1)))
            receipt = Receipt(
                f"{store_id}-{register_id}-{n:04d}",
                store_id,
                register_id,
                _wall(paid_at, zone),
                [round(float(rng.uniform(1, 30)), 2) for _ in range(int(rng.integers(1, 4)))],
                paid_at_utc=paid_at if zone and utc else None,
            )
            made.append(receipt)
            if n in missed:
                continue
            lag = int(rng.integers(PHOTO_LAG_S[0], PHOTO_LAG_S[1] + 1))
            taken = paid_at - dt.timedelta(seconds=lag) + skew
            status = str(rng.choice(["ok", "unreadable", "no_face"], p=[0.9, 0.05, 0.05]))
            age = float(rng.integers(15, 80)) if status == "ok" else None
            name = rng.random() < named
            photo = f"{store_id}/{register_id}/{n:04d}.jpg"
            shot = (photo, store_id, register_id, _wall(taken, zone), age, status)
            shot += (receipt.receipt_id if name else None, taken if zone and utc else None)
            receipt.shots.append(shot)
            if not name and rng.random() < bursts:
                partner = (photo[:-4] + "_1.jpg", *shot[1:4], None, "no_face", *shot[6:])
                receipt.shots.append(partner)
            winner = burst_winner(receipt.shots)
            receipt.photo = winner[0]
            receipt.status = "matched" if winner[5] == "ok" else winner[5]
    return _day(made)


def _wall(instant: dt.datetime, zone: ZoneInfo | None) -> dt.datetime:
    """The wall clock of a zone at a (naive UTC) instant; without a zone, the instant."""
    if zone is None:
        return instant
    return instant.replace(tzinfo=dt.UTC).astimezone(zone).replace(tzinfo=None)


def _day(receipts: list[Receipt]) -> BusyDay:
    lines = pa.Table.from_pylist(
        [
            {
                "receipt_id": r.receipt_id,
                "store_id": r.store_id,
                "register_id": r.register_id,
                "cashier_id": f"C{r.register_id}",
                "paid_at": r.paid_at,
                "paid_at_utc": r.paid_at_utc,
                "sku": f"SKU{i}",
                "quantity": 1.0,
                "amount": amount,
            }
            for r in receipts
            for i, amount in enumerate(r.amounts)
        ],
        schema=LINES_SCHEMA,
    )
    captures = captures_frame(*(shot[:7] for r in receipts for shot in r.shots))
    captures["captured_at_utc"] = pd.Series(
        [shot[7] for r in receipts for shot in r.shots], dtype="datetime64[us]"
    )
    return BusyDay(
        lines,
        captures,
        {r.receipt_id: (r.photo, r.status) for r in receipts},
        round(sum(sum(r.amounts) for r in receipts), 2),
    )


CATALOG = pa.table(
    {
        "sku": ["SKU0", "SKU1", "SKU2"],
        "category": ["beer", "bakery", "dairy"],
        "age_restricted": [True, False, False],
    }
)
