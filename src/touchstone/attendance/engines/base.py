"""What a face engine finds in a photo, and the protocol every engine follows.

Engines only detect, locate landmarks and embed; the quality gates (`attendance.quality`)
and the open-set decision (`attendance.matching`) are the same whatever the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

RgbImage = npt.NDArray[np.uint8]
"""H x W x 3, RGB order (dlib's), contiguous."""
Embedding = npt.NDArray[np.float32]
Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class DetectedFace:
    box: tuple[int, int, int, int]
    """left, top, right, bottom in the photo's pixels."""
    score: float
    """The detector's own confidence: whether this is a face, never who it is."""
    landmarks: tuple[Point, ...]
    """Five points: the outer and inner corner of one eye, then of the other, then the base
    of the nose (dlib's 5-point order)."""

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


class FaceEngine(Protocol):
    name: str
    dimension: int

    def detect(self, image: RgbImage, *, upsample: int = 0) -> list[DetectedFace]:
        """Every face at or above the engine's detection score, with its landmarks."""
        ...

    def embed(self, image: RgbImage, face: DetectedFace) -> Embedding:
        """The face's descriptor: faces of one person lie close in Euclidean distance."""
        ...

    def chip(self, image: RgbImage, face: DetectedFace) -> RgbImage:
        """The face aligned and cropped to a fixed size (what the quality gates measure)."""
        ...
