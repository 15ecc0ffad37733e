"""Liveness (anti-spoofing) behind a protocol, and the default that does not pretend.

Nothing this module ships can tell a face from a photo or a screen held up to the camera:
dlib's models recognise, they do not detect presentation attacks, and no registry ships
commercially usable anti-spoofing weights (FIELD-NOTES). So the default engine answers
`not_assessed` for every face, and every mark and recognition carries that verdict, so no
answer of the API can be read as a claim that a spoof was ruled out. A deployment with a
real liveness model registers an engine in `LIVENESS_ENGINES` and names it in
`LIVENESS_ENGINE`; its verdicts then travel the same way, and the live camera never marks a
face judged `spoof`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from touchstone.attendance.engines.base import DetectedFace, RgbImage
from touchstone.attendance.exceptions import UnknownLivenessEngine


class Liveness(StrEnum):
    LIVE = "live"
    SPOOF = "spoof"
    NOT_ASSESSED = "not_assessed"


class LivenessEngine(Protocol):
    name: str

    def assess(self, image: RgbImage, face: DetectedFace) -> Liveness:
        """Whether the face is a live person in front of the camera, as far as the engine can
        tell; `NOT_ASSESSED` when it cannot."""
        ...


class NotAssessed:
    """The default: makes no liveness claim at all."""

    name = "none"

    def assess(self, image: RgbImage, face: DetectedFace) -> Liveness:
        return Liveness.NOT_ASSESSED


LIVENESS_ENGINES: dict[str, LivenessEngine] = {NotAssessed.name: NotAssessed()}


def liveness_engine(name: str = NotAssessed.name) -> LivenessEngine:
    """The registered engine `name` (the default makes no claim)."""
    try:
        return LIVENESS_ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(LIVENESS_ENGINES))
        raise UnknownLivenessEngine(f"{name!r}; known: {known}") from None
