"""The `agebatch` command: run · backfill · predict · evaluate · train · demo."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from agebatch.config import (
    DEFAULT_AGE_BOUNDS,
    DEFAULT_PHOTO_KIND,
    DEFAULT_TIMEZONE,
    PHOTO_KINDS,
    WHOLE_FRAME,
    Settings,
    parse_age_bounds,
    parse_day,
    parse_region,
    yesterday,
)
from agebatch.errors import InputError

log = logging.getLogger("agebatch")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `agebatch` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except InputError as error:
        print(f"agebatch: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "agebatch: interrupted; nothing was published for the day in progress.", file=sys.stderr
        )
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="agebatch",
        description="Checkout photos -> predicted ages -> age-group analytics as Parquet.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one day", description="Run the nightly job for one day.")
    run.add_argument("--day", type=_arg_type(parse_day), help="YYYY-MM-DD (default: yesterday)")
    _add_day_options(run)
    run.set_defaults(handler=_cmd_run)

    backfill = sub.add_parser(
        "backfill",
        help="run a range of days",
        description="Run every day from --start to --end (inclusive); each day is published "
        "whole or not at all, and a failed day does not stop the others.",
    )
    day = _arg_type(parse_day)
    backfill.add_argument("--start", type=day, required=True, help="first day, YYYY-MM-DD")
    backfill.add_argument("--end", type=day, required=True, help="last day, YYYY-MM-DD")
    _add_day_options(backfill)
    backfill.set_defaults(handler=_cmd_backfill)

    predict = sub.add_parser(
        "predict",
        help="predict ages for loose images",
        description="Predict an age for each image (files, or folders searched recursively) "
        "and write path, predicted_age, status to a CSV or Parquet file.",
    )
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    predict.add_argument("--out", type=Path, required=True, help="output .csv or .parquet")
    _add_model_options(predict)
    _add_face_options(predict, regions_file=False)
    predict.set_defaults(handler=_cmd_predict)

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
        choices=("all", "calibration", "holdout", "validation"),
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
    _add_model_options(evaluate)
    evaluate.set_defaults(handler=_cmd_evaluate, batch_size=256)

    _add_train_parser(sub)

    demo = sub.add_parser(
        "demo",
        help="generate a sample day and run the nightly flow on it",
        description="Generate a sample day (stores, receipts, face images, transactions, "
        "catalog) under --workdir, run the nightly Prefect flow on it and publish there too.",
    )
    demo.add_argument(
        "--workdir", type=Path, default=Path("agebatch-demo"), help="default: %(default)s"
    )
    demo.add_argument(
        "--faces",
        type=Path,
        help="labelled faces (labels.csv + final_files/) to build the day from real faces",
    )
    demo.add_argument("--receipts", type=int, default=400, help="default: %(default)s")
    demo.add_argument("--seed", type=int, default=7, help="default: %(default)s")
    demo.add_argument("--model", type=Path, help="a .keras model with its card (default: bundled)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    from agebatch.training.train import ARCHS, BALANCES, LOSSES, TrainConfig

    d = TrainConfig()
    train = sub.add_parser(
        "train",
        help="train an age model on labelled faces",
        description="Train an age model on labelled faces (labels.csv with file_name,real_age "
        "+ final_files/): fine-tune the bundled model (--arch default, no download, the fast "
        "path on a CPU) or the original ResNet50 recipe (--arch resnet50). A seeded validation "
        "split is kept aside; the best epoch by validation MAE is saved with a model card and "
        "measured like `agebatch evaluate`. Rerunning an interrupted command resumes it.",
    )
    train.add_argument("--faces", type=Path, required=True, help="labelled faces folder")
    train.add_argument("--out", type=Path, required=True, help="the model to write, MODEL.keras")
    train.add_argument("--arch", choices=ARCHS, default=d.arch, help="default: %(default)s")
    train.add_argument(
        "--weights",
        default=d.weights,
        help="resnet50 start: imagenet (downloaded once, only when asked), none, or a no-top "
        "weights file (default: %(default)s)",
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        default=d.learning_rate,
        help="Adam's (default: 1e-4 fine-tuning, 1e-3 resnet50)",
    )
    train.add_argument("--limit", type=int, help="train on a seeded subset of N faces")
    train.add_argument(
        "--balance",
        choices=BALANCES,
        default=d.balance,
        help="sample weights against the age imbalance, by 5-year bin (default: %(default)s)",
    )
    train.add_argument(
        "--loss",
        choices=LOSSES,
        default=d.loss,
        help="mae: error of the predicted age; mae+dist: plus a label-distribution term on the "
        "default net's age classes (default: mae+dist for default, mae for resnet50)",
    )
    train.add_argument(
        "--flip-tta",
        choices=("auto", "on", "off"),
        default=d.flip_tta,
        help="average with the mirror image at prediction time; auto keeps it when it lowers "
        "the validation MAE (default: %(default)s)",
    )
    numbers = (
        ("--image-size", int, "resnet50 input side in pixels"),
        ("--epochs", int, "at most this many epochs"),
        ("--batch-size", int, "faces per step"),
        ("--val-share", float, "share of the faces kept aside for validation"),
        ("--seed", int, "seeds the split, the order and the augmentation"),
        (
            "--max-age",
            int,
            "default net: add whole-year age classes past its last (80) up to this age",
        ),
        ("--jitter", float, "augment with random zoom and shift of up to this share of the face"),
        ("--weight-decay", float, "AdamW weight decay; 0 is plain Adam"),
        ("--lr-decay", float, "multiply the learning rate by this after every epoch"),
        ("--patience", int, "stop after this many epochs without a better validation MAE"),
    )
    for flag, kind, text in numbers:
        default = getattr(d, flag[2:].replace("-", "_"))
        train.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default})")
    train.add_argument(
        "--workdir", type=Path, help="checkpoints and history (default: <out>.train/)"
    )
    train.add_argument(
        "--fresh", action="store_true", help="discard an interrupted run instead of resuming"
    )
    train.add_argument("--json", type=Path, help="also write the validation metrics here")
    train.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decode threads")
    train.set_defaults(handler=_cmd_train)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, help="a .keras model with its card (default: bundled)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="decode workers (default: %(default)s)",
    )
    parser.add_argument(
        "--decode-processes",
        action="store_true",
        help="decode in processes instead of threads (faster with many cores, e.g. beside a GPU)",
    )


def _arg_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a parser that raises InputError: usage error, exit status 2."""

    def checked(text: str) -> object:
        try:
            return parse(text)
        except InputError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    checked.__name__ = parse.__name__
    return checked


def _add_face_options(parser: argparse.ArgumentParser, regions_file: bool = True) -> None:
    faces = parser.add_argument_group("face finding")
    faces.add_argument(
        "--photo-kind",
        choices=PHOTO_KINDS,
        default=DEFAULT_PHOTO_KIND,
        help="what the photos are: aligned face crops, whole camera frames (the shopper's face "
        "is found), or auto: told apart photo by photo (default: %(default)s)",
    )
    faces.add_argument(
        "--face-region",
        type=_arg_type(parse_region),
        default=WHOLE_FRAME,
        metavar="X0,Y0,X1,Y1",
        help="in frames, the shopper is the largest face centred in this part of the frame "
        "(fractions of width and height; default: the whole frame)",
    )
    if regions_file:
        faces.add_argument(
            "--face-regions",
            type=Path,
            metavar="FILE",
            help="per-camera regions: CSV or Parquet with store_id,register_id,x0,y0,x1,y1 "
            "(empty register_id: the whole store)",
        )


def _add_day_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photos", type=Path, required=True, help="PHOTOS root (holds <day>/)")
    parser.add_argument(
        "--transactions", type=Path, required=True, help="folder with <day>.parquet or <day>.csv"
    )
    parser.add_argument("--catalog", type=Path, required=True, help="catalog .parquet or .csv")
    parser.add_argument(
        "--out", type=Path, required=True, help="output root for the Parquet datasets"
    )
    _add_model_options(parser)
    parser.add_argument(
        "--window-before",
        type=float,
        default=120.0,
        metavar="S",
        help="match photos taken up to S seconds before payment (default: %(default)s)",
    )
    parser.add_argument(
        "--window-after",
        type=float,
        default=5.0,
        metavar="S",
        help="… and up to S seconds after it (default: %(default)s)",
    )
    parser.add_argument(
        "--age-groups",
        type=_arg_type(parse_age_bounds),
        default=DEFAULT_AGE_BOUNDS,
        metavar="A,B,…",
        help="lower bounds of the age groups (default: 18,25,35,45,55,65)",
    )
    parser.add_argument(
        "--timezone", default=DEFAULT_TIMEZONE, help="the chain's timezone (default: %(default)s)"
    )
    policy = parser.add_argument_group("alcohol compliance policy")
    policy.add_argument(
        "--legal-age", type=float, default=18.0, help="minimum age to buy (default: %(default)s)"
    )
    policy.add_argument(
        "--challenge-age",
        type=float,
        default=25.0,
        help="shoppers who look younger are asked for ID (default: %(default)s)",
    )
    policy.add_argument(
        "--margin",
        type=float,
        default=0.0,
        metavar="K",
        help="widen both ages by K times the model's error for the age band (default: 0)",
    )
    policy.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="per-store ages: CSV or Parquet with store_id,legal_age,challenge_age",
    )
    _add_face_options(parser)


def _settings(args: argparse.Namespace, day: dt.date) -> Settings:
    return Settings(
        day=day,
        photos=args.photos,
        transactions=args.transactions,
        catalog=args.catalog,
        out=args.out,
        model=args.model,
        window_before_s=args.window_before,
        window_after_s=args.window_after,
        age_bounds=args.age_groups,
        batch_size=args.batch_size,
        workers=args.workers,
        decode_processes=args.decode_processes,
        timezone=args.timezone,
        legal_age=args.legal_age,
        challenge_age=args.challenge_age,
        margin=args.margin,
        policy=args.policy,
        photo_kind=args.photo_kind,
        face_region=args.face_region,
        face_regions=args.face_regions,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from agebatch.pipeline import run_day
    from agebatch.reports.summary import print_summary

    settings = _settings(args, args.day or yesterday(args.timezone))
    with _ProgressBars() as bars:
        summary = run_day(settings, progress=bars.new)
    print_summary(summary, settings.out)
    return 0


def _cmd_backfill(args: argparse.Namespace) -> int:
    from agebatch.pipeline import run_day
    from agebatch.predict.model import load_model
    from agebatch.reports.summary import print_summary

    if args.end < args.start:
        raise InputError(f"--end {args.end} is before --start {args.start}.")
    model = load_model(args.model)
    days = [args.start + dt.timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    failed: list[str] = []
    for day in days:
        print(f"== {day}", file=sys.stderr)
        try:
            with _ProgressBars() as bars:
                summary = run_day(_settings(args, day), model=model, progress=bars.new)
        except InputError as error:
            print(f"agebatch: {day} not published: {error}", file=sys.stderr)
            failed.append(day.isoformat())
            continue
        print_summary(summary, args.out)
    done = len(days) - len(failed)
    print(
        f"Backfill: {done} of {len(days)} days published"
        + (f"; failed: {', '.join(failed)}" if failed else ".")
    )
    return 1 if failed else 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from agebatch.predict.loose import predict_loose

    with _ProgressBars() as bars:
        count = predict_loose(
            args.paths,
            args.out,
            model_path=args.model,
            batch_size=args.batch_size,
            workers=args.workers,
            processes=args.decode_processes,
            progress=bars.new,
            photo_kind=args.photo_kind,
            face_region=args.face_region,
        )
    print(f"Wrote {count} predictions to {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from agebatch.predict.model import load_model
    from agebatch.training.evaluate import evaluate, format_table, read_labelled, write_confusion

    model = load_model(args.model)
    if args.split == "validation":
        from agebatch.training.train import validation_faces

        faces = validation_faces(model.path, args.faces)
    else:
        faces = read_labelled(args.faces, args.split)
    with _ProgressBars() as bars:
        result, predicted = evaluate(
            model, faces, batch_size=args.batch_size, workers=args.workers, progress=bars.new
        )
    result["faces"] = str(args.faces)
    result["split"] = args.split
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"Wrote {args.json}")
    if args.write_confusion:
        print(f"Wrote the age confusion to {write_confusion(model, faces, predicted, args.split)}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import json
    from dataclasses import fields

    from agebatch.training.evaluate import format_table
    from agebatch.training.train import TrainConfig, train

    names = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{name: value for name, value in vars(args).items() if name in names})
    result = train(
        args.faces, args.out, config, workdir=args.workdir, fresh=args.fresh, workers=args.workers
    )
    print(
        f"Trained {args.arch} for {result.epochs_run} epochs (best {result.best_epoch}) "
        f"in {result.seconds / 60:.1f} min; validation faces:"
    )
    print(format_table(result.metrics))
    if result.baseline is not None:
        before, after = result.baseline, result.metrics
        print(
            f"The bundled model on the same faces: MAE {before['mae']:.2f} -> {after['mae']:.2f}, "
            f"teen_miss_rate {before['teen_miss_rate']:.1%} -> {after['teen_miss_rate']:.1%}, "
            f"false_challenge_rate {before['false_challenge_rate']:.1%} -> "
            f"{after['false_challenge_rate']:.1%}"
        )
    if args.json:
        args.json.write_text(json.dumps(result.metrics, indent=2) + "\n")
    print(f"Wrote {args.out} and its card; use it with `agebatch run --model {args.out}`.")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from agebatch.cli.demo import run_demo

    return run_demo(
        args.workdir, faces=args.faces, receipts=args.receipts, seed=args.seed, model=args.model
    )


class _ProgressBars:
    """Hands out tqdm progress bars (on stderr, only on a terminal) and closes them."""

    def __enter__(self) -> _ProgressBars:
        self._bars: list = []
        return self

    def new(self, total: int) -> Callable[[int], None]:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="photo", desc="predict", disable=None, file=sys.stderr)
        self._bars.append(bar)
        return bar.update

    def __exit__(self, *exc: object) -> None:
        for bar in self._bars:
            bar.close()


def _configure_logging(verbose: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    # Prefect's server sends usage telemetry unless told not to; the job talks to its API only.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    log.setLevel(logging.DEBUG if verbose else logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
