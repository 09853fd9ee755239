"""The guardrail strategy: one small base class, one file per check."""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np
from pydantic import Field

from faceloop.errors import InputError
from faceloop.models import CheckResult, FaceParams, Model, Verdict


class GuardContext(Model):
    """What a check may know about the image besides its pixels."""

    asset_id: str
    params: FaceParams | None = None
    min_resolution: int = Field(default=256, ge=1, description="shorter side, in pixels")
    persona_id: str | None = Field(
        default=None, description="consented persona every face must stay close to"
    )


class Guardrail(abc.ABC):
    """A check of one image: returns pass, block or escalate with a score and evidence.

    Implementations must be deterministic for the same pixels and context, keep evidence
    JSON-serialisable (numbers, strings, lists, dicts) and raise only on broken input,
    never to express a verdict.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        """Judge one HxWx3 uint8 RGB image."""

    def result(
        self, verdict: Verdict, score: float, evidence: dict[str, object] | None = None
    ) -> CheckResult:
        """A CheckResult named after this check, with the score clamped into [0, 1]."""
        return CheckResult(
            name=self.name,
            verdict=verdict,
            score=float(min(1.0, max(0.0, score))),
            evidence=evidence or {},
        )


def require_rgb(rgb: np.ndarray, ctx: GuardContext) -> None:
    """Reject arrays that are not images instead of judging garbage."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", type(rgb).__name__)
        raise InputError(
            f"image of asset {ctx.asset_id}",
            [f"expected an HxWx3 RGB array, got {shape}; decode the asset to RGB first"],
        )
    if rgb.dtype != np.uint8:
        raise InputError(
            f"image of asset {ctx.asset_id}",
            [f"expected dtype uint8, got {rgb.dtype}; scale to 0-255 and cast to uint8"],
        )
