"""`auto` decided per camera: the sample, the majority rule, and a day of mixed cameras read
photo by photo as the rule says, with the face detector run only where the rule needs it."""

from __future__ import annotations

import contextvars
import functools
import os
import random
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from agebatch.config import PhotoKind, PredictConfig
from agebatch.predict import images
from agebatch.predict.cameras import SAMPLE_SPAN, UNDECIDED, Verdict, decide, readings, samples
from agebatch.predict.faces import FaceFinder, aligned_crop_chip
from agebatch.predict.images import Reading
from agebatch.predict.opening import Limits
from agebatch.predict.stage import predict_paths
from tests.pictures import drawn_frame, scene

votes = st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(cameras=st.lists(votes, min_size=1, max_size=6), size=st.integers(1, 20))
def test_a_camera_is_crops_exactly_when_most_of_its_sample_says_crop(
    cameras: list[list[bool | None]], size: int
) -> None:
    # Each camera's photos in shuffled order; photo j of camera c is named so that name order is
    # j order, and its crop vote is cameras[c][j].
    truth = {
        Path(f"/day/C{c}/{j:04d}.jpg"): vote
        for c, cast in enumerate(cameras)
        for j, vote in enumerate(cast)
    }
    paths = list(truth)
    random.Random(len(paths)).shuffle(paths)
    owners = [path.parent.name for path in paths]
    judged: list[Path] = []

    def judge(todo: list[Path]) -> list[bool | None]:
        judged.extend(todo)
        return [truth[path] for path in todo]

    verdicts = decide(paths, owners, size, judge)
    assert len(judged) == len(set(judged))  # no photo judged twice
    for c, cast in enumerate(cameras):
        # The sample: the first `size` readable photos by name, looked for among the first
        # SAMPLE_SPAN x size (unreadable ones do not vote and do not fill the sample).
        sample = [vote for vote in cast[: SAMPLE_SPAN * size] if vote is not None][:size]
        crops, frames = sample.count(True), sample.count(False)
        verdict = verdicts[f"C{c}"]
        # The decision is the majority over the whole sample, however early the votes stopped.
        assert verdict.kind == (PhotoKind.CROPS if crops > frames else PhotoKind.FRAMES)
        assert (verdict.saves == UNDECIDED) == (not sample)
        looked_at = sorted(p for p in judged if p.parent.name == f"C{c}")
        # Only the sample's photos, from the first one in name order, without gaps.
        assert looked_at == [Path(f"/day/C{c}/{j:04d}.jpg") for j in range(len(looked_at))]
        assert len(looked_at) <= min(SAMPLE_SPAN * size, len(cast))
        readable = [vote for vote in cast[: len(looked_at)] if vote is not None]
        assert len(readable) <= size
        if None not in cast[:size] and set(sample) in ({True}, {False}):
            # A uniform sample of readable photos: a majority's worth suffices.
            assert len(looked_at) == len(sample) // 2 + 1


def test_a_camera_of_unreadable_photos_is_undecided_and_read_photo_by_photo() -> None:
    # 16 broken files first by name, then loose crops: the sample goes on past the broken ones.
    cast: list[bool | float | None] = [None] * 16 + [2.5] * 20
    paths = [Path(f"/day/C/{j:04d}.jpg") for j in range(len(cast))]
    truth = dict(zip(paths, cast, strict=True))
    verdict = decide(paths, ["C"] * len(paths), 16, lambda todo: [truth[p] for p in todo])["C"]
    assert verdict.saves == "loose crops" and verdict.crops == 9
    # Nothing but broken files: undecided, read as a frame camera is, no verdict of frames.
    broken = decide(paths[:16], ["C"] * 16, 16, lambda todo: [None] * len(todo))["C"]
    assert (broken.saves, broken.reading, broken.crops, broken.frames) == (
        UNDECIDED,
        Reading.BY_PHOTO,
        0,
        0,
    )


def test_the_sample_is_the_first_photos_by_name_whatever_the_order() -> None:
    paths = [Path(f"/d/S1/R1/{name}.jpg") for name in ("T3", "T1", "T4", "T2")]
    paths += [Path("/d/S1/R2/T0.jpg")]
    cameras = [("S1", "R1")] * 4 + [("S1", "R2")]
    assert samples(paths, cameras, 2) == {("S1", "R1"): [1, 3], ("S1", "R2"): [4]}


def test_readings_follow_the_verdict_only_under_auto() -> None:
    verdicts = {"a": Verdict("a", 3, 0, 3), "b": Verdict("b", 1, 1, 3)}
    assert readings(["a", "b"], verdicts, PhotoKind.AUTO) == [Reading.BY_SIZE, Reading.BY_PHOTO]
    assert readings(["a", "b"], verdicts, PhotoKind.CROPS) == [Reading.CROP] * 2
    assert readings(["a", "b"], None, PhotoKind.AUTO) == [Reading.BY_PHOTO] * 2


# --------------------------------------------------------------------------- a day of cameras

SAMPLE = 4  # auto_sample in these tests: a first round of 3 votes settles a uniform camera
FACES = [(300, 240, 150)]  # a cartoon face the detector finds in a 640x480 frame


@functools.cache
def aligned_crop() -> np.ndarray:
    """A 96x96 aligned crop of the drawn face: its landmarks where the card's aligned crops
    have theirs (faces.aligned_crop_chip)."""
    rgb = drawn_frame((640, 480), FACES)
    face = FaceFinder().find_shopper(rgb)
    return aligned_crop_chip(Image.fromarray(rgb), face, (96, 96), resample="bilinear")


def _write(path: Path, what: str, n: int) -> None:
    """crop: an aligned crop of a drawn face (a little brighter photo by photo); face: a
    640x480 frame with a face; empty: a 640x480 frame without one; broken: not an image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if what == "crop":
        Image.fromarray(
            np.clip(aligned_crop().astype(int) + 3 * (n % 7), 0, 255).astype(np.uint8)
        ).save(path)
    elif what == "face":
        Image.fromarray(drawn_frame((640, 480), FACES)).save(path)
    elif what == "empty":
        Image.fromarray(scene(640, 480, seed=n)).save(path)
    else:
        path.write_bytes(b"not an image")


# camera -> what its photos are, in capture order
DAY = {
    ("S01", "R1"): ["crop"] * 9 + ["broken"],  # a crop camera
    ("S01", "R2"): ["face", "empty", "face", "face", "empty", "face"],  # a frame camera
    ("S02", "R1"): ["crop"] * 5 + ["face", "empty", "crop"],  # crops, then switched to frames
    ("S02", "R2"): ["face", "face", "empty", "face", "crop", "crop"],  # frames, then crops
    ("S03", "R1"): ["broken", "broken", "crop", "crop", "crop"],  # unreadable photos don't vote
}
STATUS = {"crop": "ok", "face": "ok", "empty": "no_face", "broken": "unreadable"}


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list, list[str]]:
    """The day's photos in an interleaved order (as a manifest may list them), their cameras,
    and what each photo is."""
    root = tmp_path_factory.mktemp("day")
    rows = [
        (
            root
            / store
            / register
            / f"20261124T{8 + j:02d}0000.{'png' if w != 'broken' else 'jpg'}",
            (store, register),
            w,
        )
        for (store, register), whats in DAY.items()
        for j, w in enumerate(whats)
    ]
    for n, (path, _, what) in enumerate(rows):
        _write(path, what, n)
    random.Random(0).shuffle(rows)
    paths, cameras, whats = (list(column) for column in zip(*rows, strict=True))
    return paths, cameras, whats


_photo: contextvars.ContextVar[Path | None] = contextvars.ContextVar("photo", default=None)


@pytest.fixture
def detector_calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts face detector passes per photo (decode threads: the patch reaches them)."""
    calls: Counter = Counter()
    detect = FaceFinder._detect

    def counted(self, rgb, *args, **kwargs):
        calls[_photo.get()] += 1
        return detect(self, rgb, *args, **kwargs)

    def within(function):
        def run(path, *args, **kwargs):
            token = _photo.set(path)
            try:
                return function(path, *args, **kwargs)
            finally:
                _photo.reset(token)

        return run

    monkeypatch.setattr(FaceFinder, "_detect", counted)
    monkeypatch.setattr(images, "read_photo", within(images.read_photo))
    monkeypatch.setattr(images, "crop_vote", within(images.crop_vote))
    return calls


def test_a_day_of_mixed_cameras_under_auto(day, cropping_model, detector_calls) -> None:
    paths, cameras, whats = day
    options = {"batch_size": 4, "workers": 2, "auto_sample": SAMPLE}
    crops, _ = predict_paths(paths, cropping_model, PredictConfig(**options, photo_kind="crops"))
    frames, _ = predict_paths(paths, cropping_model, PredictConfig(**options, photo_kind="frames"))
    detector_calls.clear()
    auto, stats = predict_paths(
        paths, cropping_model, PredictConfig(**options, photo_kind="auto"), cameras=cameras
    )
    assert [p.status for p in auto] == [STATUS[w] for w in whats]
    assert (stats.unreadable, stats.no_face) == (3, 4)
    for i, what in enumerate(whats):  # each photo read as what it is: crop or frame
        want = crops[i] if what == "crop" else frames[i]
        assert auto[i].status == want.status
        if want.age is not None:
            assert auto[i].age == pytest.approx(want.age, abs=1e-4), (paths[i], what)
    assert crops[whats.index("face")].age != pytest.approx(frames[whats.index("face")].age)

    # The detector looked only where the rule says (module docstring of predict.cameras):
    def calls(camera, what, sampled):
        order = sorted((p for p, c in zip(paths, cameras, strict=True) if c == camera), key=str)
        chosen = order[: SAMPLE // 2 + 1] if sampled else order[SAMPLE // 2 + 1 :]
        return [detector_calls[p] for p in chosen if whats[paths.index(p)] == what]

    # a crop camera: one pass per crop voting in the first round, none for any other crop;
    assert calls(("S01", "R1"), "crop", sampled=True) == [1, 1, 1]
    assert calls(("S01", "R1"), "crop", sampled=False) == [0] * 6
    assert calls(("S02", "R1"), "crop", sampled=False) == [0, 0, 0]
    # frames vote by their stored size, no detector; then are searched for the shopper;
    assert all(n >= 1 for n in calls(("S02", "R1"), "face", sampled=False))
    # a frame camera judges a crop by the crop test (one pass), as auto did photo by photo.
    assert calls(("S02", "R2"), "crop", sampled=False) == [1, 1]
    # unreadable photos do not vote: S03/R1's first round (broken, broken, crop) leaves it
    # open, the sample's fourth photo (a crop) votes too, and the camera reads as crops.
    s03 = sorted((p for p, c in zip(paths, cameras, strict=True) if c == ("S03", "R1")), key=str)
    assert [detector_calls[p] for p in s03] == [0, 0, 1, 1, 0]


def test_without_cameras_auto_judges_photo_by_photo(day, cropping_model, detector_calls) -> None:
    paths, _, whats = day
    config = PredictConfig(batch_size=4, workers=1, photo_kind="auto")
    auto, _ = predict_paths(paths, cropping_model, config)
    assert [p.status for p in auto] == [STATUS[w] for w in whats]
    crops_judged = [detector_calls[p] for p, w in zip(paths, whats, strict=True) if w == "crop"]
    assert crops_judged == [1] * len(crops_judged)  # every crop ran the crop test


def test_stage_takes_one_camera_per_path(cropping_model) -> None:
    with pytest.raises(ValueError, match="one camera per path"):
        predict_paths([Path("a.jpg")], cropping_model, PredictConfig(), cameras=[])


def test_a_crop_cameras_crop_is_read_exactly_as_under_crops(tmp_path: Path) -> None:
    spec = images.InputSpec(
        size=(64, 64),
        crop=(0.025, 0.025, 0.975, 0.975),
        resample="box",
        photos="auto",
        padding=0.2,
    )
    rgb = np.asarray(drawn_frame((300, 300), [(150, 160, 220)]))
    path = tmp_path / "crop.jpg"
    Image.fromarray(rgb).save(path, quality=90)  # a JPEG: the draft applies to both
    by_size = images.load_photo(path, spec, reading=Reading.BY_SIZE)
    as_crop = images.load_photo(path, spec, reading=Reading.CROP)
    np.testing.assert_array_equal(by_size.pixels, as_crop.pixels)


def test_a_loose_crop_is_aligned_on_the_photo_decoded_whole(tmp_path: Path) -> None:
    """A loose-crop camera's crop is not drafted: its landmarks are fitted on every stored pixel
    (at the reduced scale they aligned the shared faces' teenagers worse)."""
    spec = images.InputSpec((64, 64), (0.025, 0.025, 0.975, 0.975), "box", "auto", 0.2)
    rgb = np.asarray(drawn_frame((300, 300), [(150, 160, 220)]))
    path = tmp_path / "crop.jpg"
    Image.fromarray(rgb).save(path, quality=90)
    loose = images.load_photo(path, spec, reading=Reading.LOOSE)
    with Image.open(path) as stored:
        whole = stored.convert("RGB")
    expected = images.crop_input(whole, spec, FaceFinder(), whole.size, images.Framing.ALIGNED)
    assert loose.status == expected.status == "ok"
    np.testing.assert_array_equal(loose.pixels, expected.pixels)


def test_auto_per_camera_opens_photos_only_inside_the_day_folder(
    tmp_path: Path, cropping_model
) -> None:
    folder = tmp_path / "2026-11-24"
    outside = tmp_path / "outside.png"
    _write(outside, "crop", 1)  # crop-shaped: read, it would vote crop and be aged
    for n in range(3):
        _write(folder / f"20261124T08000{n}.png", "crop", n)
    (folder / "20261124T000000.png").symlink_to(outside)  # first in name order: sampled
    os.mkfifo(folder / "20261124T000001.png")  # never opened: no writer would ever come
    paths = sorted(folder.iterdir())
    limits = Limits(inside=folder)
    # The sample's votes: refused photos do not vote (the link would vote crop without limits).
    assert images.crop_votes(paths[:2], limits) == [None, None]
    assert 0 <= images.crop_vote(paths[0]) <= 1  # a crop, aligned
    config = PredictConfig(photo_kind="auto", auto_sample=4, workers=2, batch_size=2)
    cameras = [("S01", "R1")] * len(paths)
    predictions, stats = predict_paths(
        paths, cropping_model, config, cameras=cameras, inside=folder
    )
    assert [(p.status, p.reason) for p in predictions[:2]] == [
        ("refused", "a link that resolves outside the day folder"),
        ("refused", "not a regular file (a named pipe)"),
    ]
    assert [p.status for p in predictions[2:]] == ["ok"] * 3 and stats.refused == 2


def test_a_vote_over_the_time_budget_is_none_and_the_sample_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real = images.crop_vote

    def vote(path: Path, limits: Limits) -> bool | None:
        if path.name.startswith("stuck"):
            release.wait()
        return real(path, limits)

    monkeypatch.setattr(images, "crop_vote", vote)
    for name in ("a.png", "stuck.png", "b.png"):
        _write(tmp_path / name, "crop", 1)
    try:
        paths = [tmp_path / n for n in ("a.png", "stuck.png", "b.png")]
        # 2 s: a decode thread's first vote loads the detector and the landmark model.
        votes = images.crop_votes(paths, Limits(seconds=2.0))
        assert votes[1] is None and all(0 <= votes[i] <= 1 for i in (0, 2))
    finally:
        release.set()


@settings(max_examples=200, deadline=None)
@given(
    cast=st.lists(
        st.one_of(st.just(False), st.none(), st.floats(0, 3), st.just(True)),
        min_size=1,
        max_size=16,
    )
)
def test_a_crop_camera_is_loose_when_more_than_an_eighth_of_its_crops_are_misaligned(
    cast: list,
) -> None:
    paths = [Path(f"/day/C/{j:04d}.jpg") for j in range(len(cast))]
    truth = dict(zip(paths, cast, strict=True))
    verdict = decide(paths, ["C"] * len(paths), 16, lambda todo: [truth[p] for p in todo])["C"]
    votes = cast[: verdict.looked_at]
    crops = [v for v in votes if v is True or (isinstance(v, float) and v is not False)]
    misaligned = [v for v in crops if v is not True and v > 1.0]
    if all(v is None for v in votes):
        assert verdict.saves == UNDECIDED and verdict.reading == Reading.BY_PHOTO
    elif verdict.kind != PhotoKind.CROPS:
        assert verdict.saves == "frames" and verdict.reading == Reading.BY_PHOTO
    elif len(misaligned) > len(crops) / 8:
        assert verdict.saves == "loose crops" and verdict.reading == Reading.LOOSE
    else:
        assert verdict.saves == "aligned crops" and verdict.reading == Reading.BY_SIZE
    measured = sorted(v for v in crops if v is not True)
    assert verdict.misaligned == len(misaligned)
    if measured:
        assert verdict.misalignment == pytest.approx(float(np.median(measured)))
    row = verdict.row()
    assert row["camera"] == "C" and row["saves"] == verdict.saves


def test_agebatch_predict_says_how_each_folder_was_read(tmp_path: Path) -> None:
    """Under auto each folder is one camera and every row names its verdict; under crops every
    photo is read as an aligned crop; a frame's face says it was realigned, a crop's does not;
    every row names the card that aged it."""
    import pandas as pd

    from agebatch.cli import main
    from agebatch.predict.card import ModelCard
    from agebatch.predict.model import bundled_model_path

    for n in range(4):
        _write(tmp_path / "photos" / "till1" / f"{n}.png", "crop", n)
    for n in range(3):
        _write(tmp_path / "photos" / "till2" / f"{n}.png", "face", n)
    out = tmp_path / "ages.csv"
    assert main(["predict", str(tmp_path / "photos"), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    folders = table["path"].map(lambda p: Path(p).parent.name)
    assert table.groupby(folders)["read_as"].agg(set).to_dict() == {
        "till1": {"aligned crops"},
        "till2": {"frames"},
    }
    assert (table["status"] == "ok").all()
    realigned = table["adjusted"].fillna("").str.startswith("realigned")
    assert realigned.groupby(folders).agg(set).to_dict() == {"till1": {False}, "till2": {True}}
    assert set(table["model_card"]) == {ModelCard.read(bundled_model_path()).short_digest()}
    assert (
        main(["predict", str(tmp_path / "photos"), "--out", str(out), "--photo-kind", "crops"]) == 0
    )
    assert set(pd.read_csv(out)["read_as"]) == {"aligned crops"}
