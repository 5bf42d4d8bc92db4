"""Decode a photo only within budget and convert it honestly; give up on a slow decode.

A photo is opened by agebatch.inputs.files.open_inside (inside the day folder, a regular file,
never blocking) and decoded only when its pixel count is within the budget; otherwise it is
refused (`Refusal`, PhotoStatus.REFUSED) with the reason in words. Every colour mode JPEG and
PNG give is converted to 8-bit RGB as the picture is meant to look, or refused. `watched_map` gives
up on a decode that overruns its time budget (`watched_map`). See docs/hostile-inputs.md.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from agebatch.inputs.files import Refusal

T = TypeVar("T")
R = TypeVar("R")

# The formats the cameras write; Pillow tries no other decoder (no TIFF, no EPS via Ghostscript).
# (Pillow's JPEG opener also gives MPO, a JPEG with extra frames as phones write them.)
FORMATS = ("JPEG", "PNG")
# Transparent pixels are shown over white, as a page shows them.
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Limits:
    """What a photo may be before it is decoded: where it lies, how big, how long it may take.

    inside: the folder a photo's real path must lie in (None: anywhere, links followed);
    max_pixels: width x height at most (None: Pillow's own limit); seconds: the most a photo's
    decode may take in load_photos (None: unwatched).
    """

    inside: Path | None = None
    max_pixels: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.inside is not None:  # compared with photos' real paths
            object.__setattr__(self, "inside", Path(os.path.realpath(self.inside)))


NO_LIMITS = Limits()  # anywhere, Pillow's pixel limit, unwatched: trusted folders (training)


def check_pixels(image: Image.Image, max_pixels: int | None) -> None:
    """Refuse an image whose size (read from its header; nothing decoded yet) is over budget."""
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise Refusal(f"{width}x{height} pixels, over the budget of {max_pixels:,}")


def to_rgb(image: Image.Image) -> Image.Image:
    """The picture as 8-bit RGB, as it is meant to look; Refusal for what cannot be converted.

    16-bit levels are scaled (v / 257, rounded), not clipped; transparency (alpha, a palette's
    or a key colour) is composited over white; 1-bit, grey and palette images are expanded;
    Adobe CMYK (inverted, no colour profile) is converted as Pillow reads it. CMYK with a colour
    profile or without the Adobe marker, and modes JPEG and PNG do not give, are refused.
    """
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        levels = np.asarray(image)
        if levels.size and (levels.min() < 0 or levels.max() > 65535):
            raise Refusal(f"{mode} levels outside 0-65535")
        grey = ((levels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "CMYK":
        if "adobe" not in image.info:
            raise Refusal("CMYK without the Adobe marker (ink polarity unknown)")
        if image.info.get("icc_profile"):
            raise Refusal("CMYK with a colour profile (not converted)")
        return image.convert("RGB")
    if mode in ("LA", "PA", "RGBA") or (mode in ("L", "P", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND), rgba).convert("RGB")
    if mode == "RGB":
        return image
    if mode in ("1", "L", "P", "YCbCr"):
        return image.convert("RGB")
    raise Refusal(f"colour mode {mode} (not converted)")


class _Run:
    """Calls on a list of items, made one after another on a watched thread, and what they
    gave; `current` says which item is running since when (one tuple: read in one go)."""

    def __init__(self, call: Callable[[Any], Any], items: Sequence[Any], first: int) -> None:
        self.call, self.items = call, items
        self.current = (first, time.monotonic())
        self.results: dict[int, Any] = {}
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.given_up = False  # by the caller: the items left are not this run's any more

    def run(self) -> None:
        try:
            for index in range(self.current[0], len(self.items)):
                if self.given_up:
                    break
                self.current = (index, time.monotonic())
                self.results[index] = self.call(self.items[index])
        except BaseException as error:  # handed back to the caller
            self.error = error
        self.done.set()


class _Watched:
    """A daemon thread that makes the runs the thread that owns it hands it, and ends once its
    owner has let go of it: when the owning thread ends (a decode pool shut down at the end of a
    stage) or gives it up, whatever its thread held (a face finder, its memory) goes with it."""

    def __init__(self) -> None:
        self.runs: queue.SimpleQueue[_Run | None] = queue.SimpleQueue()
        # A daemon: a call stuck for good never keeps the interpreter from exiting. The thread
        # holds the queue, not this object, so this object can be collected and say stop.
        threading.Thread(
            target=_serve, args=(self.runs,), name="decode-watched", daemon=True
        ).start()
        weakref.finalize(self, self.runs.put, None)


def _serve(runs: queue.SimpleQueue[_Run | None]) -> None:
    """Make the runs handed over, until told to stop (None)."""
    while (run := runs.get()) is not None:
        run.run()


_owned = threading.local()


def watched_map(
    call: Callable[[T], R], items: Sequence[T], seconds: float, overrun: Callable[[T], R]
) -> list[R]:
    """[call(item) for item in items], each call on this thread's watched thread, given up once
    it has taken `seconds`: overrun(item) stands for its result, and the items after it go on.

    A call cannot be interrupted: one that overruns is left running on its thread, which is
    given up (it ends when the call returns, or with the interpreter) and replaced by a new one
    for the items left. This thread waits for the whole list and wakes only when an item's
    time may be up, so watching costs about one hand-over per list, not per item.
    """
    results: list[R] = []
    while len(results) < len(items):
        runner = getattr(_owned, "runner", None)
        if runner is None:
            runner = _owned.runner = _Watched()
        run = _Run(call, items, len(results))
        runner.runs.put(run)
        while not run.done.wait(max(0.0, run.current[1] + seconds - time.monotonic())):
            index, started = run.current
            if time.monotonic() - started >= seconds and run.current == (index, started):
                run.given_up = True  # the thread ends once the stuck call returns
                _owned.runner = None
                results += [run.results[i] for i in range(len(results), index)]
                results.append(overrun(items[index]))
                break
        else:
            if run.error is not None:
                raise run.error
            results += [run.results[i] for i in range(len(results), len(items))]
    return results
