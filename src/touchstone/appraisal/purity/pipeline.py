"""The live touchstone purity test, one frame at a time: RUBBING -> ACID -> COMPLETED.

RUBBING: the stone is the best stone detection (or, when the engine misses it for a frame,
where the scene last saw it); the gold is the best gold detection lying on the stone, or the
scene's moving object on it (`scene.StoneScene`). Where a streak is seen on the stone (the
engine's, else the scene's, else the gold box's footprint) is accumulated in a mask over the
stone. The distance from the gold's centre to the stone's centre rises and falls as the
ornament is rubbed; each turn of that distance by at least `RubbingPolicy.min_swing` of the
stone's diagonal, while the mask covers at least `min_streak_coverage` of the stone, is one
visual confirmation. After `required_confirmations`, the test waits for the rubbing to stop
(`RubbingPolicy.settle_s` without motion) before it asks for the acid: acid on a streak
still being rubbed reads nothing. A RUBBING stage without progress says what it is missing
after `stall_s` and ends `inconclusive` after `give_up_s`.

ACID: the scene reads the acid as a change over the streak and the karat from how much of
the streak it left (engines that read karats themselves are used where the scene cannot
read); see `AcidTiming` for when a reading is steady and when the test gives up.

Timestamps are seconds in any clock; every time reported is relative to the first frame.
The transport owns back-pressure: feed the frames it keeps, in order.
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from touchstone.appraisal.exceptions import InvalidPuritySnapshot
from touchstone.appraisal.purity.engines.base import Box, Detection, DetectorEngine, karat_label
from touchstone.appraisal.purity.frames import BgrFrame, check_frame, encode_jpeg
from touchstone.appraisal.purity.scene import ScenePolicy, StoneScene, karat_for

SNAPSHOT_VERSION = 2
MASK_CELLS = 32
"""The gold mask is a MASK_CELLS x MASK_CELLS grid over the stone's box, so it follows the
stone when the camera moves."""


class Stage(StrEnum):
    RUBBING = "rubbing"
    ACID = "acid"
    COMPLETED = "completed"


class Karat(StrEnum):
    K18 = "18K"
    K22 = "22K"
    K24 = "24K"
    INCONCLUSIVE = "inconclusive"


class Hint(StrEnum):
    """What the operator should do next; `HINT_TEXT` has the words to show."""

    PLACE_STONE = "place_stone"
    RUB_ORNAMENT = "rub_ornament"
    KEEP_RUBBING = "keep_rubbing"
    RUB_HARDER = "rub_harder"
    LIFT_ORNAMENT = "lift_ornament"
    APPLY_ACID = "apply_acid"
    HOLD_STEADY = "hold_steady"
    DONE = "done"
    REPEAT_TEST = "repeat_test"


HINT_TEXT = {
    Hint.PLACE_STONE: "place the stone in view",
    Hint.RUB_ORNAMENT: "rub the ornament on the stone",
    Hint.KEEP_RUBBING: "keep rubbing the ornament back and forth on the stone",
    Hint.RUB_HARDER: "no streak shows on the stone: rub the ornament firmly along one line",
    Hint.LIFT_ORNAMENT: "stop rubbing and lift the ornament off the stone",
    Hint.APPLY_ACID: "apply acid to the streak",
    Hint.HOLD_STEADY: "hold steady",
    Hint.DONE: "test complete",
    Hint.REPEAT_TEST: "no clear reading: clean the stone and repeat the test",
}

EVIDENCE_KEYS = ("rubbing_confirmed", "acid_applied", "result")
ABSOLUTE_CONFIDENCE = 0.8
"""The highest confidence of a reading without reference needles: the bands are one
calibration for every stone, acid and light, where needles bring their own."""
REFERENCE_MATCH = 0.12
"""The sample's retention must be this close to a needle's to read that needle's karat..."""
REFERENCE_MARGIN = 0.04
"""...and this much closer to it than to any other needle."""


@dataclass(frozen=True)
class RubbingPolicy:
    min_swing: float = 0.08
    """A turn of the gold-to-stone distance counts when it swung this share of the stone's
    diagonal since the previous turn (hand tremor and camera shake stay below it)."""
    min_streak_coverage: float = 0.01
    """Share of the stone's mask that must show gold before a turn counts."""
    min_gold_on_stone: float = 0.3
    """Share of a gold box that must lie on the stone for it to count as on the stone."""
    max_stroke_s: float = 2.0
    """Turns further apart than this are not one rubbing."""
    max_gap_s: float = 0.4
    """Gold unseen for longer than this comes back as a new object: its turns start afresh."""
    settle_s: float = 0.5
    """After the confirmations, this long without motion on the stone means rubbing stopped."""
    stall_s: float = 10.0
    """Without a new confirmation for this long, the status says what is missing."""
    give_up_s: float = 45.0
    """Without a new confirmation for this long, the test ends `inconclusive`."""


class Missing(StrEnum):
    """What a stalled RUBBING stage has not seen, first things first."""

    STONE = "stone"
    ORNAMENT = "ornament"
    STREAK = "streak"
    MOTION = "motion"
    STILLNESS = "stillness"


MISSING_HINT = {
    Missing.STONE: Hint.PLACE_STONE,
    Missing.ORNAMENT: Hint.RUB_ORNAMENT,
    Missing.STREAK: Hint.RUB_HARDER,
    Missing.MOTION: Hint.KEEP_RUBBING,
    Missing.STILLNESS: Hint.LIFT_ORNAMENT,
}
MISSING_REASON = {
    Missing.STONE: "no stone found",
    Missing.ORNAMENT: "no ornament on the stone",
    Missing.STREAK: "no streak on the stone",
    Missing.MOTION: "no rubbing motion",
    Missing.STILLNESS: "the rubbing never stopped",
}


@dataclass(frozen=True)
class Detected:
    """What this frame showed, so the page can tick each off."""

    stone: bool = False
    ornament: bool = False
    streak: bool = False
    acid: bool = False

    def to_dict(self) -> dict[str, bool]:
        return {
            "stone": self.stone,
            "ornament": self.ornament,
            "streak": self.streak,
            "acid": self.acid,
        }


@dataclass(frozen=True)
class AcidTiming:
    """When the ACID stage reads a karat, and when it gives up with `inconclusive`.

    Readings count from `reaction_s` after the acid is first seen (the streak needs time to
    dissolve). The result is the karat read in at least `steady_share` of the frames with acid
    over the last `steady_window_s` (at least `min_readings` of them). The test ends
    `inconclusive` when no acid is seen within `acid_timeout_s` of entering ACID, or when no
    steady reading comes within `reading_timeout_s` of the acid first being seen.
    """

    reaction_s: float = 1.5
    steady_window_s: float = 1.5
    steady_share: float = 0.8
    steady_spread: float = 0.08
    """The scene's retention may move this much over the window: a streak still dissolving
    passes through the bands of higher karats on its way down, and must not be read there."""
    min_readings: int = 3
    """With the window, frames must reach the pipeline at 2 per second or more while the acid
    reacts (a YOLOv8n at 640 input on one core manages about 3.5)."""
    acid_timeout_s: float = 30.0
    reading_timeout_s: float = 12.0


@dataclass(frozen=True)
class PurityStatus:
    """What the client is told after each frame; `to_message()` is the JSON pushed to it."""

    frame_index: int
    timestamp: float
    stage: Stage
    stage_changed: bool
    detections: tuple[Detection, ...]
    confirmations: int
    required_confirmations: int
    hint: Hint
    acid_detected: bool = False
    karat: Karat | None = None
    confidence: float | None = None
    detected: Detected = Detected()
    missing: Missing | None = None
    reason: str | None = None

    def to_message(self) -> dict[str, Any]:
        """Every key is always present; `karat`, `confidence` and `reason` are null until
        COMPLETED, `missing` while nothing is missing."""
        return {
            "type": "purity_status",
            "frame_index": self.frame_index,
            "timestamp": round(self.timestamp, 3),
            "stage": self.stage.value,
            "stage_changed": self.stage_changed,
            "detections": [d.to_dict() for d in self.detections],
            "confirmations": self.confirmations,
            "required_confirmations": self.required_confirmations,
            "hint": HINT_TEXT[self.hint],
            "hint_code": self.hint.value,
            "acid_detected": self.acid_detected,
            "karat": None if self.karat is None else self.karat.value,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "detected": self.detected.to_dict(),
            "missing": None if self.missing is None else self.missing.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class StageTiming:
    started: float
    ended: float | None = None


@dataclass(frozen=True)
class PurityResult:
    karat: Karat
    confidence: float
    reason: str
    stage_timings: dict[Stage, StageTiming]
    milestones: dict[str, float]
    """When each evidence frame was taken (`EVIDENCE_KEYS`), in seconds from the first frame."""
    detector_versions: dict[str, str]
    """Engine name -> its version (model hashes), for every engine that saw this test."""
    evidence: dict[str, bytes] = field(repr=False)
    """JPEG key frames by `EVIDENCE_KEYS` name (those that happened)."""
    method: str = "absolute"
    """"absolute" (the karat bands), or "reference needles 18K, 22K, ..." (a comparison)."""
    reaction: dict[str, float] = field(default_factory=dict)
    """What the acid left of each streak (its retention, 0 to 1) at the last reading: the
    ornament's under "ornament", each needle's under its karat. Empty when none was read."""

    def to_dict(self) -> dict[str, Any]:
        """JSON for storage (times in milliseconds' precision); the evidence JPEGs are stored
        apart, so only their names are here."""
        return {
            "karat": self.karat.value,
            "confidence": round(self.confidence, 4),
            "reason": self.reason,
            "method": self.method,
            "reaction": dict(self.reaction),
            "stage_timings": {
                stage.value: {
                    "started": round(timing.started, 3),
                    "ended": None if timing.ended is None else round(timing.ended, 3),
                }
                for stage, timing in self.stage_timings.items()
            },
            "milestones": {key: round(at, 3) for key, at in self.milestones.items()},
            "detector_versions": dict(self.detector_versions),
            "evidence": sorted(self.evidence),
        }


class _TurnCounter:
    """Counts turns of a signal (rise then fall, or fall then rise) with hysteresis."""

    def __init__(self, direction: int = 0, extreme: float | None = None) -> None:
        self.direction, self.extreme = direction, extreme

    def turned(self, value: float, min_swing: float) -> bool:
        if self.extreme is None:
            self.extreme = value
            return False
        if self.direction == 0:
            if abs(value - self.extreme) >= min_swing:
                self.direction = 1 if value > self.extreme else -1
                self.extreme = value
            return False
        if (value - self.extreme) * self.direction > 0:
            self.extreme = value
            return False
        if abs(value - self.extreme) >= min_swing:
            self.direction, self.extreme = -self.direction, value
            return True
        return False


class _StoneMask:
    """Where gold has been seen on the stone, in cells relative to the stone's box."""

    def __init__(self, cells: np.ndarray[Any, np.dtype[np.bool_]] | None = None) -> None:
        self.cells = np.zeros((MASK_CELLS, MASK_CELLS), bool) if cells is None else cells

    def mark(self, box: Box, stone: Detection) -> None:
        sx1, sy1, sx2, sy2 = stone.box
        width, height = max(1.0, sx2 - sx1), max(1.0, sy2 - sy1)
        c1 = math.floor((box[0] - sx1) / width * MASK_CELLS)
        r1 = math.floor((box[1] - sy1) / height * MASK_CELLS)
        c2 = math.ceil((box[2] - sx1) / width * MASK_CELLS)
        r2 = math.ceil((box[3] - sy1) / height * MASK_CELLS)
        c1, r1 = max(0, c1), max(0, r1)
        c2, r2 = min(MASK_CELLS, c2), min(MASK_CELLS, r2)
        if c2 > c1 and r2 > r1:
            self.cells[r1:r2, c1:c2] = True

    @property
    def coverage(self) -> float:
        return float(self.cells.mean())

    def region(self, stone: Detection) -> Box | None:
        """The marked cells' bounding box in frame pixels, placed on `stone`."""
        rows, cols = np.nonzero(self.cells)
        if rows.size == 0:
            return None
        sx1, sy1, sx2, sy2 = stone.box
        cell_w, cell_h = (sx2 - sx1) / MASK_CELLS, (sy2 - sy1) / MASK_CELLS
        return (
            sx1 + cols.min() * cell_w,
            sy1 + rows.min() * cell_h,
            sx1 + (cols.max() + 1) * cell_w,
            sy1 + (rows.max() + 1) * cell_h,
        )

    def to_hex(self) -> str:
        return np.packbits(self.cells).tobytes().hex()

    @classmethod
    def from_hex(cls, text: str) -> _StoneMask:
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), np.uint8))
        return cls(bits[: MASK_CELLS * MASK_CELLS].reshape(MASK_CELLS, MASK_CELLS).astype(bool))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _on_stone(candidates: tuple[Detection, ...], stone: Detection, share: float) -> list[Detection]:
    return [d for d in candidates if d.area > 0 and d.overlap(stone) >= share * d.area]


def _best(candidates: list[Detection] | tuple[Detection, ...]) -> Detection | None:
    return max(candidates, key=lambda d: d.score, default=None)


def _intersection(box: Box, other: Box) -> Box:
    return (
        max(box[0], other[0]),
        max(box[1], other[1]),
        min(box[2], other[2]),
        min(box[3], other[3]),
    )


def reading_method(references: tuple[str, ...] | list[str]) -> str:
    """ "absolute", or "reference needles 18K, 22K" when needles are rubbed beside the sample."""
    if not references:
        return "absolute"
    return "reference needles " + ", ".join(str(karat) for karat in references)


class PurityPipeline:
    """One purity test. Not thread-safe: feed one test's frames from one task."""

    def __init__(
        self,
        engine: DetectorEngine,
        *,
        required_confirmations: int = 3,
        rubbing: RubbingPolicy | None = None,
        acid: AcidTiming | None = None,
        scene: ScenePolicy | None = None,
        references: tuple[Karat, ...] = (),
        evidence_quality: int = 85,
    ) -> None:
        if required_confirmations < 1:
            raise ValueError("at least one confirmation is required")
        if Karat.INCONCLUSIVE in references:
            raise ValueError("a reference needle has a karat")
        self.references = references
        """Karats of the touch needles rubbed on the stone before the ornament, in the order
        they are rubbed; empty when the test reads the ornament's streak alone."""
        self.engine = engine
        self.required_confirmations = required_confirmations
        self.rubbing = rubbing or RubbingPolicy()
        self.acid = acid or AcidTiming()
        self.scene_policy = scene or ScenePolicy()
        self.evidence_quality = evidence_quality
        self.stage = Stage.RUBBING
        self.confirmations = 0
        self.result: PurityResult | None = None
        self._scene = StoneScene(self.scene_policy)
        self._frame_index = 0
        self._origin: float | None = None
        self._elapsed = 0.0
        self._frame_interval = 0.0
        self._turns = _TurnCounter()
        self._mask = _StoneMask()
        self._streak_region: Box | None = None
        self._acid_seen_at: float | None = None
        self._readings: list[tuple[float, str | None, float, float | None]] = []
        """(time, karat label, score, the scene's retention if it read one)."""
        self._streaks: tuple[float, ...] = ()
        """Every streak's retention at the last reading, in the order they were rubbed."""
        self._timings: dict[Stage, StageTiming] = {Stage.RUBBING: StageTiming(0.0)}
        self._milestones: dict[str, float] = {}
        self._evidence: dict[str, bytes] = {}
        self._versions = {engine.name: engine.version, "reading": self.scene_policy.version}
        self._moved_at = 0.0
        self._anchor: float | None = None
        self._gold_seen_at: float | None = None
        self._turned_at: float | None = None
        self._progress_at = 0.0
        self._seen = Counter[str]()
        """Frames since the last progress, and how many showed each thing."""

    # --- frames -------------------------------------------------------------------------

    def process(self, frame_bgr: BgrFrame, timestamp: float) -> PurityStatus:
        """Run the current stage on one frame and say where the test stands."""
        frame = check_frame(frame_bgr)
        if self._origin is None:  # the first frame, or the first after a restore
            self._origin = timestamp - self._elapsed - self._frame_interval
        # A clock that steps back (a client's new stream) must not run a stage's time backwards.
        elapsed = max(self._elapsed, timestamp - self._origin)
        if elapsed > self._elapsed:
            self._frame_interval = elapsed - self._elapsed
        self._elapsed = elapsed
        index = self._frame_index
        self._frame_index += 1
        if self.stage is Stage.RUBBING:
            return self._rubbing(frame, index)
        if self.stage is Stage.ACID:
            return self._acid(frame, index)
        return self._status(index, (), Hint.DONE, stage_changed=False)

    def _status(
        self,
        index: int,
        detections: tuple[Detection, ...],
        hint: Hint,
        *,
        stage_changed: bool,
        acid_detected: bool = False,
        detected: Detected = Detected(),
        missing: Missing | None = None,
    ) -> PurityStatus:
        result = self.result
        if result is not None:
            hint = Hint.REPEAT_TEST if result.karat is Karat.INCONCLUSIVE else Hint.DONE
        return PurityStatus(
            frame_index=index,
            timestamp=self._elapsed,
            stage=self.stage,
            stage_changed=stage_changed,
            detections=detections,
            confirmations=self.confirmations,
            required_confirmations=self.required_confirmations,
            hint=hint,
            acid_detected=acid_detected,
            karat=None if result is None else result.karat,
            confidence=None if result is None else result.confidence,
            detected=detected,
            missing=missing,
            reason=None if result is None else result.reason,
        )

    def _keep_evidence(self, key: str, frame: BgrFrame) -> None:
        self._evidence[key] = encode_jpeg(frame, self.evidence_quality)
        self._milestones[key] = self._elapsed

    def _enter(self, stage: Stage) -> None:
        previous = self.stage
        self._timings[previous] = StageTiming(self._timings[previous].started, self._elapsed)
        self._timings[stage] = StageTiming(self._elapsed)
        self.stage = stage

    def _rubbing(self, frame: BgrFrame, index: int) -> PurityStatus:
        seen = self.engine.detect_rubbing(frame)
        stone = _best(seen.stones)
        view = self._scene.observe(frame, stone)
        if stone is None and view is not None:
            stone = self._scene.stone
        gold = None
        streaks: list[Detection] = []
        if stone is not None:
            gold = _best(_on_stone(seen.golds, stone, self.rubbing.min_gold_on_stone))
            if gold is None and view is not None:
                gold = view.ornament
            if seen.streaks is not None:
                streaks = [s for s in seen.streaks if s.overlap(stone) > 0]
            elif view is not None:
                streaks = list(view.streaks)
            elif gold is not None:
                self._mask.mark(_intersection(gold.box, stone.box), stone)
            for streak in streaks:
                self._mask.mark(streak.box, stone)
        moved = self._motion(stone, gold, view is not None and view.moving)
        detected = Detected(
            stone=stone is not None, ornament=gold is not None, streak=bool(streaks)
        )
        detections = tuple(d for d in (stone, gold) if d is not None) + tuple(streaks)
        self._count(detected, moved)
        if stone is not None and gold is not None:
            self._confirm(stone, gold)
        all_rubbed = not self.references or len(streaks) > len(self.references)
        if all_rubbed and self._rubbed and self._elapsed - self._moved_at >= self.rubbing.settle_s:
            self._streak_region = self._mask.region(stone) if stone is not None else None
            self._scene.freeze()
            self._keep_evidence("rubbing_confirmed", frame)
            self._enter(Stage.ACID)
            return self._status(
                index, detections, Hint.APPLY_ACID, stage_changed=True, detected=detected
            )
        missing = self._missing()
        if missing is not None and self._elapsed - self._progress_at >= self.rubbing.give_up_s:
            self._finish(frame, Karat.INCONCLUSIVE, 0.0, MISSING_REASON[missing])
            return self._status(
                index, detections, Hint.REPEAT_TEST, stage_changed=True, detected=detected
            )
        if missing is not None:
            hint = MISSING_HINT[missing]
        elif self._rubbed:
            hint = Hint.LIFT_ORNAMENT
        elif stone is None:
            hint = Hint.PLACE_STONE
        elif gold is None:
            hint = Hint.RUB_ORNAMENT
        else:
            hint = Hint.KEEP_RUBBING
        return self._status(
            index, detections, hint, stage_changed=False, detected=detected, missing=missing
        )

    @property
    def _rubbed(self) -> bool:
        return self.confirmations >= self.required_confirmations

    def _confirm(self, stone: Detection, gold: Detection) -> None:
        """A turn of the gold confirms the rubbing when it follows another turn of the same
        stroking within `max_stroke_s`: one turn alone is an ornament put down or picked up,
        a rod bringing the acid, a hand passing."""
        if self._gold_seen_at is None or (
            self._elapsed - self._gold_seen_at > self.rubbing.max_gap_s
        ):
            self._turns, self._turned_at = _TurnCounter(), None
        self._gold_seen_at = self._elapsed
        (gx, gy), (sx, sy) = gold.center, stone.center
        x1, y1, x2, y2 = stone.box
        distance = math.hypot(gx - sx, gy - sy) / max(1.0, math.hypot(x2 - x1, y2 - y1))
        if not self._turns.turned(distance, self.rubbing.min_swing) or self._rubbed:
            return
        previous, self._turned_at = self._turned_at, self._elapsed
        self._scene.stroke()
        if previous is None or self._elapsed - previous > self.rubbing.max_stroke_s:
            return
        if self._mask.coverage >= self.rubbing.min_streak_coverage:
            self.confirmations += 1
            self._progress_at = self._elapsed
            self._seen.clear()

    def _motion(self, stone: Detection | None, gold: Detection | None, scene_moving: bool) -> bool:
        """Whether something moved on the stone: the scene saw it, or the gold went half a
        swing from where it last rested."""
        moved = scene_moving
        if stone is not None and gold is not None:
            x1, y1, x2, y2 = stone.box
            diagonal = max(1.0, math.hypot(x2 - x1, y2 - y1))
            position = (gold.center[0] - x1 + gold.center[1] - y1) / diagonal
            if self._anchor is None or abs(position - self._anchor) >= self.rubbing.min_swing / 2:
                moved = moved or self._anchor is not None
                self._anchor = position
        if moved:
            self._moved_at = self._elapsed
        return moved

    def _count(self, detected: Detected, moved: bool) -> None:
        self._seen["frames"] += 1
        for name, seen in (
            ("stone", detected.stone),
            ("ornament", detected.ornament),
            ("streak", detected.streak),
            ("motion", moved),
        ):
            self._seen[name] += seen

    def _missing(self) -> Missing | None:
        """What kept the rubbing from progressing, once it has not for `stall_s`."""
        if self._elapsed - self._progress_at < self.rubbing.stall_s:
            return None
        if self._rubbed:
            return Missing.STILLNESS
        frames = max(1, self._seen["frames"])
        if self._seen["stone"] < 0.5 * frames:
            return Missing.STONE
        if self._seen["ornament"] < 0.2 * frames:
            return Missing.ORNAMENT
        if self._seen["streak"] < 0.2 * frames or (
            self._mask.coverage < self.rubbing.min_streak_coverage
        ):
            return Missing.STREAK
        return Missing.MOTION

    def _acid(self, frame: BgrFrame, index: int) -> PurityStatus:
        seen = self.engine.detect_acid(frame, self._streak_region)
        engine_acid = _best(seen.acids)
        reads = self._scene.reference is not None
        view = self._scene.acid(frame, None if engine_acid is None else engine_acid.box)
        acid = view.acid if reads else engine_acid
        reading: Detection | None = None
        if self.references and acid is not None:
            label, score = self._compare(view.streaks)
            reading = None if label is None else Detection(label, score, acid.box)
        elif view.retention is not None and acid is not None:
            label, score = karat_for(view.retention, self.scene_policy.bands)
            score = min(ABSOLUTE_CONFIDENCE, score)
            reading = None if label is None else Detection(label, score, acid.box)
        elif not reads:
            reading = _best([r for r in seen.readings if karat_label(r.label)])
        detections = tuple(d for d in (acid, reading) if d is not None)
        now, timing = self._elapsed, self.acid
        if acid is not None:
            if self._acid_seen_at is None:
                self._acid_seen_at = now
                self._keep_evidence("acid_applied", frame)
            if now - self._acid_seen_at >= timing.reaction_s:
                label = None if reading is None else karat_label(reading.label)
                score = 0.0 if reading is None else reading.score
                self._readings.append((now, label, score, view.retention))
                if view.streaks:
                    self._streaks = view.streaks
        self._readings = [r for r in self._readings if r[0] > now - timing.steady_window_s]
        steady = self._steady_reading()
        if steady is not None:
            karat, confidence = steady
            self._finish(frame, karat, confidence, "steady reading")
        elif self._acid_seen_at is None and now - self._acid_started >= timing.acid_timeout_s:
            self._finish(frame, Karat.INCONCLUSIVE, 0.0, "no acid seen")
        elif self._acid_seen_at is not None and now - self._acid_seen_at >= (
            timing.reading_timeout_s
        ):
            self._finish(frame, Karat.INCONCLUSIVE, 0.0, "no steady reading after the acid")
        detected = Detected(
            stone=self._scene.box is not None,
            streak=self._streak_region is not None,
            acid=acid is not None,
        )
        if self.stage is Stage.COMPLETED:
            return self._status(
                index,
                detections,
                Hint.DONE,
                stage_changed=True,
                acid_detected=acid is not None,
                detected=detected,
            )
        hint = Hint.APPLY_ACID if self._acid_seen_at is None else Hint.HOLD_STEADY
        return self._status(
            index,
            detections,
            hint,
            stage_changed=False,
            acid_detected=acid is not None,
            detected=detected,
        )

    def _compare(self, retentions: tuple[float, ...]) -> tuple[str | None, float]:
        """The sample among the reference needles, under the same acid in the same light:
        the needle whose streak kept the nearest share of its gold, when it is clearly the
        nearest and near enough. The sample was rubbed last."""
        if len(retentions) != len(self.references) + 1:
            return None, 0.0
        sample, needles = retentions[-1], retentions[:-1]
        gaps = sorted(
            (abs(sample - kept), karat)
            for kept, karat in zip(needles, self.references, strict=True)
        )
        nearest, karat = gaps[0]
        runner_up = gaps[1][0] if len(gaps) > 1 else math.inf
        if nearest > REFERENCE_MATCH or runner_up - nearest < REFERENCE_MARGIN:
            return None, 0.0
        return karat.value, min(0.99, 0.6 + 0.4 * (1 - nearest / REFERENCE_MATCH))

    @property
    def method(self) -> str:
        """How the karat is read, for the record and the certificate."""
        return reading_method(self.references)

    def _reaction(self) -> dict[str, float]:
        """For the record: with needles, every streak as last read (the ornament's rubbed
        last); without, the ornament's median retention over the readings kept."""
        if self.references and len(self._streaks) == len(self.references) + 1:
            needles = zip(self.references, self._streaks, strict=False)
            return {karat.value: round(kept, 3) for karat, kept in needles} | {
                "ornament": round(self._streaks[-1], 3)
            }
        kept = [r[3] for r in self._readings if r[3] is not None]
        return {"ornament": round(float(np.median(kept)), 3)} if kept else {}

    @property
    def _acid_started(self) -> float:
        return self._timings[Stage.ACID].started

    def _steady_reading(self) -> tuple[Karat, float] | None:
        timing = self.acid
        if self._acid_seen_at is None or len(self._readings) < timing.min_readings:
            return None
        if self._elapsed - self._acid_seen_at < timing.reaction_s + timing.steady_window_s:
            return None
        retentions = [r[3] for r in self._readings if r[3] is not None]
        if retentions and max(retentions) - min(retentions) > timing.steady_spread:
            return None
        label, votes = Counter(r[1] for r in self._readings).most_common(1)[0]
        share = votes / len(self._readings)
        if label is None or share < timing.steady_share:
            return None
        scores = [r[2] for r in self._readings if r[1] == label]
        return Karat(label), share * sum(scores) / len(scores)

    def _finish(self, frame: BgrFrame, karat: Karat, confidence: float, reason: str) -> None:
        self._keep_evidence("result", frame)
        self._enter(Stage.COMPLETED)
        self._timings[Stage.COMPLETED] = StageTiming(self._elapsed, self._elapsed)
        self.result = PurityResult(
            karat=karat,
            confidence=confidence,
            reason=reason,
            stage_timings=dict(self._timings),
            milestones=dict(self._milestones),
            detector_versions=dict(self._versions),
            evidence=dict(self._evidence),
            method=self.method,
            reaction=self._reaction(),
        )

    # --- resuming -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue this test elsewhere, as JSON-serialisable values.

        Evidence JPEGs are included (base64), so a resumed test still yields every key frame.
        """
        return {
            "version": SNAPSHOT_VERSION,
            "stage": self.stage.value,
            "frame_index": self._frame_index,
            "elapsed": self._elapsed,
            "frame_interval": self._frame_interval,
            "required_confirmations": self.required_confirmations,
            "references": [k.value for k in self.references],
            "confirmations": self.confirmations,
            "turns": {"direction": self._turns.direction, "extreme": self._turns.extreme},
            "gold_mask": self._mask.to_hex(),
            "streak_region": None if self._streak_region is None else list(self._streak_region),
            "acid_seen_at": self._acid_seen_at,
            "readings": [list(r) for r in self._readings],
            "streaks": list(self._streaks),
            "moved_at": self._moved_at,
            "anchor": self._anchor,
            "gold_seen_at": self._gold_seen_at,
            "turned_at": self._turned_at,
            "progress_at": self._progress_at,
            "seen": dict(self._seen),
            "scene": self._scene.snapshot(),
            "stage_timings": {s.value: [t.started, t.ended] for s, t in self._timings.items()},
            "milestones": dict(self._milestones),
            "detector_versions": dict(self._versions),
            "evidence": {k: base64.b64encode(v).decode() for k, v in self._evidence.items()},
            "result": None
            if self.result is None
            else {
                "karat": self.result.karat.value,
                "confidence": self.result.confidence,
                "reason": self.result.reason,
                "reaction": dict(self.result.reaction),
            },
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        engine: DetectorEngine,
        *,
        rubbing: RubbingPolicy | None = None,
        acid: AcidTiming | None = None,
        scene: ScenePolicy | None = None,
        evidence_quality: int = 85,
    ) -> PurityPipeline:
        """Continue a test from `snapshot()`. The next frame is taken to come one frame
        interval after the last one processed, whatever its clock: time spent disconnected
        is not counted."""
        try:
            if snapshot["version"] != SNAPSHOT_VERSION:
                raise InvalidPuritySnapshot(f"snapshot version {snapshot['version']!r}")
            pipeline = cls(
                engine,
                required_confirmations=int(snapshot["required_confirmations"]),
                references=tuple(Karat(k) for k in snapshot["references"]),
                rubbing=rubbing,
                acid=acid,
                scene=scene,
                evidence_quality=evidence_quality,
            )
            pipeline._load(snapshot)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InvalidPuritySnapshot(f"The snapshot is incomplete or damaged: {exc}") from exc
        return pipeline

    def _load(self, snapshot: dict[str, Any]) -> None:
        self.stage = Stage(snapshot["stage"])
        self._frame_index = int(snapshot["frame_index"])
        self._elapsed = float(snapshot["elapsed"])
        self._frame_interval = float(snapshot["frame_interval"])
        self.confirmations = int(snapshot["confirmations"])
        turns = snapshot["turns"]
        extreme = turns["extreme"]
        self._turns = _TurnCounter(int(turns["direction"]), None if extreme is None else extreme)
        self._mask = _StoneMask.from_hex(snapshot["gold_mask"])
        region = snapshot["streak_region"]
        self._streak_region = (
            None
            if region is None
            else (float(region[0]), float(region[1]), float(region[2]), float(region[3]))
        )
        seen = snapshot["acid_seen_at"]
        self._acid_seen_at = None if seen is None else float(seen)
        self._readings = [
            (float(t), label, float(s), None if r is None else float(r))
            for t, label, s, r in snapshot["readings"]
        ]
        # Snapshots taken before the reaction was recorded have no "streaks": none read yet.
        self._streaks = tuple(float(kept) for kept in snapshot.get("streaks", ()))
        self._moved_at = float(snapshot["moved_at"])
        anchor = snapshot["anchor"]
        self._anchor = None if anchor is None else float(anchor)
        self._gold_seen_at = _optional_float(snapshot["gold_seen_at"])
        self._turned_at = _optional_float(snapshot["turned_at"])
        self._progress_at = float(snapshot["progress_at"])
        self._seen = Counter({str(k): int(v) for k, v in snapshot["seen"].items()})
        self._scene = StoneScene.restore(snapshot["scene"], self.scene_policy)
        self._timings = {
            Stage(name): StageTiming(float(started), None if ended is None else float(ended))
            for name, (started, ended) in snapshot["stage_timings"].items()
        }
        self._milestones = {k: float(v) for k, v in snapshot["milestones"].items()}
        self._versions = {
            **snapshot["detector_versions"],
            self.engine.name: self.engine.version,
            "reading": self.scene_policy.version,
        }
        self._evidence = {k: base64.b64decode(v) for k, v in snapshot["evidence"].items()}
        if snapshot["result"] is not None:
            done = snapshot["result"]
            self.result = PurityResult(
                karat=Karat(done["karat"]),
                confidence=float(done["confidence"]),
                reason=str(done["reason"]),
                stage_timings=dict(self._timings),
                milestones=dict(self._milestones),
                detector_versions=dict(self._versions),
                evidence=dict(self._evidence),
                method=self.method,
                reaction={str(k): float(v) for k, v in done.get("reaction", {}).items()},
            )
