"""Checks before the expensive work: the settings, the inputs and the output folders; and
write failures in one sentence.

`check_settings` runs first, before the model loads: the day's inputs exist (its photo folder,
its transactions, the catalog), every settings file reads (--policy, --face-regions,
--clock-offsets), and the model card supports what the settings ask of it (--margin needs its
error per age band, --max-teen-miss a threshold on its operating curve). Then, once the day's
transactions are read and before any photo is decoded, a run makes sure each output root can
take the day: it exists or
can be made, a file can be written in it, it has the room the day is estimated to need, and
the process's file-size limit (`ulimit -f`) is above that estimate. What cannot be foreseen (a
disk filling while the day is written) fails in publish_day, which leaves the previous version
of the day in place; `write_failure` says what happened in one sentence.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import resource
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agebatch.config import RunConfig
from agebatch.errors import InputError, OutputError
from agebatch.inputs.clocks import read_clock_offsets
from agebatch.inputs.policy import read_policy
from agebatch.inputs.regions import read_face_regions
from agebatch.inputs.transactions import read_catalog, transactions_file
from agebatch.predict.card import ModelCard
from agebatch.predict.model import bundled_model_path
from agebatch.transform.compliance import choose_threshold, error_margins

# A published day's size. Measured on generated days (tools/day_bytes.py: 26.5 bytes per
# receipt over all tables and 43 kB fixed, with 21-character receipt ids); the estimate allows
# about ten times that per receipt, for long random ids (a UUID receipt id and its photo path
# compress to some 60 bytes), and twenty times the fixed part.
BYTES_PER_RECEIPT = 256
BYTES_PER_DAY = 1024 * 1024


@dataclass(frozen=True)
class Room:
    """What a day is estimated to need, and what each output root has."""

    needed: int  # bytes
    free: dict[Path, int]  # bytes free per root
    file_limit: int | None  # the soft RLIMIT_FSIZE, None: unlimited


def check_settings(config: RunConfig, day: dt.date | None = None) -> ModelCard:
    """Check every setting a run of `day` (None: any day) needs against its files and the model
    card, before the model loads and any photo is decoded; return the card, or raise
    InputError in one sentence."""
    if day is not None:
        folder = config.day_folder(day)
        if not config.photos.is_dir():
            raise InputError(f"Photos root {config.photos} is not a folder: check --photos.")
        if not folder.is_dir():
            raise InputError(
                f"Photo folder {folder} does not exist: check --photos and --day "
                "(a day with no photos needs an empty folder)."
            )
        transactions_file(config.transactions, day)
    elif not config.photos.is_dir():
        raise InputError(f"Photos root {config.photos} is not a folder: check --photos.")
    read_catalog(config.catalog)
    for path, read in (
        (config.policy, read_policy),
        (config.face_regions, read_face_regions),
        (config.clock_offsets, read_clock_offsets),
    ):
        if path is not None:
            read(path)
    model = bundled_model_path() if config.model is None else Path(config.model)
    if not model.is_file():
        raise InputError(f"Model file {model} does not exist: check --model.")
    card = ModelCard.read(model)
    if config.margin > 0 and error_margins(card).num_rows == 0:
        raise InputError(
            f"--margin needs the model's error per age band, and the card of {card.name} has none."
        )
    if config.max_teen_miss is not None:
        choose_threshold(card, config.max_teen_miss)
    return card


def estimate_bytes(receipts: int) -> int:
    """Bytes a day of this many receipts is estimated to take when published (generously)."""
    return BYTES_PER_DAY + BYTES_PER_RECEIPT * receipts


def check_outputs(config: RunConfig, receipts: int) -> Room:
    """Make sure every output root is writable and has room for the day, or raise OutputError."""
    needed = estimate_bytes(receipts)
    limit = file_size_limit()
    if limit is not None and limit < needed:
        raise OutputError(
            f"The file-size limit of this process (ulimit -f) is {_size(limit)}, and a day of "
            f"{receipts} receipts needs files up to about {_size(needed)}: raise the limit "
            "(ulimit -f unlimited) before running."
        )
    free = {}
    for root in dict.fromkeys([config.out, config.restricted_root()]):
        _writable(root, private=root == config.restricted_out)
        free[root] = shutil.disk_usage(root).free
        if free[root] < needed:
            raise OutputError(
                f"Output folder {root} has {_size(free[root])} free and the day needs about "
                f"{_size(needed)} ({receipts} receipts): free some space before running."
            )
    return Room(needed, free, limit)


def file_size_limit() -> int | None:
    """The soft limit on the size of a file this process writes, in bytes (None: none)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _writable(root: Path, private: bool) -> None:
    """Create root if needed (owner-only when private) and write, sync and remove a file in it."""
    try:
        if not root.is_dir():
            root.mkdir(mode=0o700 if private else 0o777, parents=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".agebatch-probe-") as probe:
            probe.write(b"agebatch")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise OutputError(
            f"Output folder {root} cannot be written ({error.strerror or error}): check "
            "--out (and --restricted-out), the folder's permissions and its file system."
        ) from None


# What a write failure means, for people.
_WRITE_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "a file went over the file-size limit (ulimit -f)",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission was denied",
    errno.EPERM: "the operation was not permitted",
}


def write_failure(error: OSError, day: dt.date, roots: list[Path]) -> OutputError | None:
    """The one sentence for a failed write while publishing, or None for another OSError."""
    reason = _WRITE_ERRORS.get(error.errno or 0)
    if reason is None:
        return None
    where = " and ".join(str(root) for root in dict.fromkeys(roots))
    return OutputError(
        f"Could not publish {day} to {where}: {reason} ({os.strerror(error.errno)}); the day's "
        "previous version, if any, is still the one published."
    )


def _size(n: int) -> str:
    """Bytes for people: 1.5 MB, 20 kB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
