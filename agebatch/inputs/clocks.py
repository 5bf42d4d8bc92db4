"""Camera clock offsets: how many seconds each camera's clock runs ahead of its till's.

The file (CSV or Parquet) has the columns store_id, register_id, offset_s. An empty register_id
covers every register of the store that has no row of its own. A camera 90 s fast has offset_s
90; its photos' times are moved back by that much before they are matched with payments.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from agebatch.errors import InputError
from agebatch.inputs.tables import read_table

OFFSET_COLUMNS = {"store_id": "varchar", "register_id": "varchar", "offset_s": "double"}


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
    return table
