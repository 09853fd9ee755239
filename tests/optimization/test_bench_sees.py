"""The bench's measured mode: the simulated audience reacts to what each creative's image
shows, and faceloop's optimizer learns that face. The renderer here is a fake (named so): a
generator that paints Monk 2 skin whatever was asked, read back by a fake perception; the
real one (the CPU generator and the perception module) runs in the slow test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceloop.connectors.sandbox_platform.scenario import Scenario
from faceloop.generators.base import GenerationRequest, Generator, Progress
from faceloop.generators.measure import FaceMeasurement
from faceloop.generators.perception import Perception
from faceloop.models import FaceParams
from faceloop.optimization import simulate
from faceloop.optimization.sees import MeasuredFaces
from faceloop.optimization.simulate import Audience, BenchConfig, SimArm, Tally, bench

NAN = float("nan")
SMALL = BenchConfig(rounds=3, impressions_per_round=2_000, ab_test_rounds=1)


class FakeLightGenerator(Generator):
    """A fake backend that renders every face with Monk 2 skin (the tone in the red channel)."""

    name = "fake-light"
    model_version = "fake-1"

    def __init__(self) -> None:
        self.calls = 0

    def generate(
        self, requests: list[GenerationRequest], progress: Progress | None = None
    ) -> list[np.ndarray]:
        self.calls += len(requests)
        img = np.zeros((64, 64, 3), np.uint8)
        img[..., 0] = 2
        return [img.copy() for _ in requests]


def fake_perceive(rgb: np.ndarray) -> Perception:
    """A fake perception: reads the tone the fake generator painted, nothing else."""
    raw = FaceMeasurement(True, 0.2, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN)
    tone = int(rgb[0, 0, 0])
    return Perception(True, tone, "light", None, None, None, None, None, None, raw)


def _scenario(sees: str) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "dark-wins",
            "seed": 3,
            "base_ctr": 0.05,
            "base_cvr": 0.2,
            "effects": {"ctr": {"skin_tone": {"center": 10, "width": 1.5, "weight": 3.0}}},
            "audience_sees": sees,
        }
    )


def _ctr(sees: str, tone: int, eyes: MeasuredFaces | None = None) -> float:
    audience = Audience(_scenario(sees), 0, {"all": 1.0}, "c", eyes=eyes)
    arm = SimArm("v", FaceParams(skin_tone=tone), "asset-v")
    clicks = audience.deliver(arm, 0, {"all": 20_000}, Tally(), "ctr")
    return clicks / 20_000


def test_a_creative_declared_dark_but_rendered_light_is_seen_as_light() -> None:
    eyes = MeasuredFaces(generator=FakeLightGenerator(), perceive=fake_perceive)
    declared_dark = _ctr("declared", 10)
    declared_light = _ctr("declared", 2)
    measured = _ctr("measured", 10, eyes)
    # declared Monk 10: sigmoid(logit(0.05) + 3) ~ 0.51; rendered Monk 2: the bump is ~0
    assert declared_dark > 0.4
    assert measured == pytest.approx(declared_light, abs=0.01)
    assert measured < 0.08


def test_readings_are_cached_by_parameters_and_seed() -> None:
    gen = FakeLightGenerator()
    eyes = MeasuredFaces(generator=gen, perceive=fake_perceive)
    face, fidelity = eyes.seen(FaceParams(skin_tone=9), 1)
    assert face.skin_tone == 2 and fidelity.not_rendered == ["skin_tone"]
    tries = gen.calls  # the default playbook re-seeds up to 3 images
    assert tries == 3
    eyes.seen(FaceParams(skin_tone=9), 1)
    assert gen.calls == tries
    eyes.seen(FaceParams(skin_tone=9), 2)
    assert gen.calls == 2 * tries


def test_the_bench_runs_measured_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = FakeLightGenerator()
    eyes = MeasuredFaces(generator=gen, perceive=fake_perceive)
    monkeypatch.setattr(simulate, "default_eyes", lambda: eyes)
    out = bench(_scenario("measured"), SMALL, seeds=1)
    assert out["audience_sees"] == "measured"
    assert gen.calls > 0
    # every creative shows Monk 2 whatever was asked: no strategy can reach the dark bump,
    # so every CTR stays near the base rate
    for name, s in out["strategies"].items():
        ctr = s["clicks_mean"] / (SMALL.rounds * SMALL.impressions_per_round)
        assert ctr < 0.08, name
    declared = bench(_scenario("declared"), SMALL, seeds=1)
    assert declared["audience_sees"] == "declared"
    assert (
        declared["strategies"]["oracle"]["clicks_mean"]
        > 2 * out["strategies"]["oracle"]["clicks_mean"]
    )


@pytest.mark.slow
def test_the_real_renderer_reads_the_cpu_generators_faces() -> None:
    eyes = MeasuredFaces()
    for tone in (2, 9):
        face, fidelity = eyes.seen(FaceParams(skin_tone=tone), 11)
        assert fidelity.found and fidelity.params["skin_tone"].measured is not None
        assert 1 <= face.skin_tone <= 10 and math.isfinite(face.skin_tone)
