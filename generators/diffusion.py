"""The production backend: a diffusers SD 1.5 or SDXL pipeline, wrapped (not subclassed).

fp16 + SDPA on CUDA, fp32 on CPU; one torch.Generator per request so a variant's pixels
follow its seed; FaceParams become the prompt unless the agent's plan supplies one; LoRA
adapters by name and weight (peft: load, set weights, fuse, unload); an optional ControlNet
with a pose image. diffusers, transformers and peft are imported only when a pipeline is
built, so a CPU worker that lists generators never loads them.

Face parameters reach the image only through the prompt here: whether a given model honours
them is a property of its weights, measured with faceloop.generators.measure, not assumed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from faceloop.agents.planner.deterministic import NEGATIVE_PROMPT, describe
from faceloop.errors import GenerationError
from faceloop.generation import ASPECT_RATIOS
from faceloop.models import FaceParams

from .base import MAX_SIZE, GenerationRequest, Generator, Progress

MODEL_ENV = "FACELOOP_DIFFUSERS_MODEL"
STEPS_ENV = "FACELOOP_DIFFUSERS_STEPS"
_INSTALL_HINT = "pip install 'diffusers>=0.30' 'transformers>=4.44' 'peft>=0.12' accelerate"


def face_prompt(params: FaceParams) -> tuple[str, str]:
    """FaceParams -> (prompt, negative prompt) for a request that carries no plan (e.g.
    `faceloop generate`): the deterministic planner's parameter phrases and negative prompt,
    so a face is described the same way with or without a brief, within SDXL's 77 CLIP
    tokens (tests/agents/test_prompt_tokens.py)."""
    return describe(params), NEGATIVE_PROMPT


def request_prompt(req: GenerationRequest) -> tuple[str, str]:
    """The agent's prompt when the plan has one, else one built from the parameters."""
    built, negative = face_prompt(req.params)
    return (req.prompt or built), (req.negative_prompt or negative)


@dataclass(frozen=True)
class LoraSpec:
    """An adapter to apply: a local folder or file (or hub id on a networked machine)."""

    name: str
    source: str
    weight: float = 1.0


class DiffusersGenerator(Generator):
    """Any SD 1.5 / SDXL pipeline from a local folder or a hub id, or one built in code."""

    name: ClassVar[str] = "diffusers"
    PROMPT_ONLY: ClassVar[frozenset[str]] = frozenset()
    ASPECT_RATIOS: ClassVar[frozenset[str]] = frozenset(ASPECT_RATIOS)
    LOADS_ADAPTERS: ClassVar[bool] = True
    NAMED_MODEL: ClassVar[bool] = True

    def __init__(
        self,
        model: str | None = None,
        *,
        pipeline: Any = None,
        device: str | None = None,
        steps: int | None = None,
        guidance_scale: float = 5.0,
        batch_size: int | None = None,
        controlnet: str | Any = None,
        pose_image: np.ndarray | None = None,
        revision: str | None = None,
        controlnet_revision: str | None = None,
        controlnet_scale: float = 1.0,
    ) -> None:
        model = model or os.environ.get(MODEL_ENV, "")
        if pipeline is None and not model:
            raise GenerationError(
                f"the diffusers generator needs a model: set {MODEL_ENV} to a local pipeline "
                "folder or a hub id (e.g. stabilityai/stable-diffusion-xl-base-1.0)"
            )
        self.model = model or type(pipeline).__name__
        self.steps = int(steps or os.environ.get(STEPS_ENV) or 30)
        if self.steps < 1:
            raise GenerationError(f"steps must be at least 1, got {self.steps}")
        self.guidance_scale = guidance_scale
        self._device = device
        self._batch_size = batch_size
        self._pipe = pipeline
        self._controlnet_source = controlnet
        self.pose_image = pose_image
        self.revision = revision  # a hub commit; None for local folders
        self._controlnet_revision = controlnet_revision
        self.controlnet_scale = controlnet_scale
        self._control_pipe: Any = None
        self.loras: dict[str, LoraSpec] = {}
        self._fused = False
        self._lock = threading.Lock()
        if pipeline is not None:
            self._place(pipeline)
        self.model_version = f"diffusers:{self.model}"

    # ------------------------------------------------------------------ pipeline

    @property
    def device(self) -> str:
        if self._device is None:
            import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    @property
    def batch_size(self) -> int:
        # On CPU one image per call keeps a request's pixels independent of its batch
        # company (thread splitting changes low bits); on a GPU batches are the point.
        return self._batch_size or (4 if self.device.startswith("cuda") else 1)

    @property
    def is_xl(self) -> bool:
        return "XL" in type(self.pipeline).__name__

    @property
    def pipeline(self) -> Any:
        with self._lock:
            if self._pipe is None:
                self._pipe = self._load(self.model)
                self._place(self._pipe)
            return self._pipe

    def _load(self, model: str) -> Any:
        try:
            import torch
            from diffusers import DiffusionPipeline
        except ImportError as exc:
            raise GenerationError(
                f"the diffusers generator needs diffusers, transformers and peft ({exc}); "
                f"install them with `{_INSTALL_HINT}`"
            ) from exc
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        local = Path(model).expanduser()
        try:
            return DiffusionPipeline.from_pretrained(
                str(local) if local.exists() else model,
                torch_dtype=dtype,
                revision=None if local.exists() else self.revision,
                local_files_only=local.exists() or os.environ.get("HF_HUB_OFFLINE") == "1",
            )
        except (OSError, ValueError) as exc:
            raise GenerationError(
                f"could not load a diffusers pipeline from {model!r} ({exc}); set {MODEL_ENV} "
                "to a folder holding model_index.json, or to a hub id on a machine with network"
            ) from exc

    def _place(self, pipe: Any) -> None:
        import torch

        if self.device.startswith("cuda"):
            from diffusers.models.attention_processor import AttnProcessor2_0

            pipe.to(self.device, torch.float16)
            pipe.unet.set_attn_processor(AttnProcessor2_0())  # PyTorch SDPA kernels
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)

    def control_pipeline(self) -> Any:
        """The same components behind a ControlNet pipeline (built once, shares weights)."""
        if self._controlnet_source is None:
            return None
        if self._control_pipe is None:
            from diffusers import (
                ControlNetModel,
                StableDiffusionControlNetPipeline,
                StableDiffusionXLControlNetPipeline,
            )

            net = self._controlnet_source
            if isinstance(net, str):
                try:
                    net = ControlNetModel.from_pretrained(
                        net, torch_dtype=self.pipeline.dtype, revision=self._controlnet_revision
                    )
                except (OSError, ValueError) as exc:
                    raise GenerationError(
                        f"could not load a ControlNet from {net!r} ({exc}); use a folder "
                        "holding config.json and the weights, or a hub id on a networked machine"
                    ) from exc
            cls = (
                StableDiffusionXLControlNetPipeline
                if self.is_xl
                else StableDiffusionControlNetPipeline
            )
            self._control_pipe = cls.from_pipe(self.pipeline, controlnet=net)
            self._control_pipe.to(self.device)
            self._control_pipe.set_progress_bar_config(disable=True)
        return self._control_pipe

    # ------------------------------------------------------------------ LoRA

    def load_lora(
        self,
        name: str,
        source: str | Path | Mapping[str, Any],
        weight: float = 1.0,
        *,
        revision: str | None = None,
    ) -> None:
        """Attach an adapter (peft) by name; several can be active, each with its weight.

        `source` is a folder, a .safetensors file, a hub id, or a state dict already in
        memory (a persona adapter opened by `generators.persona.open_adapter`, which never
        touches the disk in the clear).
        """
        if self._fused:
            raise GenerationError("LoRA weights are fused; call unload_loras() before adding more")
        if name in self.loras:
            raise GenerationError(f"a LoRA named {name!r} is already loaded; unload it first")
        kwargs: dict[str, Any] = {"adapter_name": name}
        if revision is not None:
            kwargs["revision"] = revision  # a hub LoRA pinned to a commit
        if isinstance(source, Mapping):
            target: Any = dict(source)
            label = f"<state dict: {len(target)} tensors>"
        else:
            src = Path(source).expanduser()
            if src.is_file():
                kwargs["weight_name"] = src.name
                src = src.parent
            target, label = (str(src) if src.exists() else str(source)), str(source)
        try:
            self.pipeline.load_lora_weights(target, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise GenerationError(f"could not load LoRA {name!r} from {label}: {exc}") from exc
        self.loras[name] = LoraSpec(name, label, weight)
        self._apply_weights()

    def unload_lora(self, name: str) -> None:
        """Remove one adapter (a persona's, after its campaign's batch); the others stay."""
        if name not in self.loras:
            raise GenerationError(f"no LoRA named {name!r}; loaded: {sorted(self.loras)}")
        if self._fused:
            raise GenerationError("LoRA weights are fused; call unload_loras() instead")
        del self.loras[name]
        self.pipeline.delete_adapters([name])
        self._apply_weights()

    def set_lora_weight(self, name: str, weight: float) -> None:
        if name not in self.loras:
            raise GenerationError(f"no LoRA named {name!r}; loaded: {sorted(self.loras)}")
        spec = self.loras[name]
        self.loras[name] = LoraSpec(spec.name, spec.source, weight)
        self._apply_weights()

    def _apply_weights(self) -> None:
        names = list(self.loras)
        if names:
            self.pipeline.set_adapters(names, adapter_weights=[self.loras[n].weight for n in names])
        self.model_version = self._version()

    def fuse_loras(self) -> None:
        """Bake the active adapters into the UNet: faster steps, no per-layer LoRA branch."""
        if self.loras and not self._fused:
            self.pipeline.fuse_lora(adapter_names=list(self.loras))
            self._fused = True

    def unload_loras(self) -> None:
        """Remove every adapter and restore the base weights."""
        if self._fused:
            self.pipeline.unfuse_lora()
            self._fused = False
        self.pipeline.unload_lora_weights()
        self.loras.clear()
        self.model_version = self._version()

    def _version(self) -> str:
        tags = ",".join(f"{s.name}@{s.weight:g}" for s in self.loras.values())
        return f"diffusers:{self.model}" + (f"+lora[{tags}]" if tags else "")

    # ------------------------------------------------------------------ generation

    def request_problems(self, request: GenerationRequest) -> list[str]:
        if request.size % 8:
            return [
                f"size: {request.size} is not a multiple of 8, which the VAE needs; "
                f"use {request.size - request.size % 8} or {request.size + 8 - request.size % 8}"
            ]
        width, height = request.width_height
        if max(width, height) > MAX_SIZE:
            return [
                f"size: {request.size} at {request.aspect_ratio} is {width}x{height}, beyond "
                f"{MAX_SIZE} px; lower the size (image_size) so the long side fits"
            ]
        return []

    def generate(
        self, requests: list[GenerationRequest], progress: Progress | None = None
    ) -> list[np.ndarray]:
        self.validate(requests)
        import torch

        out: list[np.ndarray | None] = [None] * len(requests)
        # batches share a width and height; order is restored afterwards
        order = sorted(range(len(requests)), key=lambda i: requests[i].width_height)
        done = 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            shapes = {requests[i].width_height for i in idx}
            for shape in sorted(shapes):
                part = [i for i in idx if requests[i].width_height == shape]
                images = self._run([requests[i] for i in part], shape, torch)
                for i, img in zip(part, images, strict=True):
                    out[i] = img
                done += len(part)
                if progress is not None:
                    progress(done, len(requests))
        return [img for img in out if img is not None]

    def _run(
        self, reqs: Sequence[GenerationRequest], shape: tuple[int, int], torch: Any
    ) -> list[np.ndarray]:
        width, height = shape
        prompts = [request_prompt(r) for r in reqs]
        gens = [torch.Generator(self.device).manual_seed(r.seed) for r in reqs]
        kwargs: dict[str, Any] = {
            "prompt": [p for p, _ in prompts],
            "negative_prompt": [n for _, n in prompts],
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "height": height,
            "width": width,
            "generator": gens,
            "output_type": "np",
        }
        pipe = self.pipeline
        control = self.control_pipeline()
        if control is not None:
            if self.pose_image is None:
                raise GenerationError(
                    "a ControlNet is set but no pose image: pass pose_image (HxWx3 uint8) "
                    "or build the generator without controlnet"
                )
            from PIL import Image

            kwargs["image"] = Image.fromarray(self.pose_image).resize((width, height))
            kwargs["controlnet_conditioning_scale"] = self.controlnet_scale
            pipe = control
        with torch.inference_mode():
            result = pipe(**kwargs).images
        arr = np.clip(np.asarray(result) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return [np.ascontiguousarray(a) for a in arr]
