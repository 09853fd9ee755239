#!/usr/bin/env bash
# The GPU figures for docs/benchmarks.md (Generators), in one go on a machine with a CUDA card:
#   bash scripts/gpu_bench.sh            (from the repository root; needs no network)
# Uses .venv when present. Installs nothing unless FACELOOP_BENCH_INSTALL=1, which installs
# a CUDA torch and diffusers into a separate venv (needs the package registry).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [[ "${FACELOOP_BENCH_INSTALL:-0}" == 1 ]]; then
  python3 -m venv .venv-gpu
  .venv-gpu/bin/pip install -q torch diffusers transformers numpy pydantic opencv-python-headless pillow
  PY=.venv-gpu/bin/python
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch: this bench needs a GPU"
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
PY
# SDXL base at 1024x1024, 30 steps, refiner off, fp16 + SDPA: first eager, then with a
# torch.compile'd UNet (its compile time is reported as warmup_s, apart from the steps).
# Each run in its own process, so peak memory is its own; the JSON also lands in $OUT_DIR.
OUT_DIR=${FACELOOP_BENCH_OUT:-build/gpu_bench}
mkdir -p "$OUT_DIR"
PYTHONPATH=. "$PY" scripts/gpu_bench.py --size 1024 --steps 30 --batches 1,4 "$@" \
  | tee "$OUT_DIR/sdxl-eager.json"
PYTHONPATH=. "$PY" scripts/gpu_bench.py --size 1024 --steps 30 --batches 1,4 --compile "$@" \
  | tee "$OUT_DIR/sdxl-compile.json"
