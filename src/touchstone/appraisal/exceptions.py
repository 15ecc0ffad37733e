"""Typed failures of the appraisal module, rendered as problem+json by the core handler.

Each `code` tells a client (or the operator configuring detectors) what to fix without
reading the detail text.
"""

from __future__ import annotations

from touchstone.core.errors import AppError


class InvalidFrame(AppError):
    """A purity-test frame that is not a decodable JPEG/PNG or not a BGR image."""

    status, code, title = 422, "invalid_frame", "The frame is not a usable image"


class FrameTooLarge(InvalidFrame):
    """Refused from the header alone, before any pixel buffer is allocated."""

    status, code, title = 413, "frame_too_large", "The frame has more pixels than allowed"


class UnknownDetectorEngine(AppError):
    status, code, title = 422, "unknown_detector_engine", "No detector engine by that name"


class InvalidDetectorModel(AppError):
    """A configured ONNX model that cannot serve as a YOLOv8 detector for its stage."""

    status, code, title = 422, "invalid_detector_model", "The detector model cannot be used"


class InvalidPuritySnapshot(AppError):
    """A stored purity-test snapshot that this pipeline cannot resume from."""

    status, code, title = 422, "invalid_purity_snapshot", "The purity test cannot be resumed"
