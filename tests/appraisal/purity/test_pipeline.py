"""The purity pipeline: synthetic clips end with the right karat, the stage rules hold on
scripted detections, and a test resumes from its snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from bench.generators.touchstone_clips import (
    ClipSpec,
    Timeline,
    TouchstoneClip,
    Variant,
    write_y4m,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.appraisal.onnx_models import constant_output_model, yolo_output
from touchstone.appraisal.exceptions import InvalidFrame, InvalidPuritySnapshot
from touchstone.appraisal.purity.engines import (
    AcidObservation,
    ClassicalEngine,
    OnnxYoloEngine,
    RubbingObservation,
)
from touchstone.appraisal.purity.engines.base import Box, Detection
from touchstone.appraisal.purity.frames import BgrFrame
from touchstone.appraisal.purity.pipeline import (
    EVIDENCE_KEYS,
    MISSING_REASON,
    AcidTiming,
    Hint,
    Karat,
    Missing,
    PurityPipeline,
    PurityStatus,
    RubbingPolicy,
    Stage,
)
from touchstone.appraisal.purity.scene import ScenePolicy

FRAME = np.zeros((32, 32, 3), np.uint8)
STONE = Detection("stone", 0.9, (100, 100, 300, 200))
STATUS_KEYS = {
    "type",
    "frame_index",
    "timestamp",
    "stage",
    "stage_changed",
    "detections",
    "confirmations",
    "required_confirmations",
    "hint",
    "hint_code",
    "acid_detected",
    "karat",
    "confidence",
    "detected",
    "missing",
    "reason",
}


def _clip(
    karat: Karat | None, variant: Variant = Variant.CLEAN, **timeline: float
) -> TouchstoneClip:
    spec = ClipSpec(
        karat, variant, seed=5, width=320, height=240, fps=10, timeline=Timeline(**timeline)
    )
    return TouchstoneClip(spec)


def _run(
    pipeline: PurityPipeline, clip: TouchstoneClip, frames: Iterable[int], offset: float = 0.0
) -> list[PurityStatus]:
    return [pipeline.process(clip.frame(i)[0], clip.timestamp(i) + offset) for i in frames]


# --- synthetic clips with the classical engine ----------------------------------------------


@pytest.mark.parametrize("karat", [Karat.K18, Karat.K22, Karat.K24])
def test_a_clean_clip_ends_with_its_karat(karat: Karat) -> None:
    clip = _clip(karat)
    pipeline = PurityPipeline(ClassicalEngine())
    statuses = _run(pipeline, clip, range(len(clip)))

    assert pipeline.stage is Stage.COMPLETED
    result = pipeline.result
    assert result is not None
    assert result.karat is karat
    assert 0.5 < result.confidence <= 1
    stages = [s.stage for s in statuses]
    assert stages.index(Stage.ACID) < stages.index(Stage.COMPLETED)
    switch = stages.index(Stage.ACID)
    assert statuses[switch].stage_changed
    confirmed = [s.confirmations for s in statuses].index(3)
    assert statuses[confirmed - 1].confirmations == 2
    # Confirmed while the ornament is rubbed; the acid is asked for once the rubbing stopped.
    assert clip.frame(confirmed)[1].rubbing
    assert statuses[switch].hint is Hint.APPLY_ACID
    assert clip.timestamp(switch) >= clip.spec.timeline.rubbing_ends
    assert all(s.hint is Hint.LIFT_ORNAMENT for s in statuses[confirmed:switch])
    timings = result.stage_timings
    assert timings[Stage.RUBBING].started == 0
    assert timings[Stage.RUBBING].ended == timings[Stage.ACID].started
    assert timings[Stage.ACID].ended == timings[Stage.COMPLETED].started
    assert result.milestones["acid_applied"] >= clip.spec.timeline.acid_starts
    assert set(result.evidence) == set(EVIDENCE_KEYS)
    assert all(jpeg.startswith(b"\xff\xd8") for jpeg in result.evidence.values())
    assert result.detector_versions == {
        "classical": ClassicalEngine().version,
        "reading": ScenePolicy().version,
    }
    stored = json.loads(json.dumps(result.to_dict()))
    assert stored["karat"] == karat.value
    assert stored["evidence"] == sorted(EVIDENCE_KEYS)


def test_a_clip_without_rubbing_never_reaches_acid() -> None:
    clip = _clip(None, Variant.NO_RUBBING)
    pipeline = PurityPipeline(ClassicalEngine())
    statuses = _run(pipeline, clip, range(len(clip)))
    assert all(s.stage is Stage.RUBBING for s in statuses)
    assert pipeline.confirmations == 0
    assert pipeline.result is None
    assert {s.hint for s in statuses} <= {Hint.RUB_ORNAMENT, Hint.KEEP_RUBBING}


def test_too_short_a_rubbing_stays_in_rubbing() -> None:
    # A stroke and a half, then the ornament leaves and acid goes on: fewer than 3 turns.
    clip = _clip(Karat.K22, rubbing_ends=1.6)
    pipeline = PurityPipeline(ClassicalEngine())
    statuses = _run(pipeline, clip, range(len(clip)))
    assert all(s.stage is Stage.RUBBING for s in statuses)
    assert pipeline.confirmations < 3


@pytest.mark.parametrize("variant", [Variant.OCCLUSION, Variant.LIGHTING])
def test_noisy_clips_still_read_their_karat(variant: Variant) -> None:
    clip = _clip(Karat.K18, variant)
    pipeline = PurityPipeline(ClassicalEngine())
    _run(pipeline, clip, range(len(clip)))
    assert pipeline.result is not None
    assert pipeline.result.karat is Karat.K18


def test_a_shaking_camera_never_reads_a_wrong_karat() -> None:
    # At 320x240 a shake of 1% of the frame still moves the stone's edges past the
    # tolerance: the test may not settle, but it never reads another karat.
    clip = _clip(Karat.K18, Variant.SHAKE)
    pipeline = PurityPipeline(ClassicalEngine())
    _run(pipeline, clip, range(len(clip)))
    assert pipeline.result is None or pipeline.result.karat in (Karat.K18, Karat.INCONCLUSIVE)


def test_status_messages_have_the_documented_keys_and_serialise() -> None:
    clip = _clip(Karat.K24)
    pipeline = PurityPipeline(ClassicalEngine())
    messages = [
        json.loads(json.dumps(s.to_message())) for s in _run(pipeline, clip, range(len(clip)))
    ]
    assert all(set(m) == STATUS_KEYS for m in messages)
    assert messages[0]["hint"] == "rub the ornament on the stone"
    assert [m["frame_index"] for m in messages] == list(range(len(clip)))
    mid_rubbing = messages[16]
    assert {d["label"] for d in mid_rubbing["detections"]} == {"stone", "gold", "streak"}
    assert mid_rubbing["detected"] == {
        "stone": True,
        "ornament": True,
        "streak": True,
        "acid": False,
    }
    assert messages[0]["detected"]["ornament"] is False
    assert any(m["detected"]["acid"] for m in messages if m["stage"] == "acid")
    assert all(m["missing"] is None for m in messages)
    assert messages[-1]["reason"] == "steady reading"
    for detection in mid_rubbing["detections"]:
        assert len(detection["box"]) == 4
        assert 0 <= detection["score"] <= 1
    done = messages[-1]
    assert (done["stage"], done["karat"], done["hint_code"]) == ("completed", "24K", "done")
    assert done["confidence"] > 0.5
    assert all(m["karat"] is None for m in messages if m["stage"] != "completed")
    hints = {m["hint_code"] for m in messages}
    assert {"keep_rubbing", "lift_ornament", "apply_acid", "hold_steady", "done"} <= hints


def test_a_test_resumes_at_acid_from_its_snapshot_on_a_new_clock() -> None:
    clip = _clip(Karat.K22)
    first = PurityPipeline(ClassicalEngine())
    statuses = _run(first, clip, range(50))  # the rubbing over; the acid not yet read
    assert first.stage is Stage.ACID
    snapshot = json.loads(json.dumps(first.snapshot()))

    resumed = PurityPipeline.restore(snapshot, ClassicalEngine())
    assert resumed.stage is Stage.ACID
    assert resumed.confirmations == 3
    # The client reconnects: its timestamps now come from another clock.
    rest = _run(resumed, clip, range(50, len(clip)), offset=5000.0)
    assert rest[0].frame_index == 50
    assert rest[0].timestamp >= statuses[-1].timestamp
    assert resumed.result is not None
    assert resumed.result.karat is Karat.K22
    assert set(resumed.result.evidence) == set(EVIDENCE_KEYS)
    assert resumed.result.evidence["rubbing_confirmed"] == first._evidence["rubbing_confirmed"]
    assert resumed.result.milestones["rubbing_confirmed"] == first._milestones["rubbing_confirmed"]


def test_a_test_resumes_mid_rubbing_with_its_confirmations() -> None:
    clip = _clip(Karat.K24)
    straight = PurityPipeline(ClassicalEngine())
    _run(straight, clip, range(len(clip)))
    first = PurityPipeline(ClassicalEngine())
    _run(first, clip, range(14))
    assert first.stage is Stage.RUBBING
    assert 0 < first.confirmations < 3
    resumed = PurityPipeline.restore(json.loads(json.dumps(first.snapshot())), ClassicalEngine())
    _run(resumed, clip, range(14, len(clip)))
    assert resumed.result is not None
    assert straight.result is not None
    assert resumed.result.karat is Karat.K24
    resumed_timings, straight_timings = resumed.result.stage_timings, straight.result.stage_timings
    for stage in Stage:
        assert resumed_timings[stage].started == pytest.approx(straight_timings[stage].started)
        assert resumed_timings[stage].ended == pytest.approx(straight_timings[stage].ended)


def test_a_test_resumes_on_the_onnx_engine(tmp_path: Path) -> None:
    """An organisation switching engines mid-test: both versions end up in the result."""
    clip = _clip(Karat.K24)
    first = PurityPipeline(ClassicalEngine())
    _run(first, clip, range(50))
    assert first.stage is Stage.ACID
    rubbing, acid = tmp_path / "rubbing.onnx", tmp_path / "acid.onnx"
    rubbing.write_bytes(constant_output_model(yolo_output([], 2), names={0: "stone", 1: "gold"}))
    readings = yolo_output([(320, 320, 80, 60, 0, 0.9), (320, 320, 80, 60, 2, 0.7)], 4)
    acid.write_bytes(
        constant_output_model(readings, names={0: "acid", 1: "18k", 2: "22k", 3: "24k"})
    )
    engine = OnnxYoloEngine(rubbing, acid)
    resumed = PurityPipeline.restore(first.snapshot(), engine)
    _run(resumed, clip, range(50, len(clip)))
    assert resumed.result is not None
    # The model's box says where the acid is; the streak under it is read against the same
    # streak before the acid, so the clip's karat wins over the model's own label (22K).
    assert resumed.result.karat is Karat.K24
    assert resumed.result.detector_versions == {
        "classical": ClassicalEngine().version,
        "onnx-yolo": engine.version,
        "reading": ScenePolicy().version,
    }


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.pop("stage"),
        lambda s: s.update(stage="polishing"),
        lambda s: s.update(version=99),
        lambda s: s.update(gold_mask="zz"),
        lambda s: s.update(readings=[[1.0]]),
    ],
)
def test_a_damaged_snapshot_is_refused(damage: Callable[[dict[str, Any]], object]) -> None:
    snapshot = PurityPipeline(ClassicalEngine()).snapshot()
    damage(snapshot)
    with pytest.raises(InvalidPuritySnapshot):
        PurityPipeline.restore(snapshot, ClassicalEngine())


def test_a_frame_that_is_not_an_image_is_refused() -> None:
    with pytest.raises(InvalidFrame):
        PurityPipeline(ClassicalEngine()).process(np.zeros((32, 32), np.uint8), 0.0)


# --- stage rules on scripted detections -----------------------------------------------------


class ScriptedEngine:
    """Plays back the observations a test lists, one per frame (the last one repeats)."""

    name = "scripted"
    version = "test-1"

    def __init__(
        self,
        rubbing: list[RubbingObservation] | None = None,
        acid: list[AcidObservation] | None = None,
    ) -> None:
        self.rubbing, self.acid = list(rubbing or []), list(acid or [])
        self.streak_regions: list[Box | None] = []

    def detect_rubbing(self, frame: BgrFrame) -> RubbingObservation:
        return self.rubbing.pop(0) if len(self.rubbing) > 1 else self.rubbing[0]

    def detect_acid(self, frame: BgrFrame, streak_region: Box | None) -> AcidObservation:
        self.streak_regions.append(streak_region)
        return self.acid.pop(0) if len(self.acid) > 1 else self.acid[0]


def _gold_at(x: float, *, streak: bool | None = True, y: float = 150) -> RubbingObservation:
    gold = Detection("gold", 0.8, (x - 20, y - 20, x + 20, y + 20))
    streak_box = Detection("streak", 0.7, (150, 145, 250, 155))
    streaks = None if streak is None else ((streak_box,) if streak else ())
    return RubbingObservation(stones=(STONE,), golds=(gold,), streaks=streaks)


def _strokes(turns: int, *, streak: bool | None = True) -> list[RubbingObservation]:
    """Gold swinging between the stone's centre and 60 px right of it: `turns` turns."""
    return [_gold_at(260 if i % 2 == 0 else 200, streak=streak) for i in range(turns + 2)]


def _feed(
    pipeline: PurityPipeline, count: int, start: float = 0.0, step: float = 0.1
) -> list[PurityStatus]:
    return [pipeline.process(FRAME, start + i * step) for i in range(count)]


@pytest.mark.parametrize(("turns", "stage"), [(3, Stage.RUBBING), (4, Stage.ACID)])
def test_rubbing_switches_to_acid_on_the_third_confirmation(turns: int, stage: Stage) -> None:
    # A turn confirms when it follows another: the first turn starts the count.
    engine = ScriptedEngine(rubbing=_strokes(turns), acid=[AcidObservation()])
    pipeline = PurityPipeline(engine)
    _feed(pipeline, turns + 2 + 20)  # the strokes, then the gold held still
    assert pipeline.stage is stage
    assert pipeline.confirmations == min(turns - 1, 3)


def test_acid_is_asked_for_only_once_the_rubbing_stopped() -> None:
    engine = ScriptedEngine(rubbing=[*_strokes(4), *_strokes(6)], acid=[AcidObservation()])
    pipeline = PurityPipeline(engine)
    statuses = _feed(pipeline, 12 + 10)
    confirmed = [s.confirmations for s in statuses].index(3)
    switch = [s.stage for s in statuses].index(Stage.ACID)
    # Still rubbing after the third confirmation: the test waits, then asks for the acid.
    assert switch >= 12
    assert {s.hint for s in statuses[confirmed:switch]} == {Hint.LIFT_ORNAMENT}
    assert statuses[switch].hint is Hint.APPLY_ACID
    assert statuses[switch].timestamp - statuses[11].timestamp >= RubbingPolicy().settle_s


def test_turns_far_apart_are_not_a_rubbing() -> None:
    # The gold turns once every 3 s (put down, picked up, a rod, a hand): never confirmed.
    slow = [_gold_at(260 if (i // 30) % 2 == 0 else 200) for i in range(200)]
    pipeline = PurityPipeline(ScriptedEngine(rubbing=slow))
    _feed(pipeline, 200)
    assert (pipeline.stage, pipeline.confirmations) == (Stage.RUBBING, 0)


@pytest.mark.parametrize(
    ("observation", "missing", "hint"),
    [
        (RubbingObservation(), "stone", Hint.PLACE_STONE),
        (RubbingObservation(stones=(STONE,), streaks=()), "ornament", Hint.RUB_ORNAMENT),
        ("still", "streak", Hint.RUB_HARDER),
        ("held", "motion", Hint.KEEP_RUBBING),
    ],
)
def test_a_stalled_rubbing_says_what_is_missing_then_gives_up(
    observation: RubbingObservation | str, missing: str, hint: Hint
) -> None:
    if observation == "still":
        observation = _gold_at(230, streak=False)
    elif observation == "held":
        observation = _gold_at(230)
    assert isinstance(observation, RubbingObservation)
    policy = RubbingPolicy(stall_s=5.0, give_up_s=20.0)
    pipeline = PurityPipeline(ScriptedEngine(rubbing=[observation]), rubbing=policy)
    statuses = _feed(pipeline, 250)
    early = [s for s in statuses if s.timestamp < 5.0]
    stalled = [s for s in statuses if 5.0 <= s.timestamp < 20.0]
    assert all(s.missing is None for s in early)
    assert {(s.missing, s.hint) for s in stalled} == {(Missing(missing), hint)}
    message = stalled[0].to_message()
    assert (message["missing"], message["hint_code"]) == (missing, hint.value)
    assert pipeline.result is not None
    assert pipeline.result.karat is Karat.INCONCLUSIVE
    assert pipeline.result.reason == MISSING_REASON[Missing(missing)]
    done = next(s for s in statuses if s.stage is Stage.COMPLETED)
    assert done.timestamp == pytest.approx(20.0, abs=0.11)
    assert done.to_message()["reason"] == MISSING_REASON[Missing(missing)]
    assert Stage.ACID not in pipeline.result.stage_timings


def test_required_confirmations_is_configurable() -> None:
    for turns, stage in ((5, Stage.RUBBING), (6, Stage.ACID)):
        engine = ScriptedEngine(rubbing=_strokes(turns), acid=[AcidObservation()])
        pipeline = PurityPipeline(engine, required_confirmations=5)
        statuses = _feed(pipeline, turns + 2 + 6)
        assert (statuses[-1].stage, statuses[-1].confirmations) == (stage, turns - 1)
        assert statuses[-1].required_confirmations == 5


def test_motion_without_a_streak_confirms_nothing() -> None:
    pipeline = PurityPipeline(ScriptedEngine(rubbing=_strokes(8, streak=False)))
    _feed(pipeline, 10)
    assert (pipeline.stage, pipeline.confirmations) == (Stage.RUBBING, 0)


def test_gold_footprint_stands_in_for_an_engine_without_streaks() -> None:
    engine = ScriptedEngine(rubbing=_strokes(4, streak=None), acid=[AcidObservation()])
    pipeline = PurityPipeline(engine)
    _feed(pipeline, 6 + 5)
    assert pipeline.stage is Stage.ACID
    pipeline.process(FRAME, 1.1)
    region = engine.streak_regions[0]
    assert region is not None
    assert region[0] <= 180
    assert region[2] >= 280  # where the gold went on the stone


def test_gold_off_the_stone_is_not_rubbing() -> None:
    off_stone = [_gold_at(260 if i % 2 else 200, y=400) for i in range(10)]
    pipeline = PurityPipeline(ScriptedEngine(rubbing=off_stone))
    statuses = _feed(pipeline, 10)
    assert pipeline.confirmations == 0
    assert statuses[-1].hint is Hint.RUB_ORNAMENT
    assert [d.label for d in statuses[-1].detections] == ["stone", "streak"]


def test_without_a_stone_the_hint_asks_for_it() -> None:
    status = PurityPipeline(ScriptedEngine(rubbing=[RubbingObservation()])).process(FRAME, 0)
    assert (status.hint, status.detections) == (Hint.PLACE_STONE, ())
    assert status.to_message()["hint"] == "place the stone in view"


ACID = Detection("acid", 0.9, (150, 120, 250, 180))
KARAT_LABELS = ("18K", "22K", "24K")


def _reading(label: str, score: float = 0.8) -> AcidObservation:
    return AcidObservation(acids=(ACID,), readings=(Detection(label, score, ACID.box),))


def _in_acid(acid: list[AcidObservation], timing: AcidTiming | None = None) -> PurityPipeline:
    """Four turns, then the gold still: ACID at 1.0 s (half a second after the last move)."""
    pipeline = PurityPipeline(ScriptedEngine(rubbing=_strokes(4), acid=acid), acid=timing)
    _feed(pipeline, 11)
    assert pipeline.stage is Stage.ACID
    return pipeline


def test_a_steady_reading_completes_after_the_reaction_time() -> None:
    pipeline = _in_acid([AcidObservation(), AcidObservation(), _reading("22K", 0.9)])
    statuses = _feed(pipeline, 40, start=1.1)
    done = next(s for s in statuses if s.stage is Stage.COMPLETED)
    # Acid first seen at 1.3 s; 1.5 s of reaction, then 1.5 s of steady readings.
    assert done.timestamp == pytest.approx(1.3 + 1.5 + 1.5, abs=0.11)
    assert pipeline.result is not None
    assert pipeline.result.karat is Karat.K22
    assert pipeline.result.confidence == pytest.approx(0.9)
    assert pipeline.result.reason == "steady reading"
    assert statuses[0].hint is Hint.APPLY_ACID
    assert statuses[3].hint is Hint.HOLD_STEADY
    assert statuses[-1].hint is Hint.DONE


def test_no_acid_within_the_timeout_is_inconclusive() -> None:
    pipeline = _in_acid([AcidObservation()])
    statuses = _feed(pipeline, 40, start=1.1, step=1.0)
    assert pipeline.result is not None
    assert pipeline.result.karat is Karat.INCONCLUSIVE
    assert pipeline.result.reason == "no acid seen"
    done = next(s for s in statuses if s.stage is Stage.COMPLETED)
    acid_started = pipeline.result.stage_timings[Stage.ACID].started
    assert acid_started + 30 <= done.timestamp < acid_started + 31
    assert done.hint is Hint.REPEAT_TEST
    assert set(pipeline.result.evidence) == {"rubbing_confirmed", "result"}


def test_a_reading_that_keeps_changing_is_inconclusive() -> None:
    flipping = [_reading("18K") if i % 2 else _reading("24K") for i in range(400)]
    pipeline = _in_acid(flipping, AcidTiming(reading_timeout_s=8.0))
    statuses = _feed(pipeline, 200, start=1.1)
    assert pipeline.result is not None
    assert pipeline.result.karat is Karat.INCONCLUSIVE
    assert pipeline.result.reason == "no steady reading after the acid"
    done = next(s for s in statuses if s.stage is Stage.COMPLETED)
    assert done.timestamp == pytest.approx(1.1 + 8.0, abs=0.11)


def test_completed_tests_ignore_further_frames() -> None:
    pipeline = _in_acid([_reading("24K")])
    _feed(pipeline, 40, start=1.1)
    result = pipeline.result
    late = pipeline.process(FRAME, 100.0)
    assert (late.stage, late.karat, late.stage_changed) == (Stage.COMPLETED, Karat.K24, False)
    assert pipeline.result is result


def test_a_clock_stepping_back_never_runs_time_backwards() -> None:
    pipeline = PurityPipeline(ScriptedEngine(rubbing=[RubbingObservation()]))
    times = [pipeline.process(FRAME, t).timestamp for t in (10.0, 11.0, 4.0, 11.5)]
    assert times == [0.0, 1.0, 1.0, 1.5]


# --- the clip generator ---------------------------------------------------------------------


def test_clips_are_deterministic_from_their_seed() -> None:
    first, again = _clip(Karat.K22), _clip(Karat.K22)
    other = TouchstoneClip(ClipSpec(Karat.K22, seed=6, width=320, height=240, fps=10))
    for index in (0, 25, 60):
        assert np.array_equal(first.frame(index)[0], again.frame(index)[0])
        assert first.frame(index)[1] == again.frame(index)[1]
    assert not np.array_equal(first.frame(25)[0], other.frame(25)[0])


def test_ground_truth_follows_the_clip() -> None:
    clip = _clip(Karat.K18)
    line = clip.spec.timeline
    truths = [clip.frame(i)[1] for i in range(len(clip))]
    assert len(truths) == round(line.duration * 10)
    assert all(t.karat is Karat.K18 for t in truths)
    assert all((t.stage == "acid") == (t.timestamp >= line.acid_starts) for t in truths)
    assert all(
        t.rubbing == (line.rubbing_starts <= t.timestamp < line.rubbing_ends) for t in truths
    )
    assert all((t.acid is not None) == (t.stage == "acid") for t in truths)
    assert truths[0].ornament is None
    assert truths[0].streak is None
    assert truths[-1].streak is not None
    with pytest.raises(ValueError, match="karat"):
        ClipSpec(None)


def test_write_y4m_writes_the_header_and_i420_frames(tmp_path: Path) -> None:
    clip = _clip(Karat.K24)
    path = tmp_path / "clip.y4m"
    frames = [clip.frame(i)[0] for i in range(3)]
    written = write_y4m(iter(frames), path, fps=15)
    data = path.read_bytes()
    header = b"YUV4MPEG2 W320 H240 F15:1 Ip A1:1 C420jpeg\n"
    frame_bytes = 320 * 240 * 3 // 2
    assert written == 3
    assert data.startswith(header)
    assert len(data) == len(header) + 3 * (len(b"FRAME\n") + frame_bytes)
    last = len(header) + 2 * (6 + frame_bytes)
    assert data[last : last + 6] == b"FRAME\n"
    expected = cv2.cvtColor(frames[2], cv2.COLOR_BGR2YUV_I420).tobytes()
    assert data[last + 6 :] == expected
    with pytest.raises(ValueError, match="even"):
        write_y4m([np.zeros((241, 320, 3), np.uint8)], tmp_path / "odd.y4m")


# --- any sequence of detections -------------------------------------------------------------

RUBBING_CHOICES = [
    RubbingObservation(),
    RubbingObservation(stones=(STONE,), streaks=()),
    _gold_at(200),
    _gold_at(230),
    _gold_at(260),
    _gold_at(260, streak=False),
    _gold_at(230, y=400),
]
ACID_CHOICES = [AcidObservation(), AcidObservation(acids=(ACID,)), *map(_reading, KARAT_LABELS)]
FAST_TIMING = AcidTiming(acid_timeout_s=5.0, reading_timeout_s=4.0)
STAGE_ORDER = [Stage.RUBBING, Stage.ACID, Stage.COMPLETED]


class ScriptByFrame:
    """Observations chosen per frame: frame i gets `script[i]` whichever stage asks."""

    name = "script"
    version = "1"

    def __init__(self, script: list[tuple[int, int]], start: int = 0) -> None:
        self.script, self.frame = script, start

    def _next(self) -> tuple[int, int]:
        choice = self.script[self.frame]
        self.frame += 1
        return choice

    def detect_rubbing(self, frame: BgrFrame) -> RubbingObservation:
        return RUBBING_CHOICES[self._next()[0]]

    def detect_acid(self, frame: BgrFrame, streak_region: Box | None) -> AcidObservation:
        return ACID_CHOICES[self._next()[1]]


def _messages(pipeline: PurityPipeline, frames: range) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(pipeline.process(FRAME, i * 0.25).to_message())) for i in frames]


def _script(rubbing: list[int], acid_runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    acid = [choice for choice, times in acid_runs for _ in range(times)]
    acid += [acid[-1]] * (len(rubbing) - len(acid))
    return list(zip(rubbing, acid, strict=False))


# Rubbing observations change freely (so strokes happen); acid ones come in runs (so steady
# readings happen): every outcome occurs.
SCRIPTS = st.builds(
    _script,
    st.lists(st.integers(0, len(RUBBING_CHOICES) - 1), min_size=1, max_size=70),
    st.lists(st.tuples(st.integers(0, len(ACID_CHOICES) - 1), st.integers(1, 12)), min_size=1),
)


@settings(max_examples=80, deadline=None)
@given(script=SCRIPTS, cut=st.floats(0, 1))
def test_any_detections_keep_the_stage_rules_and_resume_identically(
    script: list[tuple[int, int]], cut: float
) -> None:
    straight = PurityPipeline(ScriptByFrame(script), acid=FAST_TIMING)
    messages = _messages(straight, range(len(script)))
    stages = [STAGE_ORDER.index(Stage(m["stage"])) for m in messages]
    assert stages == sorted(stages)
    confirmations = [m["confirmations"] for m in messages]
    assert confirmations == sorted(confirmations)
    assert confirmations[-1] <= 3
    assert all(set(m) == STATUS_KEYS for m in messages)
    assert all((m["karat"] is None) == (m["stage"] != "completed") for m in messages)
    assert (straight.result is None) == (straight.stage is not Stage.COMPLETED)
    assert sum(m["stage_changed"] for m in messages) == stages[-1]

    # The frame interval a resumed test assumes is measured between two frames, so the cut
    # comes before any frame or after two.
    split = int(cut * len(script))
    split = 0 if split == 1 else split
    first = PurityPipeline(ScriptByFrame(script), acid=FAST_TIMING)
    _messages(first, range(split))
    resumed = PurityPipeline.restore(
        json.loads(json.dumps(first.snapshot())), ScriptByFrame(script, split), acid=FAST_TIMING
    )
    assert _messages(resumed, range(split, len(script))) == messages[split:]
