"""Detector engines for the touchstone purity test, chosen per organisation by name.

`classical` needs no model file (colour rules in OpenCV); `onnx-yolo` runs the
customer's YOLOv8 models exported to ONNX, one per stage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from touchstone.appraisal.exceptions import InvalidDetectorModel, UnknownDetectorEngine
from touchstone.appraisal.purity.engines.base import (
    AcidObservation,
    Box,
    Detection,
    DetectorEngine,
    RubbingObservation,
    karat_label,
)
from touchstone.appraisal.purity.engines.classical import ClassicalEngine
from touchstone.appraisal.purity.engines.onnx_yolo import ClassMap, OnnxYoloEngine
from touchstone.core.config import Settings

__all__ = [
    "ENGINE_NAMES",
    "AcidObservation",
    "Box",
    "ClassMap",
    "ClassicalEngine",
    "Detection",
    "DetectorEngine",
    "OnnxYoloEngine",
    "RubbingObservation",
    "build_engine",
    "engine_for",
    "karat_label",
]

EngineFactory = Callable[[Path | None, Path | None, ClassMap | None], DetectorEngine]


def _classical(
    rubbing: Path | None, acid: Path | None, class_map: ClassMap | None
) -> DetectorEngine:
    if rubbing or acid or class_map:
        raise InvalidDetectorModel("the classical engine takes no model files or class map")
    return ClassicalEngine()


def _onnx_yolo(
    rubbing: Path | None, acid: Path | None, class_map: ClassMap | None
) -> DetectorEngine:
    if rubbing is None or acid is None:
        raise InvalidDetectorModel("the onnx-yolo engine needs a rubbing and an acid model")
    return OnnxYoloEngine(rubbing, acid, class_map=class_map)


_FACTORIES: dict[str, EngineFactory] = {
    ClassicalEngine.name: _classical,
    OnnxYoloEngine.name: _onnx_yolo,
}
ENGINE_NAMES = tuple(_FACTORIES)


def build_engine(
    name: str,
    *,
    rubbing_model: Path | None = None,
    acid_model: Path | None = None,
    class_map: ClassMap | None = None,
) -> DetectorEngine:
    """The engine an organisation configured; models are loaded once here, so build one per
    configuration and share it between that organisation's tests."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownDetectorEngine(f"{name!r}; known engines: {', '.join(ENGINE_NAMES)}")
    return factory(rubbing_model, acid_model, class_map)


_engines: dict[tuple[str, Path | None, Path | None], DetectorEngine] = {}
_engines_lock = threading.Lock()


def engine_for(name: str, settings: Settings) -> DetectorEngine:
    """The engine `name` with the app's model files, built once per configuration and shared
    by every test that uses it. Call it in a worker thread: loading an ONNX file takes a while.
    """
    onnx = name != "classical"
    key = (
        name,
        settings.yolo_rubbing_model if onnx else None,
        settings.yolo_acid_model if onnx else None,
    )
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = build_engine(name, rubbing_model=key[1], acid_model=key[2])
            _engines[key] = engine
        return engine
