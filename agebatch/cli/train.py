"""`agebatch train`: fine-tune the bundled model or train the ResNet50 recipe."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from agebatch.cli.options import add_config_options
from agebatch.config import PredictConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `train` command; its defaults are TrainConfig's."""
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
    add_config_options(train, PredictConfig, only=("workers",))
    train.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Train, then print the validation figures against the bundled model's."""
    from agebatch.training.evaluate import format_table
    from agebatch.training.train import TrainConfig, train

    names = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{name: value for name, value in vars(args).items() if name in names})
    predicting = PredictConfig.build({k: v for k, v in vars(args).items() if k == "workers"})
    result = train(
        args.faces, args.out, config, workdir=args.workdir, fresh=args.fresh, predict=predicting
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
