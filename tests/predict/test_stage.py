"""The predict stage on frames: statuses, counts, and a frame's views averaged into one age."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agebatch.config import PredictConfig
from agebatch.predict.images import InputSpec, load_photo
from agebatch.predict.model import load_model
from agebatch.predict.stage import predict_paths
from tests.conftest import save_brightness_model
from tests.pictures import drawn_frame, scene


@pytest.fixture(scope="module")
def cropping_model(tmp_path_factory: pytest.TempPathFactory):
    """The brightness model with a card that asks for the aligned-crop framing (box resampling)."""
    path = save_brightness_model(tmp_path_factory.mktemp("cropping") / "bright.keras")
    card_file = path.with_name("bright.card.json")
    card = json.loads(card_file.read_text())
    card["face"] = {"aligned_crop": {"box": [0.025, 0.025, 0.975, 0.975], "resample": "box"}}
    card_file.write_text(json.dumps(card))
    return load_model(path)


def test_frames_statuses_counts_and_averaged_views(tmp_path: Path, cropping_model) -> None:
    face = tmp_path / "face.png"
    Image.fromarray(drawn_frame((640, 480), [(300, 240, 140)])).save(face)
    empty = tmp_path / "empty.jpg"
    Image.fromarray(scene(1280, 720, seed=1)).save(empty)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"no")
    paths = [face, empty, broken, face]
    config = PredictConfig(batch_size=3, workers=2, photo_kind="frames")
    predictions, stats = predict_paths(paths, cropping_model, config)
    assert [p.status for p in predictions] == ["ok", "no_face", "unreadable", "ok"]
    assert predictions[1].age is None and predictions[2].age is None
    assert (stats.photos, stats.decoded, stats.unreadable, stats.no_face) == (4, 3, 1, 1)
    views = load_photo(face, InputSpec.from_card(cropping_model.card, "frames")).pixels
    assert views is not None and len(views) == 3
    # The brightness model reads mean level / 2.55; the photo's age is the mean of its views'.
    per_view = views.reshape(3, -1).astype(np.float64).mean(axis=1) / 2.55
    assert len(set(np.round(per_view, 3))) == 3  # the views really differ
    assert predictions[0].age == pytest.approx(per_view.mean(), abs=0.02)
    assert predictions[3].age == pytest.approx(predictions[0].age, abs=1e-6)


def test_crops_kind_is_the_old_behaviour(tmp_path: Path, cropping_model) -> None:
    frame = tmp_path / "empty.jpg"
    Image.fromarray(scene(640, 480, seed=1)).save(frame)
    config = PredictConfig(photo_kind="crops", workers=1)
    predictions, stats = predict_paths([frame], cropping_model, config)
    assert predictions[0].status == "ok" and predictions[0].age is not None
    assert stats.no_face == 0


def test_decode_processes_give_the_same_answers(tmp_path: Path, cropping_model) -> None:
    paths = []
    for i, faces in enumerate([[(300, 240, 140)], [], [(200, 230, 150), (480, 220, 80)]]):
        path = tmp_path / f"frame{i}.png"
        picture = drawn_frame((640, 480), faces) if faces else scene(640, 480, seed=1)
        Image.fromarray(picture).save(path)
        paths.append(path)
    options = {"batch_size": 2, "workers": 2, "photo_kind": "auto"}
    threads, _ = predict_paths(paths, cropping_model, PredictConfig(**options))
    processes, _ = predict_paths(
        paths, cropping_model, PredictConfig(**options, decode_processes=True)
    )
    assert [p.status for p in threads] == ["ok", "no_face", "ok"]
    assert processes == threads  # each spawned process built its own face finder


def test_the_stage_holds_the_pixels_of_at_most_two_batches(
    tmp_path: Path, brightness_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    import weakref

    from agebatch.predict import stage

    paths = []
    for i in range(60):
        paths.append(tmp_path / f"{i:03d}.png")
        Image.new("RGB", (96, 96), (i * 4,) * 3).save(paths[-1])
    refs: list[weakref.ref] = []  # to every decoded photo's pixels
    decode = stage.load_photos

    def tracked(items, spec):
        decoded = decode(items, spec)
        refs.extend(weakref.ref(d.pixels) for d in decoded if d.pixels is not None)
        return decoded

    def alive() -> int:
        return sum(ref() is not None for ref in refs)

    seen: list[int] = []
    predict = type(brightness_model).predict

    def counting(self, images):
        seen.append(alive())  # while the model runs a batch, the next one is decoding
        return predict(self, images)

    monkeypatch.setattr(stage, "load_photos", tracked)
    monkeypatch.setattr(type(brightness_model), "predict", counting)
    config = PredictConfig(batch_size=4, workers=2, photo_kind="crops")
    ages = []
    for batch in stage.stream_predictions(paths, brightness_model, config):
        seen.append(alive())
        ages += [p.age for p in batch]
    assert ages == pytest.approx([i * 4 / 2.55 for i in range(60)], abs=0.2)  # in order
    assert len(seen) == 2 * 15  # 15 batches, counted in the model and at each yield
    assert 0 < max(seen) <= 2 * config.batch_size  # counted, and bounded
