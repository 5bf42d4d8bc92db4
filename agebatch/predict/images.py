"""Read a photo into the model's input: decode, respect EXIF orientation, find the face, crop,
resize."""

from __future__ import annotations

import functools
import io
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFile, ImageOps

from agebatch.config import WHOLE_FRAME, PhotoKind, Region
from agebatch.inputs.files import Refusal, open_inside, read_inside
from agebatch.predict import jpeg
from agebatch.predict.faces import (
    ALIGNED_CROP_LANDMARKS,
    FRAME_ZOOMS,
    Face,
    FaceFinder,
    aligned_crop_chips,
    alignment,
    assumed_face,
    crop_face,
    crop_shaped,
    face_chip,
    is_face_crop,
    loose_crop_face,
)
from agebatch.predict.jpeg import decode_plain
from agebatch.predict.opening import (
    FORMATS,
    NO_LIMITS,
    Limits,
    check_pixels,
    to_rgb,
    watched_map,
)
from agebatch.predict.quality import (
    FACE_OF_CROP,
    Quality,
    assess,
    chip_parts,
    chips_parts,
    landmark_parts,
)
from agebatch.schema import PhotoStatus

if TYPE_CHECKING:
    from PIL._imaging import ImagingCore

    from agebatch.predict.card import ModelCard

log = logging.getLogger(__name__)

# How a photo becomes the model's pixels; bumped when a change to reading moves ages, so ages
# staged by an earlier version (agebatch.shards) are not reused. 2: crops' JPEGs decoded at the
# reduced scale where the crop box still spans the model's input (was twice the input).
# 3: crops under auto checked for alignment by their landmarks; quality. 4: a framing that
# reaches past the photo is filled with the photo's edge pixels, not black; a crop smaller than
# the model's input is enlarged bilinear (ENLARGE).
DECODE_VERSION = 4
# How a crop box smaller than the model's input is enlarged to it: smoothly, as a far face scaled
# back up (the card's resampling shrinks; `box` enlarging copies pixels into blocks, which read
# older and are not sharpened). 600 shared faces saved as small JPEGs, MAE against clean 5.79,
# box -> bilinear: 64 px 6.20 -> 5.95, 48 px 6.07 -> 5.99, 32 px 6.79 -> 6.37, 24 px 8.12 -> 6.57
# (bicubic: 6.04, 6.01, 6.45, 6.56; docs/model.md, Beyond the table).
ENLARGE = "bilinear"
# What may be done to a face's pixels before the model (Decoded.adjusted), in this order.
ADJUSTMENTS = REALIGNED, BRIGHTENED, SHARPENED = ("realigned", "brightened", "sharpened")
# Pillow raises these for files that are not images, truncated or corrupt.
_UNREADABLE = (OSError, ValueError, SyntaxError)
# Pillow's own limit (its error over twice MAX_IMAGE_PIXELS, its warning when warnings are errors).
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def read_rgb(
    path: Path, max_side: int | None = None, limits: Limits = NO_LIMITS
) -> Image.Image | None:
    """Decode an image upright (EXIF orientation applied) as RGB; None when unreadable.

    With max_side, JPEGs are decoded at a reduced scale that stays above it (much faster).
    Raises Refusal for a file `limits` refuse (files.open_inside, opening.check_pixels) and for a
    colour mode that cannot be converted honestly (opening.to_rgb).
    """
    read = read_sized(path, max_side, limits=limits)
    return None if read is None else read[0]


def read_sized(
    path: Path,
    max_side: int | None = None,
    draft_if: Callable[[int, int], bool] | None = None,
    limits: Limits = NO_LIMITS,
) -> tuple[Image.Image, tuple[int, int]] | None:
    """read_rgb, plus the stored image's (width, height) from its header; None when unreadable,
    Refusal as read_rgb.

    draft_if: reduce the JPEG scale (max_side) only when draft_if(width, height) of the stored
    image is true, e.g. only for photos that pass the crop size test.

    A plain upright JPEG is decoded by libjpeg-turbo directly (jpeg.decode_plain: the same
    pixels, about half the CPU time of Pillow's decode of a face crop); every other file by
    Pillow.
    """
    try:
        data = read_inside(path, limits.inside, jpeg.MAX_BYTES + 1)  # a longer one: Pillow's
        plain = decode_plain(data, max_side, limits.max_pixels, draft_if)
        if plain is not None:  # the pixels Pillow gives, without its parsing (jpeg.py)
            return rgb_image(plain[0]), plain[1]
        # Pillow reads the bytes already read; past the bound, the file itself, opened again
        source = io.BytesIO(data) if len(data) <= jpeg.MAX_BYTES else None
        del data
        with source if source is not None else open_inside(path, limits.inside) as file:
            # Not closed by a `with` of its own: closing would drop the pixels, and an RGB photo
            # is returned as it was decoded, without a copy (the budget bounds the memory).
            image = Image.open(file, formats=FORMATS)
            stored = image.size
            wanted = draft_if is None or draft_if(*stored)
            if max_side is not None and image.format in ("JPEG", "MPO") and wanted:
                image.draft("RGB", (max_side, max_side))
            check_pixels(image, limits.max_pixels)  # the size to decode, from the header
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # no copy when already upright
            return to_rgb(image), stored
    except _BOMB as error:
        raise Refusal(f"over Pillow's pixel limit ({error})") from None
    except _UNREADABLE as error:
        log.debug("Unreadable photo %s: %s", path, error)
        return None


def to_model_input(
    image: Image.Image,
    size: tuple[int, int],
    crop: tuple[float, float, float, float] | None = None,
    resample: str = "bilinear",
) -> np.ndarray:
    """Resize the crop box (fractions of the image) to (width, height); uint8 HWC RGB.

    `resample` shrinks; a box smaller than `size` on either side is enlarged with ENLARGE.
    """
    w, h = image.size
    box = (0, 0, w, h) if crop is None else (crop[0] * w, crop[1] * h, crop[2] * w, crop[3] * h)
    enlarged = box[2] - box[0] < size[0] or box[3] - box[1] < size[1]
    method = Image.Resampling[(ENLARGE if enlarged else resample).upper()]
    if image.mode != "RGB" or h > 100 * w or (size == image.size and box == (0, 0, w, h)):
        # Pillow's own way round for these (a very tall image: two passes; same size: a copy)
        resized = image.resize(size, method, box=box)
        if resized.mode != "RGB":
            return np.asarray(resized, dtype=np.uint8)
        return np.frombuffer(resized.tobytes(), np.uint8).reshape(size[1], size[0], 3)
    # What image.resize(...).tobytes() runs, without their Python: Pillow's C resize and raw
    # RGB packing called directly (5 us of a 64 px chip's 48 us, measured). Pillow's own
    # resize, asarray and fromarray give the same pixels (tests/predict/test_images.py).
    image.load()
    return _rgb_array(image.im.resize(size, method, box), size)


def _rgb_array(core: ImagingCore, size: tuple[int, int]) -> np.ndarray:
    """An RGB Pillow core image's pixels, (height, width, 3) uint8 read-only (Image.tobytes)."""
    encoder = Image.core.raw_encoder("RGB", "RGB")
    encoder.setimage(core, (0, 0, *size))
    # Image.tobytes' buffer size; the raw encoder fills it and says when it is done.
    block = max(ImageFile.MAXBLOCK, size[0] * 4)
    chunks = []
    while True:
        _, done, data = encoder.encode(block)
        chunks.append(data)
        if done:
            break
    if done < 0:
        raise RuntimeError(f"encoder error {done} packing the model's input")
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return np.frombuffer(data, np.uint8).reshape(size[1], size[0], 3)


def rgb_image(pixels: np.ndarray) -> Image.Image:
    """Image.fromarray of (height, width, 3) uint8 RGB pixels, without first filling the new
    image with black (it is written over whole), and with Pillow's raw RGB unpacking called
    directly (Image.frombytes' own Python costs 2 us of the 7, measured)."""
    height, width = pixels.shape[:2]
    image = Image.new("RGB", (width, height), None)
    if width and height:
        decoder = Image.core.raw_decoder("RGB", "RGB")
        decoder.setimage(image.im, (0, 0, width, height))
        left, error = decoder.decode(np.ascontiguousarray(pixels, dtype=np.uint8))
        if left >= 0 or error != 0:  # as Image.frombytes checks
            raise ValueError("not enough image data")
    return image


def draft_side(size: tuple[int, int], crop: tuple[float, float, float, float] | None = None) -> int:
    """The least side a crop's JPEG is decoded at: where the crop box still spans the model's
    input, so the resize only shrinks (a 200 px crop for a 64 px model is decoded at 100 px).

    libjpeg's reduced-scale decode is itself an area-averaging shrink; on all 7,591 shared faces
    it left the MAE and the Challenge-25 rates where they were (docs/throughput.md, Decode).
    """
    width, height = (1.0, 1.0) if crop is None else (crop[2] - crop[0], crop[3] - crop[1])
    return math.ceil(max(size[0] / width, size[1] / height))


def load_face(
    path: Path,
    size: tuple[int, int],
    crop: tuple[float, float, float, float] | None = None,
    resample: str = "bilinear",
) -> np.ndarray | None:
    """A photo that already is a face crop, ready for the model; None when unreadable or
    refused (training and benchmarks read trusted folders)."""
    try:
        image = read_rgb(path, max_side=draft_side(size, crop))
    except Refusal as refusal:
        log.debug("Refused photo %s: %s", path, refusal)
        return None
    return None if image is None else to_model_input(image, size, crop, resample)


def load_faces(
    paths: list[Path],
    size: tuple[int, int],
    crop: tuple[float, float, float, float] | None,
    resample: str = "bilinear",
) -> list[np.ndarray | None]:
    """load_face for a chunk of paths (one call per worker process keeps IPC small)."""
    return [load_face(path, size, crop, resample) for path in paths]


@dataclass(frozen=True)
class InputSpec:
    """How a photo becomes the model's input: what the photos are and the model card's chip."""

    size: tuple[int, int]  # (width, height) of the model's input
    crop: tuple[float, float, float, float] | None  # aligned-crop box, fractions; None: whole
    resample: str  # PIL resampling that shrinks the crop to size
    photos: PhotoKind
    padding: float  # dlib chip padding, for cards without an aligned-crop box
    limits: Limits = NO_LIMITS  # where a photo may lie, its pixel and time budgets
    floors: tuple[tuple[str, float], ...] = ()  # quality floors (card's `quality`); (): none
    light: tuple[float, float] | None = None  # (below, target): see brightened
    detail: tuple[float, float, int] | None = None  # (below, radius, percent): see sharpened

    def __post_init__(self) -> None:
        object.__setattr__(self, "photos", PhotoKind(self.photos))

    @functools.cached_property
    def crop_side(self) -> int:
        """draft_side of the card's crop: the side a crop's JPEG is decoded at (built once)."""
        return draft_side(self.size, self.crop)

    @functools.cached_property
    def floor_of(self) -> dict[str, float]:
        """The quality floors by part (built once, not once per photo; never changed)."""
        return dict(self.floors)

    @classmethod
    def from_card(
        cls, card: ModelCard, photos: PhotoKind | str, limits: Limits = NO_LIMITS
    ) -> InputSpec:
        """The spec a model card asks for, for photos of the given kind."""
        floors = tuple(sorted(card.quality.floors.items())) if card.quality else ()
        light = card.quality.light if card.quality else None
        detail = card.quality.detail if card.quality else None
        return cls(
            card.size,
            card.crop,
            card.resample,
            PhotoKind(photos),
            card.face.padding,
            limits,
            floors,
            (light.below, light.target) if light else None,
            (detail.below, detail.radius, detail.percent) if detail else None,
        )


@dataclass(frozen=True)
class Decoded:
    """One photo read for the model: its pixels, or None with the reason.

    pixels: (views, height, width, 3) uint8, one view for a crop, several framings of a frame's
    face (faces.FRAME_ZOOMS); the model's ages of a photo's views are averaged.
    """

    pixels: np.ndarray | None
    status: PhotoStatus
    reason: str = ""  # why a photo was refused (or is low_quality), in words
    quality: Quality | None = None  # measured for photos whose face was cut
    # what was done to the face's pixels before the model, in ADJUSTMENTS order: REALIGNED
    # (aligned by its landmarks: a loose crop's or a frame's face; its age is put on the aligned
    # crops' scale with the card's face.realigned offset, stage._predictions), BRIGHTENED
    # (quality.light), SHARPENED (quality.detail)
    adjusted: tuple[str, ...] = ()

    @property
    def realigned(self) -> bool:
        """Whether the face was aligned by its landmarks (its age takes the realigned offset)."""
        return REALIGNED in self.adjusted


_local = threading.local()


def worker_finder() -> FaceFinder:
    """This thread's face finder (a finder is not thread-safe: one per decode worker)."""
    finder = getattr(_local, "finder", None)
    if finder is None:  # models load on its first use, not here
        finder = _local.finder = FaceFinder()
    return finder


class Reading(StrEnum):
    """How one photo is read. `crops` and `frames` read every photo one way; `auto` reads the
    photos of a crop camera BY_SIZE and all others BY_PHOTO (see agebatch.predict.cameras)."""

    CROP = "crop"  # resized as an aligned face crop, no detector, no alignment check
    FRAME = "frame"  # the shopper's face is found in it
    # an aligned-crop camera's photo: a crop when its stored size passes faces.crop_shaped
    # (aged as-is: the camera's sample confirmed its alignment), else a frame
    BY_SIZE = "by_size"
    # a loose-crop camera's photo: a crop-shaped one has its face found and aligned by its
    # landmarks (crop_input, Framing.ALIGNED), any other is a frame
    LOOSE = "loose"
    # faces.is_face_crop: the size test, then the detector's crop test; a crop is aged as-is
    # only when its own landmarks confirm the card's alignment (Framing.CHECKED)
    BY_PHOTO = "by_photo"

    @classmethod
    def of(cls, kind: PhotoKind | str) -> Reading:
        """How a photo is read when nothing is known of its camera."""
        kind = PhotoKind(kind)
        if kind == PhotoKind.CROPS:
            return cls.CROP
        return cls.FRAME if kind == PhotoKind.FRAMES else cls.BY_PHOTO


def load_photo(
    path: Path, spec: InputSpec, region: Region = WHOLE_FRAME, reading: Reading | None = None
) -> Decoded:
    """Read one photo as the spec (or `reading`) says: a crop is resized, a frame's shopper face
    is cut out. A frame without a face in `region` is status no_face.

    BY_SIZE decides from the file's header before decoding: a crop-shaped photo is decoded and
    resized exactly as under CROP (JPEG draft included); any other photo is read as a frame.
    """
    return judged_all([read_photo(path, spec, region, reading)], spec)[0]


@dataclass(frozen=True, slots=True)
class Unmeasured:
    """A crop read as-is whose chip is still to be measured (quality.chips_parts) with the other
    crops of its chunk, then judged: its one view, and the parts already known (face_px)."""

    view: np.ndarray  # (height, width, 3) uint8, the model's input
    known: tuple[tuple[str, float], ...] = ()


def read_photo(
    path: Path, spec: InputSpec, region: Region = WHOLE_FRAME, reading: Reading | None = None
) -> Decoded | Unmeasured:
    """load_photo, but a crop read as-is (CROP, or BY_SIZE's crop-shaped photo) is given back
    Unmeasured: its quality is measured with its chunk's (judged_all)."""
    reading = Reading.of(spec.photos) if reading is None else Reading(reading)
    stored = None
    try:
        if reading in (Reading.BY_SIZE, Reading.LOOSE):
            # A loose crop is decoded whole: its landmarks, fitted on the reduced-scale decode,
            # aligned its face less well (all 256 teenagers of the shared faces as loose crops:
            # teen miss at 25 22.3% reduced, 20.7% whole, 19.1% as aligned crops; MAE 6.82 vs
            # 6.73 on them and 600 adults).
            side = spec.crop_side if reading == Reading.BY_SIZE else None
            read = read_sized(path, side, crop_shaped, spec.limits)
            image, stored = (None, None) if read is None else read
            crop = image is not None and crop_shaped(*stored)
        else:
            crop = reading == Reading.CROP
            image = read_rgb(path, spec.crop_side if crop else None, spec.limits)
    except Refusal as refusal:
        return Decoded(None, PhotoStatus.REFUSED, str(refusal))
    if image is None:
        return Decoded(None, PhotoStatus.UNREADABLE)
    try:
        if reading == Reading.CROP:
            return Unmeasured(to_model_input(image, spec.size, spec.crop, spec.resample))
        if crop and reading == Reading.BY_SIZE:
            return trusted_crop(image, spec, stored)
        if crop:
            return crop_input(image, spec, worker_finder(), stored, Framing.ALIGNED)
        return face_input(
            image, spec, region, worker_finder(), Reading.FRAME if stored else reading
        )
    except ValueError as error:  # e.g. a 1-pixel image: decoded, but nothing to look at
        log.debug("Photo %s cannot be searched for a face: %s", path, error)
        return Decoded(None, PhotoStatus.UNREADABLE)


def judged_all(read: Sequence[Decoded | Unmeasured], spec: InputSpec) -> list[Decoded]:
    """A chunk's photos as read_photo gave them, each Unmeasured crop measured and judged: their
    chips are measured together (quality.chips_parts: each chip's parts are those it has alone,
    bit for bit)."""
    unmeasured = [(i, r) for i, r in enumerate(read) if isinstance(r, Unmeasured)]
    done = list(read)
    measured = chips_parts([item.view for _, item in unmeasured])
    for (i, item), parts in zip(unmeasured, measured, strict=True):
        parts.update(item.known)
        done[i] = judged(item.view[None], spec, parts)
    return done  # type: ignore[return-value]


def judged(
    views: np.ndarray, spec: InputSpec, parts: dict[str, float], realigned: bool = False
) -> Decoded:
    """A photo's views with their quality: status ok, or low_quality (no pixels) when a part
    is under the card's floor; realigned: the views were aligned by the face's landmarks."""
    quality = assess(parts, spec.floor_of)
    if not quality.passed:
        reason = f"{quality.part} under the card's floor"
        return Decoded(None, PhotoStatus.LOW_QUALITY, reason, quality)
    adjusted = (REALIGNED,) if realigned else ()
    if spec.light is not None and parts["exposure"] < spec.light[0]:
        views = brightened(views, parts["exposure"], spec.light[1])
        adjusted += (BRIGHTENED,)
    if spec.detail is not None and parts.get("detail", math.inf) < spec.detail[0]:
        views = sharpened(views, spec.detail[1], spec.detail[2])
        adjusted += (SHARPENED,)
    return Decoded(views, PhotoStatus.OK, quality=quality, adjusted=adjusted)


def sharpened(views: np.ndarray, radius: float, percent: int) -> np.ndarray:
    """A soft face's views through an unsharp mask (the card's `quality.detail`: only for faces
    whose `detail` part is under its `below`). Measured on the shared faces saved 32 px wide
    and scaled back up, it gives back most of the fine detail the model reads age from (their
    older faces were aged 10-18 years too young); docs/model.md, Detail."""
    # Image.fromarray(view).filter(ImageFilter.UnsharpMask(radius, percent, 0)) as an array,
    # through the same C filter without Pillow's Python around it (9 of a 64 px view's 149 us,
    # measured; tests/predict/test_quality.py compares it with the filter, bit for bit).
    size = (views.shape[2], views.shape[1])
    return np.stack(
        [_rgb_array(rgb_image(view).im.unsharp_mask(radius, percent, 0), size) for view in views]
    )


def brightened(views: np.ndarray, exposure: float, target: float) -> np.ndarray:
    """A dim face's views with one gain, target / exposure, so the face's centre has the mean
    grey level `target` (the card's `quality.light`: only for faces darker than its `below`)."""
    gain = target / max(exposure, 1.0)
    return np.clip(np.rint(views.astype(np.float32) * gain), 0, 255).astype(np.uint8)


def _face_parts(face: Face, zoom_pixels: np.ndarray, factor: float) -> dict[str, float]:
    """The quality parts of a face cut from a photo decoded at 1/factor of its stored size."""
    parts: dict[str, float] = chip_parts(zoom_pixels)
    if face.landmarks is not None:
        parts.update(landmark_parts(face.landmarks, ALIGNED_CROP_LANDMARKS))
        parts["face_px"] *= factor
    if face.score > 0:
        parts["detector"] = face.score
    return parts


class Framing(StrEnum):
    """How a crop's framing is taken (crop_input)."""

    CHECKED = "checked"  # aged as-is only when its own landmarks confirm the alignment
    ALIGNED = "aligned"  # a loose-crop camera's crop: its face found and aligned


def trusted_crop(
    image: Image.Image, spec: InputSpec, stored: tuple[int, int] | None = None
) -> Unmeasured:
    """An aligned-crop camera's crop, aged as-is (its camera's sample was checked; its pixels
    are not looked at again), its quality to be measured: cut as the card's aligned crop, its
    face_px the width an aligned crop's face spans in the stored photo."""
    factor = (stored[0] / image.width) if stored else 1.0
    pixels = to_model_input(image, spec.size, spec.crop, spec.resample)
    return Unmeasured(pixels, (("face_px", image.width * factor * FACE_OF_CROP),))


def crop_input(
    image: Image.Image,
    spec: InputSpec,
    finder: FaceFinder,
    stored: tuple[int, int] | None = None,
    framing: Framing = Framing.CHECKED,
) -> Decoded:
    """The model input of a photo that is a crop (read under auto).

    CHECKED: cut as the card's aligned crop only when its landmarks (fitted in the assumed face
    box, no detector) confirm the card's alignment (faces.alignment). Otherwise, and always for
    ALIGNED, its face is found and aligned by its landmarks, as a frame's face is (an
    aligned-crop camera's crop is trusted_crop's). stored: the stored photo's size (the image
    may be decoded at a reduced scale).
    """
    w, h = image.size
    factor = (stored[0] / w) if stored else 1.0
    rgb = np.asarray(image)
    if framing == Framing.CHECKED:
        face = assumed_face(rgb, finder)
        found = None if alignment(face, w, h).aligned else loose_crop_face(rgb, finder, False)
        if found is None:  # aligned, or no face detected to align by
            pixels = to_model_input(image, spec.size, spec.crop, spec.resample)
            return judged(pixels[None], spec, _face_parts(face, pixels, factor))
    face = found if framing == Framing.CHECKED else loose_crop_face(rgb, finder)
    if face is None:
        return Decoded(None, PhotoStatus.NO_FACE)
    box = spec.crop or (0.0, 0.0, 1.0, 1.0)
    views = aligned_crop_chips(image, face, spec.size, box, spec.resample, FRAME_ZOOMS)
    return judged(views, spec, _face_parts(face, views[len(views) // 2], factor), realigned=True)


def face_input(
    image: Image.Image,
    spec: InputSpec,
    region: Region,
    finder: FaceFinder,
    reading: Reading | None = None,
) -> Decoded:
    """The model input of an upright RGB photo read as a frame or BY_PHOTO (spec.photos auto or
    frames when reading is None)."""
    reading = Reading.of(spec.photos) if reading is None else reading
    rgb = np.asarray(image)
    if reading == Reading.BY_PHOTO and is_face_crop(rgb, finder):
        return crop_input(image, spec, finder)
    face = finder.find_shopper(rgb, region, image)
    if face is None:
        return Decoded(None, PhotoStatus.NO_FACE)
    if spec.crop is not None:
        views = aligned_crop_chips(image, face, spec.size, spec.crop, spec.resample, FRAME_ZOOMS)
        parts = _face_parts(face, views[len(views) // 2], 1.0)
        return judged(views, spec, parts, realigned=True)
    if spec.size[0] == spec.size[1]:
        pixels = face_chip(rgb, face, spec.size[0], spec.padding)
    else:
        pixels = to_model_input(Image.fromarray(face_chip(rgb, face, max(spec.size))), spec.size)
    return judged(pixels[None], spec, _face_parts(face, pixels, 1.0))


PhotoItem = tuple[Path, Region] | tuple[Path, Region, Reading]


def load_photos(items: Sequence[PhotoItem], spec: InputSpec) -> list[Decoded]:
    """load_photo for a chunk of (path, region[, reading]) items: one call per worker keeps IPC
    small.

    With a time budget (spec.limits.seconds), a photo still being read when it is spent is
    refused and the chunk goes on (opening.watched_map: the stuck read is left behind, not
    stopped). The quality of the chunk's crops read as-is is measured after their reads, all
    together (judged_all: 30 us a 64 px chip alone, about 10 in the chunk; the same parts).
    """

    def load(item: PhotoItem) -> Decoded | Unmeasured:
        path, region, *reading = item
        return read_photo(path, spec, region, *reading)

    seconds = spec.limits.seconds
    if seconds is None:
        return judged_all([load(item) for item in items], spec)
    reason = f"decoding took over {seconds:g} s (given up)"
    overrun = Decoded(None, PhotoStatus.REFUSED, reason)
    return judged_all(watched_map(load, items, seconds, lambda _: overrun), spec)


def crop_vote(path: Path, limits: Limits = NO_LIMITS) -> float | bool | None:
    """A photo's vote (cameras.Vote): its misalignment (faces.alignment of its face's
    landmarks) when it passes the crop test (faces.is_face_crop), False when not, None when
    unreadable or refused (opened only as `limits` allow, like load_photo).

    A photo whose stored size fails the size test votes False without being decoded.
    """
    try:
        with open_inside(path, limits.inside) as file, Image.open(file, formats=FORMATS) as image:
            stored = image.size
        if not crop_shaped(*stored):
            return False
        image = read_rgb(path, limits=limits)
    except (Refusal, *_BOMB, *_UNREADABLE) as error:
        log.debug("Photo %s does not vote: %s", path, error)
        return None
    if image is None:
        return None
    try:
        face = crop_face(np.asarray(image), worker_finder())
        if face is None:
            return False
        # No face detected (score 0): landmarks fitted on nothing measure nothing.
        return alignment(face, *image.size).misalignment if face.score > 0 else True
    except ValueError:  # decoded, but too small to look at
        return None


def crop_votes(paths: Sequence[Path], limits: Limits = NO_LIMITS) -> list[float | bool | None]:
    """crop_vote for a chunk of paths (one call per worker); with a time budget
    (limits.seconds), a photo still being judged when it is spent votes None."""

    def vote(path: Path) -> float | bool | None:
        return crop_vote(path, limits)

    if limits.seconds is None:
        return [vote(path) for path in paths]
    return watched_map(vote, paths, limits.seconds, lambda _: None)
