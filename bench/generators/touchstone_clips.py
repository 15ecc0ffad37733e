"""Synthetic touchstone purity tests: BGR frames with per-frame ground truth.

The scene, top-down: a wooden table, a dark low-saturation touchstone, a bright gold ornament
that enters, rubs back and forth along a line and leaves a dull gold streak, then a drop of
acid (a pale-blue translucent disc) placed on the middle of the streak.

The physics the classical engine reads:
- The streak is gold deposit blended over the stone; its density grows over the first
  stroke and saturates at `STREAK_DENSITY`; the ornament is brighter than the streak.
- Under the acid the deposit dissolves towards `FINAL_RETENTION[karat]` of its density,
  exponentially with time constant `REACTION_TAU_S`: 24K barely changes, 22K loses about
  half, 18K almost all. The streak outside the drop is untouched, as on a real stone, so
  the reading compares the streak under the acid with the same streak beside it.

Every clip is deterministic from its `ClipSpec` (seed included) and random-access by frame
index, so a test can start a pipeline anywhere in a clip.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from touchstone.appraisal.purity.engines.base import Box
from touchstone.appraisal.purity.frames import BgrFrame
from touchstone.appraisal.purity.pipeline import Karat

FINAL_RETENTION = {Karat.K24: 0.97, Karat.K22: 0.55, Karat.K18: 0.15}
REACTION_TAU_S = 0.35
STREAK_DENSITY = 0.6

TABLE_BGR = (70, 100, 130)
STONE_BGR = (34, 36, 38)
STREAK_BGR = (40, 165, 215)
ORNAMENT_RIM_BGR = (35, 165, 225)
ORNAMENT_BGR = (45, 195, 250)
ACID_BGR = (230, 190, 120)
ACID_OPACITY = 0.3
SKIN_BGR = (150, 180, 215)
NOISE_SIGMA = 3.0


class Variant(StrEnum):
    CLEAN = "clean"
    BLUR = "blur"
    LIGHTING = "lighting"
    SHAKE = "shake"
    OCCLUSION = "occlusion"
    NO_RUBBING = "no_rubbing"
    """The ornament is shown and held over the stone but never rubbed; acid goes on bare stone."""


@dataclass(frozen=True)
class Timeline:
    """When each thing happens, in seconds from the first frame."""

    ornament_enters: float = 0.4
    rubbing_starts: float = 0.8
    rubbing_ends: float = 3.0
    ornament_gone: float = 3.4
    acid_starts: float = 3.6
    acid_spread: float = 0.3
    duration: float = 10.0
    """Long enough for the result: the acid is asked for once the rubbing has stopped, and
    read after it has reacted (about 7.6 s into these clips)."""


@dataclass(frozen=True)
class ClipSpec:
    karat: Karat | None
    """The ornament's karat; None only for `Variant.NO_RUBBING`."""
    variant: Variant = Variant.CLEAN
    seed: int = 0
    width: int = 640
    height: int = 480
    fps: float = 15.0
    timeline: Timeline = Timeline()

    def __post_init__(self) -> None:
        if (self.karat is None) != (self.variant is Variant.NO_RUBBING):
            raise ValueError("a karat is needed exactly when the ornament is rubbed")


@dataclass(frozen=True)
class FrameTruth:
    index: int
    timestamp: float
    stage: str
    """"rubbing" until the acid touches the stone, then "acid"."""
    karat: Karat | None
    rubbing: bool
    """The ornament is on the stone and moving back and forth."""
    stone: Box
    ornament: Box | None
    streak: Box | None
    acid: Box | None


def _smoothstep(value: float) -> float:
    clipped = min(1.0, max(0.0, value))
    return clipped * clipped * (3 - 2 * clipped)


def _clip_box(box: Box, width: int, height: int) -> Box | None:
    x1, y1 = max(0.0, box[0]), max(0.0, box[1])
    x2, y2 = min(float(width), box[2]), min(float(height), box[3])
    return (x1, y1, x2, y2) if x2 - x1 >= 2 and y2 - y1 >= 2 else None


def _shift(box: Box | None, dx: float, dy: float) -> Box | None:
    return None if box is None else (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


class TouchstoneClip:
    """One synthetic test; `frame(i)` renders frame i with its ground truth."""

    def __init__(self, spec: ClipSpec) -> None:
        self.spec = spec
        width, height = spec.width, spec.height
        rng = np.random.default_rng(spec.seed)
        self.frame_count = round(spec.timeline.duration * spec.fps)

        x1 = width * rng.uniform(0.18, 0.23)
        y1 = height * rng.uniform(0.28, 0.33)
        x2 = width * rng.uniform(0.77, 0.82)
        y2 = height * rng.uniform(0.70, 0.75)
        self.stone: Box = (x1, y1, x2, y2)
        self.base = self._draw_base(rng)

        stone_width = x2 - x1
        self.center_x = (x1 + x2) / 2 + stone_width * rng.uniform(-0.04, 0.04)
        self.streak_y = (y1 + y2) / 2 + (y2 - y1) * rng.uniform(-0.08, 0.08)
        self.amplitude = stone_width * rng.uniform(0.24, 0.28)
        self.rub_hz = rng.uniform(1.1, 1.4)
        self.ornament_axes = (0.055 * width, 0.07 * height)
        self.contact_half = 0.6 * self.ornament_axes[0]
        self.streak_half_height = 0.022 * height
        self.streak_edge = self._ragged_edge(rng)
        self.acid_radius = (0.075 * width, 0.07 * height)
        self.acid_center = (self.center_x + rng.uniform(-0.01, 0.01) * width, self.streak_y)
        self.noise = [self._noise_pair(rng) for _ in range(3)]
        self.shake_phases = rng.uniform(0, 2 * math.pi, size=4)
        self.jitter = rng.normal(0.0, 0.3, size=(self.frame_count, 2))

    # --- static parts -----------------------------------------------------------------

    def _draw_base(self, rng: np.random.Generator) -> BgrFrame:
        """The table with its grain and the stone with its texture, drawn once."""
        width, height = self.spec.width, self.spec.height
        table = np.empty((height, width, 3), np.float32)
        table[:] = TABLE_BGR
        grain = cv2.resize(
            rng.normal(0, 9, (max(2, height // 24), 4)).astype(np.float32),
            (width, height),
            interpolation=cv2.INTER_CUBIC,
        )
        table += grain[:, :, None]
        x1, y1, x2, y2 = (round(v) for v in self.stone)
        stone = np.empty((y2 - y1, x2 - x1, 3), np.float32)
        stone[:] = STONE_BGR
        stone += rng.normal(0, 3, (y2 - y1, x2 - x1, 1)).astype(np.float32)
        table[y1:y2, x1:x2] = stone
        base: BgrFrame = np.clip(table, 0, 255).astype(np.uint8)
        return base

    def _ragged_edge(self, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        """Per-column half-height of the streak band: a rubbed line is never straight."""
        wobble = cv2.resize(
            rng.uniform(0.75, 1.15, (1, 24)).astype(np.float32),
            (self.spec.width, 1),
            interpolation=cv2.INTER_LINEAR,
        )[0]
        edge: npt.NDArray[np.float32] = wobble * np.float32(self.streak_half_height)
        return edge

    def _noise_pair(self, rng: np.random.Generator) -> tuple[BgrFrame, BgrFrame]:
        noise = rng.normal(0, NOISE_SIGMA, (self.spec.height, self.spec.width, 3))
        positive: BgrFrame = np.clip(noise, 0, 255).astype(np.uint8)
        negative: BgrFrame = np.clip(-noise, 0, 255).astype(np.uint8)
        return positive, negative

    # --- motion -----------------------------------------------------------------------

    def ornament_position(self, t: float) -> tuple[float, float] | None:
        """Centre of the ornament at time t, None while it is out of the scene."""
        line = self.spec.timeline
        rest_x = self.center_x + self.amplitude
        if self.spec.variant is Variant.NO_RUBBING:
            rest_x = self.center_x + 0.3 * self.amplitude
        if t < line.ornament_enters or t >= line.ornament_gone:
            return None
        if t < line.rubbing_starts:
            progress = _smoothstep(
                (t - line.ornament_enters) / (line.rubbing_starts - line.ornament_enters)
            )
            start_x = self.spec.width + self.ornament_axes[0]
            return start_x + (rest_x - start_x) * progress, self.streak_y
        if t < line.rubbing_ends:
            since = t - line.rubbing_starts
            if self.spec.variant is Variant.NO_RUBBING:
                tremor = 0.004 * self.spec.width * math.sin(2 * math.pi * 0.7 * since)
                return rest_x + tremor, self.streak_y
            x = self.center_x + self.amplitude * math.cos(2 * math.pi * self.rub_hz * since)
            return x, self.streak_y + 0.004 * self.spec.height * math.sin(7 * since)
        leaving = _smoothstep((t - line.rubbing_ends) / (line.ornament_gone - line.rubbing_ends))
        end = self.ornament_position(line.rubbing_ends - 1e-6)
        assert end is not None
        return end[0], end[1] - (end[1] + 2 * self.ornament_axes[1]) * leaving

    def streak_extent(self, t: float) -> tuple[float, float, float] | None:
        """(x_left, x_right, density) of the streak laid down by time t."""
        line = self.spec.timeline
        if self.spec.variant is Variant.NO_RUBBING or t < line.rubbing_starts:
            return None
        since = min(t, line.rubbing_ends) - line.rubbing_starts
        # The ornament starts at the right end and sweeps left: the streak follows it.
        swept = min(1.0, since * self.rub_hz * 2)
        left = self.center_x + self.amplitude * (1 - 2 * swept)
        right = self.center_x + self.amplitude
        density = STREAK_DENSITY * min(1.0, 0.35 + since * self.rub_hz)
        return left - self.contact_half, right + self.contact_half, density

    def retention(self, t: float) -> float:
        """Share of the streak's density left under the acid at time t."""
        line = self.spec.timeline
        if self.spec.karat is None or t < line.acid_starts:
            return 1.0
        final = FINAL_RETENTION[self.spec.karat]
        return final + (1 - final) * math.exp(-(t - line.acid_starts) / REACTION_TAU_S)

    def acid_radii(self, t: float) -> tuple[float, float] | None:
        line = self.spec.timeline
        if t < line.acid_starts:
            return None
        spread = math.sqrt(min(1.0, (t - line.acid_starts) / line.acid_spread + 0.15))
        return self.acid_radius[0] * spread, self.acid_radius[1] * spread

    def shake(self, index: int, t: float) -> tuple[float, float]:
        if self.spec.variant is not Variant.SHAKE:
            return 0.0, 0.0
        amplitude = 0.012 * self.spec.width
        p = self.shake_phases
        dx = math.sin(2 * math.pi * 1.3 * t + p[0]) + 0.5 * math.sin(2 * math.pi * 3.1 * t + p[1])
        dy = math.sin(2 * math.pi * 1.7 * t + p[2]) + 0.5 * math.sin(2 * math.pi * 2.9 * t + p[3])
        jitter = self.jitter[index]
        return (
            float(amplitude * (dx / 1.5 + jitter[0])),
            float(amplitude * (dy / 1.5 + jitter[1])),
        )

    # --- drawing ----------------------------------------------------------------------

    def _draw_streak(self, frame: BgrFrame, t: float) -> Box | None:
        extent = self.streak_extent(t)
        if extent is None:
            return None
        left, right, density = extent
        x1, x2 = max(0, round(left)), min(self.spec.width, round(right))
        reach = math.ceil(self.streak_edge.max()) + 1
        y1 = max(0, round(self.streak_y) - reach)
        y2 = min(self.spec.height, round(self.streak_y) + reach)
        rows = np.arange(y1, y2, dtype=np.float32)[:, None] + 0.5
        edge = self.streak_edge[x1:x2][None, :]
        # Soft band: full density in the core, fading over the last third of the half-height.
        alpha = np.clip((edge - np.abs(rows - self.streak_y)) / (0.35 * edge), 0, 1)
        alpha *= density
        radii = self.acid_radii(t)
        if radii is not None:
            columns = np.arange(x1, x2, dtype=np.float32)[None, :] + 0.5
            cx, cy = self.acid_center
            inside = ((columns - cx) / self.acid_radius[0]) ** 2 + (
                (rows - cy) / self.acid_radius[1]
            ) ** 2
            under_acid = np.clip((1.0 - inside) * 6, 0, 1)
            alpha *= 1 - under_acid * (1 - self.retention(t))
        region = frame[y1:y2, x1:x2].astype(np.float32)
        region += (np.array(STREAK_BGR, np.float32) - region) * alpha[:, :, None]
        frame[y1:y2, x1:x2] = region.astype(np.uint8)
        return (
            float(x1),
            self.streak_y - self.streak_half_height,
            float(x2),
            self.streak_y + self.streak_half_height,
        )

    def _draw_acid(self, frame: BgrFrame, t: float) -> Box | None:
        radii = self.acid_radii(t)
        if radii is None:
            return None
        cx, cy = self.acid_center
        rx, ry = radii
        x1, y1 = max(0, int(cx - rx) - 1), max(0, int(cy - ry) - 1)
        x2, y2 = min(self.spec.width, int(cx + rx) + 2), min(self.spec.height, int(cy + ry) + 2)
        mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
        center = (round(cx - x1), round(cy - y1))
        cv2.ellipse(mask, center, (round(rx), round(ry)), 0, 0, 360, 255, -1, cv2.LINE_AA)
        opacity = mask.astype(np.float32)[:, :, None] * np.float32(ACID_OPACITY / 255)
        region = frame[y1:y2, x1:x2].astype(np.float32)
        region += (np.array(ACID_BGR, np.float32) - region) * opacity
        frame[y1:y2, x1:x2] = region.astype(np.uint8)
        glint = (round(cx - 0.4 * rx), round(cy - 0.45 * ry))
        cv2.ellipse(
            frame,
            glint,
            (max(1, round(0.18 * rx)), max(1, round(0.1 * ry))),
            -20,
            0,
            360,
            (235, 240, 240),
            -1,
            cv2.LINE_AA,
        )
        return cx - rx, cy - ry, cx + rx, cy + ry

    def _draw_ornament(self, frame: BgrFrame, t: float) -> Box | None:
        position = self.ornament_position(t)
        if position is None:
            return None
        x, y = position
        ax, ay = self.ornament_axes
        center = (round(x), round(y))
        cv2.ellipse(
            frame, center, (round(ax), round(ay)), 0, 0, 360, ORNAMENT_RIM_BGR, -1, cv2.LINE_AA
        )
        cv2.ellipse(
            frame,
            center,
            (round(0.8 * ax), round(0.8 * ay)),
            0,
            0,
            360,
            ORNAMENT_BGR,
            -1,
            cv2.LINE_AA,
        )
        glint = (round(x - 0.35 * ax), round(y - 0.4 * ay))
        cv2.ellipse(
            frame,
            glint,
            (max(1, round(0.2 * ax)), max(1, round(0.12 * ay))),
            30,
            0,
            360,
            (215, 245, 255),
            -1,
            cv2.LINE_AA,
        )
        return x - ax, y - ay, x + ax, y + ay

    def _draw_finger(self, frame: BgrFrame, t: float) -> None:
        """A fingertip over the stone's lower-left corner while the test goes on."""
        if self.spec.variant is not Variant.OCCLUSION or not 1.2 <= t < 5.5:
            return
        x1, y1, x2, y2 = self.stone
        tip = (round(x1 + 0.18 * (x2 - x1)), round(y1 + 0.62 * (y2 - y1)))
        base = (round(x1 - 0.05 * self.spec.width), self.spec.height + 10)
        cv2.line(frame, base, tip, SKIN_BGR, round(0.07 * self.spec.width), cv2.LINE_AA)
        cv2.circle(frame, tip, round(0.035 * self.spec.width), SKIN_BGR, -1, cv2.LINE_AA)

    def _camera(self, frame: BgrFrame, index: int, t: float) -> BgrFrame:
        variant = self.spec.variant
        if variant is Variant.LIGHTING:
            gain = 1.0 - 0.4 * _smoothstep((t - 1.5) / 3.5)
            ramp = np.linspace(0.85 * gain, gain, self.spec.width, dtype=np.float32)
            frame = (frame * ramp[None, :, None]).astype(np.uint8)
        elif variant is Variant.BLUR:
            frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), 0.006 * self.spec.width), np.uint8)
        elif variant is Variant.SHAKE:
            dx, dy = self.shake(index, t)
            matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
            size = (self.spec.width, self.spec.height)
            moved = cv2.warpAffine(frame, matrix, size, borderMode=cv2.BORDER_REPLICATE)
            frame = np.asarray(moved, np.uint8)
        positive, negative = self.noise[index % len(self.noise)]
        return np.asarray(cv2.subtract(cv2.add(frame, positive), negative), np.uint8)

    # --- frames -----------------------------------------------------------------------

    def __len__(self) -> int:
        return self.frame_count

    def timestamp(self, index: int) -> float:
        return index / self.spec.fps

    def frame(self, index: int) -> tuple[BgrFrame, FrameTruth]:
        if not 0 <= index < self.frame_count:
            raise IndexError(index)
        t = self.timestamp(index)
        line = self.spec.timeline
        frame = self.base.copy()
        streak = self._draw_streak(frame, t)
        acid = self._draw_acid(frame, t)
        ornament = self._draw_ornament(frame, t)
        self._draw_finger(frame, t)
        frame = self._camera(frame, index, t)
        dx, dy = self.shake(index, t)
        width, height = self.spec.width, self.spec.height
        rubbing = self.spec.variant is not Variant.NO_RUBBING and (
            line.rubbing_starts <= t < line.rubbing_ends
        )

        def placed(box: Box | None) -> Box | None:
            shifted = _shift(box, dx, dy)
            return None if shifted is None else _clip_box(shifted, width, height)

        stone = placed(self.stone)
        assert stone is not None
        truth = FrameTruth(
            index=index,
            timestamp=t,
            stage="acid" if t >= line.acid_starts else "rubbing",
            karat=self.spec.karat,
            rubbing=rubbing,
            stone=stone,
            ornament=placed(ornament),
            streak=placed(streak),
            acid=placed(acid),
        )
        return frame, truth

    def __iter__(self) -> Iterator[tuple[BgrFrame, FrameTruth]]:
        for index in range(self.frame_count):
            yield self.frame(index)


def write_y4m(frames: Iterable[BgrFrame], path: Path, fps: int = 15) -> int:
    """Write BGR frames as a 4:2:0 y4m clip (Chromium's fake camera reads it); returns the
    number of frames written. Every frame must have the first one's size (even sides)."""
    written = 0
    with path.open("wb") as out:
        size: tuple[int, int] | None = None
        for frame in frames:
            height, width = frame.shape[:2]
            if size is None:
                if width % 2 or height % 2:
                    raise ValueError(f"4:2:0 needs even sides, not {width}x{height}")
                size = (width, height)
                out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            elif (width, height) != size:
                raise ValueError(f"frame {written} is {width}x{height}, not {size[0]}x{size[1]}")
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
            written += 1
    return written
