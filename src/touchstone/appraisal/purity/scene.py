"""The stone over one test, measured against the test's own earlier frames.

Real cameras, lamps, stones and tables differ too much for colour thresholds, so every reading
here is a change of the same stone, in the same light, between frames of the same test:

- The stone's region (from the engine) is cropped with a margin, resized to a patch of fixed
  size and kept aligned by phase correlation. The first frames give its **background**, the
  bare stone; a per-channel gain (median ratio to the background) takes out lamp and
  exposure changes.
- The **noise** of the patch (median frame-to-frame difference) sets every threshold: a pixel
  "changed" when it moved `ScenePolicy.noise_k` noise levels.
- The **ornament** is the moving object on the stone (changed since two frames ago, larger
  than a hand's tremor). Where it went is the **visited** region.
- The **streak** is what changed against the background inside the visited region and is not
  moving now. Regions reaching into the margin around the stone are hands and sleeves, not
  streaks: a streak stays on the stone.
- When the rubbing stops, the first quiet frames after it (a median) become the
  **reference**, and the streak in it is the streak the acid will be read on; if the last
  quiet spell already shows acid over the streak of the one before, that one.
- The **acid** is a new region, changed against the reference, over the streak and over
  bare stone beside it, filled (a clear drop shows only its rim and its glint), moving the
  bare stone away from how it was, and still between frames.
- The **reading** fits, inside the drop, now - bare = retention x (reference - bare) + the
  acid's own effect (its tint, its gloss): one retention per streak, in the order the
  streaks were rubbed. `karat_for` turns a retention into a karat.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from touchstone.appraisal.purity.engines.base import Box, Detection
from touchstone.appraisal.purity.frames import BgrFrame

Patch = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

SCENE_REVISION = 1
RUN_FRAMES = 3
MAX_RUNS = 6

KaratBands = tuple[tuple[str, float, float], ...]
DEFAULT_KARAT_BANDS: KaratBands = (("24K", 0.6, 2.0), ("22K", 0.3, 0.56), ("18K", -1.0, 0.22))
"""(karat, lowest, highest) share of the streak left under the acid. The gaps between bands
read nothing: a streak that sits between two karats is `inconclusive`, not a guess. A drop
dims what is under it by up to about a third (its transmission), so each band spans its
karat's retention from 0.65 to 1.0 times."""


@dataclass(frozen=True)
class ScenePolicy:
    patch_side: int = 320
    """Long side of the stone's patch, in pixels (never more than the stone has in the
    frame): a drop of acid on a thin streak needs some pixels to be read."""
    margin: float = 0.1
    """Around the stone's box, as a share of its sides: what reaches into it comes from off
    the stone (a hand), not from the rubbing."""
    noise_k: float = 5.0
    min_change: float = 4.0
    """Grey levels: the floor of the change threshold on a noiseless camera."""
    min_blob: float = 0.0012
    """Of the patch: smaller changes are specks of noise or compression."""
    min_motion: float = 0.004
    """Of the patch: a moving ornament moves more than this; a hand's tremor moves a sliver
    of the ornament's edge, less."""
    background_rate: float = 0.05
    """How fast the bare stone's background follows slow light changes where nothing is."""
    drop_pixels: int = 6
    """Bare stone a drop must cover beside the streak to be told from an ornament."""
    reading_pixels: int = 16
    """Streak pixels, and bare stone pixels, under the drop for a reading: fewer and the fit
    is left to noise, and a noisy fit reads a wrong karat rather than none."""
    bands: KaratBands = DEFAULT_KARAT_BANDS

    @property
    def version(self) -> str:
        bands = ",".join(f"{k}:{lo:g}-{hi:g}" for k, lo, hi in self.bands)
        return f"scene-{SCENE_REVISION} k{self.noise_k:g} bands:{bands}"


@dataclass(frozen=True)
class SceneView:
    """What the scene saw in one frame, in frame pixels."""

    ornament: Detection | None = None
    streaks: tuple[Detection, ...] = ()
    moving: bool = False


@dataclass(frozen=True)
class AcidView:
    acid: Detection | None = None
    retention: float | None = None
    """Share of the streak left under the acid (None: nothing to read); of the largest streak
    under it."""
    streaks: tuple[float, ...] = ()
    """The retention of every streak under the acid, in the order they were rubbed."""


_KERNEL3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_KERNEL5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def _change(patch: Patch, earlier: Patch) -> Patch:
    """How far each pixel left the range of its 3x3 neighbourhood in `earlier`, in its most
    changed channel: a camera shaken by a pixel moves edges, and that is not a change."""
    low = cv2.erode(earlier, _KERNEL3)
    high = cv2.dilate(earlier, _KERNEL3)
    outside = cv2.max(cv2.subtract(low, patch), cv2.subtract(patch, high))
    blue, green, red = cv2.split(outside)
    result: Patch = np.maximum(np.asarray(cv2.max(cv2.max(blue, green), red), np.float32), 0)
    return result


def _max_channel(diff: Patch) -> Patch:
    result: Patch = np.abs(diff).max(axis=-1)
    return result


def _blobs(mask: Mask) -> tuple[int, npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    return count, np.asarray(labels, np.int32), np.asarray(stats, np.int32)


def _fill_holes(mask: Mask) -> Mask:
    """A ring (a clear drop's rim) becomes the disc it encloses."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    result: Mask = filled.astype(bool)
    return result


def _open(mask: Mask) -> Mask:
    result: Mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, _KERNEL3).astype(bool)
    return result


def _close(mask: Mask) -> Mask:
    result: Mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, _KERNEL5).astype(bool)
    return result


def _dilate(mask: Mask, kernel: Any = _KERNEL5, iterations: int = 1) -> Mask:
    result: Mask = cv2.dilate(mask.astype(np.uint8), kernel, iterations=iterations).astype(bool)
    return result


def _pack(array: npt.NDArray[Any]) -> dict[str, Any]:
    return {
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "data": base64.b64encode(array.tobytes()).decode(),
    }


def _unpack(value: dict[str, Any]) -> npt.NDArray[Any]:
    data = base64.b64decode(value["data"])
    return np.frombuffer(data, np.dtype(value["dtype"])).reshape(value["shape"]).copy()


@dataclass
class StoneScene:
    """One test's stone; `observe` in RUBBING, `freeze` when the rubbing stops, `acid` after."""

    policy: ScenePolicy = field(default_factory=ScenePolicy)
    box: Box | None = None
    """The patch's region in frame pixels (the stone's box with the margin)."""
    background: Patch | None = None
    noise: float = 0.0
    visited: Mask | None = None
    reference: Patch | None = None
    streak: Mask | None = None
    previous: list[Patch] = field(default_factory=list)
    runs: list[list[Patch]] = field(default_factory=list)
    """Quiet spells since the rubbing was confirmed (the first frames of each): the stone as
    the rubbing left it is among them, even when the acid came before the test asked."""
    resting: bool = False
    acid_before: Mask | None = None
    ornament_seen: bool = False
    frames: int = 0
    appeared: Patch | None = None
    """The frame at which each pixel of the streaks first showed: the order of rubbing."""

    # --- the patch ------------------------------------------------------------------------

    @property
    def stone(self) -> Detection | None:
        """The stone where the scene last placed it (the patch without its margin)."""
        if self.box is None:
            return None
        x1, y1, x2, y2 = self.box
        m = self.policy.margin / (1 + 2 * self.policy.margin)
        dx, dy = m * (x2 - x1), m * (y2 - y1)
        return Detection("stone", 0.5, (x1 + dx, y1 + dy, x2 - dx, y2 - dy))

    def _shape(self) -> tuple[int, int]:
        assert self.background is not None
        height, width = self.background.shape[:2]
        return height, width

    def _crop(self, frame: BgrFrame, box: Box, size: tuple[int, int]) -> Patch | None:
        """The box resized to the patch; a stone partly out of the picture is padded by
        repeating the frame's edge (the margin rule keeps that out of every reading)."""
        height, width = frame.shape[:2]
        x1, y1, x2, y2 = box
        if x2 - x1 < 8 or y2 - y1 < 8 or x2 < 0 or y2 < 0 or x1 > width or y1 > height:
            return None
        crop = cv2.getRectSubPix(
            frame, (round(x2 - x1), round(y2 - y1)), ((x1 + x2) / 2, (y1 + y2) / 2)
        )
        patch: Patch = cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        return patch

    def _start(self, frame: BgrFrame, stone: Box) -> bool:
        x1, y1, x2, y2 = stone
        mx, my = self.policy.margin * (x2 - x1), self.policy.margin * (y2 - y1)
        box = (x1 - mx, y1 - my, x2 + mx, y2 + my)
        width, height = box[2] - box[0], box[3] - box[1]
        side = min(1.0, self.policy.patch_side / max(width, height))
        size = (max(16, round(width * side)), max(16, round(height * side)))
        patch = self._crop(frame, box, size)
        if patch is None:
            return False
        self.box, self.background, self.reference, self.streak = box, patch, None, None
        self.visited = np.zeros(patch.shape[:2], bool)
        self.previous, self.runs, self.resting, self.noise = [patch], [], False, 0.0
        self.frames, self.appeared = 0, None
        return True

    def _aligned(self, frame: BgrFrame) -> Patch | None:
        """This frame's patch, moved to where the stone went since the last frame."""
        assert self.box is not None
        assert self.background is not None
        height, width = self._shape()
        patch = self._crop(frame, self.box, (width, height))
        if patch is None:
            return None
        grey_now = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
        grey_then = cv2.cvtColor(self.background, cv2.COLOR_BGR2GRAY)
        (dx, dy), response = cv2.phaseCorrelate(grey_then, grey_now)
        if response > 0.1 and 0.25 <= max(abs(dx), abs(dy)) <= 0.2 * width:
            x1, y1, x2, y2 = self.box
            scale = (x2 - x1) / width
            self.box = (x1 + dx * scale, y1 + dy * scale, x2 + dx * scale, y2 + dy * scale)
            moved = self._crop(frame, self.box, (width, height))
            if moved is not None:
                patch = moved
        return patch

    def _normalised(self, patch: Patch) -> Patch:
        """The patch with the lamp's and the exposure's change since the background taken out."""
        assert self.background is not None
        # Every third pixel each way is plenty for a median over the whole stone.
        ratio = patch[::3, ::3] / np.maximum(self.background[::3, ::3], 4.0)
        gain = np.clip(np.median(ratio.reshape(-1, 3), axis=0), 0.3, 3.0)
        result: Patch = (patch / gain).astype(np.float32)
        return result

    def _threshold(self) -> float:
        return max(self.policy.min_change, self.policy.noise_k * self.noise)

    def _inner(self) -> Mask:
        height, width = self._shape()
        share = self.policy.margin / (1 + 2 * self.policy.margin)
        inner = np.zeros((height, width), bool)
        my, mx = round(share * height), round(share * width)
        inner[my : height - my, mx : width - mx] = True
        return inner

    def _on_stone(self, mask: Mask, *, fill: bool = False) -> list[Mask]:
        """Blobs of `mask` large enough and off the margin (a hand reaches in from outside)."""
        height, width = self._shape()
        min_pixels = max(4, round(self.policy.min_blob * height * width))
        count, labels, stats = _blobs(mask)
        outer = ~self._inner()
        found = []
        for index in range(1, count):
            if stats[index, cv2.CC_STAT_AREA] < min_pixels:
                continue
            blob = labels == index
            if (blob & outer).sum() > 0.15 * blob.sum():
                continue
            found.append(_fill_holes(blob) if fill else blob)
        return found

    def _to_frame(self, mask: Mask, label: str, score: float = 1.0) -> Detection:
        assert self.box is not None
        height, width = self._shape()
        rows, cols = np.nonzero(mask)
        x1, y1, x2, y2 = self.box
        sx, sy = (x2 - x1) / width, (y2 - y1) / height
        return Detection(
            label,
            score,
            (
                x1 + cols.min() * sx,
                y1 + rows.min() * sy,
                x1 + (cols.max() + 1) * sx,
                y1 + (rows.max() + 1) * sy,
            ),
        )

    def _to_patch(self, box: Box) -> Mask:
        assert self.box is not None
        height, width = self._shape()
        x1, y1, x2, y2 = self.box
        sx, sy = width / (x2 - x1), height / (y2 - y1)
        mask = np.zeros((height, width), bool)
        c1, r1 = max(0, round((box[0] - x1) * sx)), max(0, round((box[1] - y1) * sy))
        c2, r2 = min(width, round((box[2] - x1) * sx)), min(height, round((box[3] - y1) * sy))
        mask[r1:r2, c1:c2] = True
        return mask

    # --- RUBBING ----------------------------------------------------------------------------

    def observe(self, frame: BgrFrame, stone: Detection | None) -> SceneView | None:
        """The ornament and the streak in a RUBBING frame; None while the stone is unknown."""
        if self.box is None or (
            stone is not None and not self.ornament_seen and self._moved(stone)
        ):
            if stone is None or not self._start(frame, stone.box):
                return None
            return SceneView()
        patch = self._aligned(frame)
        if patch is None:
            return None
        patch = self._normalised(patch)
        assert self.background is not None
        assert self.visited is not None
        self._learn_noise(patch)
        threshold = self._threshold()
        motion = _change(patch, self.previous[0]) > threshold
        moving = self._blobs_touching_stone(_open(motion))
        self.previous = [*self.previous[-1:], patch]
        ornament = None
        moving_mask = np.zeros(motion.shape, bool)
        if moving:
            largest = max(moving, key=lambda b: int(b.sum()))
            for blob in moving:
                moving_mask |= blob
            ornament = self._to_frame(largest, "gold", 0.5)
            self.visited |= _dilate(moving_mask, iterations=2)
            self.ornament_seen = True
            self.resting = False
        elif not self.resting:
            self.runs = [*self.runs[-(MAX_RUNS - 1) :], [patch]]
            self.resting = True
        elif len(self.runs[-1]) < RUN_FRAMES:
            self.runs[-1].append(patch)
        changed = _change(patch, self.background) > threshold
        calm = ~changed & ~self.visited
        self.background[calm] += self.policy.background_rate * (patch[calm] - self.background[calm])
        streak = _open(changed & ~_dilate(moving_mask) & self.visited)
        self.frames += 1
        if self.appeared is None:
            self.appeared = np.full(streak.shape, np.inf, np.float32)
        self.appeared[streak & np.isinf(self.appeared)] = self.frames
        streaks = tuple(self._to_frame(b, "streak", 0.5) for b in self._on_stone(streak))
        return SceneView(ornament=ornament, streaks=streaks, moving=ornament is not None)

    def _moved(self, stone: Detection) -> bool:
        """Before anything has moved on it, a stone found elsewhere restarts the background."""
        inner = self.stone
        assert inner is not None
        union = inner.area + stone.area - inner.overlap(stone)
        return inner.overlap(stone) < 0.85 * union

    def _blobs_touching_stone(self, mask: Mask) -> list[Mask]:
        height, width = self._shape()
        min_pixels = max(4, round(self.policy.min_motion * height * width))
        count, labels, stats = _blobs(mask)
        inner = self._inner()
        return [
            labels == i
            for i in range(1, count)
            if stats[i, cv2.CC_STAT_AREA] >= min_pixels and (inner & (labels == i)).any()
        ]

    def _learn_noise(self, patch: Patch) -> None:
        """The camera's noise, from the median change since the last frame: the ornament
        covers far less than half of the patch, so the median is the still stone's."""
        sample = np.abs(patch[::3, ::3] - self.previous[-1][::3, ::3])
        spread = float(np.median(sample)) * 1.4826 / np.sqrt(2)
        self.noise = spread if self.noise == 0 else 0.8 * self.noise + 0.2 * spread

    def stroke(self) -> None:
        """The ornament turned on the stone before the rubbing was confirmed: quiet spells
        so far were pauses in the rubbing."""
        self.runs, self.resting = [], False

    def _streak_in(self, patch: Patch) -> Mask:
        assert self.background is not None
        assert self.visited is not None
        changed = _change(patch, self.background) > self._threshold()
        streak = np.zeros(changed.shape, bool)
        for blob in self._on_stone(_open(changed & self.visited)):
            streak |= blob
        return streak

    def freeze(self) -> bool:
        """Keep the stone as the rubbing left it: the streak the acid will be read on.

        That is the last quiet spell, unless the one before it differs from it only by acid
        added over the streak (the acid came before the test asked for it): then that one."""
        if self.background is None or self.visited is None:
            return False
        spells = [np.median(np.stack(run), axis=0).astype(np.float32) for run in self.runs[-2:]]
        reference = spells[-1] if spells else self.previous[-1]
        if len(spells) == 2:
            earlier, later = spells
            drops = self._drops(later, earlier, self._streak_in(earlier))
            changed = _open(_change(later, earlier) > self._threshold())
            others = [
                b
                for b in self._on_stone(changed, fill=True)
                if not any((b & drop).any() for drop in drops)
            ]
            if drops and not others:
                reference = earlier
        self.reference, self.streak = reference, self._streak_in(reference)
        self.acid_before = None
        return bool(self.streak.any())

    # --- ACID -------------------------------------------------------------------------------

    def acid(self, frame: BgrFrame, engine_acid: Box | None = None) -> AcidView:
        """The acid over the streak, if it is there and still, and what it left of the streak."""
        if self.reference is None or self.streak is None or self.background is None:
            return AcidView()
        patch = self._aligned(frame)
        if patch is None:
            return AcidView()
        patch = self._normalised(patch)
        threshold = self._threshold()
        still = _change(patch, self.previous[-1]) <= threshold
        self.previous = [*self.previous[-1:], patch]
        within = None if engine_acid is None else self._to_patch(engine_acid)
        drops = self._drops(patch, self.reference, self.streak, within)
        if not drops and within is not None:
            drops = [within]
        if not drops:
            self.acid_before = None
            return AcidView()
        drop = max(drops, key=lambda b: int(b.sum()))
        before, self.acid_before = self.acid_before, drop
        steady = before is not None and (drop & before).sum() >= 0.6 * (drop | before).sum()
        if not steady or still[drop].mean() < 0.8:
            return AcidView()
        acid = self._to_frame(drop, "acid", float(still[drop].mean()))
        return self._read(patch, drop, acid)

    def _drops(
        self, patch: Patch, reference: Patch, streak: Mask, within: Mask | None = None
    ) -> list[Mask]:
        """Regions changed since `reference`, filled, over the streak and over bare stone beside
        it, and added on the stone: acid moves the bare stone away from how it was bare, where
        an ornament lifted off lets it come back to it."""
        assert self.background is not None
        # A dissolving streak and the bare stone beside it change in opposite ways, which can
        # leave an unchanged line between them: closing joins the drop back together.
        changed = _close(_change(patch, reference) > self._threshold())
        if within is not None:
            changed &= _dilate(within)
        found = []
        wide = _dilate(streak, _KERNEL3)
        for blob in self._on_stone(changed, fill=True):
            if (blob & streak).sum() < 4:
                continue
            bare = blob & ~wide
            if bare.sum() < self.policy.drop_pixels:
                continue
            now = _max_channel(patch[bare] - self.background[bare])
            then = _max_channel(reference[bare] - self.background[bare])
            if float(np.mean(now - then)) > 0.5 * self._threshold():
                found.append(blob)
        return found

    def _read(self, patch: Patch, drop: Mask, acid: Detection) -> AcidView:
        """Fit, inside the drop (off its rim), now - bare = retention x (before - bare) + the
        acid's own effect: one retention per streak, one effect (a colour) for the drop.

        Blur mixes neighbouring pixels linearly, so the fit holds on a blurred camera too; the
        glint and other outliers are dropped after a first fit."""
        assert self.reference is not None
        assert self.streak is not None
        assert self.background is not None
        inside = cv2.erode(drop.astype(np.uint8), _KERNEL3, iterations=2).astype(bool)
        before = (self.reference - self.background)[inside]
        after = (patch - self.background)[inside]
        strength = (before * before).sum(axis=1)
        threshold = self._threshold()
        strong = strength > threshold * threshold
        count, labels, _ = _blobs(self.streak)
        nearest = cv2.dilate(labels.astype(np.uint16), _KERNEL5, iterations=2)[inside]
        streaks = [
            k
            for k in range(1, count)
            if (strong & (nearest == k)).sum() >= self.policy.reading_pixels
        ]
        if not streaks or (~strong).sum() < self.policy.reading_pixels:
            return AcidView(acid=acid)
        pixels = len(before)
        design = np.zeros((pixels, 3, len(streaks) + 3), np.float32)
        for column, k in enumerate(streaks):
            design[nearest == k, :, column] = before[nearest == k]
        for channel in range(3):
            design[:, channel, len(streaks) + channel] = 1.0
        keep = np.ones(pixels, bool)
        for _ in range(2):
            solution, *_ = np.linalg.lstsq(
                design[keep].reshape(-1, design.shape[2]), after[keep].reshape(-1), rcond=None
            )
            residual = np.abs(design @ solution - after).max(axis=1)
            keep = residual <= max(threshold, float(np.percentile(residual, 85)))
        sample = max(streaks, key=lambda k: int((strong & (nearest == k)).sum()))
        order = sorted(streaks, key=lambda k: self._rubbed_at(labels == k))
        return AcidView(
            acid=acid,
            retention=float(solution[streaks.index(sample)]),
            streaks=tuple(float(solution[streaks.index(k)]) for k in order),
        )

    def _rubbed_at(self, streak: Mask) -> float:
        if self.appeared is None:
            return 0.0
        seen = self.appeared[streak]
        seen = seen[np.isfinite(seen)]
        return float(np.median(seen)) if seen.size else 0.0

    # --- resuming ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any] | None:
        if self.box is None or self.background is None or self.visited is None:
            return None
        return {
            "box": list(self.box),
            "background": _pack(np.round(self.background).astype(np.uint8)),
            "noise": self.noise,
            "visited": _pack(np.packbits(self.visited)),
            "reference": None
            if self.reference is None
            else _pack(np.round(self.reference).astype(np.uint8)),
            "streak": None if self.streak is None else _pack(np.packbits(self.streak)),
            "ornament_seen": self.ornament_seen,
            "frames": self.frames,
            "appeared": None
            if self.appeared is None
            else _pack(np.where(np.isfinite(self.appeared), self.appeared, -1).astype(np.int32)),
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any] | None, policy: ScenePolicy) -> StoneScene:
        scene = cls(policy)
        if snapshot is None:
            return scene
        background = _unpack(snapshot["background"]).astype(np.float32)
        shape = background.shape[:2]
        size = shape[0] * shape[1]

        def bits(value: dict[str, Any]) -> Mask:
            unpacked: Mask = np.unpackbits(_unpack(value))[:size].reshape(shape).astype(bool)
            return unpacked

        box = snapshot["box"]
        scene.box = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        scene.background = background
        scene.previous = [background.copy()]
        scene.noise = float(snapshot["noise"])
        scene.visited = bits(snapshot["visited"])
        if snapshot["reference"] is not None:
            scene.reference = _unpack(snapshot["reference"]).astype(np.float32)
            scene.previous = [scene.reference.copy()]
        if snapshot["streak"] is not None:
            scene.streak = bits(snapshot["streak"])
        scene.ornament_seen = bool(snapshot["ornament_seen"])
        scene.frames = int(snapshot["frames"])
        if snapshot["appeared"] is not None:
            appeared = _unpack(snapshot["appeared"]).astype(np.float32)
            scene.appeared = np.where(appeared < 0, np.inf, appeared).astype(np.float32)
        return scene


def karat_for(retention: float, bands: KaratBands) -> tuple[str | None, float]:
    """The karat whose band holds `retention`, scored by its distance from the band's edges
    (0.5 at an edge); None in the gaps between bands."""
    for label, low, high in bands:
        if low <= retention <= high:
            edge = min(retention - low, high - retention)
            return label, min(0.99, 0.5 + 2 * edge)
    return None, 0.0
