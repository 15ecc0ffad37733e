"""How the purity test reads clips it was never tuned on: the robustness corpus.

The corpus is `bench.generators.assay_clips`, a renderer unlike the project's first one,
with a development part and a held-out part drawn from seed spaces that never meet. Every
threshold of the reading was chosen on the first renderer and on the development part;
the held-out part is only ever run here, and its figures are the ones the goals apply to.

Per condition (clean, blur, glare, noisy, occlusion, turned camera, no rubbing) and per part:
- right karat: the test ended with the clip's karat;
- inconclusive: it ended `inconclusive`, or had not ended when the clip did;
- wrong karat: it ended with another karat;
- false ACID: it asked for the acid on a clip where nothing was rubbed, or while the
  ornament was still being rubbed.

Goals (held-out part): right karat >= 95% on clean clips and >= 80% with blur or glare;
wrong karat <= 1% and false ACID 0 over every condition; and, at 640x480 on one core (the
process pinned to one CPU, one OpenCV thread), frame -> status p95 < 100 ms (JPEG decoding
included) and at least 30 frames/s. Times are CPU time of this process, so other work on the
machine does not count against the figures. `--jobs` spreads the clips over processes (the
corpus takes a while to render); the speed is measured after them, alone.

Run from the checkout: `python -m bench.purity_accuracy`; `--help` for options.
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import cv2

from bench.common import (
    RESULTS_DIR,
    busy_share,
    describe_busy,
    finished_at,
    latency_summary,
    machine,
    run_main,
    say,
    verdict,
)
from bench.generators.assay_clips import AssayClip, AssaySpec, Condition
from touchstone.appraisal.purity.engines import ClassicalEngine
from touchstone.appraisal.purity.frames import decode_frame, encode_jpeg
from touchstone.appraisal.purity.pipeline import Karat, PurityPipeline, Stage

RESULTS = RESULTS_DIR / "purity_accuracy.json"
KARATS = (Karat.K18, Karat.K22, Karat.K24)
OUTCOMES = ("right", "inconclusive", "wrong", "false_acid")
GOAL_CLEAN = 0.95
GOAL_HARD = 0.80
HARD = (Condition.BLUR, Condition.GLARE)
GOAL_WRONG = 0.01
GOAL_P95_MS = 100.0
GOAL_FPS = 30.0
SPEED_SIZE = (640, 480)
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Options:
    dev_seeds: int
    held_out_seeds: int
    speed_clips: int
    jobs: int


@dataclass
class Tally:
    clips: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def share(self, outcome: str) -> float:
        return self.outcomes[outcome] / self.clips if self.clips else 0.0

    def to_json(self) -> dict[str, object]:
        return {"clips": self.clips, **{o: self.outcomes[o] for o in OUTCOMES}}


def run_clip(spec: AssaySpec) -> set[str]:
    """The outcomes of one clip (a clip can be both wrong and a false ACID)."""
    clip = AssayClip(spec)
    pipeline = PurityPipeline(ClassicalEngine())
    outcomes: set[str] = set()
    for index in range(len(clip)):
        frame, truth = clip.frame(index)
        status = pipeline.process(frame, clip.timestamp(index))
        asked = status.stage_changed and status.stage is Stage.ACID
        if asked and (spec.karat is None or truth.rubbing):
            outcomes.add("false_acid")
        if pipeline.result is not None:
            break
    result = pipeline.result
    if spec.karat is None:
        outcomes.add("right" if "false_acid" not in outcomes else "wrong")
    elif result is None or result.karat is Karat.INCONCLUSIVE:
        outcomes.add("inconclusive")
    else:
        outcomes.add("right" if result.karat is spec.karat else "wrong")
    return outcomes


def run_part(held_out: bool, seeds: int, jobs: int) -> dict[Condition, Tally]:
    specs = [
        AssaySpec(karat, condition, seed, held_out)
        for condition in Condition
        for karat in ((None,) if condition is Condition.NO_RUBBING else KARATS)
        for seed in range(seeds)
    ]
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        outcomes = pool.map(run_clip, specs, chunksize=1)
    tallies: dict[Condition, Tally] = {condition: Tally() for condition in Condition}
    for spec, found in zip(specs, outcomes, strict=True):
        tally = tallies[spec.condition]
        tally.clips += 1
        tally.outcomes.update(found)
    part = "held-out" if held_out else "dev"
    for condition, tally in tallies.items():
        say(f"{part} {condition.value}: {dict(tally.outcomes)} of {tally.clips}")
    return tallies


@dataclass(frozen=True)
class Speed:
    frames: int
    latency_ms: dict[str, float]
    fps: float


def _pin_to_one_core() -> str:
    cv2.setNumThreads(1)
    if not hasattr(os, "sched_setaffinity"):
        return "one thread (no CPU pinning on this platform)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}, one OpenCV thread"


def measure_speed(engine: ClassicalEngine, clips: int) -> Speed:
    """JPEG frame -> status, per frame, over whole 640x480 clips (a test under way)."""
    samples: list[float] = []
    width, height = SPEED_SIZE
    for seed in range(clips):
        clip = AssayClip(AssaySpec(KARATS[seed % 3], Condition.CLEAN, seed, size=SPEED_SIZE))
        jpegs = [encode_jpeg(frame, JPEG_QUALITY) for frame, _ in clip]
        pipeline = PurityPipeline(engine)
        for index, data in enumerate(jpegs):
            started = time.process_time()
            pipeline.process(decode_frame(data, max_pixels=width * height), clip.timestamp(index))
            samples.append((time.process_time() - started) * 1000)
            if pipeline.stage is Stage.COMPLETED:
                break
    return Speed(len(samples), latency_summary(samples), 1000 / statistics.fmean(samples))


@dataclass(frozen=True)
class Report:
    options: Options
    pinning: str
    busy_before: float | None
    dev: dict[Condition, Tally]
    held_out: dict[Condition, Tally]
    speed: Speed
    finished: str

    def _overall(self, outcome: str) -> float:
        clips = sum(t.clips for t in self.held_out.values())
        return sum(t.outcomes[outcome] for t in self.held_out.values()) / max(1, clips)

    @property
    def verdicts(self) -> dict[str, bool]:
        held = self.held_out
        return {
            "clean_right_karat": held[Condition.CLEAN].share("right") >= GOAL_CLEAN,
            **{f"{c.value}_right_karat": held[c].share("right") >= GOAL_HARD for c in HARD},
            "wrong_karat": self._overall("wrong") <= GOAL_WRONG,
            "false_acid": self._overall("false_acid") == 0,
            "p95_ms": self.speed.latency_ms["p95"] < GOAL_P95_MS,
            "frames_per_second": self.speed.fps >= GOAL_FPS,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "benchmark": "purity_accuracy",
            "options": vars(self.options),
            "pinning": self.pinning,
            "machine": machine(self.busy_before),
            "dev": {c.value: t.to_json() for c, t in self.dev.items()},
            "held_out": {c.value: t.to_json() for c, t in self.held_out.items()},
            "speed": {
                "frames": self.speed.frames,
                "latency_ms": self.speed.latency_ms,
                "frames_per_second": round(self.speed.fps, 1),
            },
            "verdicts": self.verdicts,
            "finished_at": self.finished,
        }

    def table(self) -> str:
        passed = self.verdicts
        rows = [
            f"purity reading on the robustness corpus (bench.generators.assay_clips), "
            f"{self.pinning}; machine busy before: {describe_busy(self.busy_before)}",
            "",
        ]
        for name, part in (("dev", self.dev), ("held-out", self.held_out)):
            rows.append(
                f"{name:<13}{'clips':>6}{'right':>8}{'inconcl.':>10}{'wrong':>7}{'false ACID':>12}"
                + ("  goal" if name == "held-out" else "")
            )
            for condition, tally in part.items():
                goal = ""
                if name == "held-out":
                    if condition is Condition.CLEAN:
                        goal = f"  right >= {GOAL_CLEAN:.0%} {verdict(passed['clean_right_karat'])}"
                    elif condition in HARD:
                        key = f"{condition.value}_right_karat"
                        goal = f"  right >= {GOAL_HARD:.0%} {verdict(passed[key])}"
                rows.append(
                    f"  {condition.value:<11}{tally.clips:>6}{tally.share('right'):>8.0%}"
                    f"{tally.share('inconclusive'):>10.0%}{tally.share('wrong'):>7.0%}"
                    f"{tally.outcomes['false_acid']:>12}{goal}"
                )
            rows.append("")
        speed = self.speed
        rows += [
            f"held-out overall: wrong karat {self._overall('wrong'):.1%} (goal <= "
            f"{GOAL_WRONG:.0%}) {verdict(passed['wrong_karat'])}; false ACID "
            f"{self._overall('false_acid'):.1%} (goal 0) {verdict(passed['false_acid'])}",
            "",
            f"frame -> status at {SPEED_SIZE[0]}x{SPEED_SIZE[1]}, JPEG decoding included, "
            f"{speed.frames} frames: p50 {speed.latency_ms['p50']:.1f} ms, p95 "
            f"{speed.latency_ms['p95']:.1f} ms (goal < {GOAL_P95_MS:.0f}) "
            f"{verdict(passed['p95_ms'])}; {speed.fps:.0f} frames/s (goal >= {GOAL_FPS:.0f}) "
            f"{verdict(passed['frames_per_second'])}",
        ]
        return "\n".join(rows)


def run(options: Options) -> Report:
    busy_before = busy_share()
    say(f"accuracy: {options.jobs} process(es)")
    dev = run_part(held_out=False, seeds=options.dev_seeds, jobs=options.jobs)
    held_out = run_part(held_out=True, seeds=options.held_out_seeds, jobs=options.jobs)
    pinning = _pin_to_one_core()
    say(f"speed: {options.speed_clips} clip(s) at 640x480")
    speed = measure_speed(ClassicalEngine(), options.speed_clips)
    return Report(options, pinning, busy_before, dev, held_out, speed, finished_at())


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.purity_accuracy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dev-seeds", type=int, default=3, help="dev clips per karat (3)")
    parser.add_argument(
        "--held-out-seeds", type=int, default=6, help="held-out clips per karat (6)"
    )
    parser.add_argument("--speed-clips", type=int, default=3, help="640x480 clips timed (3)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="processes rendering and reading clips (1)"
    )
    args = parser.parse_args(argv)
    if min(args.dev_seeds, args.held_out_seeds, args.speed_clips, args.jobs) < 1:
        parser.error("every count must be positive")
    return Options(args.dev_seeds, args.held_out_seeds, args.speed_clips, args.jobs)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    return run_main(lambda: run(options), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
