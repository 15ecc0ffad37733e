"""Face engines behind one protocol, chosen by configuration (`FACE_ENGINE`): `dlib`, the
default (the only commercially usable recognition weights a registry ships, checked in
FIELD-NOTES), or `onnx`, a customer's own embedding model (`FACE_ONNX_MODEL`)."""

from __future__ import annotations

import threading
from pathlib import Path

from touchstone.attendance.engines.base import (
    DetectedFace,
    Embedding,
    FaceEngine,
    RgbImage,
)
from touchstone.attendance.engines.dlib_engine import dlib_engine
from touchstone.attendance.engines.onnx_engine import OnnxFaceEngine
from touchstone.attendance.exceptions import InvalidFaceModel
from touchstone.core.config import Settings

__all__ = [
    "DetectedFace",
    "Embedding",
    "FaceEngine",
    "OnnxFaceEngine",
    "RgbImage",
    "default_engine",
    "face_engine",
]


def default_engine() -> FaceEngine:
    return dlib_engine()


_onnx: dict[tuple[Path, float, float], OnnxFaceEngine] = {}
_onnx_lock = threading.Lock()


def face_engine(settings: Settings) -> FaceEngine:
    """The configured engine, loaded once per configuration (call it in a worker thread: a
    model takes a while to load)."""
    if settings.face_engine == "dlib":
        return dlib_engine()
    if settings.face_onnx_model is None:
        raise InvalidFaceModel("FACE_ENGINE=onnx needs FACE_ONNX_MODEL")
    key = (settings.face_onnx_model, settings.face_onnx_mean, settings.face_onnx_std)
    with _onnx_lock:
        engine = _onnx.get(key)
        if engine is None:
            engine = OnnxFaceEngine(key[0], mean=key[1], std=key[2])
            _onnx[key] = engine
        return engine
