"""`agebatch predict`: ages for loose images in any folder layout, for spot checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from agebatch.cli.options import ProgressBars, add_config_options, predict_config
from agebatch.config import PredictConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `predict` command."""
    predict = sub.add_parser(
        "predict",
        help="predict ages for loose images",
        description="Predict an age for each image (files, or folders searched recursively) "
        "and write path, predicted_age, status, quality_score, quality_part, read_as (aligned "
        "crops, loose crops or frames: under auto each folder is one camera), adjusted (what "
        "was done to the face before the model: realigned, brightened, sharpened), "
        "model_version and model_card to a CSV or Parquet file.",
    )
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    predict.add_argument("--out", type=Path, required=True, help="output .csv or .parquet")
    add_config_options(predict, PredictConfig)
    predict.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Predict and write the ages of the images given."""
    from agebatch.predict.loose import predict_loose

    with ProgressBars() as bars:
        count = predict_loose(args.paths, args.out, predict_config(args), progress=bars.new)
    print(f"Wrote {count} predictions to {args.out}")
    return 0
