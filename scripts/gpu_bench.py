#!/usr/bin/env python
"""Time a randomly initialised SDXL-size UNet (and VAE decoder) on this machine's GPU.

The compute of a diffusion step does not depend on the weights' values, so random weights
built from SDXL base's config (faceloop.generators.tiny.SDXL_UNET_CONFIG) time what real
weights would, with no download. Per batch size: `steps` UNet passes with classifier-free
guidance (2 x batch through the UNet, as the pipeline does), then one VAE decode; fp16 and
PyTorch SDPA attention; the base model only (the SDXL refiner is off, as in faceloop's
DiffusersGenerator). `--compile` wraps the UNet in `torch.compile` first; its compile time
is reported apart (the warm-up call of each batch size), not in the timed steps. Prints one
JSON object with the card name.

    python scripts/gpu_bench.py                   # 1024 px, 30 steps, batch 1 and 4, fp16
    python scripts/gpu_bench.py --compile         # the same with a torch.compile'd UNet
    python scripts/gpu_bench.py --tiny            # the same code on a toy config, CPU ok
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any


def build(tiny: bool, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    from faceloop.generators.tiny import SDXL_UNET_CONFIG, TINY_SDXL_UNET_CONFIG

    cfg = TINY_SDXL_UNET_CONFIG if tiny else SDXL_UNET_CONFIG
    torch.manual_seed(0)
    unet: Any = UNet2DConditionModel(**cfg)
    unet = unet.to(device, dtype).eval()
    unet.set_attn_processor(AttnProcessor2_0())
    vae_blocks = [32, 32, 32, 32] if tiny else [128, 256, 512, 512]
    vae: Any = (
        AutoencoderKL(
            block_out_channels=vae_blocks,
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            latent_channels=4,
            layers_per_block=1 if tiny else 2,
            norm_num_groups=32,
        )
        .to(device, dtype)  # type: ignore[attr-defined]
        .eval()
    )
    return unet, vae, cfg


def run(
    tiny: bool,
    size: int,
    steps: int,
    batches: list[int],
    device: str | None,
    compile_backend: str | None = None,
    compile_mode: str | None = None,
) -> dict[str, Any]:
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    dtype = torch.float16 if cuda else torch.float32
    unet, vae, cfg = build(tiny, device, dtype)
    params_m = round(sum(p.numel() for p in unet.parameters()) / 1e6, 1)
    if compile_backend is not None:
        # the UNet is where the time goes; the VAE decodes once per batch
        unet = torch.compile(unet, backend=compile_backend, mode=compile_mode)
    text_dim = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
    lat = size // 8

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    results = []
    for b in batches:
        n = 2 * b  # classifier-free guidance: conditional and unconditional together
        x = torch.randn(n, 4, lat, lat, device=device, dtype=dtype)
        ctx = torch.randn(n, 77, cfg["cross_attention_dim"], device=device, dtype=dtype)
        added = {
            "text_embeds": torch.randn(n, text_dim, device=device, dtype=dtype),
            "time_ids": torch.tensor(
                [[size, size, 0, 0, size, size]] * n, device=device, dtype=dtype
            ),
        }
        with torch.inference_mode():
            t0 = time.perf_counter()
            # warm-up: with torch.compile, this call compiles for the batch's shapes
            unet(x, 999, encoder_hidden_states=ctx, added_cond_kwargs=added)
            sync()
            t_warm = time.perf_counter() - t0
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for i in range(steps):
                t = 999 - i * (1000 // max(steps, 1))
                x = unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
            sync()
            t_unet = time.perf_counter() - t0
            t0 = time.perf_counter()
            vae.decode(x[:b] / 0.13025)
            sync()
            t_vae = time.perf_counter() - t0
        total = t_unet + t_vae
        results.append(
            {
                "batch": b,
                "warmup_s": round(t_warm, 3),
                "unet_s": round(t_unet, 3),
                "unet_steps_per_s": round(steps / t_unet, 2),
                "vae_decode_s": round(t_vae, 3),
                "total_s": round(total, 3),
                "images_per_s": round(b / total, 3),
                "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                if cuda
                else None,
            }
        )
    return {
        "card": torch.cuda.get_device_name()
        if cuda
        else f"cpu ({platform.processor() or platform.machine()})",
        "device": device,
        "torch": torch.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "config": "tiny" if tiny else "sdxl-base-1.0 unet, random weights",
        "unet_params_m": params_m,
        "size": size,
        "steps": steps,
        "cfg": True,
        "refiner": False,
        "attention": "sdpa",
        "compile": None
        if compile_backend is None
        else {"backend": compile_backend, "mode": compile_mode or "default"},
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="toy config, 64 px, 2 steps (CPU test)")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batches", default=None, help="comma-separated, default 1,4")
    ap.add_argument("--device", default=None)
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet first")
    ap.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend (default inductor)"
    )
    ap.add_argument(
        "--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune (default: none)"
    )
    args = ap.parse_args(argv)
    size = args.size or (64 if args.tiny else 1024)
    steps = args.steps or (2 if args.tiny else 30)
    batches = [int(b) for b in (args.batches or ("1,2" if args.tiny else "1,4")).split(",")]
    backend = args.compile_backend if args.compile else None
    report = run(args.tiny, size, steps, batches, args.device, backend, args.compile_mode)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
