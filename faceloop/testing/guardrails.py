"""What every Guardrail must do. A check's tests subclass GuardrailContract and provide
`guardrail` and `passing_image` fixtures. `CTX` is the GuardContext the contract checks
with, for a check's own tests.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from faceloop.errors import InputError
from faceloop.guardrails.base import GuardContext, Guardrail
from faceloop.models import CheckResult, Verdict

CTX = GuardContext(asset_id="sha256-test")


class GuardrailContract:
    """A well-formed, deterministic verdict, and an InputError for what is not an image."""

    @pytest.fixture
    def guardrail(self) -> Guardrail:
        raise NotImplementedError("subclasses provide the guardrail under test")

    @pytest.fixture
    def passing_image(self) -> np.ndarray:
        raise NotImplementedError("subclasses provide an image the guardrail passes")

    def test_result_is_well_formed(self, guardrail: Guardrail, passing_image: np.ndarray) -> None:
        result = guardrail.check(passing_image, CTX)
        assert isinstance(result, CheckResult)
        assert result.name == guardrail.name
        assert result.verdict is Verdict.passed
        assert 0.0 <= result.score <= 1.0
        json.dumps(result.evidence)  # evidence goes into the catalog and the report as JSON

    def test_deterministic(self, guardrail: Guardrail, passing_image: np.ndarray) -> None:
        assert guardrail.check(passing_image, CTX) == guardrail.check(passing_image, CTX)

    def test_judges_a_blank_image_without_raising(self, guardrail: Guardrail) -> None:
        result = guardrail.check(np.full((256, 256, 3), 128, np.uint8), CTX)
        assert 0.0 <= result.score <= 1.0

    @pytest.mark.parametrize(
        "image",
        [np.zeros((256, 256), np.uint8), np.zeros((256, 256, 3), np.float32)],
        ids=["grey-2d", "float"],
    )
    def test_rejects_what_is_not_an_rgb_image(
        self, guardrail: Guardrail, image: np.ndarray
    ) -> None:
        with pytest.raises(InputError, match="sha256-test"):
            guardrail.check(image, CTX)
