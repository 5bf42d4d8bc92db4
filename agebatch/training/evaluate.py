"""`agebatch evaluate`: measure an age model on labelled faces the way the project does."""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from agebatch.config import (
    WHOLE_FRAME,
    PhotoKind,
    PredictConfig,
    age_group_labels,
    default_age_bounds,
)
from agebatch.errors import InputError
from agebatch.predict.card import AgeConfusion, ModelCard, OperatingCurve
from agebatch.predict.images import InputSpec, Reading, load_photos
from agebatch.predict.model import AgeModel
from agebatch.predict.stage import Progress, predict_decoded, predict_paths, spread
from agebatch.schema import PhotoStatus
from agebatch.transform.shares import (
    corrected_shares,
    group_confusion,
    group_of,
    shares,
    total_variation,
)

BANDS = ("0-12", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
SPLITS = ("all", "calibration", "holdout")
CURVE_THRESHOLDS = tuple(range(20, 36))  # flag thresholds of the operating curve, years


@dataclass(frozen=True)
class LabelledFaces:
    """Face photos and their true ages."""

    paths: list[Path]
    ages: np.ndarray


def read_labelled(
    folder: Path, split: str = "all", calibration_share: float = 0.5
) -> LabelledFaces:
    """Read labels.csv (file_name,real_age) + final_files/; optionally one side of the split.

    The split is fixed by each file name's SHA-1, so it never depends on order or a seed:
    `calibration` builds a model card's confusion matrix, `holdout` measures the correction.
    """
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise InputError(f"{labels} does not exist: --faces needs labels.csv and final_files/.")
    with open(labels, newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"file_name", "real_age"} <= set(reader.fieldnames or []):
            raise InputError(f"{labels} must have the columns file_name,real_age.")
        rows = [(r["file_name"], r["real_age"]) for r in reader]
    paths, ages = [], []
    for name, age in rows:
        if split != "all" and (in_calibration(name, calibration_share) != (split == "calibration")):
            continue
        try:
            ages.append(float(age))
        except ValueError:
            raise InputError(f"{labels}: real_age {age!r} of {name} is not a number.") from None
        paths.append(folder / "final_files" / name)
    return LabelledFaces(paths, np.array(ages))


def in_calibration(file_name: str, share: float = 0.5) -> bool:
    """Whether a face belongs to the calibration side of the fixed split."""
    digest = hashlib.sha1(file_name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def band_of(age: float) -> str:
    """The evaluation band of a true age: 0-12, 13-17, 18-24, …, 65+."""
    return group_of([age], (13, 18, 25, 35, 45, 55, 65))[0].replace("<13", "0-12")


def metrics(
    true: np.ndarray,
    predicted: np.ndarray,
    bounds: tuple[int, ...] | None = None,
    age_confusion: list[list[int]] | None = None,
) -> dict[str, object]:
    """MAE overall and per band, Challenge-25 error rates, and age-group share distances
    (bounds: the age groups, default the run's)."""
    bounds = bounds or default_age_bounds()
    error = np.abs(predicted - true)
    bands = np.array([band_of(a) for a in true])
    teens, adults = (true >= 13) & (true < 18), true >= 25
    groups = [label for label, *_ in age_group_labels(bounds)]
    true_shares = shares(group_of(true, bounds), groups)
    predicted_shares = shares(group_of(predicted, bounds), groups)
    result: dict[str, object] = {
        "n": len(true),
        "mae": float(error.mean()),
        "bias": float((predicted - true).mean()),
        "mae_by_band": {b: float(error[bands == b].mean()) for b in BANDS if (bands == b).any()},
        "n_by_band": {b: int((bands == b).sum()) for b in BANDS},
        "n_by_group": {
            "13-17": int(teens.sum()),
            "<18": int((true < 18).sum()),
            "25+": int(adults.sum()),
        },
        "teen_miss_rate": _rate(predicted[teens] >= 25),
        "false_challenge_rate": _rate(predicted[adults] < 25),
        "operating_curve": operating_curve(true, predicted),
        "groups": groups,
        "true_shares": true_shares.round(4).tolist(),
        "predicted_shares": predicted_shares.round(4).tolist(),
        "share_tvd": total_variation(true_shares, predicted_shares),
        "share_tvd_corrected": None,
    }
    if age_confusion:
        corrected = corrected_shares(predicted_shares, group_confusion(age_confusion, bounds))
        result["corrected_shares"] = corrected.round(4).tolist()
        result["share_tvd_corrected"] = total_variation(true_shares, corrected)
    return result


def operating_curve(
    true: np.ndarray, predicted: np.ndarray, thresholds: tuple[int, ...] = CURVE_THRESHOLDS
) -> list[dict[str, float]]:
    """Per flag threshold t (flagged: predicted age < t): the share of 13-17-year-olds and of
    under-18s not flagged, and of adults 25+ flagged."""
    teens, minors, adults = (true >= 13) & (true < 18), true < 18, true >= 25
    return [
        {
            "threshold": float(t),
            "teen_miss": _rate(predicted[teens] >= t),
            "under_18_miss": _rate(predicted[minors] >= t),
            "adult_flag": _rate(predicted[adults] < t),
        }
        for t in thresholds
    ]


def age_confusion(true: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    """[true_year, predicted_year, count] triples (floored ages), for a model card."""
    pairs: dict[tuple[int, int], int] = {}
    for t, p in zip(np.floor(true).astype(int), np.floor(predicted).astype(int), strict=True):
        pairs[(int(t), int(p))] = pairs.get((int(t), int(p)), 0) + 1
    return [[t, p, n] for (t, p), n in sorted(pairs.items())]


def evaluate(
    model: AgeModel,
    faces: LabelledFaces,
    config: PredictConfig,
    *,
    progress: Callable[[int], Progress] | None = None,
) -> tuple[dict[str, object], np.ndarray]:
    """Predict every face (read as a crop, as the faces are) and measure; returns the metrics
    and the predicted ages."""
    if not faces.paths:
        raise InputError("No labelled faces to evaluate on (is the split empty?).")
    predictions, stats = predict_paths(
        faces.paths,
        model,
        config.model_copy(update={"photo_kind": PhotoKind.CROPS}),
        progress=progress and progress(len(faces.paths)),
    )
    readable = np.array([p.age is not None for p in predictions])
    predicted = np.array([p.age if p.age is not None else np.nan for p in predictions])
    confusion = model.card.age_confusion
    result = metrics(
        faces.ages[readable], predicted[readable], age_confusion=confusion and confusion.counts
    )
    result.update(
        model_version=model.version,
        unreadable=int((~readable).sum()),
        images_per_s=stats.photos_per_s,
        confusion_from=confusion and confusion.split,
    )
    return result, predicted


def subset(faces: LabelledFaces, size: int | None, seed: int) -> LabelledFaces:
    """A fixed random subset of `size` faces (numpy default_rng(seed), in file order); all
    faces when size is None or not smaller."""
    if size is None or size >= len(faces.paths):
        return faces
    keep = np.sort(np.random.default_rng(seed).choice(len(faces.paths), size, replace=False))
    return LabelledFaces([faces.paths[i] for i in keep], faces.ages[keep])


def evaluate_conditions(
    model: AgeModel,
    faces: LabelledFaces,
    config: PredictConfig,
    conditions: Sequence[str],
    workdir: Path,
    *,
    seed: int = 0,
    progress: Callable[[int], Progress] | None = None,
) -> dict[str, dict[str, object]]:
    """The same faces under each named condition (training.conditions), read as the run reads
    photos (config's photo kind, each condition one camera): per condition the metrics over
    the faces that were aged, the share aged and the count of each status."""
    from agebatch.training.conditions import describe, write_condition

    if not faces.paths:
        raise InputError("No labelled faces to evaluate on (is the split empty?).")
    confusion = model.card.age_confusion
    table: dict[str, dict[str, object]] = {}
    for name in conditions:
        paths = write_condition(name, faces.paths, workdir, seed)
        predictions, stats = predict_paths(
            paths,
            model,
            config,
            cameras=[name] * len(paths),
            progress=progress and progress(len(paths)),
        )
        aged = np.array([p.age is not None for p in predictions])
        predicted = np.array([p.age if p.age is not None else np.nan for p in predictions])
        result = metrics(
            faces.ages[aged], predicted[aged], age_confusion=confusion and confusion.counts
        )
        result.update(
            condition=describe(name),
            share_aged=float(aged.mean()),
            statuses={
                str(s): sum(1 for p in predictions if p.status == s)
                for s in PhotoStatus
                if any(p.status == s for p in predictions)
            },
            images_per_s=stats.photos_per_s,
            camera=stats.cameras[0] if stats.cameras else None,
        )
        table[name] = result
    return table


def realigned_shift(
    model: AgeModel, faces: LabelledFaces, config: PredictConfig, workdir: Path, seed: int = 0
) -> dict[str, object]:
    """How much older the faces read aligned by their landmarks than as their aligned crops
    (the model's own ages, before any offset of its card): the mean difference over the faces
    aged both ways, for their aligned crops re-aligned and for their loose copies
    (training.conditions.loose, `seed`); `offset`, the card's face.realigned.offset, is the
    mean of the two."""
    from agebatch.training.conditions import write_condition

    if not faces.paths:
        raise InputError("No labelled faces to measure on (is the split empty?).")
    loose = write_condition("loose", faces.paths, workdir, seed)
    aligned = ages_read_as(model, faces.paths, Reading.CROP, config)
    record: dict[str, object] = {"n": len(faces.paths)}
    for name, paths in (("realigned", faces.paths), ("loose", loose)):
        ages = ages_read_as(model, paths, Reading.LOOSE, config)
        both = ~np.isnan(ages) & ~np.isnan(aligned)
        if not both.any():
            raise InputError(
                f"No face of {faces.paths[0].parent} was aged both as an aligned crop and "
                f"aligned by its landmarks ({name}): are these face photos?"
            )
        record[name] = float((ages[both] - aligned[both]).mean())
        record[f"{name}_aged"] = int(both.sum())
    record["offset"] = round((record["realigned"] + record["loose"]) / 2, 2)  # type: ignore[operator]
    return record


def ages_read_as(
    model: AgeModel, paths: Sequence[Path], reading: Reading, config: PredictConfig
) -> np.ndarray:
    """The model's age of each photo read one way (images.Reading), NaN where none: the mean
    over its views, as the stage takes it, without the card's realigned offset."""
    spec = InputSpec.from_card(model.card, PhotoKind.AUTO)
    load = partial(load_photos, spec=spec)
    ages = np.full(len(paths), np.nan)
    workers = max(1, config.workers)
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(paths), config.batch_size):
            items = [(p, WHOLE_FRAME, reading) for p in paths[start : start + config.batch_size]]
            predictions = predict_decoded(spread(pool, load, workers, items), model)
            ages[start : start + len(items)] = [
                np.nan if p.age is None else p.age for p in predictions
            ]
    return ages


def format_conditions(table: dict[str, dict[str, object]], n: int, seed: int) -> str:
    """The conditions table for the terminal (and docs/model.md)."""
    head = (
        f"{n} labelled faces (seed {seed}), each condition read as one camera; "
        "figures over the faces aged"
    )
    lines = [
        head,
        "| condition | aged | MAE | "
        + " | ".join(f"MAE {b}" for b in BANDS)
        + " | teen miss @25 | adults flagged @25 | share distance, corrected |",
        "| --- " * (len(BANDS) + 6) + "|",
    ]
    for name, r in table.items():
        bands = " | ".join(
            f"{r['mae_by_band'][b]:.1f}" if b in r["mae_by_band"] else "-" for b in BANDS
        )
        corrected = r["share_tvd_corrected"]
        lines.append(
            f"| {name} | {r['share_aged']:.1%} | {r['mae']:.2f} | {bands} | "
            f"{r['teen_miss_rate']:.1%} | {r['false_challenge_rate']:.1%} | "
            + (f"{corrected:.3f}" if corrected is not None else "-")
            + " |"
        )
    return "\n".join(lines)


def update_card(model: AgeModel, changes: dict[str, object]) -> Path:
    """Write the model's card with top-level fields replaced (error, age_confusion, curve)."""
    if model.path is None:
        raise ValueError("the model was not loaded from a file: no card to write")
    return model.card.updated(**changes).write(model.path)


def confusion_record(faces: LabelledFaces, predicted: np.ndarray, split: str) -> dict[str, object]:
    """A card's `age_confusion`: which faces, how many were readable, the year counts."""
    readable = ~np.isnan(predicted)
    hashed = split in ("calibration", "holdout")
    record = AgeConfusion(
        split=f"{split} (sha1 of file name < 0.5)" if hashed else split,
        n=int(readable.sum()),
        counts=age_confusion(faces.ages[readable], predicted[readable]),
    )
    return record.model_dump(mode="json")


def curve_record(
    result: dict[str, object], faces: str, split: str, card: ModelCard
) -> dict[str, object]:
    """A card's `operating_curve`: which faces, with which flip setting, how many in each
    group, the points."""
    counts = result["n_by_group"]
    if not curve_measurable(result):
        raise InputError(
            "An operating curve needs 13-17-year-olds, under-18s and adults 25+ among the faces; "
            f"these have {counts['13-17']}, {counts['<18']} and {counts['25+']}."
        )
    record = OperatingCurve(
        faces=faces,
        split=split,
        test_time_augmentation=card.test_time_augmentation,
        n_teens=counts["13-17"],
        n_under_18=counts["<18"],
        n_adults=counts["25+"],
        points=_rounded(result["operating_curve"], 4),
    )
    return record.model_dump(mode="json")


def error_record(
    result: dict[str, object], faces: str, split: str, card: ModelCard
) -> dict[str, object]:
    """A card's `error` from these metrics, its other notes kept (e.g. the port's check)."""
    keys = ("n", "mae", "bias", "mae_by_band", "n_by_band")
    measured = {key: _rounded(result[key]) for key in keys}
    return {
        **card.error.model_dump(mode="json"),
        **measured,
        "measured_on": f"{faces} ({result['n']:,} faces, split {split})",
        "prediction": "the mean of the photo's and its mirror image's age"
        if card.flip
        else "unrounded expected age (model output)",
        "command": f"agebatch evaluate --faces {faces} --split {split} --write-error",
    }


def _rounded(value: object, digits: int = 3) -> object:
    """Floats rounded (in dicts and lists too), as cards write them."""
    if isinstance(value, dict):
        return {key: _rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item, digits) for item in value]
    return round(value, digits) if isinstance(value, float) else value


def curve_measurable(result: dict[str, object]) -> bool:
    """Whether the faces held teenagers, under-18s and adults, so every rate of the curve
    is measured."""
    return all(result["n_by_group"].values())


def validation_faces(card: ModelCard, faces_dir: Path) -> LabelledFaces:
    """The labelled faces a trained model's card lists as its validation split."""
    files = ((card.training or {}).get("validation") or {}).get("files")
    if not files:
        raise InputError(f"The card of {card.name} has no validation split (is it trained?).")
    wanted = set(files)
    faces = read_labelled(faces_dir)
    keep = [i for i, p in enumerate(faces.paths) if p.name in wanted]
    if len(keep) != len(wanted):
        raise InputError(
            f"{len(wanted) - len(keep)} validation faces of {card.name} are missing "
            f"from {faces_dir}."
        )
    return LabelledFaces([faces.paths[i] for i in keep], faces.ages[keep])


def format_table(result: dict[str, object]) -> str:
    """The metrics as a small text table for the terminal."""
    speed = f"{result['images_per_s']:.0f} faces/s"
    lines = [
        f"model {result['model_version']}: {result['n']} faces, {speed}",
        f"  MAE {result['mae']:.2f} years (bias {result['bias']:+.2f})",
        "  band     n      MAE",
    ]
    for band in BANDS:
        mae = result["mae_by_band"].get(band, math.nan)
        lines.append(f"  {band:<6} {result['n_by_band'][band]:>5} {mae:>8.2f}")
    lines.append(f"  teen_miss_rate (13-17 predicted 25+):    {result['teen_miss_rate']:.1%}")
    lines.append(
        f"  false_challenge_rate (25+ predicted <25): {result['false_challenge_rate']:.1%}"
    )
    lines.append(f"  share_tvd:           {result['share_tvd']:.4f}")
    corrected = result["share_tvd_corrected"]
    lines.append(
        f"  share_tvd_corrected: {corrected:.4f} (confusion from {result['confusion_from']})"
        if corrected is not None
        else "  share_tvd_corrected: - (the model card has no age_confusion)"
    )
    counts = result["n_by_group"]
    lines.append(
        "  operating curve (flagged: predicted age < threshold; "
        f"{counts['13-17']} aged 13-17, {counts['<18']} under 18, {counts['25+']} aged 25+):"
    )
    lines.append("  threshold  teen_miss  under_18_miss  adult_flag")
    for point in result["operating_curve"]:
        lines.append(
            f"  {point['threshold']:>9.0f} {point['teen_miss']:>10.1%} "
            f"{point['under_18_miss']:>14.1%} {point['adult_flag']:>11.1%}"
        )
    return "\n".join(lines)


def _rate(flags: np.ndarray) -> float:
    return float(flags.mean()) if len(flags) else math.nan
