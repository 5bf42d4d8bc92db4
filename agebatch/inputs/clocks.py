"""Camera clock offsets: how many seconds each camera's clock runs ahead of its till's.

The file (CSV or Parquet) has the columns store_id, register_id, offset_s. An empty register_id
covers every register of the store that has no row of its own. A camera 90 s fast has offset_s
90; its photos' times are moved back by that much before they are matched with payments.
An offset must be a finite number of seconds within a day either way (NaN, inf or a number
that would overflow a time are refused when the file is read, before any photo); a row for a
camera with no photo that day is named in the log (`unknown_cameras`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from agebatch.errors import InputError
from agebatch.inputs.tables import read_table

log = logging.getLogger(__name__)

OFFSET_COLUMNS = {"store_id": "varchar", "register_id": "varchar", "offset_s": "double"}
MAX_OFFSET_S = 86_400.0  # a camera clock off by more than a day is not a drift to correct


def read_clock_offsets(path: Path) -> pa.Table:
    """Read a clock offsets file (store_id, register_id or empty, offset_s), checked."""
    table = read_table(path, OFFSET_COLUMNS, "clock offsets", nullable=("register_id",))
    register = pc.if_else(
        pc.equal(pc.utf8_trim_whitespace(table["register_id"]), ""), None, table["register_id"]
    )
    table = table.set_column(1, "register_id", register)
    keys = table.group_by(["store_id", "register_id"]).aggregate([("offset_s", "count")])
    repeated = keys.filter(pc.field("offset_s_count") > 1)
    if repeated.num_rows:
        store, register = repeated["store_id"][0].as_py(), repeated["register_id"][0].as_py()
        where = f"register {register}" if register is not None else "all registers"
        raise InputError(f"Clock offsets file {path} lists store {store}, {where}, more than once.")
    for row in table.to_pylist():
        offset = row["offset_s"]
        if not math.isfinite(offset) or abs(offset) > MAX_OFFSET_S:
            register = row["register_id"]
            where = f"register {register}" if register is not None else "all registers"
            raise InputError(
                f"Clock offsets file {path}: store {row['store_id']}, {where}, has offset_s "
                f"{offset!r}, not a number of seconds within a day either way "
                f"(-{MAX_OFFSET_S:,.0f} to {MAX_OFFSET_S:,.0f})."
            )
    return table


def unknown_cameras(offsets: pa.Table, cameras: Iterable[tuple[str, str]]) -> list[str]:
    """The rows of a clock offsets table that name no camera of the day, as 'S01/R9' (a store
    row, empty register, as 'S01/*'): their offsets correct nothing."""
    cameras = set(cameras)
    stores = {store for store, _ in cameras}
    unknown = []
    for row in offsets.to_pylist():
        store, register = row["store_id"], row["register_id"]
        if register is None and store not in stores:
            unknown.append(f"{store}/*")
        elif register is not None and (store, register) not in cameras:
            unknown.append(f"{store}/{register}")
    return sorted(unknown)


def name_unknown_cameras(path: Path, offsets: pa.Table, captures: pd.DataFrame) -> list[str]:
    """Log, in one sentence, the offsets rows that name no camera of the day's captures."""
    stores, registers = captures["store_id"].astype(str), captures["register_id"].astype(str)
    cameras = zip(stores, registers, strict=True)
    unknown = unknown_cameras(offsets, cameras)
    if unknown:
        log.warning(
            "Clock offsets file %s lists %d camera(s) with no photo this day, whose offsets "
            "correct nothing: %s (check the store and register ids)",
            path,
            len(unknown),
            ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else ""),
        )
    return unknown
