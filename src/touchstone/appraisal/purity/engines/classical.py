"""The default detector: colour rules in OpenCV, no model file.

Everything runs on a copy of the frame scaled to `WORK_WIDTH` pixels wide (a few tenths of a
millisecond per frame). Brightness thresholds are relative to the frame's median brightness,
so a lighting change moves them with the scene.

- Stone: the largest dark, low-saturation region.
- Gold: gold-hued, saturated pixels. The ornament is the largest bright gold blob; the
  streak is the duller gold on the stone, away from the ornament.
- Acid: the drop tints the stone towards pale blue (blue above red) inside the stone.
- Reading: the streak's gold contrast (red minus blue above the stone's own) under the acid,
  divided by the same streak's contrast beside the drop. The drop's tint alone lowers the
  ratio to about 0.7, so the karat bands below were calibrated on the synthetic clips of
  `bench.generators.touchstone_clips` (24K ~0.68, 22K ~0.4, 18K ~0.1); a real camera and
  acid kit need their own calibration, passed as `karat_bands`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from touchstone.appraisal.purity.engines.base import (
    AcidObservation,
    Box,
    Detection,
    RubbingObservation,
)
from touchstone.appraisal.purity.frames import BgrFrame

WORK_WIDTH = 160
REVISION = 1

GOLD_HUE = (12, 38)
"""OpenCV hue (0-180) of gold, from orange-yellow to yellow."""
GOLD_MIN_SATURATION = 100
ORNAMENT_BRIGHTNESS = 1.5
"""The ornament is brighter than this many times the frame's median brightness."""
STONE_BRIGHTNESS = 0.55
STONE_MAX_SATURATION = 90
ACID_TINT = 0.12
"""Blue minus red, as a share of the median brightness, that marks acid on the stone."""
MIN_STONE_SHARE = 0.04
MIN_GOLD_PIXELS = 12
MIN_STREAK_PIXELS = 10
MIN_ACID_SHARE = 0.01
"""Of the stone's area."""
GLINT_BRIGHTNESS = 1.3
GLINT_MAX_SATURATION = 60
MIN_STREAK_CONTRAST = 0.2
"""The streak beside the drop must stand this share of the median brightness above the stone
(in red minus blue), or there is nothing to compare the streak under the drop with."""

KaratBands = tuple[tuple[float, str], ...]
DEFAULT_KARAT_BANDS: KaratBands = ((0.52, "24K"), (0.23, "22K"), (0.0, "18K"))
"""(lowest ratio, karat), highest first: a ratio at or above a band's floor reads its karat."""

Mask = npt.NDArray[np.uint8]


def _u8(image: cv2.typing.MatLike) -> Mask:
    """OpenCV's result as the 8-bit array it is (no copy), for the type checker."""
    return np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True)
class _Scaled:
    bgr: BgrFrame
    hsv: BgrFrame
    scale: float
    """Frame pixels per work pixel."""
    median_brightness: float

    def to_frame(self, x: int, y: int, w: int, h: int) -> Box:
        s = self.scale
        return (x * s, y * s, (x + w) * s, (y + h) * s)

    def to_work(self, box: Box) -> tuple[int, int, int, int]:
        height, width = self.bgr.shape[:2]
        x1, y1, x2, y2 = (round(v / self.scale) for v in box)
        return max(0, x1), max(0, y1), min(width, x2), min(height, y2)


def _largest_component(mask: Mask, min_pixels: int) -> tuple[int, int, int, int, int] | None:
    """(x, y, w, h, area) of the largest 8-connected blob, if it has `min_pixels`."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[best])
    return (x, y, w, h, area) if area >= min_pixels else None


_SMALL_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_CLOSE_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))


class ClassicalEngine:
    """Colour-rule detector for both stages; see the module docstring for the rules."""

    name = "classical"

    def __init__(self, *, karat_bands: KaratBands = DEFAULT_KARAT_BANDS) -> None:
        if not karat_bands:
            raise ValueError("at least one karat band is needed")
        self.karat_bands = tuple(sorted(karat_bands, reverse=True))

    @property
    def version(self) -> str:
        bands = ",".join(f"{label}>={floor:g}" for floor, label in self.karat_bands)
        return f"classical-{REVISION} opencv-{cv2.__version__} bands:{bands}"

    def _scaled(self, frame: BgrFrame) -> _Scaled:
        height, width = frame.shape[:2]
        scale = width / WORK_WIDTH
        size = (WORK_WIDTH, max(1, round(height / scale)))
        small = _u8(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        hsv = _u8(cv2.cvtColor(small, cv2.COLOR_BGR2HSV))
        return _Scaled(small, hsv, scale, max(16.0, float(np.median(hsv[:, :, 2]))))

    def _stone(self, work: _Scaled) -> tuple[Detection, tuple[int, int, int, int]] | None:
        darkest = max(40.0, min(90.0, STONE_BRIGHTNESS * work.median_brightness))
        dark = _u8(cv2.inRange(work.hsv, (0, 0, 0), (180, STONE_MAX_SATURATION, darkest)))
        dark = _u8(cv2.morphologyEx(dark, cv2.MORPH_CLOSE, _CLOSE_KERNEL))
        min_pixels = round(MIN_STONE_SHARE * dark.size)
        found = _largest_component(dark, min_pixels)
        if found is None:
            return None
        x, y, w, h, area = found
        stone = Detection("stone", min(1.0, area / (w * h)), work.to_frame(x, y, w, h))
        return stone, (x, y, x + w, y + h)

    def detect_rubbing(self, frame: BgrFrame) -> RubbingObservation:
        work = self._scaled(frame)
        found = self._stone(work)
        gold = _u8(
            cv2.inRange(work.hsv, (GOLD_HUE[0], GOLD_MIN_SATURATION, 30), (GOLD_HUE[1], 255, 255))
        )
        bright_floor = min(250.0, ORNAMENT_BRIGHTNESS * work.median_brightness)
        bright = _u8(cv2.inRange(work.hsv[:, :, 2], bright_floor, 255))
        ornament_mask = _u8(
            cv2.morphologyEx(cv2.bitwise_and(gold, bright), cv2.MORPH_OPEN, _SMALL_KERNEL)
        )
        ornament = _largest_component(ornament_mask, MIN_GOLD_PIXELS)
        golds: tuple[Detection, ...] = ()
        if ornament is not None:
            x, y, w, h, area = ornament
            golds = (Detection("gold", min(1.0, 2 * area / (w * h)), work.to_frame(x, y, w, h)),)
        if found is None:
            return RubbingObservation(golds=golds, streaks=())
        stone, (x1, y1, x2, y2) = found
        # The streak: dull gold on the stone, clear of the ornament's blurred rim.
        dull = _u8(cv2.bitwise_and(gold, cv2.bitwise_not(cv2.dilate(ornament_mask, _CLOSE_KERNEL))))
        streak_mask = _u8(cv2.morphologyEx(dull[y1:y2, x1:x2], cv2.MORPH_OPEN, _SMALL_KERNEL))
        streaks: tuple[Detection, ...] = ()
        points = cv2.findNonZero(streak_mask)
        if points is not None and len(points) >= MIN_STREAK_PIXELS:
            x, y, w, h = cv2.boundingRect(points)
            score = min(1.0, len(points) / (w * h))
            streaks = (Detection("streak", score, work.to_frame(x + x1, y + y1, w, h)),)
        return RubbingObservation(stones=(stone,), golds=golds, streaks=streaks)

    def detect_acid(self, frame: BgrFrame, streak_region: Box | None) -> AcidObservation:
        work = self._scaled(frame)
        found = self._stone(work)
        if found is None:
            return AcidObservation()
        _, (x1, y1, x2, y2) = found
        bgr = work.bgr[y1:y2, x1:x2].astype(np.int16)
        blue_over_red = bgr[:, :, 0] - bgr[:, :, 2]
        tint = ACID_TINT * work.median_brightness
        acid_mask = np.where(blue_over_red > tint, 255, 0).astype(np.uint8)
        acid_mask = _u8(cv2.morphologyEx(acid_mask, cv2.MORPH_OPEN, _SMALL_KERNEL))
        acid_mask = _u8(cv2.morphologyEx(acid_mask, cv2.MORPH_CLOSE, _CLOSE_KERNEL))
        drop = _largest_component(acid_mask, round(MIN_ACID_SHARE * acid_mask.size))
        if drop is None:
            return AcidObservation()
        x, y, w, h, area = drop
        acid = Detection(
            "acid", min(1.0, area / (w * h) * 4 / np.pi), work.to_frame(x + x1, y + y1, w, h)
        )
        # Acid beside the streak reads nothing: the operator must put it on the streak.
        if streak_region is None or acid.overlap(Detection("streak", 1.0, streak_region)) == 0:
            return AcidObservation(acids=(acid,))
        ratio = self._retention(work, bgr, (x, y, x + w, y + h), streak_region, (x1, y1))
        if ratio is None:
            return AcidObservation(acids=(acid,))
        return AcidObservation(acids=(acid,), readings=(self._reading(ratio, acid.box),))

    def _retention(
        self,
        work: _Scaled,
        stone_bgr: npt.NDArray[np.int16],
        drop: tuple[int, int, int, int],
        streak_region: Box,
        stone_origin: tuple[int, int],
    ) -> float | None:
        """Streak contrast under the drop over the same streak's contrast beside it."""
        gold = (stone_bgr[:, :, 2] - stone_bgr[:, :, 0]).astype(np.float32)
        # A glint on the drop is bright and colourless: it must not pass for gold.
        hsv = work.hsv[stone_origin[1] :, stone_origin[0] :][: gold.shape[0], : gold.shape[1]]
        glint = (hsv[:, :, 2] > GLINT_BRIGHTNESS * work.median_brightness) & (
            hsv[:, :, 1] < GLINT_MAX_SATURATION
        )
        valid = (~glint).astype(np.float32)
        dx1, dy1, dx2, dy2 = drop
        sx1, _, sx2, _ = work.to_work(streak_region)
        sx1, sx2 = sx1 - stone_origin[0], sx2 - stone_origin[0]
        trim = round(0.08 * (sx2 - sx1))
        sx1, sx2 = max(0, sx1 + trim), min(gold.shape[1], sx2 - trim)
        inner = round(0.25 * (dx2 - dx1))
        margin = max(1, round(0.1 * (dx2 - dx1)))
        inside = np.arange(dx1 + inner, dx2 - inner)
        beside = np.r_[np.arange(sx1, max(sx1, dx1 - margin)), np.arange(dx2 + margin, sx2)]
        if inside.size < 2 or beside.size < 3:
            return None

        def profile(columns: npt.NDArray[np.intp]) -> npt.NDArray[np.float32]:
            rows = slice(dy1, dy2)
            weights = valid[rows][:, columns].sum(axis=1)
            total = (gold[rows][:, columns] * valid[rows][:, columns]).sum(axis=1)
            result: npt.NDArray[np.float32] = total / np.maximum(weights, 1.0)
            return result

        under, reference = profile(inside), profile(beside)
        row = int(np.argmax(reference))
        band = slice(max(0, row - 1), row + 2)
        contrast_beside = float(reference[band].mean() - np.median(reference))
        if contrast_beside < MIN_STREAK_CONTRAST * work.median_brightness:
            return None
        contrast_under = float(under[band].mean() - np.median(under))
        return max(0.0, contrast_under / contrast_beside)

    def _reading(self, ratio: float, box: Box) -> Detection:
        """The karat band of `ratio`, scored by how far it sits from the band's edges."""
        bands = self.karat_bands
        for index, (floor, label) in enumerate(bands):
            if ratio >= floor or index == len(bands) - 1:
                edges = [bands[index - 1][0] - ratio] if index > 0 else []
                if index < len(bands) - 1:
                    edges.append(ratio - floor)
                return Detection(label, min(0.99, 0.5 + 2 * min(edges, default=0.25)), box)
        raise AssertionError("the last band takes every ratio")
