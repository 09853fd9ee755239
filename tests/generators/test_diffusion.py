"""DiffusersGenerator on tiny random SD 1.5 and SDXL pipelines built in code (no download).

As diffusers' own pipeline tests: 2 steps, 64 px, seeded random components.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceloop.testing import GeneratorContract
from faceloop.testing.generators import request

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from faceloop.agents.planner.deterministic import expression_problems
from faceloop.errors import GenerationError
from faceloop.generators.base import Generator
from faceloop.generators.diffusion import DiffusersGenerator, face_prompt
from faceloop.generators.tiny import tiny_pipeline
from faceloop.models import FaceParams


def _tiny(kind: str = "sd15", **kw: Any) -> DiffusersGenerator:
    return DiffusersGenerator(pipeline=tiny_pipeline(kind), steps=2, device="cpu", **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sd15() -> DiffusersGenerator:
    return _tiny("sd15")


@pytest.fixture(scope="module")
def sdxl() -> DiffusersGenerator:
    return _tiny("sdxl")


@pytest.mark.slow  # the contract renders at 256 and 512 px: ~1 min on 2 cores
class TestDiffusersContract(GeneratorContract):
    @pytest.fixture
    def generator(self, sd15: DiffusersGenerator) -> Generator:
        return sd15

    def test_different_seeds_differ(self, generator: Generator) -> None:
        # random weights make near-grey noise: the contract's 5-level gap is for real faces
        a, b = generator.generate([request(seed=10, size=64), request(seed=11, size=64)])
        assert not np.array_equal(a, b)
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.05


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_same_seed_same_image_different_seeds_differ(kind: str, sd15: Any, sdxl: Any) -> None:
    gen = sd15 if kind == "sd15" else sdxl
    a, b, c = gen.generate(
        [request(seed=1, size=64), request(seed=1, size=64), request(seed=2, size=64)]
    )
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_batched_generation_keeps_one_seed_per_variant(sdxl: DiffusersGenerator) -> None:
    batched = DiffusersGenerator(pipeline=sdxl.pipeline, steps=2, device="cpu", batch_size=3)
    reqs = [request(seed=s, size=64) for s in (5, 6, 7)]
    together = batched.generate(reqs)
    alone = [sdxl.generate([r])[0] for r in reqs]
    for t, a in zip(together, alone, strict=True):
        # batching may change the low bits of CPU kernels, not the picture
        assert np.abs(t.astype(int) - a.astype(int)).max() <= 2


def test_face_params_become_the_prompt() -> None:
    p = FaceParams(expression="laugh", skin_tone=9, background="office")
    prompt, negative = face_prompt(p)
    # the planner's phrases: every parameter expressed, the same words with or without a brief
    assert expression_problems(prompt, p) == []
    assert "dark brown skin" in prompt and "office" in prompt and "Monk" not in prompt
    assert "deformed face" in negative and "minor" in negative


def test_the_plans_prompt_wins_and_changes_pixels(sd15: DiffusersGenerator) -> None:
    plain = request(seed=3, size=64)
    planned = plain.model_copy(update={"prompt": "portrait of a nurse, zzz"})
    a, b = sd15.generate([plain, planned])
    assert not np.array_equal(a, b)


def test_size_must_be_a_multiple_of_8(sd15: DiffusersGenerator) -> None:
    with pytest.raises(GenerationError, match=r"requests\[0\]\.size: 100 is not a multiple of 8"):
        sd15.validate([request(seed=1, size=100)])


def test_needs_a_model_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACELOOP_DIFFUSERS_MODEL", raising=False)
    with pytest.raises(GenerationError, match="FACELOOP_DIFFUSERS_MODEL"):
        DiffusersGenerator()


def test_loads_a_saved_pipeline_from_a_local_folder(tmp_path: Path) -> None:
    tiny_pipeline("sd15").save_pretrained(tmp_path / "pipe")
    gen = DiffusersGenerator(str(tmp_path / "pipe"), steps=2, device="cpu")
    (img,) = gen.generate([request(seed=4, size=64)])
    assert img.shape == (64, 64, 3)
    assert gen.model_version == f"diffusers:{tmp_path / 'pipe'}"
    with pytest.raises(GenerationError, match="could not load a diffusers pipeline"):
        DiffusersGenerator(str(tmp_path / "missing"), device="cpu").generate(
            [request(seed=1, size=64)]
        )


def make_lora(pipe: Any, folder: Path, seed: int = 0) -> Path:
    """A random (not zero-initialised) LoRA on the UNet's attention, saved as diffusers does."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=4,
        lora_alpha=4,
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        init_lora_weights=False,
    )
    pipe.unet.add_adapter(cfg, adapter_name="tmp")
    state = get_peft_model_state_dict(pipe.unet, adapter_name="tmp")
    pipe.unet.delete_adapters("tmp")
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=state)
    return folder


@pytest.mark.parametrize("kind", ["sd15", pytest.param("sdxl", marks=pytest.mark.slow)])
def test_lora_changes_the_output_and_unloads_cleanly(kind: str, tmp_path: Path) -> None:
    gen = _tiny(kind)
    req = request(seed=9, size=64)
    (before,) = gen.generate([req])
    base_version = gen.model_version
    gen.load_lora("persona", make_lora(tiny_pipeline(kind), tmp_path / "lora"), weight=1.0)
    assert gen.model_version == f"{base_version}+lora[persona@1]"
    (with_lora,) = gen.generate([req])
    assert np.abs(with_lora.astype(int) - before.astype(int)).mean() > 0.05
    gen.set_lora_weight("persona", 0.0)
    (zero,) = gen.generate([req])
    assert np.abs(zero.astype(int) - before.astype(int)).max() <= 1
    gen.set_lora_weight("persona", 1.0)
    gen.fuse_loras()
    (fused,) = gen.generate([req])
    assert np.abs(fused.astype(int) - with_lora.astype(int)).max() <= 2
    gen.unload_loras()
    (after,) = gen.generate([req])
    assert np.abs(after.astype(int) - before.astype(int)).max() <= 1
    assert gen.model_version == base_version


def test_controlnet_pose_conditions_the_image() -> None:
    from diffusers import ControlNetModel

    base = _tiny("sd15")
    net = ControlNetModel.from_unet(base.pipeline.unet)
    # a fresh ControlNet's zero convolutions add nothing: give them weights to see an effect
    import torch

    torch.manual_seed(0)
    for block in [*net.controlnet_down_blocks, net.controlnet_mid_block]:
        torch.nn.init.normal_(block.weight, std=0.5)
    pose = np.zeros((64, 64, 3), np.uint8)
    pose[20:44, 30:34] = 255
    posed = DiffusersGenerator(
        pipeline=base.pipeline, steps=2, device="cpu", controlnet=net, pose_image=pose
    )
    req = request(seed=2, size=64)
    (a,) = base.generate([req])
    (b,) = posed.generate([req])
    assert not np.array_equal(a, b)
    blank = DiffusersGenerator(pipeline=base.pipeline, steps=2, device="cpu", controlnet=net)
    with pytest.raises(GenerationError, match="no pose image"):
        blank.generate([req])
