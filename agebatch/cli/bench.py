"""`agebatch bench`: how fast the predict stage runs against the model alone, on generated
photos (or real faces), with the machine the figures came from.

Not a test: it prints figures for the docs (and --json FILE). See agebatch/benchmark.py.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from agebatch.benchmark import FIND_NAMES, PHOTOS_PER_CAMERA, SIDE_PHOTOS, bench
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
    parser.add_argument(
        "--side-photos",
        type=int,
        default=SIDE_PHOTOS,
        help="on crops: photos in each of two more days, loose copies of the same crops and "
        "frames with them pasted in, both read under auto (default: %(default)s; 0: skip them)",
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
    if args.side_photos < 0:
        raise InputError(f"--side-photos {args.side_photos} must be 0 or more.")
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
            side_photos=args.side_photos,
            say=lambda line: print(f"# {line}", flush=True),
        )
    flip = ", flip averaging (two model passes a photo)" if figures["flip_averaging"] else ""
    print(f"device: {figures['device']}, model {model.version}{flip}")
    print(
        f"{figures['photos']} {figures['kind']} ({figures['faces']}), "
        f"{figures['photos_per_camera']} per camera, batch size {figures['batch_size']}, "
        f"{figures['workers']} decode {figures['decode']}, best of {figures['repeats']}"
    )
    read_as = figures["cameras_read_as"]
    auto, side = f"auto ({_saves(read_as.get('auto'))})", figures["side_photos"]
    loose = f"auto on loose crops ({_saves(read_as.get('auto_loose'))})"
    frames = f"auto on frames ({_saves(read_as.get('auto_frames'))})"
    rows = [
        ("model alone on ready tensors", figures["model_only_ips"], "photos/s"),
        ("decode alone, one core", figures["decode_ips_per_core"], "photos/s"),
        (f"predict stage ({figures['kind']})", figures["predict_stage_ips"], "photos/s"),
        ("predict stage (auto)", figures["auto_ips"], "photos/s"),
        (f"predict stage, {loose}", figures["loose_ips"], "photos/s"),
        (f"predict stage, {frames}", figures["frames_ips"], "photos/s"),
        ("stage / model (median of the repeats)", figures["stage_over_model"], ""),
        (f"{auto} / crops (median of the repeats)", figures["auto_over_crops"], ""),
        (f"{auto} / model (median of the repeats)", figures["auto_over_model"], ""),
        ("loose crops / frames (median of the repeats)", figures["loose_over_frames"], ""),
        ("stage / model, in CPU time", figures["stage_over_model_cpu"], ""),
        (f"{auto} / crops, in CPU time", figures["auto_over_crops_cpu"], ""),
        ("loose crops / frames, in CPU time", figures["loose_over_frames_cpu"], ""),
        ("finding files", figures["find_files_per_s"], "names/s"),
        ("peak memory (whole run)", figures["peak_rss_mb"], "MiB"),
        ("peak memory (to the end of the stage runs)", figures["stage_peak_rss_mb"], "MiB"),
    ]
    width = max(len(label) for label, value, _ in rows if value is not None)
    for label, value, unit in rows:
        if value is not None:
            print(f"{label:{width}s} {value:>10} {unit}")
    if side:
        print(
            f"loose crops and frames: {side} photos each (the same faces as the first {side} "
            f"crops), best of {figures['repeats']}: smaller days than the crops', their cost a "
            "photo does not grow with the day (docs/throughput.md)"
        )
    cpu = figures["cpu_ms_per_photo"]
    print(
        "CPU ms per photo (all threads and processes): "
        + ", ".join(f"{k} {v}" for k, v in cpu.items())
    )
    print(f"statuses: {figures['statuses']}")
    print(f"cameras read as: {read_as}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _saves(counts: dict[str, int] | None) -> str:
    """What auto read a day's cameras as, in words: 'aligned crops', '2 loose crops, 1 frames'."""
    if not counts:
        return "not decided"
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{n} {saves}" for saves, n in sorted(counts.items()))
