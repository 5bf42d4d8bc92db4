"""`agebatch predict`: ages for loose images in any folder layout, for spot checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from agebatch.config import PredictConfig
from agebatch.errors import InputError
from agebatch.inputs.captures import IMAGE_SUFFIXES
from agebatch.predict.model import load_model
from agebatch.predict.stage import Progress, predict_paths


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
    quality_score and quality_part for every image to out."""
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"Output {out} must end in .csv or .parquet.")
    files = image_paths(paths)
    model = load_model(config.model)
    predictions, _ = predict_paths(
        files,
        model,
        config,
        regions=[config.face_region] * len(files),
        cameras=[path.parent for path in files],  # auto: a folder is one camera
        progress=progress and progress(len(files)),
    )
    table = pd.DataFrame(
        {
            "path": [str(p) for p in files],
            "predicted_age": pd.array([p.age for p in predictions], dtype="Float64").round(2),
            "status": [str(p.status) for p in predictions],
            "quality_score": pd.array([p.quality for p in predictions], dtype="Float64"),
            "quality_part": [p.quality_part or None for p in predictions],
            "model_version": model.version,
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        table.to_csv(out, index=False)
    else:
        table.to_parquet(out, index=False)
    return len(table)
