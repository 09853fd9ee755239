"""scripts/gpu_bench.py runs its whole code path on a toy config, so the GPU run is not
untested code; and the SDXL config it times is SDXL base's UNet (2.57 B parameters)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

ROOT = Path(__file__).resolve().parents[2]


def test_sdxl_config_is_sdxl_base_size() -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from faceloop.generators.tiny import SDXL_UNET_CONFIG

    with torch.device("meta"):  # no memory: shapes only
        unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
    assert round(sum(p.numel() for p in unet.parameters()) / 1e6) == 2567


@pytest.mark.slow
def test_tiny_run_prints_json_with_the_card() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_bench.py"), "--tiny", "--batches", "1,2"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["card"] and report["steps"] == 2 and report["size"] == 64
    assert [r["batch"] for r in report["results"]] == [1, 2]
    assert all(r["images_per_s"] > 0 for r in report["results"])


def test_shell_wrapper_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu_bench.sh")], check=True)


@pytest.mark.slow
def test_tiny_compile_variant_runs_the_compiled_path() -> None:
    # the "eager" compile backend traces the UNet with dynamo but needs no C++ toolchain:
    # the GPU run's --compile path (default inductor) is the same code up to the backend
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_bench.py"), "--tiny", "--batches", "1",
         "--compile", "--compile-backend", "eager"],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["compile"] == {"backend": "eager", "mode": "default"}
    assert report["refiner"] is False and report["attention"] == "sdpa"
    (row,) = report["results"]
    assert row["warmup_s"] > 0 and row["images_per_s"] > 0
