"""Quality gates for an enrolment photo: each refusal names the gate that failed.

Measured on the aligned 150-px chip the descriptor sees, so a threshold means the same for
a 400-px and a 4000-px photo. Thresholds were set on the development identities of the
faces corpus (docs/attendance.md): every clean photo there passes with room to spare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from touchstone.attendance.engines.base import DetectedFace, RgbImage

MIN_FACE_PX = 80
"""Face box width in the (downscaled) photo; smaller faces give unstable descriptors."""
MIN_SHARPNESS = 40.0
"""Variance of the Laplacian of the grey chip; clean corpus photos measure 80 to 1800."""
MAX_YAW = 0.25
"""Nose offset from the eyes' midpoint along the eye line, in eye distances."""
PITCH_RANGE = (0.45, 1.1)
"""Nose drop below the eye line, in eye distances (frontal faces measure 0.65 to 0.9)."""
MAX_ROLL_DEGREES = 25.0
BRIGHTNESS_RANGE = (50.0, 215.0)
MIN_CONTRAST = 20.0
"""Standard deviation of the chip's grey levels: below it, a face washed out or in shadow."""


@dataclass(frozen=True, slots=True)
class Quality:
    face_px: int
    sharpness: float
    yaw: float
    pitch: float
    roll_degrees: float
    brightness: float
    contrast: float

    def failed_gate(self) -> tuple[str, str] | None:
        """The first gate this face fails, as (gate, explanation); None when all pass.

        Lighting comes before blur: a dark face also has little Laplacian variance, and
        "more light" is the advice that fixes both."""
        if self.face_px < MIN_FACE_PX:
            return "face_size", f"the face is {self.face_px} px wide; at least {MIN_FACE_PX}"
        dark, bright = BRIGHTNESS_RANGE
        if not dark <= self.brightness <= bright or self.contrast < MIN_CONTRAST:
            return "lighting", (
                f"brightness {self.brightness:.0f} (needs {dark:.0f}-{bright:.0f}), "
                f"contrast {self.contrast:.0f} (needs {MIN_CONTRAST:.0f})"
            )
        if self.sharpness < MIN_SHARPNESS:
            return "blur", f"sharpness {self.sharpness:.0f} is below {MIN_SHARPNESS:.0f}"
        low, high = PITCH_RANGE
        if (
            abs(self.yaw) > MAX_YAW
            or not low <= self.pitch <= high
            or abs(self.roll_degrees) > MAX_ROLL_DEGREES
        ):
            return "pose", (
                f"not frontal (yaw {self.yaw:.2f}, pitch {self.pitch:.2f}, "
                f"roll {self.roll_degrees:.0f} degrees)"
            )
        return None

    def to_dict(self) -> dict[str, float]:
        return {
            "face_px": self.face_px,
            "sharpness": round(self.sharpness, 1),
            "yaw": round(self.yaw, 3),
            "pitch": round(self.pitch, 3),
            "roll_degrees": round(self.roll_degrees, 1),
            "brightness": round(self.brightness, 1),
            "contrast": round(self.contrast, 1),
        }


def pose(face: DetectedFace) -> tuple[float, float, float]:
    """(yaw, pitch, roll in degrees) from the five landmarks, in the face's own frame."""
    points = np.asarray(face.landmarks, dtype=np.float64)
    eyes = sorted([points[0:2].mean(axis=0), points[2:4].mean(axis=0)], key=lambda p: p[0])
    left, right = eyes
    along = right - left
    distance = float(np.linalg.norm(along)) or 1.0
    along /= distance
    down = np.array([-along[1], along[0]])
    offset = points[4] - (left + right) / 2
    roll = math.degrees(math.atan2(along[1], along[0]))
    return float(offset @ along) / distance, float(offset @ down) / distance, roll


def measure(face: DetectedFace, chip: RgbImage) -> Quality:
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    yaw, pitch, roll = pose(face)
    return Quality(
        face_px=face.width,
        sharpness=float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        yaw=yaw,
        pitch=pitch,
        roll_degrees=roll,
        brightness=float(grey.mean()),
        contrast=float(grey.std()),
    )
