"""`--photo-kind auto`, decided per camera: a sample of each camera's photos says whether the
camera saves face crops or frames, so a crop camera's photos skip the face detector.

The rule:
1. A camera is a (store_id, register_id) pair (`agebatch predict`: a folder). Its photos are
   taken in name order (the capture time, for the standard names); the first `auto_sample`
   are judged one by one by the crop test (faces.is_face_crop: small and about square, then no
   face or one big centred face, the detector looking at the photo with a grey margin round
   it). Unreadable photos do not vote.
2. The camera is a **crop camera** when more than half of its votes say crop; otherwise (a tie,
   or no readable photo in the sample) it is a **frame camera**. Votes stop as soon as the
   remaining photos of the sample could no longer change the outcome, so the decision is the
   same as with every vote counted.
3. A crop camera's photos (the sampled ones included) are read by size (Reading.BY_SIZE): a
   photo whose stored size passes the size test (faces.crop_shaped: longest side <= 512 px,
   width/height 0.8-1.25) is a crop, no detector; any other photo (the camera switched to
   frames) is a frame, its shopper found by the detector. A frame camera's photos are each
   judged by the crop test (Reading.BY_PHOTO), as `auto` did before it was decided per camera:
   frames fail the size test without a detector run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agebatch.config import PhotoKind
from agebatch.predict.images import Reading

log = logging.getLogger(__name__)

Camera = Hashable
Judge = Callable[[list[Path]], list[bool | None]]  # crop votes of photos (None: unreadable)


@dataclass(frozen=True)
class Verdict:
    """What a camera's sample said: crop and frame votes, and the photos looked at."""

    camera: Camera
    crops: int
    frames: int
    looked_at: int

    @property
    def kind(self) -> PhotoKind:
        """CROPS when more than half of the votes say crop, else FRAMES."""
        return PhotoKind.CROPS if self.crops > self.frames else PhotoKind.FRAMES

    @property
    def reading(self) -> Reading:
        """How the camera's photos are read."""
        return Reading.BY_SIZE if self.kind == PhotoKind.CROPS else Reading.BY_PHOTO


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
    sampled = samples(paths, cameras, size)
    votes: dict[Camera, list[bool | None]] = {camera: [] for camera in sampled}
    # First round: a majority's worth of each sample; then the rest where still undecided.
    rounds = [lambda n: n // 2 + 1, lambda n: n]
    for upto in rounds:
        wanted = [
            (camera, index)
            for camera, indices in sampled.items()
            if not _settled(votes[camera], len(indices))
            for index in indices[len(votes[camera]) : upto(len(indices))]
        ]
        if not wanted:
            break
        for (camera, _), vote in zip(
            wanted, judge([paths[index] for _, index in wanted]), strict=True
        ):
            votes[camera].append(vote)
    verdicts = {
        camera: Verdict(camera, cast.count(True), cast.count(False), len(cast))
        for camera, cast in votes.items()
    }
    _log(verdicts)
    return verdicts


def _settled(votes: list[bool | None], sample: int) -> bool:
    """Whether the photos of the sample not yet judged can no longer change the majority."""
    crops, frames = votes.count(True), votes.count(False)
    remaining = sample - len(votes)
    return crops > frames + remaining or crops + remaining <= frames


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
            "Camera %s: %s (%d of %d sampled photos look like crops, %d like frames)",
            camera_name(verdict.camera),
            verdict.kind,
            verdict.crops,
            verdict.looked_at,
            verdict.frames,
        )
    frames = sorted(camera_name(v.camera) for v in verdicts.values() if v.kind != PhotoKind.CROPS)
    shown = ", ".join(frames[:20]) + (f" and {len(frames) - 20} more" if len(frames) > 20 else "")
    log.info(
        "Photo kind auto: %d camera(s) read as crops, %d as frames%s",
        len(verdicts) - len(frames),
        len(frames),
        f" ({shown})" if frames else "",
    )
