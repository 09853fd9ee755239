"""The face quality guardrail: one clear face at a usable resolution, or a verdict why not."""

from __future__ import annotations

from typing import Any, cast

import cv2
import numpy as np
import pytest

from faceloop.generators.base import GenerationRequest
from faceloop.generators.registry import get_generator
from faceloop.guardrails.base import GuardContext, Guardrail
from faceloop.guardrails.quality import FaceQualityGuardrail
from faceloop.models import FaceParams, Verdict
from faceloop.testing import GuardrailContract
from faceloop.testing.guardrails import CTX


class TestQualityContract(GuardrailContract):
    @pytest.fixture
    def guardrail(self) -> Guardrail:
        return FaceQualityGuardrail()

    @pytest.fixture
    def passing_image(self, generated_faces: list[np.ndarray]) -> np.ndarray:
        return generated_faces[0]


def test_passes_generated_faces(generated_faces: list[np.ndarray]) -> None:
    guard = FaceQualityGuardrail()
    for rgb in generated_faces:
        result = guard.check(rgb, CTX)
        assert result.verdict is Verdict.passed, result.evidence
        assert result.score >= 0.6
        ev: dict[str, Any] = result.evidence
        assert ev["face_count"] == 1 and ev["width"] == 256 and ev["height"] == 256
        # FaceParams() is a head-and-shoulders shot: the face box is about 0.35 of the frame
        # high (dcgan post4), so about a tenth of its area
        assert 0.05 < ev["face_share"] <= 0.25
        assert ev["reasons"] == []


def test_passes_a_real_portrait(grace_hopper: np.ndarray) -> None:
    result = FaceQualityGuardrail().check(grace_hopper, CTX)
    assert result.verdict is Verdict.passed, result.evidence
    assert result.score > 0.8


def test_blocks_a_blank_grey_image() -> None:
    result = FaceQualityGuardrail().check(np.full((256, 256, 3), 128, np.uint8), CTX)
    assert result.verdict is Verdict.block
    assert result.score == 0.0
    assert result.evidence["faces"] == [] and result.evidence["face_share"] == 0.0
    assert "no face" in str(result.evidence["reasons"])


def test_blocks_a_64px_image_even_with_a_face() -> None:
    gen = get_generator("dcgan")
    (small,) = gen.generate([GenerationRequest(params=FaceParams(), seed=0, size=64)])
    result = FaceQualityGuardrail().check(small, CTX)
    assert result.verdict is Verdict.block
    assert result.evidence["width"] == 64
    assert "below the minimum 256" in str(result.evidence["reasons"])


def test_min_resolution_comes_from_the_context(generated_faces: list[np.ndarray]) -> None:
    ctx = GuardContext(asset_id="a", min_resolution=512)
    assert FaceQualityGuardrail().check(generated_faces[0], ctx).verdict is Verdict.block


def test_escalates_two_faces_side_by_side(generated_faces: list[np.ndarray]) -> None:
    pair = np.hstack([generated_faces[0], generated_faces[1]])
    pair = cv2.resize(pair, (640, 320), interpolation=cv2.INTER_AREA)
    result = FaceQualityGuardrail().check(pair, CTX)
    assert result.verdict is Verdict.escalate, result.evidence
    assert result.evidence["face_count"] == 2
    faces = cast(list[dict[str, Any]], result.evidence["faces"])
    centres = sorted(f["box"][0] + f["box"][2] / 2 for f in faces)
    assert centres[0] < 320 < centres[1]  # one face in each half


def test_max_faces_is_a_threshold(generated_faces: list[np.ndarray]) -> None:
    pair = np.hstack([generated_faces[0], generated_faces[1]])
    assert FaceQualityGuardrail(max_faces=2).check(pair, CTX).verdict is Verdict.passed


def test_min_score_is_a_threshold(generated_faces: list[np.ndarray]) -> None:
    # No detection reaches 1.0: the near miss is kept as evidence and scored.
    result = FaceQualityGuardrail(min_score=1.0).check(generated_faces[0], CTX)
    assert result.verdict is Verdict.block
    assert result.evidence["near_misses"] and 0.6 < result.score < 1.0


@pytest.mark.parametrize(("kwargs"), [{"min_score": 0.0}, {"min_score": 1.5}, {"max_faces": 0}])
def test_rejects_nonsense_thresholds(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaceQualityGuardrail(**kwargs)
