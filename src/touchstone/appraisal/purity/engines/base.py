"""What a purity-test detector sees in one frame, and the protocol every engine follows.

Engines only detect; the stage logic (which stone, which gold, when rubbing is confirmed,
when a reading is steady) lives in `touchstone.appraisal.purity.pipeline`, so it is the same for
the classical engine and for a customer's YOLO models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from touchstone.appraisal.purity.frames import BgrFrame

Box = tuple[float, float, float, float]
"""x1, y1, x2, y2 in frame pixels."""

_KARAT_LABEL = re.compile(r"^\s*(18|22|24)\s*k(t|arat)?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    box: Box

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def overlap(self, other: Detection) -> float:
        """Area shared with `other`, in pixels."""
        x1, y1 = max(self.box[0], other.box[0]), max(self.box[1], other.box[1])
        x2, y2 = min(self.box[2], other.box[2]), min(self.box[3], other.box[3])
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
        }


def karat_label(name: str) -> str | None:
    """The canonical karat label ("18K", "22K", "24K") of a class name, if it is one."""
    found = _KARAT_LABEL.match(name)
    return f"{found[1]}K" if found else None


@dataclass(frozen=True, slots=True)
class RubbingObservation:
    """Candidates in a RUBBING frame; the pipeline picks the stone and the gold on it."""

    stones: tuple[Detection, ...] = ()
    golds: tuple[Detection, ...] = ()
    """The ornament (or any gold region) wherever it is; the pipeline keeps those on the stone."""
    streaks: tuple[Detection, ...] | None = None
    """The gold left on the stone; None when the engine cannot tell it from the ornament
    (the pipeline then takes the gold's footprint on the stone as the streak)."""


@dataclass(frozen=True, slots=True)
class AcidObservation:
    """Candidates in an ACID frame."""

    acids: tuple[Detection, ...] = ()
    readings: tuple[Detection, ...] = ()
    """Purity readings labelled "18K", "22K" or "24K", scored by the engine's confidence."""


class DetectorEngine(Protocol):
    """A detector for both stages of the touchstone test.

    `detect_acid` gets the streak's region found while rubbing (frame pixels), so an engine
    can read the streak under the acid; engines that read purity from the whole frame may
    ignore it.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str:
        """What produced the detections (model hashes, thresholds revision), for the record."""
        ...

    def detect_rubbing(self, frame: BgrFrame) -> RubbingObservation: ...

    def detect_acid(self, frame: BgrFrame, streak_region: Box | None) -> AcidObservation: ...
