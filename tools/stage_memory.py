"""Peak memory of the predict stage against the size of the day: is it flat?

    .venv/bin/python -m tools.stage_memory [--photos 1000 100000] [--kind crops|auto|frames]
        [--faces DIR] [--batch-size B] [--json FILE]

Writes one generated day of the largest size (agebatch.benchmark.write_day: at most 1,000
distinct pictures, the rest hard links), then, for each size, runs the predict stage in a fresh
process over the day's first N photos as the pipeline does (find_captures, paths and cameras
from its table, predict_paths, the ages added to the table) and reports that process's peak
resident memory, and its memory after loading the model and one warm-up batch. A developer
tool: not shipped in the package.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agebatch.config import PhotoKind, PredictConfig, RunConfig


def peak_mb() -> float:
    """This process's peak resident memory so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(folder: Path, photos: int, kind: str, batch_size: int | None) -> dict[str, object]:
    """One size, in this (fresh) process: the stage over the day's first `photos` photos."""
    import pandas as pd

    from agebatch.inputs.captures import find_captures
    from agebatch.predict.model import load_model
    from agebatch.predict.paths import PathsUnder
    from agebatch.predict.stage import predict_paths

    settings = {"photo_kind": kind} | ({"batch_size": batch_size} if batch_size else {})
    config = PredictConfig(**settings)
    model = load_model(config.model)
    found = find_captures(folder, RunConfig.model_fields["timezone"].default)
    captures = found.table.sort_values("photo").head(photos).reset_index(drop=True)
    paths = PathsUnder(found.folder, captures["photo"].tolist())  # as pipeline.predict
    cameras = list(zip(captures["store_id"], captures["register_id"], strict=True))
    warm = 2 * config.batch_size
    predict_paths(paths[:warm], model, config, cameras=cameras[:warm], inside=found.folder)
    ready = peak_mb()
    started = time.perf_counter()
    predictions, stats = predict_paths(paths, model, config, cameras=cameras, inside=found.folder)
    seconds = time.perf_counter() - started
    captures["predicted_age"] = pd.array([p.age for p in predictions], dtype="Float64")
    captures["status"] = pd.array([str(p.status) for p in predictions], dtype="string")
    return {
        "photos": len(paths),
        "kind": kind,
        "batch_size": config.batch_size,
        "ok": stats.decoded - stats.no_face,
        "photos_per_s": round(len(paths) / seconds, 1),
        "ready_rss_mb": round(ready, 1),
        "peak_rss_mb": round(peak_mb(), 1),
    }


def main() -> int:
    """Write the day, run each size in its own process, print the peaks and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--kind", default="crops", choices=[k.value for k in PhotoKind])
    parser.add_argument("--faces", type=Path, help="labelled faces (default: drawn faces)")
    parser.add_argument("--batch-size", type=int, help="default: the config's")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = child(args.child, args.photos[0], args.kind, args.batch_size)
        print(json.dumps(figures))
        return 0
    from agebatch.benchmark import write_day

    write_kind = PhotoKind.FRAMES if args.kind == "frames" else PhotoKind.CROPS
    results = []
    with tempfile.TemporaryDirectory(prefix="agebatch-memory-") as scratch:
        day = write_day(Path(scratch), max(args.photos), write_kind, args.faces)
        for photos in args.photos:
            command = [sys.executable, "-m", "tools.stage_memory", "--child", str(day.folder)]
            command += ["--photos", str(photos), "--kind", args.kind]
            command += ["--batch-size", str(args.batch_size)] if args.batch_size else []
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    smallest, largest = results[0], results[-1]
    ratio = largest["peak_rss_mb"] / smallest["peak_rss_mb"]
    grown = largest["peak_rss_mb"] - smallest["peak_rss_mb"]
    per_photo_kb = 1024 * grown / max(1, largest["photos"] - smallest["photos"])
    summary = {
        "runs": results,
        "peak_ratio": round(ratio, 3),
        "kb_per_photo": round(per_photo_kb, 2),
    }
    print(
        f"peak {largest['photos']:,} photos / {smallest['photos']:,} photos: {ratio:.3f} "
        f"({grown:+.1f} MiB, {per_photo_kb:.2f} KiB per extra photo)"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
