"""The production path of a campaign: which generator backend, model, LoRAs, ControlNet and
aspect ratio make its images (docs/generators.md, "Choosing the production path").

`GenerationConfig` is the boundary model. The deployment's default comes from the settings
(FACELOOP_GENERATOR, FACELOOP_DIFFUSERS_MODEL, FACELOOP_GENERATION_FILE); a brief file may
override it in its `campaign.generation` block. A field left unset (None) takes the
deployment's value, so `generation: {aspect_ratio: "4:5"}` changes only the shape.
`resolve_generation` merges the two and `generation_problems` names every field a resolved
config gets wrong with its fix; the submit path runs both, so nothing reaches Temporal on a
bad config, and the resolved config travels in the workflow input (model paths and hub ids,
never credentials).

A leaf module: pydantic only, no torch and no faceloop import, so faceloop.models can use it.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ADAPTER_BACKENDS",
    "ASPECT_RATIOS",
    "POSE_TEMPLATES",
    "AspectRatio",
    "ControlNetConfig",
    "GenerationConfig",
    "LoraRef",
    "PoseTemplate",
    "dimensions",
    "generation_problems",
    "is_hub_id",
    "resolve_generation",
]

# The ad shapes generation can make; width/height keep the area of `size` x `size`, as
# SDXL's training buckets do (1024 px: 1:1 1024x1024, 4:5 912x1144, 9:16 768x1368,
# 1.91:1 1416x744), rounded to multiples of 8 for the VAE.
AspectRatio = Literal["1:1", "4:5", "9:16", "1.91:1"]
ASPECT_RATIOS: dict[str, float] = {"1:1": 1.0, "4:5": 4 / 5, "9:16": 9 / 16, "1.91:1": 1.91}
assert set(ASPECT_RATIOS) == set(get_args(AspectRatio))

# Pose maps drawn in code (generators/poses.py) for an OpenPose ControlNet.
PoseTemplate = Literal["headshot-front", "headshot-left", "headshot-right", "half-body-front"]
POSE_TEMPLATES: tuple[str, ...] = get_args(PoseTemplate)

# Backends the built-in registry knows to load LoRA adapters, ControlNets, other shapes
# and a named model; a plugin declares the same through its Generator class attributes
# (LOADS_ADAPTERS, ASPECT_RATIOS), which the submit check reads.
ADAPTER_BACKENDS = frozenset({"diffusers"})

_NAME = r"^[a-z0-9][a-z0-9_.-]*$"
# a hub id is owner/name with no path separators beyond the one slash
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

Source = Annotated[str, Field(min_length=1, max_length=1000)]


def is_hub_id(source: str) -> bool:
    """'owner/name' and not a path that exists or looks local (./x, /x, ~/x, x.safetensors)."""
    if source.startswith((".", "/", "~")) or source.endswith((".safetensors", ".bin", ".ckpt")):
        return False
    from pathlib import Path

    return bool(_HUB_ID.match(source)) and not Path(source).exists()


def dimensions(size: int, aspect_ratio: str) -> tuple[int, int]:
    """(width, height) of an image with about the area of size x size in the given shape,
    each a multiple of 8; ValueError for a shape not in ASPECT_RATIOS."""
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValueError(
            f"aspect ratio {aspect_ratio!r} is not one of {', '.join(ASPECT_RATIOS)}; use one"
        )
    r = math.sqrt(ASPECT_RATIOS[aspect_ratio])
    return max(8, round(size * r / 8) * 8), max(8, round(size / r / 8) * 8)


class _Strict(BaseModel):
    # the same habit as faceloop.models.Model: an unknown (misspelt) field is an error
    model_config = ConfigDict(extra="forbid")


class LoraRef(_Strict):
    """A style/product LoRA applied to every image of the campaign."""

    source: Source = Field(
        description="a local .safetensors file or folder, or a hub id (owner/name) with a revision"
    )
    name: str | None = Field(
        default=None,
        max_length=64,
        pattern=_NAME,
        description="adapter name (unset: the file or repo name); names must be unique",
    )
    weight: float = Field(default=1.0, ge=-2.0, le=2.0, description="adapter scale")
    revision: str | None = Field(
        default=None, pattern=_COMMIT.pattern, description="hub commit (40 hex) of a hub LoRA"
    )

    @property
    def adapter_name(self) -> str:
        if self.name:
            return self.name
        stem = self.source.rstrip("/").rsplit("/", 1)[-1].removesuffix(".safetensors")
        return re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-.") or "lora"


class ControlNetConfig(_Strict):
    """A ControlNet and the pose it follows: a pose-map image or a template drawn in code."""

    model: Source = Field(description="ControlNet: a local folder or a hub id")
    revision: str | None = Field(default=None, pattern=_COMMIT.pattern)
    pose_image: Source | None = Field(
        default=None,
        description="path of a pose map (e.g. an OpenPose render of a reference photo), used "
        "as the control image as it is",
    )
    pose_template: PoseTemplate | None = Field(
        default=None, description="a pose map drawn in code: " + ", ".join(POSE_TEMPLATES)
    )
    scale: float = Field(default=1.0, ge=0.0, le=2.0, description="conditioning scale")

    @model_validator(mode="after")
    def _one_pose(self) -> ControlNetConfig:
        if (self.pose_image is None) == (self.pose_template is None):
            raise ValueError(
                "controlnet: set exactly one of pose_image (a pose-map file) or pose_template "
                f"({', '.join(POSE_TEMPLATES)})"
            )
        return self


class GenerationConfig(_Strict):
    """How a campaign's images are made. None: the deployment's default for that field."""

    backend: str | None = Field(
        default=None,
        max_length=64,
        pattern=_NAME,
        description="generator backend: dcgan, onnx, diffusers, or an installed plugin",
    )
    model: Source | None = Field(
        default=None,
        description="diffusers pipeline: a local folder (model_index.json) or a hub id",
    )
    revision: str | None = Field(
        default=None,
        pattern=_COMMIT.pattern,
        description="hub commit (40 hex) of a hub model: recorded with every image",
    )
    steps: int | None = Field(default=None, ge=1, le=200, description="denoising steps")
    guidance_scale: float | None = Field(default=None, ge=0.0, le=30.0)
    loras: list[LoraRef] | None = Field(default=None, max_length=8)
    controlnet: ControlNetConfig | None = None
    aspect_ratio: AspectRatio | None = Field(
        default=None, description="image shape: " + ", ".join(ASPECT_RATIOS) + " (unset: 1:1)"
    )
    persona_weight: float | None = Field(
        default=None, ge=0.0, le=2.0, description="scale of a persona campaign's adapter"
    )

    @property
    def shape(self) -> AspectRatio:
        return self.aspect_ratio or "1:1"

    def cache_key(self) -> str:
        """What makes a different pipeline: the shape and the persona weight do not."""
        return self.model_dump_json(exclude={"aspect_ratio", "persona_weight"})


# fields that belong to one backend: a brief naming another backend does not inherit them
_BACKEND_FIELDS = ("model", "revision", "steps", "guidance_scale", "loras", "controlnet")


def resolve_generation(
    default: GenerationConfig, override: GenerationConfig | None
) -> GenerationConfig:
    """The deployment's default with the brief's set fields on top.

    A brief that names a different backend than the default starts from that backend's own
    defaults: the deployment's model, LoRAs and ControlNet belong to the deployment's backend.
    """
    if override is None:
        return default.model_copy(deep=True)
    base = default.model_dump()
    if override.backend is not None and override.backend != default.backend:
        for name in _BACKEND_FIELDS:
            base[name] = None
    for name, value in override.model_dump().items():
        if value is not None:
            base[name] = value
    return GenerationConfig.model_validate(base)


def generation_problems(
    config: GenerationConfig,
    *,
    loads_adapters: bool,
    aspect_ratios: frozenset[str],
    named_model: bool,
    persona: bool = False,
) -> list[str]:
    """'field: what is wrong; how to fix it' for a resolved config, given what its backend
    can do (the registry reads that from the Generator class). Empty: it fits."""
    b = config.backend or "(unset)"
    problems: list[str] = []
    if config.aspect_ratio is not None and config.aspect_ratio not in aspect_ratios:
        problems.append(
            f"aspect_ratio: the {b} backend makes {', '.join(sorted(aspect_ratios))} images "
            f"only, not {config.aspect_ratio}; set aspect_ratio: '1:1' or backend: diffusers"
        )
    if not named_model:
        for name in ("model", "revision", "steps", "guidance_scale"):
            if getattr(config, name) is not None:
                problems.append(
                    f"{name}: the {b} backend has its own shipped weights and takes no {name}; "
                    f"remove it or set backend: diffusers"
                )
    if not loads_adapters:
        if config.loras:
            problems.append(
                f"loras: the {b} backend cannot load LoRA adapters; remove them or set "
                "backend: diffusers"
            )
        if config.controlnet is not None:
            problems.append(
                f"controlnet: the {b} backend has no ControlNet; remove it or set "
                "backend: diffusers"
            )
        if persona:
            problems.append(
                f"backend: a persona campaign loads the persona's LoRA adapter, which the {b} "
                "backend cannot; set backend: diffusers (with a model) or drop brief.persona"
            )
    if named_model and config.model is None:
        problems.append(
            f"model: the {b} backend needs a model; set model to a local pipeline folder "
            "(model_index.json) or a hub id with its revision, or set FACELOOP_DIFFUSERS_MODEL"
        )
    if config.model is not None and is_hub_id(config.model) and config.revision is None:
        problems.append(
            f"revision: hub model {config.model!r} needs a pinned revision (its 40-hex commit) "
            "so every image records exactly which weights made it; add revision: <commit>"
        )
    names = [lora.adapter_name for lora in config.loras or []]
    for i, lora in enumerate(config.loras or []):
        if names.count(lora.adapter_name) > 1:
            problems.append(
                f"loras.{i}.name: {lora.adapter_name!r} is used by more than one LoRA; give "
                "each a different name"
            )
        if is_hub_id(lora.source) and lora.revision is None:
            problems.append(
                f"loras.{i}.revision: hub LoRA {lora.source!r} needs a pinned revision (its "
                "40-hex commit); add revision: <commit> or use a local file"
            )
    cn = config.controlnet
    if cn is not None and is_hub_id(cn.model) and cn.revision is None:
        problems.append(
            f"controlnet.revision: hub ControlNet {cn.model!r} needs a pinned revision (its "
            "40-hex commit); add revision: <commit> or use a local folder"
        )
    return problems
