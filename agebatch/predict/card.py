"""The model card: what an age model expects and promises, read and written in one place.

A card is `<model>.card.json` beside `<model>.keras`: input size and preprocessing, output
(one age, or a distribution over ages), the face framing it was trained on, its measured error,
its age confusion (for corrected shares), test-time flip averaging, and free-form provenance
(architecture, source, licence, training) that is kept as written. Its operating curve says,
for each flag threshold, how many under-age shoppers the compliance report would miss and how
many adults it would flag. `ModelCard.read` is the one
reader (run, evaluate, train, the converter) and `ModelCard.write` the one writer.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agebatch.errors import InputError

SHORT_DIGEST = 12  # hex digits of a card's digest shown beside its version

CARD_SCHEMA = "agebatch.model-card/1"
MIN_BOX_SIDE = 0.2  # a crop box narrower or shorter than this share of the crop sees no face
MAX_INPUT_SIDE = 2048  # pixels: a bigger input is not a face model's (and exhausts memory)
_OPEN = ConfigDict(extra="allow")  # cards carry descriptive fields the code does not read


class CardInput(BaseModel):
    """The model's input: an (N, height, width, 3) RGB batch, preprocessed as named."""

    model_config = _OPEN
    height: int = Field(gt=0, le=MAX_INPUT_SIDE)
    width: int = Field(gt=0, le=MAX_INPUT_SIDE)
    # in_model: raw 0..255 RGB floats go in (the model normalises); scale_0_1: x / 255 first
    preprocessing: Literal["in_model", "scale_0_1"] = "in_model"


class CardOutput(BaseModel):
    """The model's output: one age per image, or probabilities over `ages`."""

    model_config = _OPEN
    kind: Literal["age", "distribution"]
    ages: list[float] | None = None


class AlignedCrop(BaseModel):
    """The part of an aligned face crop the model reads, and how it is shrunk to the input."""

    model_config = _OPEN
    box: tuple[float, float, float, float] | None = None  # left, top, right, bottom: fractions
    resample: Literal["nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"] = "bilinear"

    @field_validator("box")
    @classmethod
    def _inside_the_image(
        cls, box: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if box is not None and not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
            raise ValueError(
                f"the crop box {list(box)} must have 0 <= left < right <= 1 and "
                "0 <= top < bottom <= 1 (fractions of the image)"
            )
        if box is not None and min(box[2] - box[0], box[3] - box[1]) < MIN_BOX_SIDE - 1e-9:
            raise ValueError(
                f"the crop box {list(box)} is {box[2] - box[0]:.4g} wide and "
                f"{box[3] - box[1]:.4g} high: each side must be at least {MIN_BOX_SIDE} of the "
                "image, a smaller box shows no face"
            )
        return box


class CardRealigned(BaseModel):
    """Faces aligned by their landmarks (loose crops, frames) are read `offset` years from the
    same faces' aligned crops; `offset` is subtracted from their ages (measured, `measured`)."""

    model_config = ConfigDict(extra="allow")
    offset: float = Field(ge=-5, le=5)


class CardFace(BaseModel):
    """How a face becomes the model's input: dlib chip padding, or an aligned-crop box; and
    how the ages of faces aligned by their landmarks are put on the aligned crops' scale."""

    model_config = _OPEN
    padding: float = Field(0.2, ge=0)
    aligned_crop: AlignedCrop | None = None
    realigned: CardRealigned | None = None


class CardError(BaseModel):
    """The model's measured error (`agebatch evaluate`)."""

    model_config = _OPEN
    mae: float | None = None
    mae_by_band: dict[str, float] = Field(default_factory=dict)


class AgeConfusion(BaseModel):
    """True-by-predicted whole-year counts on named faces, for corrected age-group shares."""

    model_config = _OPEN
    split: str
    n: int
    counts: list[tuple[int, int, int]]


class CurvePoint(BaseModel):
    """One flag threshold of the operating curve and the shares measured at it."""

    model_config = _OPEN
    threshold: float
    teen_miss: float = Field(ge=0, le=1)  # 13-17-year-olds predicted at or above the threshold
    under_18_miss: float = Field(ge=0, le=1)  # under-18s predicted at or above it
    adult_flag: float = Field(ge=0, le=1)  # people 25+ predicted below it


class OperatingCurve(BaseModel):
    """What each flag threshold (predicted age below it: flagged) misses and flags, measured
    on named labelled faces with the card's flip setting."""

    model_config = _OPEN
    faces: str
    split: str
    test_time_augmentation: Literal["none", "flip"]
    n_teens: int = Field(gt=0)
    n_under_18: int = Field(gt=0)
    n_adults: int = Field(gt=0)
    points: list[CurvePoint] = Field(min_length=1)

    @field_validator("points")
    @classmethod
    def _increasing(cls, points: list[CurvePoint]) -> list[CurvePoint]:
        thresholds = [point.threshold for point in points]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("the curve's thresholds must be increasing and distinct")
        return points

    def at(self, threshold: float) -> CurvePoint | None:
        """The point measured at exactly this threshold, if the curve has one."""
        return next((p for p in self.points if p.threshold == threshold), None)

    def lowest_within(self, max_teen_miss: float) -> CurvePoint | None:
        """The lowest threshold whose measured teen miss is at most max_teen_miss (the fewest
        adults flagged for that miss), or None when no threshold of the curve gets there."""
        return next((p for p in self.points if p.teen_miss <= max_teen_miss), None)


class CardLight(BaseModel):
    """Light normalisation: a face whose centre is darker than `below` (mean grey level of the
    chip's centre, 0-255) is brightened by one gain to `target`."""

    model_config = ConfigDict(extra="allow")
    below: float = Field(gt=0, le=255)
    target: float = Field(gt=0, le=255)


class CardDetail(BaseModel):
    """Detail restoration: a face whose quality part `detail` is under `below` (saved small and
    scaled up, or out of focus) has its chip sharpened by an unsharp mask of `radius` pixels
    and `percent` strength (PIL's ImageFilter.UnsharpMask, threshold 0)."""

    model_config = ConfigDict(extra="allow")
    below: float = Field(gt=0)
    radius: float = Field(gt=0, le=8)
    percent: int = Field(gt=0, le=1000)


class CardQuality(BaseModel):
    """The quality floors of a card: a photo with any part under its floor is low_quality;
    the light normalisation of dim faces and the detail restoration of soft ones (None:
    none)."""

    model_config = ConfigDict(extra="allow")
    floors: dict[str, float] = Field(default_factory=dict)
    light: CardLight | None = None
    detail: CardDetail | None = None

    @field_validator("floors")
    @classmethod
    def _known_parts(cls, floors: dict[str, float]) -> dict[str, float]:
        from agebatch.predict.quality import PARTS

        unknown = sorted(set(floors) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown quality parts {unknown}; known: {', '.join(PARTS)}")
        if any(value <= 0 for value in floors.values()):
            raise ValueError("quality floors must be > 0")
        return floors


class ModelCard(BaseModel):
    """A model card; unknown fields (architecture, source, licence, …) are kept as written."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    schema_: str = Field(CARD_SCHEMA, alias="schema")
    name: str
    version: str
    model_file: str | None = None
    input: CardInput
    output: CardOutput
    face: CardFace = Field(default_factory=CardFace)
    error: CardError = Field(default_factory=CardError)
    test_time_augmentation: Literal["none", "flip"] = "none"
    age_confusion: AgeConfusion | None = None
    operating_curve: OperatingCurve | None = None
    quality: CardQuality | None = None
    training: dict[str, Any] | None = None

    @field_validator("output")
    @classmethod
    def _distribution_has_ages(cls, output: CardOutput) -> CardOutput:
        if output.kind == "distribution" and not output.ages:
            raise ValueError("output kind 'distribution' needs the 'ages' its classes stand for")
        return output

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the model's input."""
        return (self.input.width, self.input.height)

    @property
    def crop(self) -> tuple[float, float, float, float] | None:
        """The aligned-crop box, or None when the whole photo is the face."""
        return self.face.aligned_crop.box if self.face.aligned_crop else None

    @property
    def resample(self) -> str:
        """PIL resampling used to shrink the crop to the input size."""
        return self.face.aligned_crop.resample if self.face.aligned_crop else "bilinear"

    @property
    def realigned_offset(self) -> float:
        """Years a face aligned by its landmarks reads older than its aligned crop (0: none)."""
        return self.face.realigned.offset if self.face.realigned else 0.0

    @property
    def flip(self) -> bool:
        """Whether each age is the mean of the image's and its mirror image's prediction."""
        return self.test_time_augmentation == "flip"

    @property
    def curve(self) -> OperatingCurve | None:
        """The operating curve, if it was measured with the card's own flip setting."""
        curve = self.operating_curve
        return (
            curve if curve and curve.test_time_augmentation == self.test_time_augmentation else None
        )

    @staticmethod
    def path_for(model_path: Path) -> Path:
        """The card that belongs to a model file: age_v1.keras -> age_v1.card.json."""
        return model_path.with_name(model_path.name.removesuffix(".keras") + ".card.json")

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "model card") -> ModelCard:
        """Validate a card's JSON object, or say in one sentence what is wrong with it."""
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            raise InputError(f"{source}: field {where}: {message.rstrip('.')}.") from None

    @classmethod
    def read(cls, model_path: Path) -> ModelCard:
        """Read and check the card beside a model file."""
        path = cls.path_for(model_path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(
                f"Model card {path} is missing: every model needs a card saying its input and "
                "output."
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"Model card {path} cannot be read as JSON: {error}.") from None
        if not isinstance(raw, dict):
            raise InputError(f"Model card {path} must be a JSON object.")
        return cls.from_dict(raw, f"Model card {path}")

    def to_dict(self) -> dict[str, Any]:
        """The card as its JSON object (unset optional parts left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def digest(self) -> str:
        """A sha256 of everything the card says: its version stays when its measured fields
        (e.g. face.realigned) are written again, its digest does not."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def short_digest(self) -> str:
        """The digest's first SHORT_DIGEST hex digits: what runs.model_card and `agebatch
        predict` show."""
        return self.digest()[:SHORT_DIGEST]

    def updated(self, **changes: Any) -> ModelCard:
        """A copy with top-level fields replaced, validated like a card read from a file."""
        return ModelCard.from_dict({**self.to_dict(), **changes}, f"card of {self.name}")

    def write(self, model_path: Path) -> Path:
        """Write the card beside model_path: stable key order, short lists on one line; whole
        or not at all (a temporary file renamed over it: a kill leaves the old card)."""
        path = self.path_for(model_path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with tmp.open("w", encoding="utf-8") as file:
                file.write(_pretty(self.to_dict()) + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path


def _pretty(card: dict[str, Any]) -> str:
    """JSON indented by 2, with lists of plain values (ages, boxes, counts) kept on one line."""
    inline: list[str] = []

    def mark(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: mark(value) for key, value in node.items()}
        if isinstance(node, list) and all(not isinstance(v, dict | list) for v in node):
            inline.append(json.dumps(node))
            return f"@inline{len(inline) - 1}@"
        return [mark(value) for value in node] if isinstance(node, list) else node

    text = json.dumps(mark(card), indent=2, ensure_ascii=False)
    for index, value in enumerate(inline):
        text = text.replace(f'"@inline{index}@"', value, 1)
    return text
