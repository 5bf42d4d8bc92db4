"""`agebatch train`: fine-tune the bundled model or train the ResNet50 recipe."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agebatch.cli.options import add_config_options, given
from agebatch.config import PredictConfig, TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `train` command: a flag per TrainConfig field (defaults, help and checks from it)."""
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
    add_config_options(train, TrainConfig, skip=("rotation_deg", "brightness"))
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
    from agebatch.training.train import train

    config = TrainConfig.build(given(args, TrainConfig))
    predicting = PredictConfig.build({k: v for k, v in vars(args).items() if k == "workers"})
    result = train(
        args.faces, args.out, config, workdir=args.workdir, fresh=args.fresh, predict=predicting
    )
    print(
        f"Trained {config.arch} for {result.epochs_run} epochs (best {result.best_epoch}) "
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
