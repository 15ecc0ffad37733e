"""Optional item-type classification of item photos, with an ONNX image classifier.

Configured by `CLASSIFICATION_MODEL` (none by default: the appraiser's item type stands).
The model takes one NCHW float32 RGB image (ImageNet mean/std normalisation, input size
from the model) and returns one score per class; class names come from a `names` entry in
the model's metadata (a Python/JSON dict or list, as Ultralytics writes it) and must be item
types. The result is a suggestion stored on the item, never a replacement of its type.
"""

from __future__ import annotations

import ast
import threading
import uuid
from pathlib import Path
from typing import Any

import anyio
import cv2
import numpy as np
import onnxruntime as ort

from touchstone.appraisal.exceptions import InvalidFrame
from touchstone.appraisal.purity.frames import decode_frame
from touchstone.appraisal.valuation import ITEM_TYPES
from touchstone.core.config import Settings
from touchstone.core.errors import InvalidInput
from touchstone.core.storage import Storage, StoredObject

MAX_PHOTO_PIXELS = 40_000_000
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class ItemClassifier:
    def __init__(self, path: Path) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.model = path.name
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        height, width = model_input.shape[2:4]
        self.size = (
            width if isinstance(width, int) else 224,
            height if isinstance(height, int) else 224,
        )
        raw = self.session.get_modelmeta().custom_metadata_map.get("names")
        self.names = _names(raw) if raw else list(ITEM_TYPES)

    def classify(self, photo: bytes) -> dict[str, Any]:
        frame = decode_frame(photo, max_pixels=MAX_PHOTO_PIXELS)
        rgb = cv2.cvtColor(cv2.resize(frame, self.size), cv2.COLOR_BGR2RGB)
        tensor = ((rgb.astype(np.float32) / 255 - _MEAN) / _STD).transpose(2, 0, 1)[None]
        scores = np.asarray(self.session.run(None, {self.input_name: tensor})[0]).reshape(-1)
        if scores.size != len(self.names):
            raise InvalidInput("The classification model's outputs do not match its class names")
        shifted = np.exp(scores - scores.max())
        probabilities = shifted / shifted.sum()
        best = int(probabilities.argmax())
        label = self.names[best]
        return {
            "item_type": label if label in ITEM_TYPES else "other",
            "label": label,
            "score": round(float(probabilities[best]), 4),
            "model": self.model,
        }


def _names(raw: str) -> list[str]:
    parsed = ast.literal_eval(raw)
    if isinstance(parsed, dict):
        return [str(parsed[key]) for key in sorted(parsed)]
    return [str(name) for name in parsed]


_loaded: dict[Path, ItemClassifier] = {}
_lock = threading.Lock()


def classifier_for(path: Path) -> ItemClassifier:
    with _lock:
        if path not in _loaded:
            _loaded[path] = ItemClassifier(path)
        return _loaded[path]


async def classify_stored(
    settings: Settings, storage: Storage, org_id: uuid.UUID, stored: StoredObject
) -> dict[str, Any] | None:
    """The photo's suggested item type, or None when no classifier is configured."""
    if settings.classification_model is None:
        return None
    opened = await storage.open(org_id, stored.key)
    photo = b"".join([chunk async for chunk in opened.chunks])
    model = await anyio.to_thread.run_sync(classifier_for, settings.classification_model)
    try:
        return await anyio.to_thread.run_sync(model.classify, photo)
    except InvalidFrame as error:
        raise InvalidInput(f"The photo cannot be classified: {error.detail}") from None
