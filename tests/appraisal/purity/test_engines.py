"""Detector engines: the ONNX path (letterbox, decode, NMS, class names) on models whose
output is known, the classical engine on synthetic frames, and the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench.generators.assay_clips import AssayClip, AssaySpec, Condition
from bench.generators.touchstone_clips import ClipSpec, TouchstoneClip

from tests.appraisal.onnx_models import constant_output_model, yolo_like_model, yolo_output
from touchstone.appraisal.exceptions import InvalidDetectorModel, UnknownDetectorEngine
from touchstone.appraisal.purity.engines import (
    ENGINE_NAMES,
    AcidObservation,
    ClassicalEngine,
    Detection,
    OnnxYoloEngine,
    build_engine,
    karat_label,
)
from touchstone.appraisal.purity.engines.base import Box
from touchstone.appraisal.purity.engines.onnx_yolo import letterbox, non_max_suppression
from touchstone.appraisal.purity.pipeline import Karat

RUBBING_NAMES = {0: "stone", 1: "gold"}
ACID_NAMES = {0: "acid", 1: "18k", 2: "22k", 3: "24k"}


def _iou(a: Box, b: Box) -> float:
    inter = Detection("", 0, a).overlap(Detection("", 0, b))
    return inter / (Detection("", 0, a).area + Detection("", 0, b).area - inter)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.fixture
def acid_model(tmp_path: Path) -> Path:
    """An acid model that always sees acid and a 22K reading, names in its metadata."""
    output = yolo_output([(320, 320, 200, 100, 0, 0.9), (320, 320, 200, 100, 2, 0.8)], 4)
    return _write(tmp_path / "acid.onnx", constant_output_model(output, names=ACID_NAMES))


def _engine(
    rubbing: bytes,
    acid: Path,
    tmp_path: Path,
    *,
    class_map: dict[str, dict[int, str]] | None = None,
    input_size: int | None = None,
    score_threshold: float = 0.25,
) -> OnnxYoloEngine:
    return OnnxYoloEngine(
        _write(tmp_path / "rubbing.onnx", rubbing),
        acid,
        class_map=class_map,
        input_size=input_size,
        score_threshold=score_threshold,
    )


def test_letterbox_keeps_the_aspect_and_pads_with_grey() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :, 2] = 255  # red in BGR
    blob, fitted = letterbox(frame, 320, 320)
    assert blob.shape == (1, 3, 320, 320)
    assert blob.dtype == np.float32
    assert (fitted.scale, fitted.pad_x, fitted.pad_y) == (0.5, 0, 40)
    assert blob[0, :, 20, 160] == pytest.approx([114 / 255] * 3)  # padding
    assert blob[0, :, 160, 160] == pytest.approx([1.0, 0.0, 0.0])  # RGB order, 0..1


def test_decoded_boxes_are_mapped_back_through_the_letterbox(
    tmp_path: Path, acid_model: Path
) -> None:
    # A 1280x960 frame in a 640 input: scale 0.5, 80 pixels of padding above and below.
    output = yolo_output([(200, 180, 100, 60, 0, 0.95), (500, 400, 40, 40, 1, 0.7)], 2)
    engine = _engine(constant_output_model(output, names=RUBBING_NAMES), acid_model, tmp_path)
    seen = engine.detect_rubbing(np.zeros((960, 1280, 3), np.uint8))
    (stone,) = seen.stones
    (gold,) = seen.golds
    assert stone.box == pytest.approx((300, 140, 500, 260))
    assert stone.score == pytest.approx(0.95)
    assert gold.box == pytest.approx((960, 600, 1040, 680))
    assert seen.streaks is None  # this model has no streak class


def test_boxes_beyond_the_picture_are_clipped_to_the_frame(
    tmp_path: Path, acid_model: Path
) -> None:
    # A 640x320 frame in a 640 input: 160 pixels of padding above and below.
    output = yolo_output(
        [
            (20, 170, 100, 100, 0, 0.9),  # reaches past the left edge and into the padding
            (300, 60, 100, 100, 0, 0.8),  # entirely in the padding: nothing in the frame
        ],
        2,
    )
    engine = _engine(constant_output_model(output, names=RUBBING_NAMES), acid_model, tmp_path)
    (stone,) = engine.detect_rubbing(np.zeros((320, 640, 3), np.uint8)).stones
    assert stone.box == pytest.approx((0, 0, 70, 60))


def test_nms_keeps_the_best_of_overlapping_boxes_per_class(
    tmp_path: Path, acid_model: Path
) -> None:
    output = yolo_output(
        [
            (100, 100, 80, 80, 0, 0.6),
            (104, 102, 80, 80, 0, 0.9),  # same class, overlaps the first: it wins
            (100, 100, 80, 80, 1, 0.5),  # same place, other class: kept
            (400, 400, 80, 80, 0, 0.7),  # same class, elsewhere: kept
            (300, 300, 50, 50, 1, 0.1),  # below the score threshold
        ],
        2,
    )
    engine = _engine(constant_output_model(output, names=RUBBING_NAMES), acid_model, tmp_path)
    seen = engine.detect_rubbing(np.zeros((640, 640, 3), np.uint8))
    assert sorted(round(s.score, 2) for s in seen.stones) == [0.7, 0.9]
    assert [round(g.score, 2) for g in seen.golds] == [0.5]


def test_non_max_suppression_orders_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.5, 0.8, 0.6], np.float32)
    assert non_max_suppression(boxes, scores, 0.45) == [1, 2]
    assert non_max_suppression(boxes, scores, 0.9) == [1, 2, 0]


def test_output_with_anchors_first_is_read_too(tmp_path: Path, acid_model: Path) -> None:
    output = yolo_output([(320, 320, 64, 64, 1, 0.8)], 2).transpose(0, 2, 1).copy()
    engine = _engine(constant_output_model(output, names=RUBBING_NAMES), acid_model, tmp_path)
    (gold,) = engine.detect_rubbing(np.zeros((640, 640, 3), np.uint8)).golds
    assert gold.box == pytest.approx((288, 288, 352, 352))


def test_class_names_come_from_the_map_over_the_metadata(tmp_path: Path) -> None:
    rubbing = yolo_output([(320, 320, 64, 64, 0, 0.8)], 3)
    acid = yolo_output([(100, 100, 50, 50, 0, 0.9), (300, 300, 60, 60, 3, 0.85)], 4)
    # No metadata on either model: the map is the only source of names.
    engine = OnnxYoloEngine(
        _write(tmp_path / "r.onnx", constant_output_model(rubbing)),
        _write(tmp_path / "a.onnx", constant_output_model(acid)),
        class_map={"rubbing": {0: "gold", 1: "Stone", 2: "streak"}, "acid": ACID_NAMES},
    )
    seen = engine.detect_rubbing(np.zeros((640, 640, 3), np.uint8))
    assert [g.label for g in seen.golds] == ["gold"]
    assert seen.stones == ()
    assert seen.streaks == ()  # the map names a streak class, so streaks are looked for
    acid_seen = engine.detect_acid(np.zeros((640, 640, 3), np.uint8), None)
    assert [a.label for a in acid_seen.acids] == ["acid"]
    assert [(r.label, round(r.score, 2)) for r in acid_seen.readings] == [("24K", 0.85)]


def test_class_names_are_read_from_the_model_metadata(tmp_path: Path, acid_model: Path) -> None:
    output = yolo_output([(320, 320, 64, 64, 0, 0.8)], 2)
    engine = _engine(constant_output_model(output, names=RUBBING_NAMES), acid_model, tmp_path)
    assert engine.rubbing.names == RUBBING_NAMES
    assert engine.acid.names == ACID_NAMES
    reading = engine.detect_acid(np.zeros((480, 640, 3), np.uint8), (0, 0, 10, 10)).readings
    assert [r.label for r in reading] == ["22K"]
    assert "rubbing=rubbing.onnx@sha256:" in engine.version


@pytest.mark.parametrize(
    ("rubbing", "class_map", "message"),
    [
        (constant_output_model(yolo_output([], 2)), None, "names"),
        (constant_output_model(yolo_output([], 2), names={0: "ring", 1: "gold"}), None, "stone"),
        (constant_output_model(yolo_output([], 2)), {"acidic": {0: "acid"}}, "class map"),
        (b"not a model", None, "ONNX"),
    ],
)
def test_unusable_models_are_refused(
    tmp_path: Path,
    acid_model: Path,
    rubbing: bytes,
    class_map: dict[str, dict[int, str]] | None,
    message: str,
) -> None:
    with pytest.raises(InvalidDetectorModel, match=message):
        _engine(rubbing, acid_model, tmp_path, class_map=class_map)


def test_output_that_does_not_match_the_class_names_is_refused(
    tmp_path: Path, acid_model: Path
) -> None:
    output = yolo_output([], 5)  # 9 channels, but only 2 names
    engine = _engine(constant_output_model(output, names=RUBBING_NAMES), acid_model, tmp_path)
    with pytest.raises(InvalidDetectorModel, match="not \\[1, 6, N\\]"):
        engine.detect_rubbing(np.zeros((64, 64, 3), np.uint8))


def test_random_yolo_shaped_model_runs_end_to_end(tmp_path: Path, acid_model: Path) -> None:
    model = yolo_like_model(2, 160, names=RUBBING_NAMES)
    engine = _engine(model, acid_model, tmp_path, score_threshold=0.3)
    frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    seen = engine.detect_rubbing(frame)
    found = seen.stones + seen.golds
    assert found  # scores sit around 0.5 with a zero class bias
    for detection in found:
        assert detection.score >= 0.3
        x1, y1, x2, y2 = detection.box
        assert 0 <= x1 < x2 <= 320
        assert 0 <= y1 < y2 <= 240
    for same_class in (seen.stones, seen.golds):  # what NMS leaves never overlaps much
        for index, first in enumerate(same_class):
            assert all(_iou(first.box, other.box) <= 0.45 for other in same_class[index + 1 :])


def test_a_static_input_size_must_match_the_one_asked_for(tmp_path: Path, acid_model: Path) -> None:
    model = constant_output_model(yolo_output([], 2), input_size=640, names=RUBBING_NAMES)
    with pytest.raises(InvalidDetectorModel, match="640x640"):
        _engine(model, acid_model, tmp_path, input_size=320)


def test_build_engine_by_name(tmp_path: Path, acid_model: Path) -> None:
    assert ENGINE_NAMES == ("classical", "onnx-yolo")
    assert isinstance(build_engine("classical"), ClassicalEngine)
    rubbing = _write(
        tmp_path / "r.onnx", constant_output_model(yolo_output([], 2), names=RUBBING_NAMES)
    )
    engine = build_engine("onnx-yolo", rubbing_model=rubbing, acid_model=acid_model)
    assert engine.name == "onnx-yolo"
    with pytest.raises(InvalidDetectorModel):
        build_engine("onnx-yolo", rubbing_model=rubbing)
    with pytest.raises(InvalidDetectorModel):
        build_engine("classical", acid_model=acid_model)
    with pytest.raises(UnknownDetectorEngine) as unknown:
        build_engine("ultralytics")
    assert unknown.value.code == "unknown_detector_engine"


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("18k", "18K"),
        ("22K", "22K"),
        (" 24 kt ", "24K"),
        ("24karat", "24K"),
        ("20k", None),
        ("acid", None),
        ("k22", None),
    ],
)
def test_karat_labels(name: str, label: str | None) -> None:
    assert karat_label(name) == label


@pytest.fixture(scope="module")
def clip_22k() -> TouchstoneClip:
    return TouchstoneClip(ClipSpec(Karat.K22, seed=3, width=320, height=240, fps=10))


def test_classical_engine_finds_the_stone_and_leaves_the_rest_to_the_scene(
    clip_22k: TouchstoneClip,
) -> None:
    engine = ClassicalEngine()
    for index in (0, 20, len(clip_22k) - 1):  # bare, mid-rubbing, under the acid
        frame, truth = clip_22k.frame(index)
        seen = engine.detect_rubbing(frame)
        (stone,) = seen.stones
        assert _iou(stone.box, truth.stone) > 0.9
        assert (seen.golds, seen.streaks) == ((), None)
        assert engine.detect_acid(frame, truth.streak) == AcidObservation()


@pytest.mark.parametrize("seed", range(4))
def test_the_stone_is_found_on_any_table_under_any_lamp(seed: int) -> None:
    clip = AssayClip(AssaySpec(Karat.K22, Condition.CLEAN, seed=seed, size=(320, 240)))
    frame, truth = clip.frame(0)
    (stone,) = ClassicalEngine().detect_rubbing(frame).stones
    # The truth is the box of a turned stone's corners, which a blurred mask rounds off.
    assert _iou(stone.box, truth.stone) > 0.7


def test_classical_engine_needs_a_stone() -> None:
    blank = np.full((240, 320, 3), 200, np.uint8)
    engine = ClassicalEngine()
    assert engine.detect_rubbing(blank).stones == ()
    noisy = np.random.default_rng(1).integers(90, 110, (240, 320, 3), dtype=np.uint8)
    assert engine.detect_rubbing(noisy).stones == ()
