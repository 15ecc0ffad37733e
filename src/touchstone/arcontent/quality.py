"""Marker quality: is there enough texture, spread over the picture, for a phone to track it?

Image trackers (MindAR, Vuforia, ARToolKit NFT) follow corner-like features; a marker with
few of them, all in one corner, or with little contrast is found late and lost often. The
score (0-100) weighs three measurements on the image scaled to at most 1000 px:

- ORB (FAST) keypoints, full marks from 800;
- coverage: the share of an 8x8 grid's cells holding at least 3 of them;
- RMS contrast (the grey levels' standard deviation / 255), full marks from 0.15.

A marker is refused below a contrast of 0.06, under 150 keypoints, or under a score of 40.
The thresholds were set on the outside markers in ../shared/corpora/ar (MindAR's card and
pictarize examples, AR.js's pinball NFT image score 79-92) and on blank and flattened
copies of them; there is no held-out set of markers, so they are a start, not a measure.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from touchstone.arcontent.exceptions import BadMedia, MarkerRejected

WORK_SIDE = 1000
GRID = 8
MIN_SIDE = 200
MAX_PIXELS = 25_000_000
MIN_CONTRAST = 0.06
MIN_KEYPOINTS = 150
MIN_SCORE = 40
_FULL_KEYPOINTS = 800
_FULL_CONTRAST = 0.15
_PER_CELL = 3


@dataclass(frozen=True)
class MarkerQuality:
    score: int
    keypoints: int
    coverage: float
    contrast: float
    width: int
    height: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header, before anything is decoded (a decompression bomb
    is refused here, not after it filled the memory)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise BadMedia("The marker is not a readable image") from exc
    if width * height > MAX_PIXELS:
        raise BadMedia(f"The marker has {width}x{height} pixels; at most {MAX_PIXELS} are allowed")
    if min(width, height) < MIN_SIDE:
        raise BadMedia(f"The marker is {width}x{height}; its short side needs {MIN_SIDE} px")
    return width, height


def measure(data: bytes) -> MarkerQuality:
    """The marker's score and its parts (about 50 ms on one core)."""
    image_size(data)
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise BadMedia("The marker is not a readable image")
    height, width = grey.shape  # as shown: OpenCV applies an EXIF orientation, as browsers do
    scale = WORK_SIDE / max(grey.shape)
    if scale < 1:
        size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    keypoints = cv2.ORB_create(  # type: ignore[attr-defined]
        nfeatures=3000, fastThreshold=20
    ).detect(grey, None)
    rows, cols = grey.shape
    cells = np.zeros((GRID, GRID), np.int32)
    for point in keypoints:
        x, y = point.pt
        cells[min(GRID - 1, int(y * GRID / rows)), min(GRID - 1, int(x * GRID / cols))] += 1
    coverage = float((cells >= _PER_CELL).mean())
    contrast = float(grey.std() / 255)
    score = 100 * (
        0.4 * min(1.0, len(keypoints) / _FULL_KEYPOINTS)
        + 0.4 * coverage
        + 0.2 * min(1.0, contrast / _FULL_CONTRAST)
    )
    return MarkerQuality(
        score=round(score),
        keypoints=len(keypoints),
        coverage=round(coverage, 3),
        contrast=round(contrast, 3),
        width=width,
        height=height,
    )


def check(quality: MarkerQuality) -> None:
    """Refuse a marker a phone would not track, saying which measurement failed."""
    found = quality.as_dict()
    if quality.contrast < MIN_CONTRAST:
        raise MarkerRejected(
            f"Contrast {quality.contrast} is below {MIN_CONTRAST}: the picture is blank or too "
            f"flat (score {quality.score}/100)",
            found,
        )
    if quality.keypoints < MIN_KEYPOINTS:
        raise MarkerRejected(
            f"{quality.keypoints} trackable features, at least {MIN_KEYPOINTS} are needed: "
            f"add texture or detail (score {quality.score}/100)",
            found,
        )
    if quality.score < MIN_SCORE:
        raise MarkerRejected(
            f"Score {quality.score}/100 is below {MIN_SCORE}: the features sit in a small part "
            f"of the picture (coverage {quality.coverage})",
            found,
        )
