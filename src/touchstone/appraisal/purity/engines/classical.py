"""The default detector: the stone, found relative to the frame itself, no model file.

The stone is the largest dark region of the frame: the frame's grey levels (bright outliers
such as glare and the ornament clipped at the 90th percentile) are split in two by Otsu's
threshold, and the dark side's largest compact blob is the stone. Nothing here is a colour:
a white table, a dark one, a green stone or a black one, under warm or cold light, all split
the same way as long as the stone is darker than what it lies on.

Everything else (the ornament, the streak, the acid, the reading) is measured by the
pipeline's `StoneScene` against this test's own earlier frames, which a stateless, shared
engine cannot do; so this engine reports no gold, leaves the streak to the scene (`None`) and
sees nothing in the ACID stage.
"""

from __future__ import annotations

import cv2
import numpy as np

from touchstone.appraisal.purity.engines.base import (
    AcidObservation,
    Box,
    Detection,
    RubbingObservation,
)
from touchstone.appraisal.purity.frames import BgrFrame

WORK_WIDTH = 160
REVISION = 2

MIN_STONE_SHARE = 0.04
MAX_STONE_SHARE = 0.85
"""Of the frame: a dark side covering nearly everything is the table, not a stone."""
MIN_FILL = 0.45
"""A blob filling less of its box than this is a shadow or a frame edge, not a stone."""
MIN_SEPARATION = 12.0
"""Grey levels between the dark side's and the bright side's medians; a frame with less has
no dark region to speak of (an empty table, a blank wall)."""

_CLOSE_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


class ClassicalEngine:
    """The stone finder; see the module docstring."""

    name = "classical"

    @property
    def version(self) -> str:
        return f"classical-{REVISION} opencv-{cv2.__version__}"

    def stone(self, frame: BgrFrame) -> Detection | None:
        """The stone's box in frame pixels, scored by how much of its box it fills."""
        height, width = frame.shape[:2]
        scale = width / WORK_WIDTH
        size = (WORK_WIDTH, max(1, round(height / scale)))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        ceiling = float(np.percentile(grey, 90))
        clipped = np.minimum(grey, ceiling).astype(np.uint8)
        level, _ = cv2.threshold(clipped, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        dark = clipped <= level
        if not dark.any() or dark.all():
            return None
        if float(np.median(grey[~dark])) - float(np.median(grey[dark])) < MIN_SEPARATION:
            return None
        mask = cv2.morphologyEx(dark.astype(np.uint8) * 255, cv2.MORPH_CLOSE, _CLOSE_KERNEL)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        best: tuple[float, Box] | None = None
        for index in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[index])
            share = area / mask.size
            fill = area / max(1, w * h)
            if share < MIN_STONE_SHARE or share > MAX_STONE_SHARE or fill < MIN_FILL:
                continue
            if best is None or area > best[0]:
                box = (x * scale, y * scale, (x + w) * scale, (y + h) * scale)
                best = (float(area), box)
        if best is None:
            return None
        pixels, box = best
        x1, y1, x2, y2 = box
        fill = pixels * scale * scale / max(1.0, (x2 - x1) * (y2 - y1))
        return Detection("stone", min(1.0, fill), box)

    def detect_rubbing(self, frame: BgrFrame) -> RubbingObservation:
        stone = self.stone(frame)
        return RubbingObservation(stones=() if stone is None else (stone,), streaks=None)

    def detect_acid(self, frame: BgrFrame, streak_region: Box | None) -> AcidObservation:
        """The scene reads the acid against the streak as it was; nothing to add here."""
        return AcidObservation()
