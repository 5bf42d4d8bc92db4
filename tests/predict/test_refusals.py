"""Refused photos: outside the day folder, not a regular file, over the pixel or time budget.

Each is counted with its reason and the run goes on; none is opened, decoded or aged.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import textwrap
import threading
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agebatch.config import PredictConfig
from agebatch.predict import images
from agebatch.predict.images import InputSpec, load_photo, load_photos
from agebatch.predict.opening import Limits, watched_map
from agebatch.predict.stage import predict_paths

CROPS = InputSpec(size=(64, 64), crop=None, resample="bilinear", photos="crops", padding=0.2)
ROOT = Path(__file__).resolve().parents[2]


def _grey(path: Path, level: int = 102, size: tuple[int, int] = (80, 80)) -> Path:
    Image.new("RGB", size, (level,) * 3).save(path)
    return path


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims width x height RGB pixels (a few bytes of data follow): its header is
    all Image.open reads."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))
    return path


@pytest.fixture
def day(tmp_path: Path) -> Path:
    folder = tmp_path / "2026-11-24"
    folder.mkdir()
    return folder


def test_refused_photos_say_why(day: Path, tmp_path: Path) -> None:
    spec = replace(CROPS, limits=Limits(inside=day))
    face = _grey(tmp_path / "face.png")  # outside the day folder
    (day / "link.png").symlink_to(face)
    os.mkfifo(day / "pipe.jpg")
    (day / "folder.jpg").mkdir()
    assert load_photo(face, spec) == images.Decoded(
        None, "refused", "a path that resolves outside the day folder"
    )
    link = load_photo(day / "link.png", spec)
    assert link.reason == "a link that resolves outside the day folder"
    assert load_photo(day / "pipe.jpg", spec).reason == "not a regular file (a named pipe)"
    assert load_photo(day / "folder.jpg", spec).reason == "not a regular file (a folder)"
    (day / "link.png").unlink()
    (day / "link.png").symlink_to(_grey(day / "inside.png"))  # a link within the day: read
    assert load_photo(day / "link.png", spec).status == "ok"


def test_a_refused_photo_is_one_log_line_whatever_its_name(
    day: Path, brightness_model, caplog: pytest.LogCaptureFixture
) -> None:
    from agebatch.config import PredictConfig
    from agebatch.predict.stage import predict_paths

    # A name that would forge a log line of its own after its newline.
    forged = day / "x\n01:29:06 INFO agebatch.predict.stage: all photos fine.jpg"
    os.mkfifo(forged)
    config = PredictConfig(photo_kind="crops")
    with caplog.at_level(logging.WARNING, logger="agebatch.predict.stage"):
        predictions, _ = predict_paths([forged], brightness_model, config, inside=day)
    assert predictions[0].status == "refused"
    [said] = [r.getMessage() for r in caplog.records if r.name == "agebatch.predict.stage"]
    assert "\n" not in said and "x\\n01:29:06 INFO" in said


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_pixel_budget_is_checked_on_the_header_before_decoding(day: Path) -> None:
    spec = replace(CROPS, limits=Limits(max_pixels=100 * 100))
    assert load_photo(_grey(day / "edge.png", size=(100, 100)), spec).status == "ok"
    over = load_photo(_grey(day / "over.png", size=(101, 100)), spec)
    assert (over.status, over.reason) == ("refused", "101x100 pixels, over the budget of 10,000")
    # The demo day's 9,500 x 9,500 PNG: over Pillow's limit but under twice it, so Pillow alone
    # would only warn and decode it whole. Only its header is read here (its data is a stub).
    big = load_photo(_png_header(day / "big.png", 9_500, 9_500), replace(CROPS, limits=Limits()))
    assert big.status == "unreadable"  # Pillow decoded it (and found the stub data short)
    default = PredictConfig().max_pixels
    big = load_photo(day / "big.png", replace(CROPS, limits=Limits(max_pixels=default)))
    assert big.status == "refused"
    assert big.reason == f"9500x9500 pixels, over the budget of {default:,}"
    huge = load_photo(_png_header(day / "huge.png", 14_000, 14_000), CROPS)  # over twice
    assert huge.status == "refused" and huge.reason.startswith("over Pillow's pixel limit")


def test_the_budget_counts_the_pixels_a_reduced_jpeg_decode_gives(day: Path) -> None:
    Image.new("RGB", (1600, 1200), (102, 102, 102)).save(day / "big.jpg")
    budget = Limits(max_pixels=200_000)
    # A crop is decoded at 1/8 scale (200 x 150): within budget. A frame is decoded whole.
    assert load_photo(day / "big.jpg", replace(CROPS, limits=budget)).status == "ok"
    frame = load_photo(day / "big.jpg", replace(CROPS, photos="frames", limits=budget))
    assert frame.status == "refused"
    assert frame.reason == "1600x1200 pixels, over the budget of 200,000"


def test_only_jpeg_and_png_are_decoded_whatever_the_name(day: Path) -> None:
    # Pillow would read these (and EPS through Ghostscript); the cameras write JPEG and PNG.
    for name, kind in [("bmp.jpg", "BMP"), ("gif.png", "GIF"), ("tiff.jpg", "TIFF")]:
        Image.new("RGB", (80, 80), (102, 102, 102)).save(day / name, kind)
        assert load_photo(day / name, CROPS).status == "unreadable", name
    Image.new("RGB", (80, 80), (102, 102, 102)).save(day / "jpeg.png", "JPEG")
    assert load_photo(day / "jpeg.png", CROPS).status == "ok"  # the content decides, not the name


@pytest.fixture
def stuck(monkeypatch: pytest.MonkeyPatch):
    """read_photo (load_photos' read of each photo) that never returns for photos named
    stuck*, until the test ends."""
    release = threading.Event()
    real = images.read_photo

    def load(
        path: Path, spec: InputSpec, region=(0.0, 0.0, 1.0, 1.0), reading=None
    ) -> images.Decoded | images.Unmeasured:
        if path.name.startswith("stuck"):
            release.wait()
        return real(path, spec, region, reading)

    monkeypatch.setattr(images, "read_photo", load)
    yield
    release.set()


def test_a_decode_over_the_time_budget_is_refused_and_the_run_goes_on(
    day: Path, brightness_model, stuck, caplog: pytest.LogCaptureFixture
) -> None:
    paths = [_grey(day / "a.png"), _grey(day / "stuck.png"), _grey(day / "b.png", 153)]
    config = PredictConfig(photo_kind="crops", workers=1, batch_size=2, decode_timeout_s=0.5)
    done: list = []
    thread = threading.Thread(
        target=lambda: done.append(predict_paths(paths, brightness_model, config, inside=day)),
        daemon=True,
    )
    with caplog.at_level(logging.WARNING, logger="agebatch.predict.stage"):
        thread.start()
        thread.join(timeout=60)
    assert done, "the stage waited for a decode that never ends"
    predictions, stats = done[0]
    assert [p.status for p in predictions] == ["ok", "refused", "ok"]
    assert predictions[1].reason == "decoding took over 0.5 s (given up)"
    assert predictions[0].age == pytest.approx(40.0, abs=0.2)
    assert predictions[2].age == pytest.approx(60.0, abs=0.2)
    assert (stats.photos, stats.decoded, stats.refused, stats.unreadable) == (3, 2, 1, 0)
    assert f"Refused photo {day / 'stuck.png'}: decoding took over 0.5 s" in caplog.text


def test_a_decode_stuck_for_good_does_not_keep_the_interpreter_from_exiting(day: Path) -> None:
    _grey(day / "stuck.png")
    _grey(day / "fine.png")
    script = textwrap.dedent(
        f"""
        import threading
        from pathlib import Path
        from agebatch.predict import images
        from agebatch.predict.opening import Limits

        real = images.read_photo
        def load(path, spec, region):
            if path.name == "stuck.png":
                threading.Event().wait()  # never returns
            return real(path, spec, region)
        images.read_photo = load
        spec = images.InputSpec((64, 64), None, "bilinear", "crops", 0.2, Limits(seconds=0.5))
        day = Path({str(day)!r})
        found = images.load_photos([(day / "stuck.png", None), (day / "fine.png", None)], spec)
        print([d.status.value for d in found])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['refused', 'ok']"


@pytest.mark.parametrize("processes", [False, True])
def test_the_time_budget_holds_in_decode_processes_too(
    day: Path, brightness_model, processes: bool
) -> None:
    # A real decode (a 2,000 x 2,000 PNG and a face search) takes far longer than 1 ms; no
    # monkeypatching, so it also runs in spawned decode processes.
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), np.uint8)).save(
        day / "slow.png", compress_level=1
    )
    paths = [day / "slow.png"] * 4
    options = {"photo_kind": "frames", "workers": 2, "batch_size": 2, "decode_processes": processes}
    strict = PredictConfig(**options, decode_timeout_s=0.001)
    predictions, stats = predict_paths(paths, brightness_model, strict, inside=day)
    assert {p.reason for p in predictions} == {"decoding took over 0.001 s (given up)"}
    assert stats.refused == 4
    relaxed, _ = predict_paths(paths, brightness_model, PredictConfig(**options), inside=day)
    assert {p.status for p in relaxed} == {"no_face"}  # read in full within 30 s


def test_a_named_pipe_among_photos_ends_in_seconds_counted(
    day: Path, brightness_model, caplog: pytest.LogCaptureFixture
) -> None:
    os.mkfifo(day / "pipe.jpg")
    paths = [_grey(day / "a.png"), day / "pipe.jpg", _grey(day / "b.png")]
    config = PredictConfig(photo_kind="auto", workers=2, batch_size=2)
    done: list = []
    thread = threading.Thread(
        target=lambda: done.append(predict_paths(paths, brightness_model, config, inside=day)),
        daemon=True,
    )
    with caplog.at_level(logging.WARNING, logger="agebatch.predict.stage"):
        thread.start()
        thread.join(timeout=60)
    assert done, "the stage hung on a named pipe"
    predictions, stats = done[0]
    assert [p.status for p in predictions] == ["ok", "refused", "ok"]
    assert stats.refused == 1 and stats.decoded == 2
    # Refused at once (not a regular file), not after the 30 s time budget.
    assert predictions[1].reason == "not a regular file (a named pipe)"
    assert "pipe.jpg: not a regular file (a named pipe)" in caplog.text


def test_load_photos_without_a_time_budget_is_load_photo(day: Path) -> None:
    items = [(_grey(day / "a.png"), (0.0, 0.0, 1.0, 1.0)), (day / "none.png", (0.0, 0.0, 1.0, 1.0))]
    watched = load_photos(items, replace(CROPS, limits=Limits(seconds=5)))
    plain = load_photos(items, CROPS)
    assert [d.status for d in watched] == [d.status for d in plain] == ["ok", "unreadable"]
    assert np.array_equal(watched[0].pixels, plain[0].pixels)


def test_a_given_up_run_leaves_the_rest_of_its_chunk_to_the_new_thread() -> None:
    release, calls, threads = threading.Event(), [], {}

    def call(item: int) -> int:
        calls.append(item)
        if item == 1:
            threads[item] = threading.current_thread()
            release.wait()
        return item * 10

    assert watched_map(call, [0, 1, 2, 3], 0.2, lambda item: -item) == [0, -1, 20, 30]
    release.set()
    threads[1].join(timeout=10)
    assert not threads[1].is_alive()  # its call returned and the thread ended
    assert sorted(calls) == [0, 1, 2, 3]  # items 2 and 3 were read once, by the new thread


def test_the_watched_thread_ends_with_the_thread_that_owns_it() -> None:
    # A decode pool's threads end with each stage; their watched threads must end too (they
    # hold a face finder and their memory: left running, a process running shard after shard
    # or day after day grew by tens of MiB a stage).
    served: list[threading.Thread] = []

    def call(item: int) -> int:
        served.append(threading.current_thread())
        return item

    def owner() -> None:
        assert watched_map(call, [1, 2, 3], 5, lambda item: -item) == [1, 2, 3]

    for _ in range(3):
        thread = threading.Thread(target=owner)
        thread.start()
        thread.join()
    assert len(set(served)) == 3  # one watched thread per owner
    for watched in set(served):
        watched.join(timeout=10)
        assert not watched.is_alive()
