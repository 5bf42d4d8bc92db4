"""`agebatch evaluate`: measure an age model on labelled faces."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agebatch.cli.options import ProgressBars, add_config_options, predict_config
from agebatch.config import PredictConfig

SPLITS = ("all", "calibration", "holdout", "validation")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `evaluate` command."""
    evaluate = sub.add_parser(
        "evaluate",
        help="measure a model on labelled faces",
        description="Measure an age model on labelled faces (labels.csv with file_name,real_age "
        "+ final_files/): MAE overall and per band, Challenge-25 error rates, and how far the "
        "published age-group shares are from the true ones, raw and corrected.",
    )
    evaluate.add_argument("--faces", type=Path, required=True, help="labelled faces folder")
    evaluate.add_argument("--json", type=Path, help="also write the metrics to this JSON file")
    evaluate.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="all faces, one side of the fixed 50/50 split by file name, or a trained "
        "model's validation split from its card (default: all)",
    )
    evaluate.add_argument(
        "--write-confusion",
        action="store_true",
        help="store the model's age confusion on these faces in its card, for corrected shares "
        "(use --split calibration, then measure on --split holdout)",
    )
    evaluate.add_argument(
        "--write-curve",
        action="store_true",
        help="store the operating curve (teen miss and adult flag rates for flag thresholds "
        "20-35) in the model's card, for agebatch run --max-teen-miss",
    )
    evaluate.add_argument(
        "--write-error",
        action="store_true",
        help="store the MAE overall and per band (what --margin reads) in the model's card",
    )
    add_config_options(
        evaluate,
        PredictConfig,
        only=("model", "batch_size", "workers", "decode_processes", "accelerate"),
    )
    evaluate.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Measure, print the table, and write the JSON and the card's error, confusion and curve
    when asked."""
    from agebatch.predict.model import load_model
    from agebatch.training.evaluate import (
        confusion_record,
        curve_record,
        error_record,
        evaluate,
        format_table,
        read_labelled,
        update_card,
        validation_faces,
    )

    config = predict_config(args)
    model = load_model(config.model)
    if args.split == "validation":
        faces = validation_faces(model.card, args.faces)
    else:
        faces = read_labelled(args.faces, args.split)
    with ProgressBars() as bars:
        result, predicted = evaluate(model, faces, config, progress=bars.new)
    result["faces"] = str(args.faces)
    result["split"] = args.split
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"Wrote {args.json}")
    changes = {}
    faces_name = args.faces.resolve().name
    if args.write_error:
        changes["error"] = error_record(result, faces_name, args.split, model.card)
    if args.write_curve:
        changes["operating_curve"] = curve_record(result, faces_name, args.split, model.card)
    if args.write_confusion:
        changes["age_confusion"] = confusion_record(faces, predicted, args.split)
    if changes:
        path = update_card(model, changes)
        print(f"Wrote {' and '.join(sorted(changes))} to {path}")
    return 0
