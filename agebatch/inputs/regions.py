"""Where the shopper stands in each camera's frame: a face region per store and register.

The file (CSV or Parquet) has the columns store_id, register_id, x0, y0, x1, y1: fractions of the
frame's width and height. An empty register_id (or `*`) covers every register of the store that
has no row of its own; cameras not listed use the run's --face-region (default: the whole frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from agebatch.config import WHOLE_FRAME, Region, parse_region
from agebatch.errors import InputError

REGION_COLUMNS = ("store_id", "register_id", "x0", "y0", "x1", "y1")
RegionKey = tuple[str, str | None]  # (store_id, register_id or None for the whole store)


def read_face_regions(path: Path) -> dict[RegionKey, Region]:
    """Read a face-region file into {(store_id, register_id or None): region}, checked."""
    if not path.is_file():
        raise InputError(f"Face region file {path} does not exist.")
    try:
        if path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path).astype(str)
        elif path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            raise InputError(f"Face region file {path} must be .csv or .parquet.")
    except (OSError, ValueError, UnicodeDecodeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"Face region file {path} cannot be read: {first}.") from None
    missing = [c for c in REGION_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"Face region file {path} lacks the column(s) {', '.join(missing)} "
            f"(expected {','.join(REGION_COLUMNS)})."
        )
    regions: dict[RegionKey, Region] = {}
    for number, row in enumerate(table[list(REGION_COLUMNS)].itertuples(index=False), start=2):
        store = str(row.store_id).strip()
        register = str(row.register_id).strip()
        if not store or store in ("nan", "None"):
            raise InputError(f"Face region file {path}, row {number}: store_id is empty.")
        key: RegionKey = (store, None if register in ("", "*", "nan", "None") else register)
        if key in regions:
            where = f"register {key[1]}" if key[1] is not None else "all registers"
            raise InputError(
                f"Face region file {path} lists store {store}, {where}, more than once."
            )
        try:
            regions[key] = parse_region(",".join((row.x0, row.y0, row.x1, row.y1)))
        except InputError as error:
            raise InputError(f"Face region file {path}, row {number}: {error}") from None
    return regions


def regions_for(
    store_ids: Sequence[str],
    register_ids: Sequence[str],
    regions: dict[RegionKey, Region] | None,
    default: Region = WHOLE_FRAME,
) -> list[Region]:
    """The face region of each capture: its register's, else its store's, else the default."""
    if not regions:
        return [default] * len(store_ids)
    return [
        regions.get((store, register)) or regions.get((store, None)) or default
        for store, register in zip(store_ids, register_ids, strict=True)
    ]
