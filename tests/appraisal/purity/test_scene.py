"""The relative reading: what the scene finds against the test's own frames, on clips of both
renderers, and the karat bands with their gaps."""

from __future__ import annotations

import json

import pytest
from bench.generators.assay_clips import AssayClip, AssaySpec, Condition
from bench.generators.touchstone_clips import ClipSpec, TouchstoneClip

from touchstone.appraisal.purity.engines import ClassicalEngine
from touchstone.appraisal.purity.pipeline import Karat, PurityPipeline, Stage
from touchstone.appraisal.purity.scene import DEFAULT_KARAT_BANDS, StoneScene, karat_for


def _into_acid(clip: TouchstoneClip) -> tuple[PurityPipeline, int]:
    pipeline = PurityPipeline(ClassicalEngine())
    for index in range(len(clip)):
        pipeline.process(clip.frame(index)[0], clip.timestamp(index))
        if pipeline.stage is Stage.ACID:
            return pipeline, index
    raise AssertionError("the clip never reached ACID")


@pytest.fixture(scope="module")
def clip_22k() -> TouchstoneClip:
    return TouchstoneClip(ClipSpec(Karat.K22, seed=3, width=320, height=240, fps=10))


def test_the_streak_is_where_the_ornament_passed(clip_22k: TouchstoneClip) -> None:
    pipeline, index = _into_acid(clip_22k)
    scene = pipeline._scene
    assert scene.streak is not None
    truth = clip_22k.frame(index)[1].streak
    assert truth is not None
    found = scene._to_frame(scene.streak, "streak").box
    # The streak found lies on the true streak, and covers most of its length.
    assert found[1] >= truth[1] - 6
    assert found[3] <= truth[3] + 6
    assert found[2] - found[0] > 0.7 * (truth[2] - truth[0])


def test_the_acid_is_a_change_over_the_streak_read_against_the_streak_before(
    clip_22k: TouchstoneClip,
) -> None:
    pipeline, index = _into_acid(clip_22k)
    scene = pipeline._scene
    views = [scene.acid(clip_22k.frame(i)[0]) for i in range(index + 1, len(clip_22k))]
    before_acid = [
        v for i, v in enumerate(views, index + 1) if clip_22k.frame(i)[1].stage != "acid"
    ]
    assert all(v.acid is None for v in before_acid)
    late = [v.retention for v in views[-10:]]
    assert all(r is not None for r in late)
    labels = {karat_for(r, DEFAULT_KARAT_BANDS)[0] for r in late if r is not None}
    assert labels == {"22K"}
    acid = views[-1].acid
    truth = clip_22k.frame(len(clip_22k) - 1)[1].acid
    assert acid is not None
    assert truth is not None
    assert acid.box[0] < truth[2]
    assert acid.box[2] > truth[0]


def test_the_scene_survives_a_snapshot(clip_22k: TouchstoneClip) -> None:
    pipeline, _ = _into_acid(clip_22k)
    scene = pipeline._scene
    restored = StoneScene.restore(json.loads(json.dumps(scene.snapshot())), scene.policy)
    assert restored.box == pytest.approx(scene.box)
    assert restored.streak is not None
    assert scene.streak is not None
    assert (restored.streak == scene.streak).all()
    assert StoneScene.restore(None, scene.policy).box is None


@pytest.mark.parametrize(
    ("retention", "label"),
    [(0.95, "24K"), (0.62, "24K"), (0.58, None), (0.45, "22K"), (0.26, None), (0.1, "18K")],
)
def test_karat_bands_leave_gaps_that_read_nothing(retention: float, label: str | None) -> None:
    found, score = karat_for(retention, DEFAULT_KARAT_BANDS)
    assert found == label
    assert (score > 0.5) == (label is not None)


def _read(spec: AssaySpec) -> tuple[PurityPipeline, bool]:
    clip = AssayClip(spec)
    pipeline = PurityPipeline(ClassicalEngine())
    asked_while_rubbing = False
    for index in range(len(clip)):
        frame, truth = clip.frame(index)
        status = pipeline.process(frame, clip.timestamp(index))
        if status.stage_changed and status.stage is Stage.ACID and truth.rubbing:
            asked_while_rubbing = True
        if pipeline.result is not None:
            break
    return pipeline, asked_while_rubbing


def test_a_clip_of_the_other_renderer_is_read() -> None:
    pipeline, asked_while_rubbing = _read(AssaySpec(Karat.K22, seed=1, size=(640, 480)))
    assert not asked_while_rubbing
    assert pipeline.result is not None
    assert pipeline.result.karat is Karat.K22


def test_the_other_renderer_without_rubbing_never_asks_for_acid() -> None:
    pipeline, _ = _read(AssaySpec(None, Condition.NO_RUBBING, seed=0, size=(640, 480)))
    assert pipeline.stage is Stage.RUBBING
    assert pipeline.confirmations < 3


@pytest.mark.slow
@pytest.mark.parametrize("karat", [Karat.K18, Karat.K22, Karat.K24])
@pytest.mark.parametrize("condition", [Condition.CLEAN, Condition.BLUR, Condition.GLARE])
def test_the_other_renderer_never_reads_a_wrong_karat(karat: Karat, condition: Condition) -> None:
    for seed in range(2):
        pipeline, asked_while_rubbing = _read(AssaySpec(karat, condition, seed=seed))
        assert not asked_while_rubbing
        result = pipeline.result
        assert result is None or result.karat in (karat, Karat.INCONCLUSIVE)


NEEDLES = (Karat.K18, Karat.K22, Karat.K24)


@pytest.mark.parametrize(
    ("retentions", "label"),
    [
        ((0.1, 0.45, 0.8, 0.47), "22K"),
        ((0.1, 0.45, 0.8, 0.75), "24K"),
        ((0.1, 0.45, 0.8, 0.14), "18K"),
        ((0.1, 0.45, 0.8, 0.62), None),  # between two needles: no guess
        ((0.1, 0.45, 0.8), None),  # a streak not under the acid
    ],
)
def test_the_sample_is_placed_among_the_needles(
    retentions: tuple[float, ...], label: str | None
) -> None:
    pipeline = PurityPipeline(ClassicalEngine(), references=NEEDLES)
    found, confidence = pipeline._compare(retentions)
    assert found == label
    assert (confidence > 0.6) == (label is not None)
    assert pipeline.method == "reference needles 18K, 22K, 24K"
    assert PurityPipeline(ClassicalEngine()).method == "absolute"


@pytest.mark.slow
@pytest.mark.parametrize(
    "karat",
    [
        pytest.param(
            Karat.K18,
            marks=pytest.mark.xfail(
                strict=True,
                reason="the 18K sample's streak reads 0.36 under the long drop, nearest the "
                "22K needle: a wrong karat by comparison, not solved yet",
            ),
        ),
        Karat.K22,
        Karat.K24,
    ],
)
def test_a_clip_with_reference_needles_reads_by_comparison(karat: Karat) -> None:
    clip = AssayClip(AssaySpec(karat, seed=0, size=(640, 480), references=NEEDLES))
    pipeline = PurityPipeline(ClassicalEngine(), references=NEEDLES)
    for index in range(len(clip)):
        frame, truth = clip.frame(index)
        status = pipeline.process(frame, clip.timestamp(index))
        assert not (status.stage_changed and status.stage is Stage.ACID and truth.rubbing)
        if pipeline.result is not None:
            break
    result = pipeline.result
    assert result is None or result.karat in (karat, Karat.INCONCLUSIVE)
    if result is not None and result.karat is karat:
        assert result.method == "reference needles 18K, 22K, 24K"
        assert result.to_dict()["method"] == result.method


def test_a_clip_with_reference_needles_is_read_by_comparison() -> None:
    clip = AssayClip(AssaySpec(Karat.K22, seed=0, size=(640, 480), references=NEEDLES))
    pipeline = PurityPipeline(ClassicalEngine(), references=NEEDLES)
    for index in range(len(clip)):
        pipeline.process(clip.frame(index)[0], clip.timestamp(index))
        if pipeline.result is not None:
            break
    assert pipeline.result is not None
    assert pipeline.result.karat is Karat.K22
    assert pipeline.result.method == "reference needles 18K, 22K, 24K"
    assert pipeline.result.confidence > 0.8  # a comparison; absolute readings stop at 0.8
    reaction = pipeline.result.reaction  # what the certificate prints of the acid
    assert set(reaction) == {"18K", "22K", "24K", "ornament"}
    gaps = {karat: abs(reaction["ornament"] - reaction[karat]) for karat in ("18K", "22K", "24K")}
    assert min(gaps, key=gaps.__getitem__) == "22K"
    restored = PurityPipeline.restore(
        json.loads(json.dumps(pipeline.snapshot())), ClassicalEngine()
    )
    assert restored.references == NEEDLES
    assert restored.result is not None
    assert restored.result.reaction == reaction
