"""`agebatch evaluate`: measure an age model on labelled faces."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agebatch.cli.options import ProgressBars, add_config_options, predict_config
from agebatch.config import PredictConfig

SPLITS = ("all", "calibration", "holdout", "validation")
CONDITION_NAMES = (
    "clean",
    "loose",
    "dim",
    "small",
    "blur",
    "jpeg",
    "rotated",
    "motion",
    "overexposed",
    "grey",
)


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
    evaluate.add_argument(
        "--conditions",
        metavar="NAMES",
        help="measure the same faces under named degradations instead, each read as one camera "
        "under --photo-kind (default auto, as a run reads): comma-separated names or 'all' "
        f"({', '.join(CONDITION_NAMES)}); copies go to --workdir (default: a temporary folder)",
    )
    evaluate.add_argument(
        "--subset",
        type=int,
        metavar="N",
        help="with --conditions or --realigned: a fixed random subset of N faces (numpy "
        "default_rng(--seed))",
    )
    evaluate.add_argument(
        "--seed",
        type=int,
        default=24,
        help="the seed of the subset and of the degraded copies (default 24)",
    )
    evaluate.add_argument(
        "--workdir",
        type=Path,
        help="with --conditions or --realigned: where the degraded copies are written",
    )
    evaluate.add_argument(
        "--write-conditions",
        action="store_true",
        help="with --conditions: store the table in the model's card (`conditions`)",
    )
    evaluate.add_argument(
        "--realigned",
        action="store_true",
        help="measure instead how much older these faces read aligned by their landmarks (as a "
        "loose-crop camera's or a frame's face is) than as their aligned crops: their crops "
        "re-aligned and their loose copies (seeded by --seed, written to --workdir)",
    )
    evaluate.add_argument(
        "--write-realigned",
        action="store_true",
        help="measure as --realigned does and store the mean of the two in the model's card "
        "(face.realigned.offset, taken off the ages of faces aligned by their landmarks; use "
        "--split calibration, then check on --split holdout with --conditions clean,loose)",
    )
    add_config_options(
        evaluate,
        PredictConfig,
        only=(
            "model",
            "batch_size",
            "workers",
            "decode_processes",
            "accelerate",
            "photo_kind",
            "auto_sample",
        ),
    )
    evaluate.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Measure, print the table, and write the JSON and the card's error, confusion and curve
    when asked."""
    from agebatch.errors import InputError
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

    if args.conditions and (args.realigned or args.write_realigned):
        raise InputError("--conditions and --realigned measure different things: give one.")
    if (args.realigned or args.write_realigned) and (
        args.write_error or args.write_confusion or args.write_curve
    ):
        raise InputError(
            "--realigned measures the realigned offset only: run --write-error, "
            "--write-confusion and --write-curve without it."
        )
    config = predict_config(args)
    model = load_model(config.model)
    if args.split == "validation":
        faces = validation_faces(model.card, args.faces)
    else:
        faces = read_labelled(args.faces, args.split)
    if args.conditions:
        return conditions_command(args, model, faces, config)
    if args.realigned or args.write_realigned:
        return realigned_command(args, model, faces, config)
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


def conditions_command(args: argparse.Namespace, model, faces, config: PredictConfig) -> int:
    """`--conditions`: the table of the same faces under named degradations."""
    import tempfile

    from agebatch.errors import InputError
    from agebatch.training.evaluate import (
        evaluate_conditions,
        format_conditions,
        subset,
        update_card,
    )

    names = CONDITION_NAMES if args.conditions == "all" else tuple(args.conditions.split(","))
    unknown = sorted(set(names) - set(CONDITION_NAMES))
    if unknown:
        raise InputError(
            f"Unknown condition(s) {', '.join(unknown)}: choose from {', '.join(CONDITION_NAMES)}."
        )
    if args.subset is not None and args.subset < 1:
        raise InputError("--subset must be at least 1.")
    faces = subset(faces, args.subset, args.seed)
    with tempfile.TemporaryDirectory(prefix="agebatch-conditions-") as scratch:
        workdir = args.workdir or Path(scratch)
        with ProgressBars() as bars:
            table = evaluate_conditions(
                model, faces, config, names, workdir, seed=args.seed, progress=bars.new
            )
    print(format_conditions(table, len(faces.paths), args.seed))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2, default=str) + "\n")
        print(f"Wrote {args.json}")
    if args.write_conditions:
        record = conditions_record(
            table, args, len(faces.paths), str(config.photo_kind), model.card.realigned_offset
        )
        path = update_card(model, {"conditions": record})
        print(f"Wrote conditions to {path}")
    return 0


def realigned_command(args: argparse.Namespace, model, faces, config: PredictConfig) -> int:
    """`--realigned`: how much older faces aligned by their landmarks read; the card's offset
    written with --write-realigned."""
    import tempfile

    from agebatch.errors import InputError
    from agebatch.training.evaluate import realigned_shift, subset, update_card

    if args.subset is not None and args.subset < 1:
        raise InputError("--subset must be at least 1.")
    faces = subset(faces, args.subset, args.seed)
    with tempfile.TemporaryDirectory(prefix="agebatch-realigned-") as scratch:
        shift = realigned_shift(model, faces, config, args.workdir or Path(scratch), args.seed)
    print(
        f"{shift['n']} faces of {args.faces.resolve().name} ({args.split}): aligned by their "
        f"landmarks they read {shift['realigned']:+.3f} years from their aligned crops "
        f"({shift['realigned_aged']} aged both ways) and, as loose copies, "
        f"{shift['loose']:+.3f} ({shift['loose_aged']}); offset {shift['offset']:.2f} (the "
        f"card's now: {model.card.realigned_offset:.2f})"
    )
    if args.json:
        args.json.write_text(json.dumps(shift, indent=2) + "\n")
        print(f"Wrote {args.json}")
    if args.write_realigned:
        measured = (
            f"{args.faces.resolve().name}, split {args.split}"
            + (f", {args.subset} faces (seed {args.seed})" if args.subset else "")
            + ": the mean difference of the "
            "model's ages, faces aligned by their landmarks minus their aligned crops, "
            f"{shift['realigned']:+.3f} years for the crops re-aligned "
            f"({shift['realigned_aged']} aged both ways) and "
            f"{shift['loose']:+.3f} for loose copies (training.conditions.loose, seed "
            f"{args.seed}; {shift['loose_aged']}); the offset is their mean "
            f"(agebatch evaluate --split {args.split} --realigned --write-realigned)"
        )
        face = model.card.face.model_dump(exclude_none=True)
        face["realigned"] = {**face.get("realigned", {}), "offset": shift["offset"]}
        face["realigned"]["measured"] = measured
        path = update_card(model, {"face": face})
        print(f"Wrote face.realigned to {path}")
    return 0


def conditions_record(
    table: dict, args: argparse.Namespace, n: int, photo_kind: str, realigned_offset: float
) -> dict:
    """The card's `conditions`: which faces, how read (with which realigned offset), and per
    condition the figures."""
    keys = (
        "condition",
        "share_aged",
        "statuses",
        "mae",
        "mae_by_band",
        "teen_miss_rate",
        "false_challenge_rate",
        "share_tvd_corrected",
        "n_by_group",
        "camera",
    )
    subset_text = f"{n} faces, numpy default_rng({args.seed})" if args.subset else f"{n} faces"
    return {
        "faces": f"{args.faces.resolve().name} ({subset_text})",
        "photo_kind": photo_kind,
        "command": f"agebatch evaluate --faces {args.faces.resolve().name} --conditions "
        f"{args.conditions}"
        + (f" --subset {args.subset} --seed {args.seed}" if args.subset else "")
        + " --write-conditions",
        "figures": "over the faces aged; teen miss and adults flagged at 25",
        "realigned_offset": realigned_offset,
        "table": {name: {key: _round(row.get(key)) for key in keys} for name, row in table.items()},
    }


def _round(value: object) -> object:
    """Floats to 3 places, in dicts too."""
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return round(value, 3) if isinstance(value, float) else value
