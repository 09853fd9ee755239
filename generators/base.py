"""The generator strategy: one small base class, one file per backend.

This module must stay importable without torch: CPU-only workers import it to build requests.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import ConfigDict, Field, ValidationError

from faceloop.errors import GenerationError
from faceloop.generation import ASPECT_RATIOS, AspectRatio, dimensions
from faceloop.models import CATEGORICAL_FIELDS, FaceParams, Model

MIN_SIZE = 64
MAX_SIZE = 2048
# torch.Generator.manual_seed takes 64-bit seeds; 63 bits keep them valid as SQL BIGINT too.
MAX_SEED = 2**63 - 1

Progress = Callable[[int, int], None]


class GenerationRequest(Model):
    """One image to make. The same request always gives the same pixels on one backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: FaceParams
    seed: int = Field(ge=0, le=MAX_SEED)
    size: int = Field(
        default=256,
        ge=MIN_SIZE,
        le=MAX_SIZE,
        description="square side, px; another aspect ratio keeps about this area",
    )
    prompt: str = ""
    negative_prompt: str = ""
    aspect_ratio: AspectRatio = "1:1"

    @property
    def width_height(self) -> tuple[int, int]:
        """(width, height) in pixels: size x size for 1:1, the same area otherwise."""
        if self.aspect_ratio == "1:1":
            return self.size, self.size
        return dimensions(self.size, self.aspect_ratio)


_FIXES: dict[str, str] = {
    "seed": f"use an integer seed between 0 and {MAX_SEED}",
    "size": f"use a square side between {MIN_SIZE} and {MAX_SIZE} pixels",
    "prompt": "pass the prompt as a string ('' for none)",
    "negative_prompt": "pass the negative prompt as a string ('' for none)",
    "aspect_ratio": f"use one of: {', '.join(ASPECT_RATIOS)}",
    "params.skin_tone": "use a Monk skin tone from 1 (lightest) to 10 (darkest)",
    **{
        f"params.{name}": f"use one of: {', '.join(values)}"
        for name, values in CATEGORICAL_FIELDS.items()
    },
}


def _fix_for(path: str) -> str:
    if path in _FIXES:
        return _FIXES[path]
    if path.startswith("params"):
        return "build params with faceloop.models.FaceParams; see its fields for allowed values"
    return "remove the field or correct its value"


class Generator(abc.ABC):
    """Turns generation requests into RGB images.

    Implementations set `name` (the registry key, e.g. "dcgan") and `model_version` (which
    weights and post-processing made the pixels; it is stored with every asset), call
    `self.validate(requests)` before any work, and import heavy packages inside methods.
    """

    name: ClassVar[str]
    model_version: str

    # Face parameters the backend cannot show in pixels and only forwards to its prompt
    # (or ignores); reports list them so nobody reads a KPI effect into them.
    PROMPT_ONLY: ClassVar[frozenset[str]] = frozenset()
    # What a campaign's GenerationConfig may ask of the backend (faceloop.generation): read
    # from the class at submit time, so a bad config is refused before any weights load.
    ASPECT_RATIOS: ClassVar[frozenset[str]] = frozenset({"1:1"})
    LOADS_ADAPTERS: ClassVar[bool] = False  # LoRAs, ControlNet, persona adapters
    NAMED_MODEL: ClassVar[bool] = False  # takes a model path / hub id, steps, guidance

    def validate(self, requests: Sequence[GenerationRequest]) -> None:
        """Raise GenerationError naming every bad field and its fix; return None if all fit.

        Requests are pydantic models and usually valid already; this catches ones built with
        `model_construct`, mutated, or deserialised by hand, plus backend-specific limits.
        """
        problems: list[str] = []
        for i, req in enumerate(requests):
            where = f"requests[{i}]"
            if not isinstance(req, GenerationRequest):
                problems.append(
                    f"{where}: expected a GenerationRequest, got {type(req).__name__}; "
                    "build one with GenerationRequest(params=FaceParams(...), seed=...)"
                )
                continue
            try:
                GenerationRequest.model_validate(_raw_fields(req), strict=True)
            except ValidationError as err:
                for e in err.errors():
                    path = ".".join(str(p) for p in e["loc"]) or "(root)"
                    problems.append(
                        f"{where}.{path}: {e['msg']} (got {e.get('input')!r}); {_fix_for(path)}"
                    )
                continue
            if req.aspect_ratio not in self.ASPECT_RATIOS:
                problems.append(
                    f"{where}.aspect_ratio: the {self.name} backend makes "
                    f"{', '.join(sorted(self.ASPECT_RATIOS))} images only, not "
                    f"{req.aspect_ratio}; use '1:1' or the diffusers backend"
                )
            problems += [f"{where}.{p}" for p in self.request_problems(req)]
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            raise GenerationError(
                f"generator {self.name!r} rejected {len(problems)} problem(s) in the requests; "
                f"nothing was generated:\n{lines}"
            )

    def request_problems(self, request: GenerationRequest) -> list[str]:
        """Backend-specific limits, as 'field: what is wrong; how to fix it' lines."""
        return []

    @abc.abstractmethod
    def generate(
        self, requests: list[GenerationRequest], progress: Progress | None = None
    ) -> list[np.ndarray]:
        """One HxWx3 uint8 RGB image per request, in order.

        progress(done, total) is called as images finish so a long activity can heartbeat.
        """


def _raw_fields(req: GenerationRequest) -> dict[str, Any]:
    """The request's field values without re-serialising them (which would coerce types)."""
    raw: dict[str, Any] = dict(req.__dict__)
    params = raw.get("params")
    if isinstance(params, FaceParams):
        raw["params"] = dict(params.__dict__)
    return raw
