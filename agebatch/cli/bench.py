"""`agebatch bench`: how fast the predict stage runs against the model alone, on generated
photos (or real faces), with the machine the figures came from.

Not a test: it prints figures for the docs (and --json FILE). See agebatch/benchmark.py.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from agebatch.benchmark import FIND_NAMES, PHOTOS_PER_CAMERA, bench
from agebatch.cli.options import add_config_options, predict_config
from agebatch.config import PhotoKind, PredictConfig
from agebatch.errors import InputError
from agebatch.predict.model import load_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `bench` command."""
    parser = sub.add_parser(
        "bench",
        help="measure photos/s: model alone, decoding, the predict stage, finding files, memory",
        description=__doc__,
    )
    parser.add_argument(
        "--photos", type=int, default=4000, help="photos in the day (default: %(default)s)"
    )
    parser.add_argument(
        "--kind",
        choices=[PhotoKind.CROPS.value, PhotoKind.FRAMES.value],
        default=PhotoKind.CROPS.value,
        help="what the photos are; on crops the stage also runs under photo kind auto "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--faces",
        type=Path,
        default=None,
        help="use real faces (labels.csv + final_files/) instead of drawn ones",
    )
    parser.add_argument(
        "--per-camera",
        type=int,
        default=PHOTOS_PER_CAMERA,
        help="photos per register in the day (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each figure, best kept (default: 3)"
    )
    parser.add_argument(
        "--find-names",
        type=int,
        default=FIND_NAMES,
        help="names in the day whose files are found (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the day is written (default: a temp dir)"
    )
    add_config_options(parser, PredictConfig, skip=("face_region", "photo_kind"))
    parser.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Write the day, measure, print the figures (and write them as JSON)."""
    if min(args.photos, args.per_camera, args.repeats, args.find_names) < 1:
        raise InputError("--photos, --per-camera, --repeats and --find-names must be at least 1.")
    config = predict_config(args)
    model = load_model(config.model)
    with tempfile.TemporaryDirectory(prefix="agebatch-bench-") as scratch:
        figures = bench(
            model,
            config,
            args.workdir or Path(scratch),
            photos=args.photos,
            kind=PhotoKind(args.kind),
            faces=args.faces,
            per_camera=args.per_camera,
            repeats=args.repeats,
            find_names=args.find_names,
            say=lambda line: print(f"# {line}", flush=True),
        )
    flip = ", flip averaging (two model passes a photo)" if figures["flip_averaging"] else ""
    print(f"device: {figures['device']}, model {model.version}{flip}")
    print(
        f"{figures['photos']} {figures['kind']} ({figures['faces']}), "
        f"{figures['photos_per_camera']} per camera, batch size {figures['batch_size']}, "
        f"{figures['workers']} decode {figures['decode']}, best of {figures['repeats']}"
    )
    rows = [
        ("model alone on ready tensors", figures["model_only_ips"], "photos/s"),
        ("decode alone, one core", figures["decode_ips_per_core"], "photos/s"),
        (f"predict stage ({figures['kind']})", figures["predict_stage_ips"], "photos/s"),
        ("predict stage (auto)", figures["auto_ips"], "photos/s"),
        ("stage / model (median of the repeats)", figures["stage_over_model"], ""),
        ("auto / crops (median of the repeats)", figures["auto_over_crops"], ""),
        ("stage / model, in CPU time", figures["stage_over_model_cpu"], ""),
        ("auto / crops, in CPU time", figures["auto_over_crops_cpu"], ""),
        ("finding files", figures["find_files_per_s"], "names/s"),
        ("peak memory (whole run)", figures["peak_rss_mb"], "MiB"),
        ("peak memory (to the end of the stage runs)", figures["stage_peak_rss_mb"], "MiB"),
    ]
    for label, value, unit in rows:
        if value is not None:
            print(f"{label:44s} {value:>10} {unit}")
    cpu = figures["cpu_ms_per_photo"]
    print(
        "CPU ms per photo (all threads and processes): "
        + ", ".join(f"{k} {v}" for k, v in cpu.items())
    )
    print(f"statuses: {figures['statuses']}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0
