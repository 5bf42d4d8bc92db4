"""What `agebatch bench` measures, on a generated day of photos (or real faces, --faces).

In one run, on the same photos: the model alone on ready tensors, decoding alone on one core,
the whole predict stage from files to ages (and, for crops, the stage under `auto`), finding
the files of a day of FIND_NAMES names, and the peak memory. For crops, two smaller days made
from the same crops (SIDE_PHOTOS photos each) are run under `auto` too: loose copies of them
(a camera's own box: training.conditions.loose) and frames with them pasted in, so that a
loose-crop camera's rate is set against a frame camera's. Each repeat runs them one after
the other; rates (photos per second) are the best of the repeats, ratios the median of each
repeat's ratio. CPU milliseconds per photo (all threads and decode processes) are given too:
they do not depend on what else the machine runs, and their ratios are what the wall-clock
ratios become on cores kept busy.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
import resource
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from agebatch.config import WHOLE_FRAME, PhotoKind, PredictConfig, RunConfig
from agebatch.errors import InputError
from agebatch.inputs.captures import find_captures
from agebatch.predict.device import accelerates, for_run
from agebatch.predict.images import InputSpec, Reading, load_photo, load_photos
from agebatch.predict.model import AgeModel, compute_device
from agebatch.predict.opening import Limits
from agebatch.predict.stage import predict_paths
from agebatch.sample import DrawnFaces
from agebatch.training.conditions import loose

DAY = dt.date(2026, 11, 24)
PHOTOS_PER_CAMERA = 500  # a register's day: a million photos a night over 500 stores
REGISTERS_PER_STORE = 4
DISTINCT_MAX = 1000  # distinct generated pictures; the rest of the day are hard links to them
# Photos in the loose-crop and the frame day: one camera each. Their photos take a detector run
# each (about 13 and 21 CPU ms on 2 cores), so they are smaller than the main day; their CPU ms a
# photo came out the same at 500 and 1,000 photos (docs/throughput.md).
SIDE_PHOTOS = 500
SIDE_WARM = 64  # photos of each side day run before the timed runs
MODEL_POOL = 512  # ready tensors the model alone cycles through
DECODE_SAMPLE = 500  # photos decoded on one core
FIND_NAMES = 100_000
FRAME_SIZES = ((640, 480), (1280, 720))


@dataclass(frozen=True)
class BenchDay:
    """A generated day: its folder, its photos in capture order, and each photo's camera."""

    folder: Path
    paths: list[Path]
    cameras: list[tuple[str, str]]


def write_day(
    root: Path,
    photos: int,
    kind: PhotoKind,
    faces: Path | None = None,
    per_camera: int = PHOTOS_PER_CAMERA,
    seed: int = 0,
    loosen: bool = False,
) -> BenchDay:
    """Write a day of `photos` crops or frames, `per_camera` per register, under root/<day>/.

    At most DISTINCT_MAX different pictures are drawn (or taken from `faces`, labels.csv +
    final_files/); the day's other photos are hard links to them, so a day of 100,000 photos
    takes seconds to write and little disk, and every photo is still decoded from its file.
    The same seed draws the same pictures whatever the kind; with loosen, crops are saved as a
    loose-crop camera saves them (training.conditions.loose: 10-15% off-centre, 10-20% looser).
    """
    if loosen and kind != PhotoKind.CROPS:
        raise ValueError("only crops can be loosened")
    rng = np.random.default_rng(seed)
    pool_dir = root / "pool"
    pool_dir.mkdir(parents=True, exist_ok=True)
    sources = _face_sources(faces, min(photos, DISTINCT_MAX), pool_dir, rng)
    pool = []
    for i, source in enumerate(sources):
        target = pool_dir / f"{i:05d}.jpg"
        if kind == PhotoKind.FRAMES:
            _write_frame(source, target, rng)
        elif loosen:
            _write_loose(source, target, rng)
        elif source != target:
            shutil.copyfile(source, target)
        pool.append(target)
    folder = root / DAY.isoformat()
    step = max(1, 14 * 3600 // max(1, per_camera))  # 08:00-22:00
    paths: list[Path] = []
    cameras: list[tuple[str, str]] = []
    for i in range(photos):
        camera = i // per_camera
        if i % per_camera == 0:  # one tuple per camera, shared by its photos (as in a table)
            where = (f"S{camera // REGISTERS_PER_STORE + 1:03d}", f"R{camera % 4 + 1}")
        store, register = where
        taken = dt.datetime.combine(DAY, dt.time(8)) + dt.timedelta(seconds=step * (i % per_camera))
        path = folder / store / register / f"{taken:%Y%m%dT%H%M%S}_{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        _link(pool[i % len(pool)], path)
        paths.append(path)
        cameras.append(where)
    return BenchDay(folder, paths, cameras)


def _face_sources(
    faces: Path | None, count: int, pool_dir: Path, rng: np.random.Generator
) -> list[Path]:
    """`count` face crops: real ones from a labelled folder, or drawn ones written to pool_dir."""
    if faces is None:
        drawn = []
        for i in range(count):
            path = pool_dir / f"drawn{i:05d}.jpg"
            DrawnFaces()(path, float(rng.integers(14, 88)), rng)
            drawn.append(path)
        return drawn
    labels = faces / "labels.csv"
    if not labels.is_file():
        raise InputError(f"Face folder {faces} has no labels.csv (file_name,real_age).")
    with open(labels, newline="") as handle:
        names = sorted(row["file_name"] for row in csv.DictReader(handle))
    if not names:
        raise InputError(f"Face folder {faces} lists no faces in labels.csv.")
    return [faces / "final_files" / name for name in names[:count]]


def _write_frame(face: Path, target: Path, rng: np.random.Generator) -> None:
    """A checkout frame: a gradient-and-noise scene with the face pasted at 100-260 px."""
    width, height = FRAME_SIZES[int(rng.integers(len(FRAME_SIZES)))]
    ramp = np.linspace(0, 255, width)[None, :, None] * rng.uniform(0.3, 0.9, 3)
    scene = np.broadcast_to(ramp, (height, width, 3)) + rng.normal(0, 10, (height, width, 3))
    frame = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8))
    with Image.open(face) as image:
        side = int(rng.integers(100, 260))
        chip = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    frame.paste(chip, (int(rng.integers(0, width - side)), int(rng.integers(0, height - side))))
    frame.save(target, quality=90)


def _write_loose(face: Path, target: Path, rng: np.random.Generator) -> None:
    """The crop as a camera that saves its own box would: off-centre and looser, same size."""
    with Image.open(face) as image:
        loose(image.convert("RGB"), rng).save(target, quality=90)


def _link(source: Path, target: Path) -> None:
    """A hard link to source (a copy where the file system has none)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_names(root: Path, names: int = FIND_NAMES, per_camera: int = PHOTOS_PER_CAMERA) -> Path:
    """A day folder of `names` empty, correctly named photo files (for finding files)."""
    folder = root / DAY.isoformat()
    for start in range(0, names, per_camera):
        camera = start // per_camera
        where = folder / f"S{camera // REGISTERS_PER_STORE + 1:03d}" / f"R{camera % 4 + 1}"
        where.mkdir(parents=True, exist_ok=True)
        for i in range(start, min(names, start + per_camera)):
            (where / f"{DAY:%Y%m%d}T080000_{i}.jpg").touch()
    return folder


@dataclass(frozen=True)
class Timed:
    """A rate (photos/s, wall clock) and the CPU milliseconds per photo, all threads and
    decode processes included (the CPU time does not depend on what else the machine runs)."""

    rate: float
    cpu_ms: float


def timed(run: Callable[[], int]) -> Timed:
    """Time run(), which returns how many photos it did."""
    wall, cpu = time.perf_counter(), _cpu_s()
    done = run()
    wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    return Timed(done / wall, 1000 * cpu / max(1, done))


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def model_only(model: AgeModel, inputs: list[np.ndarray], photos: int, batch_size: int) -> int:
    """Photos/s of the model alone: ready batches (decoded, assembled) cycled through until
    `photos` photos have gone through it; each batch is staged (a device copy on a GPU) and
    run, as the stage does."""
    batches = [
        np.concatenate(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)
    ]
    sizes = [len(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    done = 0
    while done < photos:
        for batch, size in zip(batches, sizes, strict=True):
            model.predict(model.stage(batch))
            done += size
            if done >= photos:
                break
    return done


def decode_alone(paths: Sequence[Path], spec: InputSpec, reading: Reading, chunk: int) -> int:
    """Decode (everything before the model, face finding included) in one thread, in chunks of
    `chunk` photos as the stage's one decode lane on a CPU reads a batch (load_photos: a
    chunk's crops have their quality measured together)."""
    for start in range(0, len(paths), chunk):
        load_photos([(path, WHOLE_FRAME, reading) for path in paths[start : start + chunk]], spec)
    return len(paths)


def find_files(folder: Path) -> float:
    """Names/s of finding a day's photos (find_captures: walk, parse names, build the table)."""
    started = time.perf_counter()
    found = find_captures(folder, RunConfig.model_fields["timezone"].default)
    return len(found.table) / (time.perf_counter() - started)


def stage(
    day: BenchDay,
    model: AgeModel,
    config: PredictConfig,
    statuses: dict[str, int],
    saves: dict[str, int] | None = None,
) -> int:
    """Run the whole predict stage over the day; count its statuses into `statuses` (and, under
    auto, its cameras by what they were read as into `saves`: aligned crops, loose crops,
    frames)."""
    predictions, stats = predict_paths(
        day.paths, model, config, cameras=day.cameras, inside=day.folder
    )
    statuses.clear()
    for prediction in predictions:
        statuses[str(prediction.status)] = statuses.get(str(prediction.status), 0) + 1
    if saves is not None:
        saves.clear()
        for verdict in stats.verdicts:
            saves[verdict.saves] = saves.get(verdict.saves, 0) + 1
    return len(predictions)


def paired(runs: Sequence[Timed], against: Sequence[Timed]) -> float:
    """The median over repeats of one rate over another measured just before it (a ratio of
    neighbours in time moves less with the machine's other work than a ratio of bests)."""
    return round(float(np.median([a.rate / b.rate for a, b in zip(runs, against, strict=True)])), 3)


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident memory so far in MiB (of this process, or of its largest child)."""
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def device_name(config: PredictConfig) -> str:
    """Where the model runs and on what, in words."""
    import keras

    return (
        f"{compute_device()} ({platform.machine()}, {os.cpu_count() or 1} CPU cores, Keras "
        f"{keras.backend.backend()} backend"
        f"{', XLA + mixed precision' if accelerates(config) else ''})"
    )


def bench(
    model: AgeModel,
    config: PredictConfig,
    workdir: Path,
    *,
    photos: int,
    kind: PhotoKind,
    faces: Path | None = None,
    per_camera: int = PHOTOS_PER_CAMERA,
    repeats: int = 3,
    find_names: int = FIND_NAMES,
    side_photos: int = SIDE_PHOTOS,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, object]:
    """Every figure of `agebatch bench` (module docstring); keys as in its --json file.
    side_photos: photos in the loose-crop and the frame day (crops only; 0: not measured)."""
    kind = PhotoKind(kind)
    if kind == PhotoKind.AUTO:
        raise InputError("--kind must be crops or frames (auto is measured on crops).")
    say(f"writing {photos} {kind} under {workdir}")
    day = write_day(workdir / "photos", photos, kind, faces, per_camera)
    days = {kind.value: day}
    reading = Reading.of(kind)
    limits = Limits(day.folder, config.max_pixels)  # opened as the stage opens them
    spec = InputSpec.from_card(model.card, kind, limits)
    runner = for_run(model, config)
    configs = {kind.value: config.model_copy(update={"photo_kind": kind})}
    if kind == PhotoKind.CROPS:
        auto = config.model_copy(update={"photo_kind": PhotoKind.AUTO})
        configs["auto"] = auto
        days["auto"] = day
        if side_photos > 0:
            # The same crops (the same seed draws the same pictures), as a loose-crop camera
            # and a frame camera save them; both read under auto.
            say(f"writing {side_photos} loose crops and {side_photos} frames of the same faces")
            for name, kinds, loosen in (
                ("auto_loose", PhotoKind.CROPS, True),
                ("auto_frames", PhotoKind.FRAMES, False),
            ):
                days[name] = write_day(
                    workdir / name, side_photos, kinds, faces, per_camera, loosen=loosen
                )
                configs[name] = auto
    configs_main = (kind.value, "auto")
    say("warming up (model compilation, face finder)")
    statuses: dict[str, dict[str, int]] = {name: {} for name in configs}
    saves: dict[str, dict[str, int]] = {name: {} for name in configs}
    for name, each in configs.items():
        # Two batches of the main day; a few photos of the side days (the finder is loaded by
        # then, and their photos take a detector run each).
        whole, size = days[name], 2 * config.batch_size if name in configs_main else SIDE_WARM
        warm = BenchDay(whole.folder, whole.paths[:size], whole.cameras[:size])
        stage(warm, model, each, statuses[name])
    ready = [load_photo(p, spec, WHOLE_FRAME, reading).pixels for p in day.paths[:MODEL_POOL]]
    inputs = [pixels for pixels in ready if pixels is not None]
    if not inputs:
        raise InputError("No photo of the generated day gave the model an input.")
    runs: dict[str, list[Timed]] = {"model_only": [], "decode": []}
    decode_paths = day.paths[:DECODE_SAMPLE]
    for repeat in range(repeats):
        runs["model_only"].append(
            timed(lambda: model_only(runner, inputs, photos, config.batch_size))
        )
        runs["decode"].append(
            timed(lambda: decode_alone(decode_paths, spec, reading, config.batch_size))
        )
        for name, each in configs.items():
            runs.setdefault(name, []).append(
                timed(
                    lambda each=each, name=name: stage(
                        days[name], model, each, statuses[name], saves[name]
                    )
                )
            )
        say(
            f"run {repeat + 1}/{repeats}: "
            + ", ".join(
                f"{k} {v[-1].rate:.0f}/s ({v[-1].cpu_ms:.2f} CPU ms)" for k, v in runs.items()
            )
        )
    stage_peak = peak_rss_mb()
    say(f"writing {find_names} names to find")
    names = write_names(workdir / "names", find_names, per_camera)
    find_runs = [find_files(names) for _ in range(repeats)]
    best = {name: max(run.rate for run in values) for name, values in runs.items()}
    cpu = {name: min(run.cpu_ms for run in values) for name, values in runs.items()}
    auto = "auto" in runs
    side = "auto_loose" in runs
    return {
        "device": device_name(config),
        "kind": str(kind),
        "photos": photos,
        "photos_per_camera": per_camera,
        "faces": str(faces) if faces else "generated",
        "batch_size": config.batch_size,
        "workers": config.workers,
        "decode": "processes" if config.decodes_in_processes() else "threads",
        "repeats": repeats,
        "flip_averaging": model.card.flip,  # both the model alone and the stage run it
        "model_only_ips": round(best["model_only"], 1),
        "decode_ips_per_core": round(best["decode"], 1),
        "predict_stage_ips": round(best[kind.value], 1),
        "stage_over_model": paired(runs[kind.value], runs["model_only"]),
        "auto_ips": round(best["auto"], 1) if auto else None,
        "auto_over_crops": paired(runs["auto"], runs[kind.value]) if auto else None,
        "stage_over_model_cpu": round(cpu["model_only"] / cpu[kind.value], 3),
        "auto_over_crops_cpu": round(cpu[kind.value] / cpu["auto"], 3) if auto else None,
        "auto_over_model": paired(runs["auto"], runs["model_only"]) if auto else None,
        "side_photos": side_photos if side else None,
        "loose_ips": round(best["auto_loose"], 1) if side else None,
        "frames_ips": round(best["auto_frames"], 1) if side else None,
        "loose_over_frames": paired(runs["auto_loose"], runs["auto_frames"]) if side else None,
        "loose_over_frames_cpu": round(cpu["auto_frames"] / cpu["auto_loose"], 3) if side else None,
        "find_files_per_s": round(max(find_runs), 1),
        "find_names": find_names,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "stage_peak_rss_mb": round(stage_peak, 1),
        "peak_rss_children_mb": round(peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
        "cpu_ms_per_photo": {name: round(value, 3) for name, value in cpu.items()},
        "statuses": statuses,
        "cameras_read_as": {name: values for name, values in saves.items() if values},
        "runs": {name: [round(run.rate, 1) for run in values] for name, values in runs.items()},
    }
