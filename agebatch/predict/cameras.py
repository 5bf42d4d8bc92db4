"""`--photo-kind auto`, decided per camera: a sample of each camera's photos says whether the
camera saves face crops or frames, so a crop camera's photos skip the face detector.

The rule:
1. A camera is a (store_id, register_id) pair (`agebatch predict`: a folder). Its photos are
   taken in name order (the capture time, for the standard names); the first `auto_sample`
   readable ones are judged one by one by the crop test (faces.is_face_crop: small and about
   square, then no face or one big centred face, the detector looking at the photo with a grey
   margin round it). Unreadable photos do not vote: the sample goes on past them, to at most
   SAMPLE_SPAN times `auto_sample` photos looked at.
   A crop's vote carries its measured misalignment: its detected face's 5 landmarks against
   the card's aligned framing (faces.alignment; above 1 the crop is not aligned); a crop in
   which no face is detected votes crop without a measure (counted as aligned).
2. The camera is a **crop camera** when more than half of its votes say crop; otherwise (a tie)
   it is a **frame camera**; a camera none of whose looked-at photos could be read is
   **undecided**, read as a frame camera is (photo by photo) and never taken for a re-mount.
   Votes stop as soon as the remaining photos of the sample could no longer change the
   outcome, so the decision is the same as with every vote counted. A crop camera is an
   **aligned-crop camera** when at most
   LOOSE_SHARE of its crop votes are misaligned, else a **loose-crop camera** (it saves its
   own box: off-centre, looser, tilted).
3. An aligned-crop camera's photos (the sampled ones included) are read by size
   (Reading.BY_SIZE): a photo whose stored size passes the size test (faces.crop_shaped:
   longest side <= 512 px, width/height 0.8-1.25) is a crop, aged as-is, no detector; any
   other photo (the camera switched to frames) is a frame, its shopper found by the detector.
   A loose-crop camera's crops have their face found and aligned by its landmarks
   (Reading.LOOSE), as a frame's face is. A frame camera's photos are each judged by the crop
   test (Reading.BY_PHOTO), as `auto` did before it was decided per camera: frames fail the
   size test without a detector run; a photo that passes is aged as-is only when its own
   landmarks confirm the alignment, else aligned by them.
4. Each camera's verdict (aligned crops / loose crops / frames, and the median misalignment
   of its crop votes) is logged, returned with the stage's figures (PredictStats.cameras and
   .verdicts) and published per (store_id, register_id) in the day's `cameras` table
   (sql/cameras.sql, beside the camera's verdict of its previous day), so a camera that was
   re-mounted shows. A Dask shard keeps its camera's verdict in its staged file
   (Verdict.to_json, agebatch.shards).
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agebatch.config import ALIGNED_CROPS, LOOSE_CROPS, PhotoKind
from agebatch.predict.images import Reading

log = logging.getLogger(__name__)

Camera = Hashable
# A photo's vote: None (unreadable), False (a frame), True (a crop, alignment not measured) or
# a float (a crop and its misalignment, faces.Alignment.misalignment).
Vote = bool | float | None
Judge = Callable[[list[Path]], list[Vote]]  # the votes of photos
# An aligned-crop camera has at most this share of misaligned crop votes (the shared faces as
# aligned crops: 1% of them misaligned; a 16-photo sample then has at most 1 in 99% of cameras).
LOOSE_SHARE = 0.125
# Photos looked at for a camera's sample, at most, as a multiple of the sample's size: the sample
# goes on past unreadable photos this far (a camera of broken files is then undecided).
SAMPLE_SPAN = 4
UNDECIDED = "undecided"


def is_crop(vote: Vote) -> bool:
    """Whether a vote says crop."""
    return vote is True or (isinstance(vote, float) and not isinstance(vote, bool))


@dataclass(frozen=True)
class Verdict:
    """What a camera's sample said: crop and frame votes, and the photos looked at."""

    camera: Camera
    crops: int
    frames: int
    looked_at: int
    misaligned: int = 0  # crop votes whose landmarks do not confirm the card's alignment
    misalignment: float | None = None  # median over the crop votes that measured it

    @property
    def kind(self) -> PhotoKind:
        """CROPS when more than half of the votes say crop, else FRAMES."""
        return PhotoKind.CROPS if self.crops > self.frames else PhotoKind.FRAMES

    @property
    def saves(self) -> str:
        """What the camera saves, in words: aligned crops, loose crops or frames; undecided when
        none of the photos looked at could be read."""
        if self.crops == self.frames == 0:
            return UNDECIDED
        if self.kind != PhotoKind.CROPS:
            return PhotoKind.FRAMES.value
        return LOOSE_CROPS if self.misaligned > LOOSE_SHARE * self.crops else ALIGNED_CROPS

    @property
    def reading(self) -> Reading:
        """How the camera's photos are read."""
        return {
            ALIGNED_CROPS: Reading.BY_SIZE,
            LOOSE_CROPS: Reading.LOOSE,
            PhotoKind.FRAMES.value: Reading.BY_PHOTO,
            UNDECIDED: Reading.BY_PHOTO,
        }[self.saves]

    def to_json(self) -> str:
        """The votes as JSON (the camera left out: its shard says it), for a staged shard."""
        return json.dumps(
            {
                "crop_votes": self.crops,
                "frame_votes": self.frames,
                "looked_at": self.looked_at,
                "misaligned": self.misaligned,
                "misalignment": self.misalignment,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, camera: Camera, text: str) -> Verdict:
        """A camera's verdict from to_json's text."""
        votes = json.loads(text)
        misalignment = votes["misalignment"]
        return cls(
            camera,
            int(votes["crop_votes"]),
            int(votes["frame_votes"]),
            int(votes["looked_at"]),
            int(votes["misaligned"]),
            None if misalignment is None else float(misalignment),
        )

    def row(self) -> dict[str, object]:
        """The verdict as a row: camera, saves, votes, misaligned crops, median misalignment."""
        return {
            "camera": camera_name(self.camera),
            "saves": self.saves,
            "crop_votes": self.crops,
            "frame_votes": self.frames,
            "misaligned_crops": self.misaligned,
            "misalignment": None if self.misalignment is None else round(self.misalignment, 3),
        }


def samples(paths: Sequence[Path], cameras: Sequence[Camera], size: int) -> dict[Camera, list[int]]:
    """The indices of each camera's first `size` photos in name order."""
    by_camera: dict[Camera, list[int]] = defaultdict(list)
    for index, camera in enumerate(cameras):
        by_camera[camera].append(index)
    return {
        camera: sorted(indices, key=lambda i: (str(paths[i]), i))[:size]
        for camera, indices in by_camera.items()
    }


def decide(
    paths: Sequence[Path], cameras: Sequence[Camera], size: int, judge: Judge
) -> dict[Camera, Verdict]:
    """Each camera's verdict from its sample (module docstring). judge(paths) gives the crop
    votes of a list of photos; it is called once per round with every camera's next photos."""
    if len(cameras) != len(paths):
        raise ValueError("cameras must have one camera per path")
    sampled = samples(paths, cameras, size * SAMPLE_SPAN)
    votes: dict[Camera, list[Vote]] = {camera: [] for camera in sampled}
    # Each round asks every undecided camera for as many more photos as could settle it (_wanted).
    while wanted := [
        (camera, index)
        for camera, indices in sampled.items()
        for index in indices[len(votes[camera]) :][: _wanted(votes[camera], size, len(indices))]
    ]:
        for (camera, _), vote in zip(
            wanted, judge([paths[index] for _, index in wanted]), strict=True
        ):
            votes[camera].append(vote)
    verdicts = {camera: _verdict(camera, cast) for camera, cast in votes.items()}
    _log(verdicts)
    return verdicts


def _verdict(camera: Camera, cast: list[Vote]) -> Verdict:
    """A camera's verdict from its votes."""
    measured = [v for v in cast if is_crop(v) and v is not True]
    return Verdict(
        camera,
        sum(1 for v in cast if is_crop(v)),
        sum(1 for v in cast if v is False),
        len(cast),
        sum(1 for v in measured if v > 1.0),
        float(statistics.median(measured)) if measured else None,
    )


def _wanted(cast: list[Vote], size: int, photos: int) -> int:
    """How many more of a camera's photos to judge: 0 once its first `size` readable votes are
    in, its photos are all looked at, or the votes still to come can no longer change the
    majority; at first a majority's worth of the sample (`size`, or fewer photos); then the
    fewest that could settle it."""
    if not cast:
        return min(size, photos) // 2 + 1
    crops, frames = sum(1 for v in cast if is_crop(v)), sum(1 for v in cast if v is False)
    remaining = min(size - crops - frames, photos - len(cast))
    if remaining <= 0 or crops > frames + remaining or crops + remaining <= frames:
        return 0
    to_crops = (frames + remaining - crops) // 2 + 1  # votes, all crop, that make it crops
    to_frames = -(-(crops + remaining - frames) // 2)  # votes, all frame, that make it frames
    return max(1, min(to_crops, to_frames))


def readings(
    cameras: Sequence[Camera], verdicts: dict[Camera, Verdict] | None, kind: PhotoKind
) -> list[Reading]:
    """How each photo is read: by its camera's verdict under auto, else as the kind says."""
    if verdicts is None or PhotoKind(kind) != PhotoKind.AUTO:
        return [Reading.of(kind)] * len(cameras)
    return [verdicts[camera].reading for camera in cameras]


def camera_name(camera: Camera) -> str:
    """A camera as people read it: S01/R1."""
    if isinstance(camera, tuple):
        return "/".join(str(part) for part in camera)
    return str(camera)


def _log(verdicts: dict[Camera, Verdict]) -> None:
    """One line per camera (debug), one summary line naming the frame cameras (info)."""
    for verdict in verdicts.values():
        log.debug(
            "Camera %s: %s (%d of %d sampled photos look like crops, %d of them misaligned "
            "(median misalignment %s), %d like frames)",
            camera_name(verdict.camera),
            verdict.saves,
            verdict.crops,
            verdict.looked_at,
            verdict.misaligned,
            "-" if verdict.misalignment is None else f"{verdict.misalignment:.2f}",
            verdict.frames,
        )
    frames = sorted(camera_name(v.camera) for v in verdicts.values() if v.kind != PhotoKind.CROPS)
    loose = sorted(camera_name(v.camera) for v in verdicts.values() if v.saves == LOOSE_CROPS)
    log.info(
        "Photo kind auto: %d camera(s) read as aligned crops, %d as loose crops%s, %d as frames%s",
        len(verdicts) - len(frames) - len(loose),
        len(loose),
        _shown(loose),
        len(frames),
        _shown(frames),
    )


def _shown(names: list[str]) -> str:
    """Up to 20 camera names in brackets ('' for none)."""
    if not names:
        return ""
    more = f" and {len(names) - 20} more" if len(names) > 20 else ""
    return f" ({', '.join(names[:20])}{more})"
