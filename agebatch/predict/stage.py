"""The predict stage: stream photos through decode (in parallel) and the model (batched)."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from agebatch.config import WHOLE_FRAME, PhotoKind, PredictConfig, Region
from agebatch.inputs.files import shown
from agebatch.predict.cameras import Camera, Verdict, camera_name, decide, readings
from agebatch.predict.device import for_run
from agebatch.predict.images import Decoded, InputSpec, PhotoItem, crop_votes, load_photos
from agebatch.predict.model import AgeModel
from agebatch.predict.opening import Limits
from agebatch.schema import PhotoStatus

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of photos just finished
# A decoded photo without its pixels: status, number of views (0: none), why it was refused
# (or is low_quality), its quality score, the part that scored lowest, and the years taken off
# its age (the card's realigned offset for a face aligned by its landmarks, else 0), and what was
# done to its face (Decoded.adjusted, as it is), and whether its face looked overexposed.
Layout = tuple[PhotoStatus, int, str, float | None, str, float, tuple[str, ...], bool]
# A face whose centre's mean grey level (its quality part `exposure`, measured before any
# brightening) is over this looks overexposed: 0.8% of 1,500 clean shared faces, about 65% of
# the same faces overexposed x 1.8 (training.conditions.overexposed). Such faces are aged (no
# quality part picks out the ones misread, docs/model.md), but a camera most of whose faces
# look so is named in a warning: its teenagers read older (docs/compliance.md, Limits).
OVEREXPOSED = 200.0
OVEREXPOSED_SHARE = 0.5  # a camera with more than this share of its measured faces over it
OVEREXPOSED_LEAST = 20  # ... out of at least this many measured faces


@dataclass(frozen=True, slots=True)  # one per photo of the day: kept small
class Prediction:
    """The model's answer for one photo: an age, or None with the reason."""

    age: float | None
    status: PhotoStatus
    reason: str = ""  # why a photo was refused or is low_quality
    quality: float | None = None  # the worst quality part over its floor (quality.assess)
    quality_part: str = ""  # that part (the failing one when the status is low_quality)
    # what was done to the face before the model (images.ADJUSTMENTS; Decoded.adjusted's tuple)
    adjusted: tuple[str, ...] = ()
    overexposed: bool = False  # its face's exposure is over OVEREXPOSED


@dataclass(frozen=True)
class PredictStats:
    """How many photos went through and how fast."""

    photos: int
    decoded: int  # readable photos, those without a face included
    unreadable: int
    seconds: float
    no_face: int = 0
    refused: int = 0  # not opened or not decoded (opening.Refusal, or over the time budget)
    low_quality: int = 0  # a face under the card's quality floor: no age
    # under auto with cameras: each camera's verdict (their cameras as given), else empty; the
    # `cameras` table's input
    verdicts: tuple[Verdict, ...] = ()

    @property
    def cameras(self) -> tuple[dict[str, object], ...]:
        """Each camera's verdict as a row (cameras.Verdict.row)."""
        return tuple(verdict.row() for verdict in self.verdicts)

    @property
    def photos_per_s(self) -> float:
        """Photos per second through the whole stage (decode + model)."""
        return self.photos / self.seconds if self.seconds > 0 else 0.0


def predict_paths(
    paths: Sequence[Path],
    model: AgeModel,
    config: PredictConfig,
    *,
    regions: Sequence[Region] | None = None,
    cameras: Sequence[Camera] | None = None,
    progress: Progress | None = None,
    inside: Path | None = None,
) -> tuple[list[Prediction], PredictStats]:
    """Predict an age for every path, in order; unreadable files and frames without a face are
    skipped, never guessed, and refused photos (each logged with its reason) never opened or
    given up. config: photo kind, batch size, decode workers, acceleration, pixel and time
    budgets (the model is given); regions: the shopper region of each path (default: the whole
    frame); cameras: the camera of each path, for `auto` decided per camera (default: photo by
    photo); inside: the folder photos must lie in (the day folder; None: anywhere)."""
    started = time.perf_counter()
    results: list[Prediction] = []
    verdicts: dict[Camera, Verdict] = {}
    batches = stream_predictions(
        paths, model, config, regions=regions, cameras=cameras, inside=inside, verdicts=verdicts
    )
    for batch in batches:
        results.extend(batch)
        if progress is not None:
            progress(len(batch))
    count = {status: sum(1 for r in results if r.status == status) for status in PhotoStatus}
    for path, result in zip(paths, results, strict=True):
        if result.status == PhotoStatus.REFUSED:
            log.warning("Refused photo %s: %s", shown(str(path)), result.reason)  # one line
    if cameras is not None:
        for camera, (bright, measured) in overexposed_cameras(results, cameras).items():
            log.warning(
                "Camera %s looks overexposed: %d of its %d measured faces are brighter than "
                "grey %g at their centre. Their ages are kept, but overexposed faces read "
                "teenagers older (docs/compliance.md, Limits): check the camera's exposure "
                "and the light behind the till.",
                shown(camera_name(camera)),
                bright,
                measured,
                OVEREXPOSED,
            )
    stats = PredictStats(
        photos=len(results),
        decoded=len(results) - count[PhotoStatus.UNREADABLE] - count[PhotoStatus.REFUSED],
        unreadable=count[PhotoStatus.UNREADABLE],
        seconds=time.perf_counter() - started,
        no_face=count[PhotoStatus.NO_FACE],
        refused=count[PhotoStatus.REFUSED],
        low_quality=count[PhotoStatus.LOW_QUALITY],
        verdicts=tuple(verdicts.values()),
    )
    return results, stats


def overexposed_cameras(
    predictions: Sequence[Prediction], cameras: Sequence[Camera]
) -> dict[Camera, tuple[int, int]]:
    """The cameras most of whose faces look overexposed: (faces over OVEREXPOSED, faces
    measured) for each camera with at least OVEREXPOSED_LEAST faces measured and more than
    OVEREXPOSED_SHARE of them over it."""
    counts: dict[Camera, list[int]] = {}
    for prediction, camera in zip(predictions, cameras, strict=True):
        if prediction.quality is not None:  # a face was cut and measured
            count = counts.setdefault(camera, [0, 0])
            count[0] += prediction.overexposed
            count[1] += 1
    return {
        camera: (bright, measured)
        for camera, (bright, measured) in counts.items()
        if measured >= OVEREXPOSED_LEAST and bright > OVEREXPOSED_SHARE * measured
    }


def stream_predictions(
    paths: Sequence[Path],
    model: AgeModel,
    config: PredictConfig,
    *,
    regions: Sequence[Region] | None = None,
    cameras: Sequence[Camera] | None = None,
    inside: Path | None = None,
    verdicts: dict[Camera, Verdict] | None = None,
) -> Iterator[list[Prediction]]:
    """Yield predictions batch by batch, in order.

    Three things run at once: the decode workers decode batch k+1 while a model thread runs
    batch k, and the main thread gathers each decoded batch into one array and stages it
    (a device copy on a GPU) before the model is free. Decoding runs in up to `workers` threads
    (DecodeLanes: as many as keep the model busy, batch by batch), or
    processes (config.decodes_in_processes: threads share Python's GIL; on a 16-core GPU
    machine 16 threads decoded 1,250 photos/s). Processes are spawned and need an importable
    main module (`if __name__ == "__main__":` in scripts). The decoded photos of at most two
    batches are alive at any time, however many photos the day has. With frames, every worker
    thread or process builds its own face finder on first use (images.worker_finder).

    With photo kind auto and `cameras`, a sample of each camera's photos is judged first and
    the camera's photos are then read as its verdict says (agebatch.predict.cameras); the
    verdicts are put in `verdicts` when given.
    """
    if regions is not None and len(regions) != len(paths):
        raise ValueError("regions must have one region per path")
    if cameras is not None and len(cameras) != len(paths):
        raise ValueError("cameras must have one camera per path")
    limits = Limits(inside, config.max_pixels, config.decode_timeout_s)
    offset = model.card.realigned_offset
    spec = InputSpec.from_card(model.card, config.photo_kind, limits)
    runner = for_run(model, config)
    model_thread = thread_of(runner)
    workers = config.workers
    with _decoder(workers, config.decodes_in_processes()) as pool:
        decided = None
        if cameras is not None and PhotoKind(config.photo_kind) == PhotoKind.AUTO:
            judge = partial(spread, pool, partial(crop_votes, limits=limits), workers)
            decided = decide(paths, cameras, config.auto_sample, judge)
            if verdicts is not None:
                verdicts.update(decided)
        reads = readings(cameras or [None] * len(paths), decided, config.photo_kind)
        where = regions or [WHOLE_FRAME] * len(paths)
        decode = partial(load_photos, spec=spec)
        starts = range(0, len(paths), config.batch_size)

        def batch(k: int) -> list[PhotoItem]:
            # Made when submitted: nothing per photo is held for the whole day but the inputs.
            span = range(starts[k], min(len(paths), starts[k] + config.batch_size))
            return [(paths[i], where[i], reads[i]) for i in span]

        batches = len(starts)
        if not batches:
            return
        lanes = DecodeLanes(workers)
        decoding = [pool.submit(decode, chunk) for chunk in lanes.chunks(batch(0))]
        running: tuple[Future[np.ndarray] | None, list[Layout]] | None = None
        for k in range(batches):
            decoded = [item for future in decoding for item in future.result()]
            if running is not None and running[0] is not None:
                lanes.adapt(model_waited=running[0].done())
            layout = [_layout(d, offset) for d in decoded]
            pixels = [d.pixels for d in decoded if d.pixels is not None]
            del decoded
            staged = runner.stage(np.concatenate(pixels)) if pixels else None
            del pixels
            previous = running and (_result(running[0]), running[1])
            model_run = None if staged is None else model_thread.submit(runner.predict, staged)
            running, staged = (model_run, layout), None
            if k + 1 < batches:
                decoding = [pool.submit(decode, c) for c in lanes.chunks(batch(k + 1))]
            if previous:
                yield _predictions(*previous)
        if running is not None:
            yield _predictions(_result(running[0]), running[1])


_MODEL_THREADS: weakref.WeakKeyDictionary[AgeModel, ThreadPoolExecutor] = (
    weakref.WeakKeyDictionary()
)
_MODEL_THREADS_LOCK = threading.Lock()


def thread_of(model: AgeModel) -> ThreadPoolExecutor:
    """The one thread a model runs on, the same stage after stage (ended when the model is
    collected): TensorFlow keeps state for every thread that runs a model, and a new thread a
    stage grew a process that runs day after day, or shard after shard, by a few MiB a stage."""
    with _MODEL_THREADS_LOCK:
        thread = _MODEL_THREADS.get(model)
        if thread is None:
            thread = _MODEL_THREADS[model] = ThreadPoolExecutor(1, thread_name_prefix="model")
            weakref.finalize(model, thread.shutdown, wait=False)
        return thread


class DecodeLanes:
    """How many decode workers the next batch is cut for: as many as keep the model busy.

    On a CPU the model runs on every core, so decoding ahead of it only takes CPU from it (and
    decode threads wait on each other for Python's GIL: two threads cost a 200 px crop 0.1 ms of
    CPU more than one). A batch decoded while the model was still running the previous one takes
    one lane fewer next time; a batch the model had to wait for takes one more, up to `most`.
    Crops on a CPU settle at one lane, frames (face finding is slower than the model) and GPUs
    at all of them.
    """

    def __init__(self, most: int) -> None:
        self.most = max(1, most)
        self.now = self.most  # start wide: a GPU needs every worker from the first batch

    def adapt(self, model_waited: bool) -> None:
        """One lane more when the model waited for the batch just decoded, else one fewer."""
        self.now = min(self.most, self.now + 1) if model_waited else max(1, self.now - 1)

    def chunks(self, batch: Sequence[T]) -> list[Sequence[T]]:
        """The batch cut for the lanes: one chunk a lane, or, with every lane open, about two
        chunks a worker (a worker done early takes another)."""
        return _chunks(batch, self.now, per_worker=2 if self.now == self.most else 1)


def _decoder(workers: int, processes: bool) -> Executor:
    """Decode threads, or spawned processes (forking a process that runs TensorFlow is unsafe)."""
    if processes and workers > 1:
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(max_workers=workers, mp_context=context)
    return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")


def _chunks(batch: Sequence[T], workers: int, per_worker: int = 2) -> list[Sequence[T]]:
    """A batch cut into about `per_worker` chunks per worker."""
    step = max(1, -(-len(batch) // (per_worker * max(1, workers))))
    return [batch[i : i + step] for i in range(0, len(batch), step)]


def spread(
    pool: Executor, work: Callable[[list[T]], list[R]], workers: int, todo: list[T]
) -> list[R]:
    """work(todo) spread over the pool in chunks; the results in order."""
    futures = [pool.submit(work, list(chunk)) for chunk in _chunks(todo, workers)]
    return [result for future in futures for result in future.result()]


def predict_decoded(
    decoded: Sequence[Decoded], model: AgeModel, offset: float = 0.0
) -> list[Prediction]:
    """The predictions of a chunk of decoded photos in one model call, on this thread: what
    the stage does batch by batch (offset: the card's realigned offset; 0: the model's own
    ages)."""
    pixels = [d.pixels for d in decoded if d.pixels is not None]
    ages = model.predict(np.concatenate(pixels)) if pixels else np.zeros(0)
    return _predictions(ages, [_layout(d, offset) for d in decoded])


def _layout(decoded: Decoded, offset: float) -> Layout:
    """A decoded photo without its pixels; a face aligned by its landmarks has `offset` taken
    off its age."""
    score, part = _quality(decoded)
    return (
        decoded.status,
        _views(decoded.pixels),
        decoded.reason,
        score,
        part,
        offset * decoded.realigned,
        decoded.adjusted,
        _exposure(decoded) > OVEREXPOSED,
    )


def _views(pixels: np.ndarray | None) -> int:
    """How many views of a photo were decoded (0: none)."""
    return 0 if pixels is None else len(pixels)


def _quality(decoded: Decoded) -> tuple[float | None, str]:
    """A decoded photo's quality score and lowest part (None, "" when not measured)."""
    quality = decoded.quality
    return (None, "") if quality is None else (quality.score, quality.part)


def _exposure(decoded: Decoded) -> float:
    """A decoded photo's exposure part (0 when not measured)."""
    quality = decoded.quality
    if quality is None:
        return 0.0
    return next((value for name, value in quality.parts if name == "exposure"), 0.0)


def _result(future: Future[np.ndarray] | None) -> np.ndarray:
    """A model run's ages (none for a batch without a readable photo)."""
    return np.zeros(0) if future is None else future.result()


def _predictions(ages: np.ndarray, layout: list[Layout]) -> list[Prediction]:
    """One prediction per photo of a batch: a photo's age is the mean over its views (framings
    of a frame's face), less its offset (never below 0); photos without pixels keep their
    status."""
    results, start = [], 0
    for status, views, reason, score, part, offset, adjusted, bright in layout:
        if views == 0:
            results.append(Prediction(None, status, reason, score, part, overexposed=bright))
            continue
        # one view (a crop): its age as is (the mean of one value is that value)
        age = float(ages[start] if views == 1 else ages[start : start + views].mean())
        if offset:
            age = max(0.0, age - offset)
        results.append(Prediction(age, PhotoStatus.OK, "", score, part, adjusted, bright))
        start += views
    return results
