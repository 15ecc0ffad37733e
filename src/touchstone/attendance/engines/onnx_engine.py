"""A customer's own face-embedding model (ONNX) in the engine slot, on onnxruntime.

Only the descriptor changes: faces are still found by dlib's HOG detector with the 5-point
landmarks, and the quality gates still measure dlib's 150-px chip, so enrolment refuses
the same photos whatever the model. For the descriptor, each face is aligned by its five
landmarks to the model's input size (dlib's face chip), scaled as `(pixel - mean) / std`
in RGB order, fed as NCHW or NHWC (read from the model's input shape), and the model's
first output is L2-normalised, so Euclidean distance follows cosine similarity (0 to 2).

The model must output `EMBEDDING_DIMENSION` (128) numbers per face: embeddings are stored in
a `vector(128)` column with its index. Its thresholds are not dlib's: after switching, an org
re-enrols and calibrates (`GET /calibration`). The engine's name carries a digest of the
model file, so recognition only ever compares embeddings made by the same model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import dlib
import numpy as np
import onnxruntime as ort

from touchstone.attendance.engines.base import DetectedFace, Embedding, RgbImage
from touchstone.attendance.engines.dlib_engine import dlib_engine
from touchstone.attendance.exceptions import InvalidFaceModel
from touchstone.attendance.models import EMBEDDING_DIMENSION


def landmarks_shape(face: DetectedFace) -> dlib.full_object_detection:
    """The detected face as dlib's shape object, to align a chip by its five points."""
    left, top, right, bottom = face.box
    points = [dlib.point(round(x), round(y)) for x, y in face.landmarks]
    return dlib.full_object_detection(dlib.rectangle(left, top, right, bottom), points)


class OnnxFaceEngine:
    """Detection, landmarks and quality chips from dlib; the descriptor from the model."""

    dimension = EMBEDDING_DIMENSION

    def __init__(self, model: Path, *, mean: float = 127.5, std: float = 127.5) -> None:
        if std <= 0:
            raise InvalidFaceModel(f"the input std must be positive, not {std}")
        try:
            data = model.read_bytes()
            self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors on bad models
            raise InvalidFaceModel(f"{model.name}: {exc}") from exc
        self.name = f"onnx-{hashlib.sha256(data).hexdigest()[:12]}"
        self.mean, self.std = mean, std
        (source,) = self.session.get_inputs()[:1]
        shape = source.shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
            raise InvalidFaceModel(
                f"input {source.name} of shape {shape} is not [N, 3, H, W] or [N, H, W, 3] "
                "with a fixed size"
            )
        if shape[1] == 3:
            self.channels_first, self.height, self.width = True, shape[2], shape[3]
        elif shape[3] == 3:
            self.channels_first, self.height, self.width = False, shape[1], shape[2]
        else:
            raise InvalidFaceModel(f"input of shape {shape} has no 3-channel axis")
        self.input_name = source.name
        output = self.session.get_outputs()[0]
        last = output.shape[-1] if output.shape else None
        if isinstance(last, int) and last != EMBEDDING_DIMENSION:
            raise InvalidFaceModel(
                f"the model outputs {last} numbers per face; the engine slot takes "
                f"{EMBEDDING_DIMENSION}"
            )
        self.faces = dlib_engine()

    def detect(self, image: RgbImage, *, upsample: int = 0) -> list[DetectedFace]:
        return self.faces.detect(image, upsample=upsample)

    def chip(self, image: RgbImage, face: DetectedFace) -> RgbImage:
        return self.faces.chip(image, face)

    def embed(self, image: RgbImage, face: DetectedFace) -> Embedding:
        side = max(self.height, self.width)
        aligned = np.asarray(dlib.get_face_chip(image, landmarks_shape(face), size=side))
        if (self.height, self.width) != (side, side):
            aligned = cv2.resize(aligned, (self.width, self.height), interpolation=cv2.INTER_AREA)
        blob = (aligned.astype(np.float32) - self.mean) / self.std
        if self.channels_first:
            blob = blob.transpose(2, 0, 1)
        (output, *_) = self.session.run(None, {self.input_name: blob[None, ...]})
        vector = np.asarray(output, dtype=np.float32).reshape(-1)
        if vector.size != EMBEDDING_DIMENSION:
            raise InvalidFaceModel(
                f"the model output {vector.size} numbers; the engine slot takes "
                f"{EMBEDDING_DIMENSION}"
            )
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0:
            raise InvalidFaceModel("the model output a zero or non-finite embedding")
        return vector / norm
