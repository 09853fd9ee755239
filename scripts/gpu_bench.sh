#!/usr/bin/env bash
# The GPU figure for docs/benchmarks.generators.md, in one go on a machine with a CUDA card:
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
PYTHONPATH=. "$PY" scripts/gpu_bench.py --size 1024 --steps 30 --batches 1,4 "$@"
