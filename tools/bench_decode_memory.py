"""Peak memory of decoding one photo, by size and colour mode: what the pixel budget bounds.

    python tools/bench_decode_memory.py [--sides 5000,9500] [--modes RGB,RGBA,I;16]

Each photo is written as a PNG (flat noise, so it compresses like a photo), then read in a
fresh process by agebatch.predict.images.read_rgb, once with the run's default limits
(PredictConfig().max_pixels) and once with none (Pillow's own limit); the process's peak
resident memory during the read above what it held before it is printed (Linux: VmHWM after
resetting it through /proc/self/clear_refs, minus VmRSS before).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

_MEASURE = """
import sys
from pathlib import Path
from agebatch.config import PredictConfig
from agebatch.predict.images import read_rgb
from agebatch.predict.opening import Limits
from agebatch.inputs.files import Refusal
def status(field):
    text = Path("/proc/self/status").read_text()
    return int(text.split(field + ":")[1].split()[0])  # KiB
limits = Limits(max_pixels=PredictConfig().max_pixels) if sys.argv[2] == "budget" else Limits()
Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from now
before = status("VmRSS")
try:
    image = read_rgb(Path(sys.argv[1]), limits=limits)
    outcome = "decoded" if image is not None else "unreadable"
except Refusal as refusal:
    outcome = f"refused: {refusal}"
print(f"{(status('VmHWM') - before) / 1024:.0f}\t{outcome}")
"""


def _write(path: Path, side: int, mode: str) -> None:
    """A side x side PNG of the mode, made of low-contrast noise."""
    rng = np.random.default_rng(0)
    rows = []
    for start in range(0, side, 1000):  # in strips, so the writer's own memory stays small
        strip = rng.integers(100, 140, (min(1000, side - start), side), dtype=np.uint8)
        rows.append(strip)
    grey = np.concatenate(rows)
    if mode == "I;16":
        image = Image.fromarray(grey.astype(np.uint16) * 257)
    else:
        image = Image.fromarray(grey, "L").convert(mode)
    image.save(path, compress_level=1)


def main() -> None:
    """Print the peak memory of each read."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="2000,5000,9500")
    parser.add_argument("--modes", default="RGB,RGBA,I;16")
    args = parser.parse_args()
    print("side\tpixels\tmode\tlimits\tpeak_MiB\toutcome")
    with tempfile.TemporaryDirectory() as folder:
        for side in (int(s) for s in args.sides.split(",")):
            for mode in args.modes.split(","):
                path = Path(folder) / f"{side}_{mode.replace(';', '')}.png"
                _write(path, side, mode)
                for limits in ("budget", "pillow"):
                    run = subprocess.run(
                        [sys.executable, "-c", _MEASURE, str(path), limits],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    peak, outcome = run.stdout.strip().split("\t")
                    print(f"{side}\t{side * side:,}\t{mode}\t{limits}\t{peak}\t{outcome}")
                path.unlink()


if __name__ == "__main__":
    main()
