"""The predict stage on frames: statuses, counts, and a frame's views averaged into one age."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agebatch.config import PredictConfig
from agebatch.predict.images import InputSpec, load_photo
from agebatch.predict.stage import predict_paths
from tests.pictures import drawn_frame, scene


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


def _chunk_sizes(
    tmp_path: Path, model, monkeypatch: pytest.MonkeyPatch, model_slower: bool
) -> tuple[list[list[int]], list[bool]]:
    """The chunks each batch of 10 batches of 4 crops was cut into, and what the stage saw
    (whether the model waited for each decoded batch), with the order of events fixed rather
    than timed: when the model is the slower, its run of batch k ends only once the stage has
    judged batch k + 1; else decoding batch k + 1 ends only once the model's run of batch k is
    done."""
    import threading

    from agebatch.predict import stage

    paths = []
    for i in range(40):
        paths.append(tmp_path / f"{i:03d}.png")
        Image.new("RGB", (32, 32), (i * 6,) * 3).save(paths[-1])
    decode, predict, adapt = stage.load_photos, type(model).predict, stage.DecodeLanes.adapt
    chunks: list[tuple[str, int]] = []  # (first photo's name, chunk length), as submitted
    runs: list = []  # the model's runs (futures), in order
    judged: list[bool] = []  # model_waited, as the stage passed it to DecodeLanes.adapt
    changed = threading.Condition()

    def decode_after_the_model(items, spec):
        chunks.append((items[0][0].name, len(items)))
        k = int(items[0][0].name[:3]) // 4
        if not model_slower and k > 0:
            with changed:
                changed.wait_for(lambda: len(runs) >= k, timeout=30)
            runs[k - 1].result(timeout=30)  # the previous batch's run is done
        return decode(items, spec)

    def model_after_the_judgement(self, images):
        k = len(judged)  # batch k runs once batch k - 1 is judged
        if model_slower and k < 9:
            with changed:
                changed.wait_for(lambda: len(judged) > k, timeout=30)
        return predict(self, images)

    def recorded_adapt(self, model_waited: bool) -> None:
        with changed:
            judged.append(model_waited)
            changed.notify_all()
        adapt(self, model_waited)

    class Recording:
        """The model's thread, recording each run's future."""

        def __init__(self, thread) -> None:
            self.thread = thread

        def submit(self, fn, *args):
            future = self.thread.submit(fn, *args)
            with changed:
                runs.append(future)
                changed.notify_all()
            return future

    thread_of = stage.thread_of
    monkeypatch.setattr(stage, "load_photos", decode_after_the_model)
    monkeypatch.setattr(type(model), "predict", model_after_the_judgement)
    monkeypatch.setattr(stage.DecodeLanes, "adapt", recorded_adapt)
    monkeypatch.setattr(stage, "thread_of", lambda m: Recording(thread_of(m)))
    config = PredictConfig(batch_size=4, workers=2, photo_kind="crops")
    predictions, _ = predict_paths(paths, model, config)
    assert [p.age for p in predictions] == pytest.approx([i * 6 / 2.55 for i in range(40)], abs=0.2)
    batches: dict[int, list[int]] = {}
    for name, length in chunks:
        batches.setdefault(int(name[:3]) // 4, []).append(length)
    return [sorted(batches[k]) for k in sorted(batches)], judged


def test_decoding_takes_one_lane_when_the_model_is_the_slower(
    tmp_path: Path, brightness_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model still running when each batch is decoded: decoding beside it on a second core
    # would only take CPU from it, so after the first batch each batch is one chunk.
    sizes, judged = _chunk_sizes(tmp_path, brightness_model, monkeypatch, model_slower=True)
    assert judged == [False] * 9
    assert sizes[0] == [1, 1, 1, 1]  # the first batch: every worker, two chunks each
    assert sizes[2:] == [[4]] * 8


def test_decoding_keeps_every_lane_when_the_model_waits_for_it(
    tmp_path: Path, brightness_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slow decoding (face finding in frames) and a quick model: both workers, all the time.
    sizes, judged = _chunk_sizes(tmp_path, brightness_model, monkeypatch, model_slower=False)
    assert judged == [True] * 9
    assert sizes == [[1, 1, 1, 1]] * 10


def test_no_thread_outlives_the_stage_but_the_models_own(tmp_path: Path, brightness_model) -> None:
    import threading

    paths = []
    for i in range(8):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (32, 32), (i * 20,) * 3).save(paths[-1])
    predict_paths(paths, brightness_model, PredictConfig(batch_size=4, workers=2))
    before = set(threading.enumerate())  # the model's own thread (stage.thread_of) among them
    for _ in range(3):
        predict_paths(paths, brightness_model, PredictConfig(batch_size=4, workers=2))
    for thread in set(threading.enumerate()) - before:  # decode threads, watched threads
        thread.join(timeout=10)
        assert not thread.is_alive(), thread.name


def test_the_model_runs_on_one_thread_stage_after_stage(
    tmp_path: Path, brightness_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    paths = [tmp_path / "a.png"]
    Image.new("RGB", (32, 32), (90,) * 3).save(paths[0])
    ran_on: list[threading.Thread] = []
    predict = type(brightness_model).predict

    def recording(self, images):
        ran_on.append(threading.current_thread())
        return predict(self, images)

    monkeypatch.setattr(type(brightness_model), "predict", recording)
    for _ in range(3):
        predict_paths(paths, brightness_model, PredictConfig(workers=1))
    assert len(ran_on) == 3 and len(set(ran_on)) == 1  # TensorFlow's state for one thread
    assert ran_on[0] is not threading.main_thread()


def test_a_crops_age_is_the_models_on_its_decoded_pixels_exactly(
    tmp_path: Path, cropping_model
) -> None:
    from agebatch.predict.images import Reading
    from agebatch.sample import drawn_face

    rng = np.random.default_rng(3)
    paths = []
    for i, age in enumerate([8.0, 23.0, 41.0, 67.0, 80.0]):
        paths.append(tmp_path / f"{i}.jpg")
        drawn_face(age, rng).save(paths[-1], quality=int(rng.integers(40, 95)))
    config = PredictConfig(batch_size=4, workers=2, photo_kind="crops")
    predictions, _ = predict_paths(paths, cropping_model, config)
    spec = InputSpec.from_card(cropping_model.card, "crops")
    decoded = [load_photo(path, spec, reading=Reading.CROP) for path in paths]
    pixels = np.concatenate([d.pixels for d in decoded])
    # The same pixels in the same batches make the same ages, bit for bit, however the stage
    # decodes and hands them over (TensorFlow's last bits may move with a batch's size).
    batches = [pixels[i : i + config.batch_size] for i in range(0, len(pixels), config.batch_size)]
    expected = [float(a) for batch in batches for a in cropping_model.predict(batch)]
    assert [p.age for p in predictions] == expected
    assert [p.status for p in predictions] == ["ok"] * len(paths)
