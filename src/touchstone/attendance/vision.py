"""From photo bytes to faces: decoding, the enrolment gates and the descriptors.

CPU-bound; the service runs these in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from touchstone.attendance import quality
from touchstone.attendance.engines import DetectedFace, Embedding, FaceEngine, RgbImage
from touchstone.attendance.engines.liveness import Liveness, LivenessEngine, liveness_engine
from touchstone.attendance.exceptions import EnrolmentRefused, InvalidPhoto, PhotoTooLarge

MAX_SIDE = 1024
"""Photos are scaled down to this longest side first: HOG time grows with the pixels, and a
face wide enough to recognise stays wide enough."""
MAX_PIXELS = 40_000_000
SMALL_PHOTO_SIDE = 800
"""At or below this, a photo is searched at twice the size too (HOG finds faces from about
80 px; class photos often hold smaller ones)."""


def photo_size(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of a JPEG or PNG from its header alone (Pillow opens lazily), or
    `InvalidPhoto`: a small file declaring 30000 x 30000 pixels would otherwise make OpenCV
    allocate gigabytes."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            kind = header.format
    except Image.DecompressionBombError as exc:
        raise PhotoTooLarge(f"The photo has too many pixels; at most {max_pixels:,}") from exc
    except OSError as exc:
        raise InvalidPhoto() from exc
    if kind not in ("JPEG", "PNG"):
        raise InvalidPhoto()
    if width * height > max_pixels:
        raise PhotoTooLarge(f"The photo has {width}x{height} pixels; at most {max_pixels:,}")
    return width, height


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> RgbImage:
    """RGB, its longest side at most `MAX_SIDE`; the header is checked before any pixel is
    decoded (`photo_size`)."""
    width, height = photo_size(data, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[:2] != (height, width):
        raise InvalidPhoto()
    height, width = image.shape[:2]
    scale = MAX_SIDE / max(height, width)
    if scale < 1:
        size = (round(width * scale), round(height * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image[:, :, ::-1])


def find_faces(engine: FaceEngine, image: RgbImage) -> list[DetectedFace]:
    upsample = 1 if max(image.shape[:2]) <= SMALL_PHOTO_SIDE else 0
    return engine.detect(image, upsample=upsample)


@dataclass(frozen=True, slots=True)
class Enrolment:
    embedding: Embedding
    quality: dict[str, float]


def enrolment(engine: FaceEngine, data: bytes) -> Enrolment:
    """The one face of an enrolment photo, if it passes every gate; `EnrolmentRefused`
    naming the first gate it fails otherwise."""
    image = decode(data)
    faces = find_faces(engine, image)
    if len(faces) != 1:
        found = "no face was found" if not faces else f"{len(faces)} faces were found"
        raise EnrolmentRefused("face_count", f"{found}; an enrolment photo needs exactly one")
    (face,) = faces
    measured = quality.measure(face, engine.chip(image, face))
    if failed := measured.failed_gate():
        raise EnrolmentRefused(*failed, quality=measured.to_dict())
    return Enrolment(engine.embed(image, face), measured.to_dict())


@dataclass(frozen=True, slots=True)
class SeenFace:
    box: tuple[int, int, int, int]
    """In the photo as scaled for analysis (longest side at most `MAX_SIDE`)."""
    embedding: Embedding
    liveness: Liveness = Liveness.NOT_ASSESSED


@dataclass(frozen=True, slots=True)
class Scene:
    faces: list[SeenFace]
    seconds: float
    engine: str
    """The engine that made the descriptors: only its own enrolled faces compare with them."""


def seen_face(
    engine: FaceEngine, liveness: LivenessEngine, image: RgbImage, face: DetectedFace
) -> SeenFace:
    return SeenFace(face.box, engine.embed(image, face), liveness.assess(image, face))


def scene(engine: FaceEngine, data: bytes, liveness: LivenessEngine | None = None) -> Scene:
    """Every face of a (class) photo with its descriptor; no quality gate: a face too poor
    to recognise simply comes out unknown."""
    started = time.perf_counter()
    image = decode(data)
    checker = liveness or liveness_engine()
    faces = [seen_face(engine, checker, image, face) for face in find_faces(engine, image)]
    return Scene(faces, time.perf_counter() - started, engine.name)
