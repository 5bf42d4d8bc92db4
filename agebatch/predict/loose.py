"""`agebatch predict`: ages for loose images in any folder layout, for spot checks."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from agebatch.config import ALIGNED_CROPS, PhotoKind, PredictConfig
from agebatch.errors import InputError, OutputError
from agebatch.inputs.captures import IMAGE_SUFFIXES
from agebatch.inputs.files import shown
from agebatch.predict.model import load_model
from agebatch.predict.stage import Progress, predict_paths

# How `--photo-kind crops` and `frames` read every photo (under auto each folder's verdict says)
READ_AS = {
    PhotoKind.CROPS: ALIGNED_CROPS,
    PhotoKind.FRAMES: PhotoKind.FRAMES.value,
    PhotoKind.AUTO: None,
}


def image_paths(paths: Sequence[Path]) -> list[Path]:
    """The image files among paths, folders searched recursively, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path} does not exist.")
    return found


def predict_loose(
    paths: Sequence[Path],
    out: Path,
    config: PredictConfig,
    progress: Callable[[int], Progress] | None = None,
) -> int:
    """Write path, predicted_age, status (ok / unreadable / no_face / refused / low_quality),
    quality_score, quality_part, read_as (how its folder's photos were read: aligned crops,
    loose crops or frames; under auto each folder is a camera), adjusted (what was done to the
    face before the model: realigned, brightened, sharpened; empty: nothing), model_version and
    model_card for every image to out."""
    check_out(out)
    files = image_paths(paths)
    model = load_model(config.model)
    predictions, stats = predict_paths(
        files,
        model,
        config,
        regions=[config.face_region] * len(files),
        cameras=[path.parent for path in files],  # auto: a folder is one camera
        progress=progress and progress(len(files)),
    )
    read_as = {verdict.camera: verdict.saves for verdict in stats.verdicts}
    given = READ_AS[PhotoKind(config.photo_kind)]  # crops or frames: as told, no verdicts
    table = pd.DataFrame(
        {
            "path": [shown(str(p)) for p in files],
            "predicted_age": pd.array([p.age for p in predictions], dtype="Float64").round(2),
            "status": [str(p.status) for p in predictions],
            "quality_score": pd.array([p.quality for p in predictions], dtype="Float64"),
            "quality_part": [p.quality_part or None for p in predictions],
            "read_as": [read_as.get(path.parent, given) for path in files],
            "adjusted": [", ".join(p.adjusted) or None for p in predictions],
            "model_version": model.version,
            "model_card": model.card.short_digest(),
        }
    )
    write_whole(table, out)
    return len(table)


def check_out(out: Path) -> None:
    """Refuse, before any photo is read, an output that cannot be written: the wrong kind of
    name, a folder, or a path through something that is not a folder."""
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"Output {out} must end in .csv or .parquet.")
    if out.is_dir():
        raise InputError(f"Output {out} is a folder: give a file name ending in .csv or .parquet.")
    above = next((p for p in out.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise InputError(f"Output {out} cannot be written: {above} is not a folder.")


def write_whole(table: pd.DataFrame, out: Path) -> None:
    """Write the table to out whole or not at all (a temporary file renamed over it), saying in
    one sentence why it could not be written."""
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".csv":
            table.to_csv(temporary, index=False)
        else:
            table.to_parquet(temporary, index=False)
        os.replace(temporary, out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"Output {out} cannot be written: {error.strerror or error}.") from None
