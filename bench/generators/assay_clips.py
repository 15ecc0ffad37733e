"""A second touchstone clip renderer, built unlike `touchstone_clips`, for robustness figures.

`touchstone_clips` paints fixed BGR colours on a fixed layout. This one renders reflectances
under a lamp and through a camera, and draws every look from a seed:

- the scene in linear light: a table (dark wood to white laminate or cloth), a stone (black,
  grey-green or blue-black; speckled, veined or smooth) at any place, size and angle, under a
  lamp of 2700-6500 K and varied intensity with a fall-off across the frame, and sometimes a
  glare spot (the lamp's reflection) over the stone;
- an ornament of one of four shapes (ring, chain, bangle, coin) held by a hand, rubbed in
  any direction at any speed for a random number of strokes, that lays a streak whose
  density grows with the strokes; a second hand may rest over part of the stone;
- acid put on with a glass rod at a random place along the streak: a drop that spreads,
  then sits still, and looks clear (a darker wet patch with a bright rim and glint), grey
  or slightly tinted; under it the streak keeps `retention` of its density, reached with a
  time constant of 0.3-1.2 s;
- a camera: exposure, gamma, noise, motion or focus blur, rotation and scale of the whole
  view, a resolution from 640x480 to 1920x1080 and JPEG compression.

`Condition` picks the stress of a clip (blur, glare, noise, occlusion, a turned camera, no
rubbing); everything else is drawn for every clip. A clip is deterministic from its
`AssaySpec`; `held_out` clips draw from a seed space the development part never uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import numpy.typing as npt

from touchstone.appraisal.purity.engines.base import Box
from touchstone.appraisal.purity.frames import BgrFrame
from touchstone.appraisal.purity.pipeline import Karat

Image = npt.NDArray[np.float32]

RETENTION = {Karat.K24: (0.92, 1.0), Karat.K22: (0.42, 0.56), Karat.K18: (0.04, 0.2)}
"""Share of a streak's gold left under the acid, by karat: 24K does not react, 22K loses
about half, 18K nearly all (the same acid for all three, as on one stone)."""
SIZES = ((640, 480), (854, 480), (1280, 720), (1920, 1080))
RENDER_WIDTH = 960
HELD_OUT_SEEDS = 1_000_003
"""Held-out clips draw their randomness from seeds shifted by this: no overlap with dev."""


class Condition(StrEnum):
    CLEAN = "clean"
    BLUR = "blur"
    GLARE = "glare"
    NOISY = "noisy"
    """Dim light, strong sensor noise and heavy JPEG compression."""
    OCCLUSION = "occlusion"
    TURNED = "turned"
    """The camera rotated up to 30 degrees and zoomed 0.75-1.3x."""
    NO_RUBBING = "no_rubbing"
    """The ornament is shown and held on the stone, never rubbed; acid goes on bare stone."""


class Shape(StrEnum):
    RING = "ring"
    CHAIN = "chain"
    BANGLE = "bangle"
    COIN = "coin"


class AcidLook(StrEnum):
    CLEAR = "clear"
    GREY = "grey"
    TINTED = "tinted"


@dataclass(frozen=True)
class AssaySpec:
    karat: Karat | None
    condition: Condition = Condition.CLEAN
    seed: int = 0
    held_out: bool = False
    size: tuple[int, int] | None = None
    """(width, height); None draws one of `SIZES`."""
    references: tuple[Karat, ...] = ()
    """Touch needles rubbed first, in this order, beside where the ornament will go; the
    acid is then drawn across every streak."""

    def __post_init__(self) -> None:
        if (self.karat is None) != (self.condition is Condition.NO_RUBBING):
            raise ValueError("a karat is needed exactly when the ornament is rubbed")


@dataclass(frozen=True)
class AssayTruth:
    index: int
    timestamp: float
    karat: Karat | None
    rubbing: bool
    """The ornament, or a reference needle, is being rubbed on the stone."""
    acid_on: bool
    """The acid has touched the stone."""
    stone: Box
    ornament: Box | None


def _kelvin_bgr(kelvin: float) -> npt.NDArray[np.float32]:
    """Relative B, G, R of a lamp of that colour temperature (white at 6500 K)."""
    warmth = (6500.0 - kelvin) / 3800.0  # 0 at 6500 K, 1 at 2700 K
    return np.array([1.0 - 0.55 * warmth, 1.0 - 0.25 * warmth, 1.0], np.float32)


def _smoothstep(value: float) -> float:
    clipped = min(1.0, max(0.0, value))
    return clipped * clipped * (3 - 2 * clipped)


def _rotate(points: npt.NDArray[np.float64], angle: float) -> npt.NDArray[np.float64]:
    c, s = math.cos(angle), math.sin(angle)
    rotated: npt.NDArray[np.float64] = points @ np.array([[c, s], [-s, c]])
    return rotated


class AssayClip:
    """One rendered test; `frame(i)` gives frame i and its truth."""

    def __init__(self, spec: AssaySpec) -> None:
        self.spec = spec
        condition = spec.condition
        seed = spec.seed + (HELD_OUT_SEEDS if spec.held_out else 0)
        karat = -1 if spec.karat is None else list(Karat).index(spec.karat)
        rng = np.random.default_rng([seed, list(Condition).index(condition), karat + 1, 7])
        self.rng_seed = seed
        self.out_size = spec.size or SIZES[int(rng.integers(len(SIZES)))]
        # The scene is drawn at most RENDER_WIDTH wide and scaled up by the camera, as a
        # webcam's 1080p often is; geometry below is in the drawn scene's pixels.
        self.upscale = max(1.0, self.out_size[0] / RENDER_WIDTH)
        self.width = round(self.out_size[0] / self.upscale)
        self.height = round(self.out_size[1] / self.upscale)
        width, height = self.width, self.height
        unit = min(width, height)
        self.fps = float(rng.choice([10.0, 12.0, 15.0]))

        # --- the scene ---
        self.stone_center = np.array(
            [width * rng.uniform(0.4, 0.6), height * rng.uniform(0.42, 0.58)]
        )
        self.stone_half = np.array([unit * rng.uniform(0.38, 0.55), unit * rng.uniform(0.2, 0.3)])
        self.stone_angle = math.radians(rng.uniform(-12, 12))
        table_level = rng.uniform(0.22, 0.85)
        table_tint = rng.uniform(-0.25, 0.25, 3)
        self.table = np.clip(
            table_level * (1 + np.array([-0.3, 0.0, 0.25]) * rng.uniform(0, 1) + table_tint * 0.3),
            0.12,
            0.95,
        )
        stone_kind = rng.integers(3)
        self.stone_colour = [
            np.array([0.035, 0.035, 0.035]),
            np.array([0.05, 0.06, 0.045]),
            np.array([0.06, 0.045, 0.035]),
        ][int(stone_kind)] * rng.uniform(0.7, 1.4)
        self.texture = str(rng.choice(["speckle", "veins", "smooth"]))
        self.lamp = _kelvin_bgr(rng.uniform(2700, 6500)) * rng.uniform(0.7, 1.3)
        if condition is Condition.NOISY:
            self.lamp = self.lamp * rng.uniform(0.35, 0.55)
        self.falloff = (rng.uniform(0, 2 * math.pi), rng.uniform(0.1, 0.35))
        self.glare: tuple[float, float, float, float] | None = None
        if condition is Condition.GLARE:
            along = rng.uniform(-0.8, 0.8)
            gx, gy = (
                self.stone_center
                + _rotate(
                    np.array(
                        [[along * self.stone_half[0], rng.uniform(-1, 1) * self.stone_half[1]]]
                    ),
                    self.stone_angle,
                )[0]
            )
            self.glare = (gx, gy, unit * rng.uniform(0.06, 0.14), rng.uniform(1.0, 2.5))

        # --- the rubbing ---
        self.shape = Shape(str(rng.choice(list(Shape))))
        self.gold = np.array([0.1, 0.42, 0.72]) * rng.uniform(0.8, 1.1, 3)
        self.stroke_angle = self.stone_angle + math.radians(rng.uniform(-35, 35))
        self.stroke_center = (
            self.stone_center
            + _rotate(
                np.array(
                    [
                        [
                            rng.uniform(-0.15, 0.15) * self.stone_half[0],
                            rng.uniform(-0.3, 0.3) * self.stone_half[1],
                        ]
                    ]
                ),
                self.stone_angle,
            )[0]
        )
        self.amplitude = self.stone_half[0] * rng.uniform(0.3, 0.5)
        self.stroke_hz = rng.uniform(0.6, 1.6)
        strokes = int(rng.integers(4, 8))
        self.contact = (
            unit
            * {
                Shape.RING: rng.uniform(0.012, 0.02),
                Shape.CHAIN: rng.uniform(0.015, 0.025),
                Shape.BANGLE: rng.uniform(0.01, 0.016),
                Shape.COIN: rng.uniform(0.018, 0.03),
            }[self.shape]
        )
        self.ornament_size = (
            unit
            * {
                Shape.RING: rng.uniform(0.05, 0.07),
                Shape.CHAIN: rng.uniform(0.03, 0.04),
                Shape.BANGLE: rng.uniform(0.13, 0.17),
                Shape.COIN: rng.uniform(0.05, 0.075),
            }[self.shape]
        )
        self.density = rng.uniform(0.4, 0.75)
        enter = rng.uniform(0.3, 0.8)
        self.t_rub = enter + rng.uniform(0.4, 0.8)
        self.t_rub_end = self.t_rub + strokes / (2 * self.stroke_hz)
        self.t_gone = self.t_rub_end + rng.uniform(0.4, 0.8)
        self.t_enter = enter
        self.enter_from = rng.uniform(0, 2 * math.pi)
        self.leave_to = rng.uniform(0, 2 * math.pi)

        # --- the acid ---
        self.t_rod = self.t_gone + rng.uniform(0.6, 1.6)
        self.t_acid = self.t_rod + 0.5
        self.spread_s = rng.uniform(0.2, 0.5)
        self.duration = self.t_acid + rng.uniform(5.5, 7.0)
        along = rng.uniform(-0.45, 0.45) * self.amplitude
        direction = np.array([math.cos(self.stroke_angle), math.sin(self.stroke_angle)])
        self.acid_center = self.stroke_center + along * direction
        self.acid_axes = (
            self.contact * rng.uniform(2.4, 3.6),
            self.contact * rng.uniform(2.0, 3.0),
        )
        self.acid_angle = rng.uniform(0, 180)
        self.acid_look = AcidLook(str(rng.choice(list(AcidLook))))
        self.acid_opacity = rng.uniform(0.08, 0.22)
        self.acid_colour = {
            AcidLook.CLEAR: np.array([0.5, 0.5, 0.5]),
            AcidLook.GREY: np.full(3, rng.uniform(0.18, 0.4)),
            AcidLook.TINTED: rng.uniform(0.15, 0.45, 3),
        }[self.acid_look]
        self.wet = rng.uniform(0.75, 0.9)
        self.rim = (rng.uniform(0.03, 0.08), rng.uniform(0.1, 0.16))
        """How bright the drop's meniscus is (reflectance added) and how wide (of the radius)."""
        low, high = RETENTION.get(spec.karat, (1.0, 1.0)) if spec.karat else (1.0, 1.0)
        self.retention = rng.uniform(low, high)
        self.tau = rng.uniform(0.3, 1.2)

        # --- the camera ---
        self.rotation = rng.uniform(-5, 5)
        self.zoom = 1.0
        if condition is Condition.TURNED:
            self.rotation = rng.uniform(-30, 30)
            self.zoom = rng.uniform(0.75, 1.3)
        self.noise_sigma = rng.uniform(0.8, 2.5)
        self.jpeg = int(rng.integers(75, 96))
        if condition is Condition.NOISY:
            self.noise_sigma, self.jpeg = rng.uniform(4.0, 7.0), int(rng.integers(30, 60))
        self.blur: tuple[str, float, float] | None = None
        if condition is Condition.BLUR:
            kind = str(rng.choice(["motion", "focus"]))
            self.blur = (kind, unit * rng.uniform(0.006, 0.014), rng.uniform(0, 180))
        self.occluder: npt.NDArray[np.int32] | None = None
        if condition is Condition.OCCLUSION:
            self.occluder = self._resting_hand(rng)
        self.skin = np.array([0.35, 0.45, 0.62]) * rng.uniform(0.5, 1.1)
        self.chain_phase = rng.uniform(0, 2 * math.pi)

        self.frame_count = round(self.duration * self.fps)
        self.illumination = self._illumination()
        self.base = self._base(rng)
        out_width, out_height = self.out_size
        noise = rng.normal(0, self.noise_sigma, (3, out_height, out_width, 3))
        self.noise = [n.astype(np.float32) for n in noise]
        self.acid_masks: dict[int, Image] = {}
        self.needles: list[tuple[float, float, float, float]] = []
        """(perpendicular offset, start time, density, retention) of each reference streak."""
        if spec.references:
            self._add_needles(rng)
        self.gamma = (np.linspace(0, 1, 4096, dtype=np.float32) ** (1 / 2.2) * 255).astype(
            np.float32
        )

    def _add_needles(self, rng: np.random.Generator) -> None:
        """Reference streaks first, one needle at a time, on both sides of the ornament's
        line; everything after starts later by the time they take."""
        spacing = self.contact * rng.uniform(3.5, 4.5)
        slot = 1.3
        start = 0.4
        for index, karat in enumerate(self.spec.references):
            side = 1 if index % 2 == 0 else -1
            offset = side * spacing * (index // 2 + 1)
            low, high = RETENTION[karat]
            self.needles.append(
                (offset, start + slot * index, rng.uniform(0.45, 0.7), rng.uniform(low, high))
            )
        shift = start + slot * len(self.needles)
        self.t_enter += shift
        self.t_rub += shift
        self.t_rub_end += shift
        self.t_gone += shift
        self.t_rod += shift
        self.t_acid += shift
        self.duration += shift
        self.frame_count = round(self.duration * self.fps)
        offsets = [0.0, *(n[0] for n in self.needles)]
        normal = np.array([-math.sin(self.stroke_angle), math.cos(self.stroke_angle)])
        self.acid_center = self.acid_center + normal * (max(offsets) + min(offsets)) / 2
        across = (max(offsets) - min(offsets)) / 2 + self.contact * 2.6
        self.acid_axes = (self.contact * 2.6, across)
        self.acid_angle = math.degrees(self.stroke_angle)

    def needle_at(self, t: float) -> npt.NDArray[np.float64] | None:
        """The tip of the needle being rubbed at time t."""
        direction = np.array([math.cos(self.stroke_angle), math.sin(self.stroke_angle)])
        normal = np.array([-direction[1], direction[0]])
        for offset, start, _, _ in self.needles:
            if start <= t < start + 1.0:
                swing = math.cos(2 * math.pi * 1.5 * (t - start))
                tip: npt.NDArray[np.float64] = (
                    self.stroke_center + normal * offset + direction * swing * 0.6 * self.amplitude
                )
                return tip
        return None

    # --- static parts -------------------------------------------------------------------------

    def _illumination(self) -> Image:
        height, width = self.height, self.width
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        angle, strength = self.falloff
        ramp = (
            (xs / width - 0.5) * math.cos(angle) + (ys / height - 0.5) * math.sin(angle)
        ).astype(np.float32)
        gain = 1.0 + strength * ramp
        light = gain[:, :, None] * self.lamp[None, None, :].astype(np.float32)
        if self.glare is not None:
            gx, gy, radius, power = self.glare
            spot = np.exp(-(((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * radius**2))).astype(np.float32)
            light += (power * spot)[:, :, None] * self.lamp[None, None, :].astype(np.float32) * 3.0
        result: Image = light.astype(np.float32)
        return result

    def _stone_polygon(self) -> npt.NDArray[np.int32]:
        hx, hy = self.stone_half
        corners = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
        points = self.stone_center + _rotate(corners, self.stone_angle)
        polygon: npt.NDArray[np.int32] = np.round(points).astype(np.int32)
        return polygon

    def _base(self, rng: np.random.Generator) -> Image:
        """The table and the stone as reflectances."""
        height, width = self.height, self.width
        grain = cv2.resize(
            rng.normal(0, 1, (max(2, height // 40), max(2, width // 6))).astype(np.float32),
            (width, height),
            interpolation=cv2.INTER_CUBIC,
        )
        table = self.table[None, None, :] * (1 + 0.06 * grain[:, :, None])
        table += rng.normal(0, 0.01, (height, width, 1))
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [self._stone_polygon()], 255, cv2.LINE_AA)
        stone = np.empty((height, width, 3), np.float32)
        stone[:] = self.stone_colour
        if self.texture == "speckle":
            stone *= 1 + 0.25 * rng.normal(0, 1, (height, width, 1)).astype(np.float32)
        elif self.texture == "veins":
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
            phase = rng.uniform(0, 6.28)
            waves = np.sin(xs * 0.05 + 3 * np.sin(ys * 0.013 + phase)) ** 16
            stone *= (1 + 0.8 * waves)[:, :, None]
        alpha = (mask.astype(np.float32) / 255)[:, :, None]
        base: Image = (table * (1 - alpha) + stone * alpha).astype(np.float32)
        return base

    def _resting_hand(self, rng: np.random.Generator) -> npt.NDArray[np.int32]:
        """A hand and two fingers resting over one end of the stone, from outside it."""
        side = 1 if rng.uniform() < 0.5 else -1
        hx, hy = self.stone_half
        tip = np.array([side * hx * rng.uniform(0.55, 0.8), hy * rng.uniform(-0.6, 0.6)])
        root = tip + np.array([side * hx * 1.2, hy * rng.uniform(1.0, 2.0)])
        width = hy * rng.uniform(0.35, 0.55)
        normal = np.array([-(root - tip)[1], (root - tip)[0]])
        normal = normal / np.linalg.norm(normal) * width
        local = np.array([tip - normal, tip + normal, root + 2 * normal, root - 2 * normal])
        points = self.stone_center + _rotate(local, self.stone_angle)
        polygon: npt.NDArray[np.int32] = np.round(points).astype(np.int32)
        return polygon

    # --- motion -------------------------------------------------------------------------------

    def ornament_at(self, t: float) -> npt.NDArray[np.float64] | None:
        direction = np.array([math.cos(self.stroke_angle), math.sin(self.stroke_angle)])
        start = self.stroke_center + self.amplitude * direction
        far = 1.2 * max(self.width, self.height)
        if t < self.t_enter or t >= self.t_gone:
            return None
        if t < self.t_rub:
            away = np.array([math.cos(self.enter_from), math.sin(self.enter_from)]) * far
            progress = _smoothstep((t - self.t_enter) / (self.t_rub - self.t_enter))
            return start + away * (1 - progress)
        if t < self.t_rub_end:
            since = t - self.t_rub
            if self.spec.condition is Condition.NO_RUBBING:
                return start + 0.003 * self.width * math.sin(4.0 * since) * direction
            swing = math.cos(2 * math.pi * self.stroke_hz * since)
            wobble = 0.03 * self.amplitude * math.sin(5.3 * since)
            normal = np.array([-direction[1], direction[0]])
            position: npt.NDArray[np.float64] = (
                self.stroke_center + self.amplitude * swing * direction + wobble * normal
            )
            return position
        end = self.ornament_at(self.t_rub_end - 1e-6)
        assert end is not None
        away = np.array([math.cos(self.leave_to), math.sin(self.leave_to)]) * far
        return end + away * _smoothstep((t - self.t_rub_end) / (self.t_gone - self.t_rub_end))

    def streak_at(self, t: float) -> tuple[float, float, float] | None:
        """(from, to, density): the streak along the stroke line, in units of `amplitude`
        from the stroke centre."""
        if self.spec.condition is Condition.NO_RUBBING or t < self.t_rub:
            return None
        since = min(t, self.t_rub_end) - self.t_rub
        swept = min(1.0, since * self.stroke_hz * 2)
        density = self.density * min(1.0, 0.4 + 0.6 * since * self.stroke_hz)
        return 1.0 - 2.0 * swept, 1.0, density

    def acid_state(self, t: float) -> tuple[float, float] | None:
        """(spread 0..1, retention now) once the acid is on."""
        if t < self.t_acid:
            return None
        spread = math.sqrt(min(1.0, 0.2 + (t - self.t_acid) / self.spread_s))
        left = self.retention + (1 - self.retention) * math.exp(-(t - self.t_acid) / self.tau)
        return spread, left

    # --- drawing ------------------------------------------------------------------------------

    def _streaks(self, t: float) -> list[tuple[Image, tuple[int, int, int, int]]]:
        """The ornament's streak and every reference streak laid down by time t."""
        found = []
        extent = self.streak_at(t)
        if extent is not None:
            found.append(self._streak_alpha(t, *extent, 0.0, self.retention))
        for offset, start, density, retention in self.needles:
            if t >= start:
                grown = density * min(1.0, 0.3 + (t - start))
                found.append(self._streak_alpha(t, -0.6, 0.6, grown, offset, retention))
        return [f for f in found if f is not None]

    def _streak_alpha(
        self, t: float, start: float, end: float, density: float, offset: float, retention: float
    ) -> tuple[Image, tuple[int, int, int, int]] | None:
        direction = np.array([math.cos(self.stroke_angle), math.sin(self.stroke_angle)])
        center = self.stroke_center + np.array([-direction[1], direction[0]]) * offset
        p1 = center + (start * self.amplitude - self.contact) * direction
        p2 = center + (end * self.amplitude + self.contact) * direction
        pad = int(self.contact * 2) + 3
        x1 = max(0, int(min(p1[0], p2[0])) - pad)
        y1 = max(0, int(min(p1[1], p2[1])) - pad)
        x2 = min(self.width, int(max(p1[0], p2[0])) + pad)
        y2 = min(self.height, int(max(p1[1], p2[1])) + pad)
        if x2 <= x1 or y2 <= y1:
            return None
        mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
        offset = np.array([x1, y1])
        thickness = max(1, round(self.contact))
        if self.shape is Shape.CHAIN:  # links touch the stone: two thin parallel lines
            normal = np.array([-direction[1], direction[0]]) * self.contact * 0.6
            for sign in (-1, 1):
                a, b = p1 - offset + sign * normal, p2 - offset + sign * normal
                cv2.line(
                    mask,
                    tuple(np.round(a).astype(int)),
                    tuple(np.round(b).astype(int)),
                    255,
                    max(1, thickness // 2),
                    cv2.LINE_AA,
                )
        else:
            a, b = p1 - offset, p2 - offset
            cv2.line(
                mask,
                tuple(np.round(a).astype(int)),
                tuple(np.round(b).astype(int)),
                255,
                thickness,
                cv2.LINE_AA,
            )
        mask = cv2.GaussianBlur(mask, (0, 0), max(0.6, self.contact * 0.15))
        alpha: Image = (mask.astype(np.float32) / 255) * np.float32(density)
        acid = self.acid_state(t)
        if acid is not None:
            spread, _ = acid
            left = retention + (1 - retention) * math.exp(-(t - self.t_acid) / self.tau)
            under = self._acid_mask(spread)[y1:y2, x1:x2]
            alpha *= 1 - under * (1 - left)
        return alpha, (x1, y1, x2, y2)

    def _acid_mask(self, spread: float) -> Image:
        key = round(spread * 100)
        if key in self.acid_masks:
            return self.acid_masks[key]
        spread = key / 100
        mask = np.zeros((self.height, self.width), np.uint8)
        axes = (
            max(1, round(self.acid_axes[0] * spread)),
            max(1, round(self.acid_axes[1] * spread)),
        )
        center = (round(self.acid_center[0]), round(self.acid_center[1]))
        cv2.ellipse(mask, center, axes, self.acid_angle, 0, 360, 255, -1, cv2.LINE_AA)
        result: Image = mask.astype(np.float32) / 255
        self.acid_masks[key] = result
        return result

    def _draw_ornament(self, scene: Image, t: float) -> Box | None:
        position = self.ornament_at(t)
        if position is None:
            return None
        size = self.ornament_size
        x, y = position
        center = (round(x), round(y))
        gold = tuple(float(v) for v in self.gold * 1.25)
        rim = tuple(float(v) for v in self.gold * 0.8)
        shine = tuple(float(v) for v in np.minimum(1.0, self.gold * 1.9 + 0.2))
        r = round(size)
        if self.shape is Shape.RING:
            cv2.circle(scene, center, r, rim, max(2, round(0.35 * size)), cv2.LINE_AA)
            cv2.circle(scene, center, r, gold, max(1, round(0.2 * size)), cv2.LINE_AA)
            cv2.ellipse(
                scene, center, (r, r), -60, 200, 250, shine, max(1, round(0.08 * size)), cv2.LINE_AA
            )
            extent = 1.2 * size
        elif self.shape is Shape.BANGLE:
            cv2.circle(scene, center, r, rim, max(2, round(0.12 * size)), cv2.LINE_AA)
            cv2.circle(scene, center, r, gold, max(1, round(0.07 * size)), cv2.LINE_AA)
            cv2.ellipse(
                scene, center, (r, r), 20, 190, 260, shine, max(1, round(0.03 * size)), cv2.LINE_AA
            )
            extent = 1.07 * size
        elif self.shape is Shape.COIN:
            cv2.circle(scene, center, r, rim, -1, cv2.LINE_AA)
            cv2.circle(scene, center, round(0.82 * size), gold, -1, cv2.LINE_AA)
            cv2.circle(
                scene, center, round(0.5 * size), rim, max(1, round(0.06 * size)), cv2.LINE_AA
            )
            cv2.ellipse(
                scene,
                (round(x - 0.3 * size), round(y - 0.35 * size)),
                (max(1, round(0.25 * size)), max(1, round(0.1 * size))),
                35,
                0,
                360,
                shine,
                -1,
                cv2.LINE_AA,
            )
            extent = size
        else:  # a chain: links from the contact point out past the frame
            direction = np.array([math.cos(self.leave_to + 1.0), math.sin(self.leave_to + 1.0)])
            for link in range(40):
                p = position + direction * link * size * 1.3
                if not (-size < p[0] < self.width + size and -size < p[1] < self.height + size):
                    break
                angle = math.degrees(math.atan2(direction[1], direction[0])) + (
                    90 if link % 2 else 0
                )
                axes = (
                    (round(size * 0.7), round(size * 0.4))
                    if link % 2 == 0
                    else (round(size * 0.7), max(1, round(size * 0.12)))
                )
                cv2.ellipse(
                    scene,
                    (round(p[0]), round(p[1])),
                    axes,
                    angle,
                    0,
                    360,
                    gold,
                    max(1, round(size * 0.22)),
                    cv2.LINE_AA,
                )
            extent = size
        self._draw_holding_hand(scene, position)
        return x - extent, y - extent, x + extent, y + extent

    def _draw_holding_hand(self, scene: Image, position: npt.NDArray[np.float64]) -> None:
        """Fingertips holding the ornament, on its far side from the stroke centre."""
        if self.shape is Shape.CHAIN:
            return
        outward = position - self.stone_center
        norm = float(np.linalg.norm(outward))
        outward = np.array([0.0, 1.0]) if norm < 1 else outward / norm
        tip = position + outward * self.ornament_size * 1.1
        root = tip + outward * max(self.width, self.height)
        skin = tuple(float(v) for v in self.skin)
        width = max(3, round(self.ornament_size * 0.7))
        cv2.line(
            scene,
            (round(tip[0]), round(tip[1])),
            (round(root[0]), round(root[1])),
            skin,
            width,
            cv2.LINE_AA,
        )
        cv2.circle(scene, (round(tip[0]), round(tip[1])), width // 2, skin, -1, cv2.LINE_AA)

    def _draw_needle(self, scene: Image, t: float) -> None:
        tip = self.needle_at(t)
        if tip is None:
            return
        outward = np.array([math.cos(self.leave_to), math.sin(self.leave_to)])
        root = tip + outward * max(self.width, self.height)
        metal = tuple(float(v) for v in self.gold * 0.9)
        width = max(2, round(self.contact * 1.1))
        cv2.line(
            scene,
            (round(tip[0]), round(tip[1])),
            (round(root[0]), round(root[1])),
            metal,
            width,
            cv2.LINE_AA,
        )

    def _draw_rod(self, scene: Image, t: float) -> None:
        """The glass rod that brings the acid, in and out around the moment it touches."""
        if not self.t_rod <= t < self.t_acid + 0.5:
            return
        phase = (t - self.t_rod) / (self.t_acid + 0.5 - self.t_rod)
        reach = 1 - abs(2 * phase - 1)
        direction = np.array([math.cos(self.leave_to), math.sin(self.leave_to)])
        tip = self.acid_center + direction * (1 - reach) * 0.6 * max(self.width, self.height)
        root = tip + direction * max(self.width, self.height)
        glass = tuple(float(v) for v in np.full(3, 0.55))
        width = max(2, round(self.contact * 1.2))
        cv2.line(
            scene,
            (round(tip[0]), round(tip[1])),
            (round(root[0]), round(root[1])),
            glass,
            width,
            cv2.LINE_AA,
        )

    def _camera(self, scene: Image, index: int) -> BgrFrame:
        linear = cv2.multiply(scene, self.illumination, scale=4095.0)
        codes = np.clip(linear, 0.0, 4095.0, out=linear).astype(np.uint16)
        image = self.gamma[codes]
        size = (self.width, self.height)
        if self.rotation or self.zoom != 1.0:
            matrix = cv2.getRotationMatrix2D(
                (self.width / 2, self.height / 2), self.rotation, self.zoom
            )
            image = cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REFLECT)
        if self.blur is not None:
            kind, amount, angle = self.blur
            if kind == "focus":
                image = cv2.GaussianBlur(image, (0, 0), amount / 2)
            else:
                length = max(3, round(amount * 2) | 1)
                kernel = np.zeros((length, length), np.float32)
                kernel[length // 2, :] = 1.0 / length
                spin = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
                kernel = cv2.warpAffine(kernel, spin, (length, length))
                image = cv2.filter2D(image, -1, kernel / max(1e-6, kernel.sum()))
        if self.upscale > 1.0:
            image = cv2.resize(image, self.out_size, interpolation=cv2.INTER_LINEAR)
        noisy = cv2.convertScaleAbs(cv2.add(image, self.noise[index % len(self.noise)]))
        ok, encoded = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg])
        assert ok
        decoded: BgrFrame = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR), np.uint8)
        return decoded

    def _to_view(self, box: Box | None) -> Box | None:
        """A scene box as the turned, zoomed camera sees it (the box of its corners)."""
        if box is None:
            return None
        matrix = cv2.getRotationMatrix2D(
            (self.width / 2, self.height / 2), self.rotation, self.zoom
        )
        corners = np.array(
            [[box[0], box[1], 1], [box[2], box[1], 1], [box[0], box[3], 1], [box[2], box[3], 1]]
        )
        seen = corners @ matrix.T
        seen = seen * self.upscale
        width, height = self.out_size
        x1, y1 = max(0.0, float(seen[:, 0].min())), max(0.0, float(seen[:, 1].min()))
        x2, y2 = (
            min(float(width), float(seen[:, 0].max())),
            min(float(height), float(seen[:, 1].max())),
        )
        return (x1, y1, x2, y2) if x2 - x1 >= 2 and y2 - y1 >= 2 else None

    # --- frames -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.frame_count

    def timestamp(self, index: int) -> float:
        return index / self.fps

    def frame(self, index: int) -> tuple[BgrFrame, AssayTruth]:
        if not 0 <= index < self.frame_count:
            raise IndexError(index)
        t = self.timestamp(index)
        scene = self.base.copy()
        for alpha, (x1, y1, x2, y2) in self._streaks(t):
            region = scene[y1:y2, x1:x2]
            region += (self.gold.astype(np.float32) - region) * alpha[:, :, None]
        acid = self.acid_state(t)
        if acid is not None:
            spread, _ = acid
            mask = self._acid_mask(spread)[:, :, None]
            if self.acid_look is AcidLook.CLEAR:
                scene *= 1 - mask * (1 - self.wet)
            else:
                scene += (self.acid_colour.astype(np.float32) - scene) * mask * self.acid_opacity
            brightness, share = self.rim
            width = max(1, round(share * self.acid_axes[1] * spread))
            rim = self._acid_mask(spread) - cv2.erode(
                self._acid_mask(spread), np.ones((3, 3), np.uint8), iterations=width
            )
            scene += rim[:, :, None] * brightness
            glint = (
                round(self.acid_center[0] - 0.35 * self.acid_axes[0] * spread),
                round(self.acid_center[1] - 0.3 * self.acid_axes[1] * spread),
            )
            cv2.ellipse(
                scene,
                glint,
                (
                    max(1, round(0.2 * self.acid_axes[0] * spread)),
                    max(1, round(0.1 * self.acid_axes[1] * spread)),
                ),
                30,
                0,
                360,
                (0.9, 0.9, 0.9),
                -1,
                cv2.LINE_AA,
            )
        self._draw_rod(scene, t)
        self._draw_needle(scene, t)
        ornament = self._draw_ornament(scene, t)
        if self.occluder is not None:
            cv2.fillPoly(scene, [self.occluder], tuple(float(v) for v in self.skin), cv2.LINE_AA)
        frame = self._camera(scene, index)
        polygon = self._stone_polygon()
        stone_box = (
            float(polygon[:, 0].min()),
            float(polygon[:, 1].min()),
            float(polygon[:, 0].max()),
            float(polygon[:, 1].max()),
        )
        stone = self._to_view(stone_box)
        assert stone is not None
        truth = AssayTruth(
            index=index,
            timestamp=t,
            karat=self.spec.karat,
            rubbing=self.needle_at(t) is not None
            or (
                self.spec.condition is not Condition.NO_RUBBING and self.t_rub <= t < self.t_rub_end
            ),
            acid_on=t >= self.t_acid,
            stone=stone,
            ornament=self._to_view(ornament),
        )
        return frame, truth

    def __iter__(self) -> Iterator[tuple[BgrFrame, AssayTruth]]:
        for index in range(self.frame_count):
            yield self.frame(index)
