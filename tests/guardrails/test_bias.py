"""Bias audit: measured skin tone (ITA) and gender presentation, requested-only age bands."""

from __future__ import annotations

import numpy as np
import pytest

from faceloop.guardrails.base import GuardContext, Guardrail
from faceloop.guardrails.bias import BiasGuardrail, audit_batch, ita_group
from faceloop.models import FaceParams, Verdict
from faceloop.playbooks.schema import BiasTargets
from faceloop.testing import GuardrailContract


class TestBiasContract(GuardrailContract):
    @pytest.fixture
    def guardrail(self) -> Guardrail:
        return BiasGuardrail()

    @pytest.fixture
    def passing_image(self, astronaut: np.ndarray) -> np.ndarray:
        return astronaut


@pytest.mark.parametrize(
    ("ita", "group"),
    [
        (60, "very_light"),
        (50, "light"),
        (30, "intermediate"),
        (20, "tan"),
        (0, "brown"),
        (-45, "dark"),
    ],
)
def test_ita_groups(ita: float, group: str) -> None:
    assert ita_group(ita) == group


def test_measures_a_real_portrait(astronaut: np.ndarray) -> None:
    ctx = GuardContext(asset_id="a", params=FaceParams(age_band="35-44"))
    m = BiasGuardrail().measure(astronaut, ctx)
    (face,) = m["faces"]  # type: ignore[misc]
    assert face["gender_presentation"] == "feminine"
    assert face["skin_tone"] in ("very_light", "light") and face["skin_pixels"] > 1000
    assert m["age_band_requested"] == "35-44"


def _m(tone: str, gender: str, age: str = "25-34") -> dict[str, object]:
    return {
        "faces": [{"skin_tone": tone, "gender_presentation": gender}],
        "age_band_requested": age,
    }


def test_table_of_counts_and_shares_and_age_is_requested_only() -> None:
    batch = [_m("light", "feminine"), _m("dark", "masculine", "45-54"), _m("dark", "feminine")]
    r = audit_batch(batch)
    ev = r.evidence
    assert r.verdict is Verdict.passed and ev["judged"] is False
    assert ev["skin_tone"]["dark"] == {"count": 2, "share": pytest.approx(0.6667, abs=1e-4)}  # type: ignore[index]
    assert ev["gender_presentation"]["measured"] is True  # type: ignore[index]
    assert ev["age_band"]["measured"] is False and ev["age_band"]["requested_only"] is True  # type: ignore[index]


def test_missed_targets_escalate_with_the_reason() -> None:
    targets = BiasTargets(
        min_batch=4, gender_min_share={"masculine": 0.3}, skin_tone_min_share={"dark": 0.25}
    )
    batch = [_m("light", "feminine")] * 4
    r = audit_batch(batch, targets)
    assert r.verdict is Verdict.escalate
    assert "masculine" in str(r.evidence["reason"]) and "dark" in str(r.evidence["reason"])
    ok = audit_batch([*[_m("dark", "masculine")] * 2, *[_m("light", "feminine")] * 2], targets)
    assert ok.verdict is Verdict.passed
    small = audit_batch(batch[:3], targets)
    assert small.verdict is Verdict.passed and small.evidence["judged"] is False
    blocking = BiasTargets(min_batch=1, gender_min_share={"masculine": 0.5}, on_miss=Verdict.block)
    assert audit_batch(batch, blocking).verdict is Verdict.block
