"""Tiny randomly initialised SD 1.5 and SDXL pipelines, built in code with no download.

For tests, the CPU half of `scripts/gpu_bench.sh` and docs examples: the architecture and
code paths are those of the real pipelines, the weights are noise, so the images are noise.
Never use them for anything a person is meant to look at.

The tokenizer is built from a vocabulary written here: `CLIPTokenizer.from_pretrained(hub id)`
with HF_HUB_OFFLINE=1 silently returns an empty tokenizer, which would hide prompt bugs.
"""

from __future__ import annotations

import inspect
import json
import string
import tempfile
from pathlib import Path
from typing import Any, Literal

Kind = Literal["sd15", "sdxl"]

# SDXL base's UNet config (stabilityai/stable-diffusion-xl-base-1.0 unet/config.json); the
# GPU benchmark builds it with random weights: the compute is the same as with real ones.
SDXL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}

# The same layout at toy width: 2 blocks of 32/64 channels, one transformer layer each.
TINY_SDXL_UNET_CONFIG: dict[str, Any] = {
    **SDXL_UNET_CONFIG,
    "sample_size": 8,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "transformer_layers_per_block": [1, 1],
    "attention_head_dim": [2, 4],
    "cross_attention_dim": 64,
    "addition_time_embed_dim": 8,
    # text_embeds (32) + 6 time ids * addition_time_embed_dim (8)
    "projection_class_embeddings_input_dim": 32 + 6 * 8,
    "norm_num_groups": 32,
}

TINY_SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "norm_num_groups": 32,
}


def tiny_tokenizer(directory: Path | None = None) -> Any:
    """A CLIPTokenizer over single characters: every word splits into letters, which is
    enough to see that different prompts give different token ids."""
    from transformers import CLIPTokenizer

    directory = Path(directory or tempfile.mkdtemp(prefix="faceloop-tok-"))
    directory.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    for ch in string.ascii_lowercase + string.digits + ",.-+'()":
        tokens += [ch, f"{ch}</w>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    common: dict[str, Any] = {"model_max_length": 32, "pad_token": "<|endoftext|>"}
    if "vocab" in inspect.signature(CLIPTokenizer.__init__).parameters:
        # transformers 5: the tokenizers-backed class takes the vocabulary itself, and
        # silently ignores vocab_file (an empty tokenizer again)
        tok = CLIPTokenizer(vocab=vocab, merges=[], **common)
    else:
        tok = CLIPTokenizer(
            vocab_file=str(directory / "vocab.json"),
            merges_file=str(directory / "merges.txt"),
            **common,
        )
    if len(tok) != len(vocab):
        raise RuntimeError(f"tiny tokenizer has {len(tok)} tokens, expected {len(vocab)}")
    return tok


def _text_encoder(hidden: int, projection: bool, vocab: int, seed: int) -> Any:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        projection_dim=hidden,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_act="gelu",
    )
    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(config).eval()


def _vae(seed: int) -> Any:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    # four blocks, three 2x downsamplings: 8x like the real VAEs, at toy width
    return AutoencoderKL(
        block_out_channels=[32, 32, 32, 32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    ).eval()  # type: ignore[attr-defined]


def tiny_pipeline(kind: Kind = "sd15", seed: int = 0) -> Any:
    """A StableDiffusionPipeline or StableDiffusionXLPipeline with tiny random weights.

    The VAE downsamples 8x as the real ones do, so 64 px images use an 8x8 latent.
    """
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    tok = tiny_tokenizer()
    vocab = len(tok)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    if kind == "sd15":
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**TINY_SD15_UNET_CONFIG).eval()  # type: ignore[attr-defined]
        return StableDiffusionPipeline(
            vae=_vae(seed + 1),
            text_encoder=_text_encoder(32, False, vocab, seed + 2),
            tokenizer=tok,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    if kind == "sdxl":
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**TINY_SDXL_UNET_CONFIG).eval()  # type: ignore[attr-defined]
        return StableDiffusionXLPipeline(
            vae=_vae(seed + 1),
            # two encoders whose hidden states concatenate to cross_attention_dim (32 + 32)
            text_encoder=_text_encoder(32, False, vocab, seed + 2),
            text_encoder_2=_text_encoder(32, True, vocab, seed + 3),
            tokenizer=tok,
            tokenizer_2=tok,
            unet=unet,
            scheduler=scheduler,
            force_zeros_for_empty_prompt=True,
        )
    raise ValueError(f"kind must be 'sd15' or 'sdxl', got {kind!r}")
