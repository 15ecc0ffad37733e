"""The production detector: a customer's YOLOv8 models, exported to ONNX, on onnxruntime.

One model per stage, as the settings name them: `YOLO_RUBBING_MODEL` finds the stone and the
gold (and the streak, if it has such a class); `YOLO_ACID_MODEL` finds the acid and reads
the purity classes (`18k`, `22k`, `24k`). Ultralytics is AGPL and never imported: its ONNX
export is read here directly — letterbox to the model's input, decode the
`[1, 4 + classes, N]` output (centre x, centre y, width, height, then one score per class),
per-class non-maximum suppression, boxes mapped back to frame pixels.

Class names come from `class_map` when given, else from the `names` entry Ultralytics writes
into the model's metadata.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from touchstone.appraisal.exceptions import InvalidDetectorModel
from touchstone.appraisal.purity.engines.base import (
    AcidObservation,
    Box,
    Detection,
    RubbingObservation,
    karat_label,
)
from touchstone.appraisal.purity.frames import BgrFrame

ClassNames = Mapping[int, str]
ClassMap = Mapping[str, ClassNames]
"""Class names per stage model: {"rubbing": {0: "stone", 1: "gold"}, "acid": {...}}."""

STAGE_MODELS = ("rubbing", "acid")
DEFAULT_INPUT_SIZE = 640
LETTERBOX_FILL = 114

STONE_CLASSES = frozenset({"stone", "touchstone"})
GOLD_CLASSES = frozenset({"gold", "ornament", "jewellery", "jewelry"})
STREAK_CLASSES = frozenset({"streak", "gold_streak", "rub_mark"})
ACID_CLASSES = frozenset({"acid", "acid_drop"})

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model's input: input = frame * scale + pad."""

    scale: float
    pad_x: int
    pad_y: int

    def to_frame(self, boxes: Floats, width: int, height: int) -> Floats:
        """Boxes (x1, y1, x2, y2) in input pixels -> frame pixels, clipped to the frame."""
        mapped = boxes.copy()
        mapped[:, [0, 2]] = (mapped[:, [0, 2]] - self.pad_x) / self.scale
        mapped[:, [1, 3]] = (mapped[:, [1, 3]] - self.pad_y) / self.scale
        mapped[:, [0, 2]] = mapped[:, [0, 2]].clip(0, width)
        mapped[:, [1, 3]] = mapped[:, [1, 3]].clip(0, height)
        return mapped


def letterbox(frame: BgrFrame, input_width: int, input_height: int) -> tuple[Floats, Letterbox]:
    """The model's input blob (1, 3, H, W, RGB in 0..1) with the frame centred, aspect kept."""
    height, width = frame.shape[:2]
    scale = min(input_width / width, input_height / height)
    new_width, new_height = round(width * scale), round(height * scale)
    pad_x, pad_y = (input_width - new_width) // 2, (input_height - new_height) // 2
    canvas = np.full((input_height, input_width, 3), LETTERBOX_FILL, np.uint8)
    resized = cv2.resize(frame, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    canvas[pad_y : pad_y + new_height, pad_x : pad_x + new_width] = resized
    blob = np.asarray(cv2.dnn.blobFromImage(canvas, 1 / 255, swapRB=True), np.float32)
    return blob, Letterbox(scale, pad_x, pad_y)


def non_max_suppression(boxes: Floats, scores: Floats, iou_threshold: float) -> list[int]:
    """Indices of the boxes kept, best score first; a box overlapping a better one by more
    than `iou_threshold` (intersection over union) is dropped."""
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        best, rest = int(order[0]), order[1:]
        kept.append(best)
        width = np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(
            boxes[best, 0], boxes[rest, 0]
        )
        height = np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(
            boxes[best, 1], boxes[rest, 1]
        )
        inter = width.clip(0) * height.clip(0)
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return kept


def decode_yolo(
    output: Floats,
    fitted: Letterbox,
    frame_size: tuple[int, int],
    names: ClassNames,
    *,
    score_threshold: float,
    iou_threshold: float,
    max_candidates: int,
) -> list[Detection]:
    """Detections in frame pixels from a YOLOv8 output `[1, 4 + classes, N]`."""
    classes = len(names)
    if output.ndim != 3 or output.shape[0] != 1 or 4 + classes not in output.shape[1:]:
        raise InvalidDetectorModel(
            f"output of shape {list(output.shape)} is not [1, {4 + classes}, N] "
            f"for {classes} class names"
        )
    rows = output[0] if output.shape[1] == 4 + classes else output[0].T
    class_scores = rows[4:]
    class_ids = class_scores.argmax(axis=0)
    scores = class_scores[class_ids, np.arange(rows.shape[1])]
    candidates = np.flatnonzero(scores >= score_threshold)
    if candidates.size > max_candidates:
        candidates = candidates[np.argsort(-scores[candidates])[:max_candidates]]
    if candidates.size == 0:
        return []
    cx, cy, w, h = rows[:4, candidates]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes = fitted.to_frame(boxes.astype(np.float32), *frame_size)
    ids, kept_scores = class_ids[candidates], scores[candidates]
    # A box left with no area after clipping lay in the letterbox padding only.
    visible = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, ids, kept_scores = boxes[visible], ids[visible], kept_scores[visible]
    # One suppression for all classes: shifting each class far apart keeps classes separate.
    shifted = boxes + (ids * (max(frame_size) + 1.0))[:, None].astype(np.float32)
    keep = non_max_suppression(shifted, kept_scores, iou_threshold)
    detections = []
    for i in keep:
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        detections.append(Detection(names[int(ids[i])], float(kept_scores[i]), (x1, y1, x2, y2)))
    return detections


def _names_from_metadata(session: ort.InferenceSession, path: Path) -> dict[int, str]:
    text = session.get_modelmeta().custom_metadata_map.get("names")
    if text is None:
        raise InvalidDetectorModel(f"{path.name} has no `names` metadata; give a class map")
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise InvalidDetectorModel(f"{path.name}: unreadable `names` metadata") from exc
    if isinstance(parsed, list):
        parsed = dict(enumerate(parsed))
    if not isinstance(parsed, dict) or not all(
        isinstance(k, int) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise InvalidDetectorModel(f"{path.name}: `names` metadata is not a class list")
    return parsed


class YoloModel:
    """One exported YOLOv8 detector on one onnxruntime session."""

    def __init__(
        self,
        path: Path,
        *,
        names: ClassNames | None,
        input_size: int | None,
        threads: int,
    ) -> None:
        try:
            content = path.read_bytes()
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(
                content, options, providers=["CPUExecutionProvider"]
            )
        except OSError as exc:
            raise InvalidDetectorModel(f"{path}: cannot read the model ({exc})") from exc
        except Exception as exc:  # onnxruntime raises its own untyped errors on bad models
            raise InvalidDetectorModel(f"{path.name} is not a loadable ONNX model") from exc
        self.path = path
        self.digest = hashlib.sha256(content).hexdigest()
        found = dict(names) if names is not None else _names_from_metadata(self.session, path)
        if sorted(found) != list(range(len(found))):
            raise InvalidDetectorModel(f"{path.name}: class ids must be 0..{len(found) - 1}")
        self.names = found
        model_input = self.session.get_inputs()[0]
        if model_input.type != "tensor(float)":  # e.g. a half-precision export
            raise InvalidDetectorModel(f"{path.name} takes {model_input.type}, not float32")
        self.input_name = model_input.name
        shape = model_input.shape
        static = len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int)
        if static and input_size is not None and (shape[2], shape[3]) != (input_size, input_size):
            raise InvalidDetectorModel(f"{path.name} takes {shape[3]}x{shape[2]} input only")
        size = input_size or DEFAULT_INPUT_SIZE
        self.input_height: int = shape[2] if static else size
        self.input_width: int = shape[3] if static else size

    def labels(self) -> frozenset[str]:
        return frozenset(name.strip().lower() for name in self.names.values())

    def detect(
        self, frame: BgrFrame, *, score_threshold: float, iou_threshold: float, max_candidates: int
    ) -> list[Detection]:
        blob, fitted = letterbox(frame, self.input_width, self.input_height)
        output = self.session.run(None, {self.input_name: blob})[0]
        height, width = frame.shape[:2]
        return decode_yolo(
            np.asarray(output, np.float32),
            fitted,
            (width, height),
            self.names,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
            max_candidates=max_candidates,
        )


def _role(detections: list[Detection], classes: frozenset[str], role: str) -> tuple[Detection, ...]:
    return tuple(
        Detection(role, d.score, d.box) for d in detections if d.label.strip().lower() in classes
    )


class OnnxYoloEngine:
    """The customer's rubbing and acid YOLO models; see the module docstring."""

    name = "onnx-yolo"

    def __init__(
        self,
        rubbing_model: Path,
        acid_model: Path,
        *,
        class_map: ClassMap | None = None,
        input_size: int | None = None,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_candidates: int = 1000,
        threads: int = 1,
    ) -> None:
        class_map = class_map or {}
        if unknown := set(class_map) - set(STAGE_MODELS):
            raise InvalidDetectorModel(f"class map keys must be {STAGE_MODELS}, not {unknown}")
        self.rubbing = YoloModel(
            rubbing_model, names=class_map.get("rubbing"), input_size=input_size, threads=threads
        )
        self.acid = YoloModel(
            acid_model, names=class_map.get("acid"), input_size=input_size, threads=threads
        )
        rubbing_labels, acid_labels = self.rubbing.labels(), self.acid.labels()
        if not (rubbing_labels & STONE_CLASSES and rubbing_labels & GOLD_CLASSES):
            raise InvalidDetectorModel(
                f"the rubbing model needs stone and gold classes, has {sorted(rubbing_labels)}"
            )
        if not (acid_labels & ACID_CLASSES and any(map(karat_label, acid_labels))):
            raise InvalidDetectorModel(
                f"the acid model needs acid and karat classes, has {sorted(acid_labels)}"
            )
        self.sees_streaks = bool(rubbing_labels & STREAK_CLASSES)
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_candidates = max_candidates

    @property
    def version(self) -> str:
        return ";".join(
            f"{stage}={model.path.name}@sha256:{model.digest[:16]}"
            for stage, model in (("rubbing", self.rubbing), ("acid", self.acid))
        )

    def _detect(self, model: YoloModel, frame: BgrFrame) -> list[Detection]:
        return model.detect(
            frame,
            score_threshold=self.score_threshold,
            iou_threshold=self.iou_threshold,
            max_candidates=self.max_candidates,
        )

    def detect_rubbing(self, frame: BgrFrame) -> RubbingObservation:
        found = self._detect(self.rubbing, frame)
        return RubbingObservation(
            stones=_role(found, STONE_CLASSES, "stone"),
            golds=_role(found, GOLD_CLASSES, "gold"),
            streaks=_role(found, STREAK_CLASSES, "streak") if self.sees_streaks else None,
        )

    def detect_acid(self, frame: BgrFrame, streak_region: Box | None) -> AcidObservation:
        """The whole frame is read: the model was trained on whole frames, not on crops."""
        found = self._detect(self.acid, frame)
        readings = tuple(
            Detection(label, d.score, d.box) for d in found if (label := karat_label(d.label))
        )
        return AcidObservation(acids=_role(found, ACID_CLASSES, "acid"), readings=readings)
