"""The predict stage in shards on a Dask cluster, with ages that survive a retry.

A day's photos are split into shards: one store's register each, cut into runs of at most
`shard_size` photos in name (capture time) order. Each shard runs on a Dask worker, which
decodes its photos next to the files (only inside the day folder, within the pixel and time
budgets, as an unsharded run; `--photo-kind auto` decided from the shard's own photos),
predicts them with the model it loaded once (`worker_model`), and writes the ages to a staging
Parquet file

    OUT/.shards/<day>/<model_version>/<fingerprint>.parquet   (the --restricted-out root if set)

written whole (a temporary file renamed into place). The fingerprint is a hash of the day, the
model version and its card, the predict code's version (a hash of agebatch/predict/*.py), the
settings that change ages (photo kind, auto sample, pixel budget, images.DECODE_VERSION, each
photo's face region) and every photo's name, size and content (SHA-256 of its bytes: 15 µs a
200 px crop, 0.11 s for 7,591 crops from the page cache, against 3 µs for a stat — see
docs/dask.md): a retried or re-run day finds the file of every shard whose photos have not
changed and predicts only the rest; a photo replaced by another of the same name, size and
time is predicted again.
Under `--photo-kind auto` the file's schema metadata keeps the shard's camera verdict
(`verdict`: cameras.Verdict.to_json; empty under a kind that was set), and `collect` gives the
verdict of each camera's first shard (its first `shard_size` photos by name: with shard_size
>= cameras.SAMPLE_SPAN x auto_sample, all the photos a plain run's sample can reach past
unreadable ones), so a Dask run publishes the same `cameras` table.
The flow publishes nothing until every shard has its file; after a successful publish the
day's staging folder is deleted (`discard`), since receipt_ages then holds the same ages. A
run staging a day holds that day's staging lock (shared, `<staging root>/.shards/<day>.lock`)
from `plan` until `collect` has read its ages back, and `discard` deletes only when it can take
the lock alone: a plain run never deletes the shards of a Dask run of the same day in flight.
The files carry photo names, ages and statuses, never pixels.

Each start of a shard leaves a marker (the worker's pid) under `<staging>/attempts/<run_id>/`,
so a shard Dask ran again after losing its worker is counted (runs.shards_retried).

Test hook (nothing else may set it; unset, it costs one environment lookup per shard):
``AGEBATCH_SHARD_KILL=1`` in a worker's environment SIGKILLs that worker process once it has
predicted a shard and before it stages the ages, the worst moment to lose a worker.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import shutil
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import agebatch.predict
from agebatch.config import Region, RunConfig
from agebatch.errors import InputError
from agebatch.predict.cameras import Verdict
from agebatch.predict.card import ModelCard
from agebatch.predict.images import DECODE_VERSION
from agebatch.predict.model import AgeModel, bundled_model_path, compute_device, load_model
from agebatch.predict.stage import PredictStats, predict_paths
from agebatch.publish import fsync_dir
from agebatch.schema import PhotoStatus

log = logging.getLogger(__name__)

SHARDS = ".shards"
ATTEMPTS = "attempts"
KILL_ENV = "AGEBATCH_SHARD_KILL"
HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat."  # distributed's
# Bumped when what a staged file means changes, so files of an older layout are not reused.
LAYOUT = "agebatch.shard/3"  # 2: quality_score, quality_part; 3: the camera's verdict
STAGED = pa.schema(
    [
        pa.field("photo", pa.string(), nullable=False),
        pa.field("predicted_age", pa.float64()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("quality_score", pa.float64()),
        pa.field("quality_part", pa.string()),
    ]
)


@dataclass(frozen=True)
class Shard:
    """Photos of one register (or a run of them), with the fingerprint of everything that
    decides their ages."""

    store_id: str
    register_id: str
    index: int  # the shard's place among its register's shards
    photos: tuple[str, ...]  # relative to the day folder, in name order
    regions: tuple[Region, ...]  # the shopper region of each photo
    fingerprint: str

    @property
    def label(self) -> str:
        """The shard as people read it: store/register#index."""
        return f"{self.store_id}/{self.register_id}#{self.index}"


@dataclass(frozen=True)
class ShardJob:
    """What every shard of one run shares: where the photos are and where ages are staged."""

    day: str
    folder: Path  # the day's photo folder
    staging: Path  # OUT/.shards/<day>/<model_version>
    model_version: str
    run_id: str
    card: str = ""  # the digest of the run's model card ("": not checked)


@dataclass(frozen=True)
class ShardOutcome:
    """What one shard's task did: reused its staged ages or predicted them, and where."""

    fingerprint: str
    label: str
    photos: int
    reused: bool
    decoded_now: int  # photos decoded by this attempt (0 when reused)
    model_loaded: bool  # this attempt loaded the model into its worker process
    worker_pid: int
    seconds: float


@dataclass(frozen=True)
class ShardCounts:
    """The run's shards: all of them, those reused from staging, those started twice or more."""

    total: int
    reused: int
    retried: int


def staging_folder(out: Path, day: str, model_version: str) -> Path:
    """Where a day's shards predicted with one model version are staged."""
    return out / SHARDS / day / _safe(model_version)


def plan(
    config: RunConfig,
    captures: pd.DataFrame,
    folder: Path,
    regions: Sequence[Region],
    day: str,
    model_version: str,
    run_id: str,
) -> tuple[ShardJob, list[Shard]]:
    """Split a day's captures into shards (store, register, then `shard_size` photos) and
    fingerprint each from its photos' names, sizes and times and the settings that change ages."""
    # Per-photo ages belong with receipt_ages: under the restricted root when there is one.
    staging = staging_folder(config.restricted_root(), day, model_version)
    card = ModelCard.read(bundled_model_path() if config.model is None else config.model).digest()
    job = ShardJob(day, folder, staging, model_version, run_id, card)
    hold_staging(config.restricted_root(), day, run_id)  # until collect: see discard
    settings = (
        f"{LAYOUT}|{day}|{model_version}|{config.photo_kind.value}|{config.auto_sample}"
        f"|{config.max_pixels}|decode{DECODE_VERSION}|code{predict_code_version()}|card{card}"
    )
    rows = sorted(
        zip(
            captures["store_id"].astype(str),
            captures["register_id"].astype(str),
            captures["photo"].astype(str),
            regions,
            strict=True,
        )
    )
    by_register: dict[tuple[str, str], list[tuple[str, Region]]] = {}
    for store, register, photo, region in rows:
        by_register.setdefault((store, register), []).append((photo, region))
    shards = []
    for (store, register), photos in by_register.items():
        for index, start in enumerate(range(0, len(photos), config.shard_size)):
            part = photos[start : start + config.shard_size]
            names = tuple(photo for photo, _ in part)
            shard_regions = tuple(region for _, region in part)
            key = fingerprint(folder, names, shard_regions, settings)
            shards.append(Shard(store, register, index, names, shard_regions, key))
    return job, shards


def fingerprint(
    folder: Path, photos: Sequence[str], regions: Sequence[Region], settings: str
) -> str:
    """A hash of the settings and each photo's name, content (SHA-256 of its bytes: any byte
    changed changes it) and region."""
    digest = hashlib.sha256(settings.encode())
    for photo, region in zip(photos, regions, strict=True):
        try:
            with open(folder / photo, "rb") as file:
                content = hashlib.file_digest(file, "sha256").hexdigest()
        except OSError:  # a manifest row without its file: predicted as unreadable, if it stays
            content = "-"
        digest.update(f"\0{photo}\0{content}\0{region}".encode())
    return digest.hexdigest()[:32]


@functools.cache
def predict_code_version() -> str:
    """A hash of the predict stage's code (agebatch/predict/*.py): a change to how photos
    become ages changes every shard's key."""
    digest = hashlib.sha256()
    package = Path(agebatch.predict.__file__).parent
    for source in sorted(package.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def run_shard(config: RunConfig, job: ShardJob, shard: Shard) -> ShardOutcome:
    """On a worker: reuse the shard's staged ages if its fingerprint is unchanged, else decode
    and predict its photos and stage their ages (whole, in one rename)."""
    started = time.perf_counter()
    _mark_attempt(job, shard)
    target = job.staging / f"{shard.fingerprint}.parquet"
    if read_staged(target, shard) is not None:
        log.info("Shard %s: %d photos reused from staging", shard.label, len(shard.photos))
        return ShardOutcome(
            shard.fingerprint, shard.label, len(shard.photos), True, 0, False, os.getpid(), 0.0
        )
    model, loaded = worker_model(config.model)
    if model.version != job.model_version:
        raise InputError(
            f"The model on worker {os.getpid()} is version {model.version}, the run's is "
            f"{job.model_version}: give every worker the same model file."
        )
    if job.card and model.card.digest() != job.card:
        raise InputError(
            f"The model card on worker {os.getpid()} ({model.path}) differs from the one the "
            "run was planned with (e.g. its realigned offset was measured again): give every "
            "worker the same card, then run the day again."
        )
    paths = [job.folder / photo for photo in shard.photos]
    camera = (shard.store_id, shard.register_id)  # `auto` is decided from the shard's photos
    with gpu_slot(config.gpu_limit):
        predictions, stats = predict_paths(
            paths,
            model,
            config,
            regions=list(shard.regions),
            cameras=[camera] * len(paths),
            inside=job.folder,  # photos opened only inside the day folder, as unsharded
        )
    if os.environ.get(KILL_ENV) == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    table = pa.table(
        {
            "photo": list(shard.photos),
            "predicted_age": [p.age for p in predictions],
            "status": [str(p.status) for p in predictions],
            "quality_score": [p.quality for p in predictions],
            "quality_part": [p.quality_part or None for p in predictions],
        },
        schema=STAGED,
    )
    verdict = stats.verdicts[0].to_json() if stats.verdicts else ""
    write_atomically(table, target, shard.fingerprint, verdict)
    seconds = time.perf_counter() - started
    log.info(
        "Shard %s: %d photos predicted in %.1f s on worker %d",
        shard.label,
        stats.photos,
        seconds,
        os.getpid(),
    )
    return ShardOutcome(
        shard.fingerprint,
        shard.label,
        stats.photos,
        False,
        stats.photos,
        loaded,
        os.getpid(),
        seconds,
    )


def read_staged(path: Path, shard: Shard) -> pa.Table | None:
    """The shard's staged ages, or None when there is no whole file for exactly its photos;
    its schema metadata (fingerprint, layout, verdict) kept."""
    try:
        file = pq.ParquetFile(path)
        metadata = file.schema_arrow.metadata or {}
        table = file.read().cast(STAGED).replace_schema_metadata(metadata)
        meta = metadata.get(b"fingerprint", b"").decode()
    except (OSError, pa.ArrowInvalid, ValueError):
        return None
    if meta != shard.fingerprint or tuple(table.column("photo").to_pylist()) != shard.photos:
        return None
    return table


def staged_verdict(table: pa.Table, shard: Shard) -> Verdict | None:
    """The camera verdict a staged shard kept (None: its photo kind was set)."""
    text = (table.schema.metadata or {}).get(b"verdict", b"").decode()
    return Verdict.from_json((shard.store_id, shard.register_id), text) if text else None


def write_atomically(table: pa.Table, path: Path, key: str, verdict: str = "") -> None:
    """Write a Parquet file under a temporary name, fsync it, and rename it into place; the
    shard's fingerprint, LAYOUT and camera verdict (JSON, "" for none) in its metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    table = table.replace_schema_metadata(
        {"fingerprint": key, "layout": LAYOUT, "verdict": verdict}
    )
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def collect(
    job: ShardJob, shards: Sequence[Shard], outcomes: Sequence[ShardOutcome]
) -> tuple[pd.DataFrame, ShardCounts, tuple[Verdict, ...]]:
    """Every shard's staged ages (photo, predicted_age, status, quality), read back after all
    succeeded, the run's shard counts, and each camera's verdict under auto (that of its first
    shard; module docstring)."""
    root = job.staging.parent.parent.parent  # <root>/.shards/<day>/<model version>
    try:
        return _collect(job, shards, outcomes)
    finally:
        release_staging(root, job.day, job.run_id)


def _collect(
    job: ShardJob, shards: Sequence[Shard], outcomes: Sequence[ShardOutcome]
) -> tuple[pd.DataFrame, ShardCounts, tuple[Verdict, ...]]:
    missing = {s.fingerprint for s in shards} - {o.fingerprint for o in outcomes}
    if missing:
        raise RuntimeError(f"{len(missing)} shard(s) of {job.day} have no outcome")
    tables = []
    verdicts: dict[tuple[str, str], list[tuple[int, Verdict]]] = {}
    for shard in shards:
        table = read_staged(job.staging / f"{shard.fingerprint}.parquet", shard)
        if table is None:
            raise RuntimeError(f"Shard {shard.label} of {job.day} left no staged ages")
        verdict = staged_verdict(table, shard)
        if verdict is not None:
            verdicts.setdefault(verdict.camera, []).append((shard.index, verdict))
        tables.append(table.replace_schema_metadata(None))
    ages = pa.concat_tables(tables).to_pandas() if tables else STAGED.empty_table().to_pandas()
    attempts = Counter(
        marker.name.split("-")[0] for marker in (job.staging / ATTEMPTS / job.run_id).glob("*")
    )
    counts = ShardCounts(
        total=len(shards),
        reused=sum(1 for o in outcomes if o.reused),
        retried=sum(1 for s in shards if attempts[s.fingerprint] > 1),
    )
    predicted = [o for o in outcomes if not o.reused]
    busy = sum(o.seconds for o in predicted)
    log.info(
        "Shards of %s: %d, %d reused from staging, %d retried; %d photos decoded by this run on "
        "%d worker process(es), %.1f photos/s per worker while busy (model loads included, %d)",
        job.day,
        counts.total,
        counts.reused,
        counts.retried,
        sum(o.decoded_now for o in outcomes),
        len({o.worker_pid for o in predicted}),
        sum(o.decoded_now for o in predicted) / busy if busy else 0.0,
        sum(o.model_loaded for o in outcomes),
    )
    return ages, counts, tuple(_first_verdicts(verdicts))


def _first_verdicts(
    verdicts: dict[tuple[str, str], list[tuple[int, Verdict]]],
) -> list[Verdict]:
    """Each camera's verdict from its first shard; a camera whose later shards read otherwise
    (re-mounted during the day, or a shard too small for the sample) is logged."""
    first = []
    for camera, taken in verdicts.items():
        taken.sort(key=lambda pair: pair[0])
        first.append(taken[0][1])
        others = sorted({v.saves for _, v in taken[1:]} - {taken[0][1].saves})
        if others:
            log.warning(
                "Camera %s/%s: its first shard read as %s, later shards as %s",
                *camera,
                taken[0][1].saves,
                ", ".join(others),
            )
    return first


def add_ages(captures: pd.DataFrame, ages: pd.DataFrame) -> pd.DataFrame:
    """The captures with predicted_age and status from the shards' ages, row for row."""
    by_photo = ages.set_index("photo")
    if not by_photo.index.is_unique or set(by_photo.index) != set(captures["photo"]):
        raise RuntimeError("The shards' photos are not the day's photos")
    aged = captures.copy()
    rows = by_photo.loc[list(captures["photo"])]
    aged["predicted_age"] = pd.array(rows["predicted_age"].to_numpy(), dtype="Float64")
    aged["status"] = pd.array(rows["status"].to_numpy(), dtype="string")
    aged["quality_score"] = pd.array(rows["quality_score"].to_numpy(), dtype="Float64")
    aged["quality_part"] = pd.array(rows["quality_part"].to_numpy(), dtype="string")
    return aged


def stats_of(aged: pd.DataFrame, seconds: float, verdicts: Sequence[Verdict] = ()) -> PredictStats:
    """The predict stage's counts from the aged captures of a sharded run, with its cameras'
    verdicts (collect)."""
    status = aged["status"]
    unreadable = int((status == PhotoStatus.UNREADABLE).sum())
    refused = int((status == PhotoStatus.REFUSED).sum())
    return PredictStats(
        photos=len(aged),
        decoded=len(aged) - unreadable - refused,
        unreadable=unreadable,
        seconds=seconds,
        no_face=int((status == PhotoStatus.NO_FACE).sum()),
        refused=refused,
        low_quality=int((status == PhotoStatus.LOW_QUALITY).sum()),
        verdicts=tuple(verdicts),
    )


# Staging locks this process holds: (staging root, day, run id) -> the open lock file.
_HELD: dict[tuple[str, str, str], int] = {}


def _lock_path(out: Path, day: str) -> Path:
    return out / SHARDS / f"{day}.lock"


def hold_staging(out: Path, day: str, run_id: str) -> None:
    """Hold the day's staging lock (shared: runs staging the same day share their shards)
    until release_staging; a process that dies lets go of it with its files."""
    key = (str(out), day, run_id)
    if key in _HELD:
        return
    _lock_path(out, day).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_lock_path(out, day), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a discard of the day is deleting
    _HELD[key] = fd


def release_staging(out: Path, day: str, run_id: str) -> None:
    """Let go of the day's staging lock taken by hold_staging."""
    fd = _HELD.pop((str(out), day, run_id), None)
    if fd is not None:
        os.close(fd)


def discard(out: Path, day: str) -> None:
    """Delete a published day's staging folder (its ages are in receipt_ages now), unless a run
    is staging the day right now (it holds the day's staging lock): then it is left to it."""
    folder = out / SHARDS / day
    if not folder.exists():
        return
    fd = os.open(_lock_path(out, day), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Left the staged shards of %s: another run is staging them now", day)
            return
        shutil.rmtree(folder)
        log.info("Removed the staged shards of %s", day)
    finally:
        os.close(fd)


_MODEL_LOCK = threading.Lock()


def worker_model(path: Path | None) -> tuple[AgeModel, bool]:
    """The model of this worker process, loaded once per model file and card; and whether
    this call loaded it."""
    path = (bundled_model_path() if path is None else Path(path)).resolve()
    try:
        stat = path.stat()
    except OSError:
        raise InputError(f"Model file {path} does not exist on worker {os.getpid()}.") from None
    key = (str(path), ModelCard.read(path).digest(), stat.st_size, stat.st_mtime_ns)
    with _MODEL_LOCK:
        before = _loaded_model.cache_info().misses
        model = _loaded_model(*key)
        return model, _loaded_model.cache_info().misses > before


@functools.cache
def _loaded_model(path: str, card: str, size: int, mtime_ns: int) -> AgeModel:
    """Load a model once per process for each (path, card digest, size, mtime): a card
    written again (`agebatch evaluate --write-...`) is a new model to this cache."""
    return load_model(Path(path))


@contextmanager
def gpu_slot(limit: str, device: str | None = None) -> Iterator[None]:
    """Hold one slot of the Prefect global concurrency limit `limit` while the block runs the
    model on a GPU (device: default, the one Keras sees); on a CPU, or with no limit, none."""
    if not limit or (device or compute_device()) != "GPU":
        yield
        return
    # Prefect documents this error for strict=True but exports it only from here.
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import concurrency

    try:
        slot = concurrency(limit, occupy=1, strict=True)
        slot.__enter__()
    except ConcurrencySlotAcquisitionError:
        raise InputError(
            f"The Prefect global concurrency limit {limit!r} does not exist: create it with "
            f"`prefect gcl create {limit} --limit 1` (one slot per GPU), or give --gpu-limit ''."
        ) from None
    try:
        yield
    finally:
        slot.__exit__(None, None, None)


def task_runner(config: RunConfig) -> Any:
    """Prefect's Dask task runner for the run: a local cluster of `dask_workers` processes
    (one thread each, on 127.0.0.1, no dashboard, this module preloaded: `dask_setup`), or the
    scheduler at `dask_address`."""
    from prefect_dask import DaskTaskRunner

    if config.dask_address:
        return DaskTaskRunner(address=config.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": config.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
            "preload": [__name__],
        }
    )


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each worker of a run's own local cluster (`task_runner`):
    a worker asked to close no longer logs its last heartbeat's failure. One worker a process
    (the filter of an earlier worker in the same process is replaced)."""
    logger = logging.getLogger("distributed.worker")
    for earlier in [f for f in logger.filters if isinstance(f, ClosingHeartbeat)]:
        logger.removeFilter(earlier)
    logger.addFilter(ClosingHeartbeat(worker))


class ClosingHeartbeat(logging.Filter):
    """Drops the traceback a worker logs when a heartbeat it sent fails because it is closing.

    At a cluster's close, a heartbeat already on its way can meet the scheduler closing the
    worker's connection (`distributed` 2026.8: "Failed to communicate with scheduler during
    heartbeat." with a traceback, now and then, at the end of a run that went well). Only that
    message, and only once the worker's own status says it is closing: the same failure in a
    running worker (a scheduler lost mid-run) is still logged.
    """

    def __init__(self, worker: Any) -> None:
        from distributed.core import Status

        super().__init__()
        self.worker = worker
        self.closing = frozenset({Status.closing, Status.closing_gracefully, Status.closed})

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == HEARTBEAT_FAILED and self.worker.status in self.closing)


def _mark_attempt(job: ShardJob, shard: Shard) -> None:
    """Leave a marker of this start of the shard (counted for runs.shards_retried)."""
    folder = job.staging / ATTEMPTS / job.run_id
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{shard.fingerprint}-{uuid.uuid4().hex}"
    marker.write_text(f"{os.getpid()}\n")


def _safe(text: str) -> str:
    """A model version as one folder name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text) or "_"
