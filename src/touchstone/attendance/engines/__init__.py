"""Face engines behind one protocol; `default_engine()` is dlib (the only commercially
usable recognition weights a registry ships, checked in FIELD-NOTES)."""

from __future__ import annotations

from touchstone.attendance.engines.base import (
    DetectedFace,
    Embedding,
    FaceEngine,
    RgbImage,
)
from touchstone.attendance.engines.dlib_engine import dlib_engine

__all__ = ["DetectedFace", "Embedding", "FaceEngine", "RgbImage", "default_engine"]


def default_engine() -> FaceEngine:
    return dlib_engine()
