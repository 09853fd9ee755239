"""The embedded generator's network exported to ONNX and run with onnxruntime.

CUDA execution provider when onnxruntime-gpu offers it, CPU otherwise. Latents, expression
directions and post-processing are the dcgan backend's, so only the forward pass differs:
outputs match torch to within TOLERANCE in [0, 1] pixel units before post-processing
(measured: 1e-6), and the final uint8 images to within a level or two.

The exported file is cached by the weights' sha256, so it is made once per machine and
never downloaded; FACELOOP_ONNX_CACHE moves the cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from faceloop.errors import GenerationError

from .dcgan import NATIVE, DcganGenerator, load_network

TOLERANCE = 1e-4  # max abs difference from torch, raw sample in [0, 1]
CACHE_ENV = "FACELOOP_ONNX_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "faceloop" / "onnx")


def export_dcgan(weights: Path, out: Path) -> Path:
    """Export the DCGAN network (latent N x 100 x 1 x 1 -> image N x 3 x 64 x 64) to ONNX."""
    import torch

    net = load_network(weights)
    buf: Any = io.BytesIO()  # export accepts a file object; its stub says path only
    # The TorchScript exporter: the dynamo one needs onnxscript, which a CPU worker lacks,
    # and five transposed convolutions need nothing newer.
    torch.onnx.export(
        net,
        (torch.zeros(1, 100, 1, 1),),
        buf,
        input_names=["z"],
        output_names=["image"],
        dynamic_axes={"z": {0: "n"}, "image": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)
    return out


class OnnxDcganGenerator(DcganGenerator):
    """The dcgan generator with its forward pass in onnxruntime."""

    name: ClassVar[str] = "onnx"

    def __init__(self, providers: list[str] | None = None) -> None:
        super().__init__()
        self.model_version = self.model_version.replace("dcgan-", "dcgan-onnx-", 1)
        self._providers = providers
        self._session: Any = None
        self._onnx_lock = threading.Lock()

    def onnx_path(self) -> Path:
        digest = hashlib.sha256(self.weights_path.read_bytes()).hexdigest()[:16]
        return cache_dir() / f"dcgan-{digest}.onnx"

    def session(self) -> Any:
        with self._onnx_lock:
            if self._session is None:
                import onnxruntime as ort

                path = self.onnx_path()
                if not path.is_file():
                    export_dcgan(self.weights_path, path)
                available = ort.get_available_providers()
                wanted = self._providers or [
                    p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
                ]
                missing = [p for p in wanted if p not in available]
                if missing:
                    raise GenerationError(
                        f"onnxruntime lacks the execution provider(s) {missing}; available: "
                        f"{available}. Install onnxruntime-gpu for CUDA, or leave providers unset"
                    )
                self._session = ort.InferenceSession(str(path), providers=wanted)
            return self._session

    @property
    def providers(self) -> list[str]:
        return list(self.session().get_providers())

    def raw(self, seeds: list[int], expressions: list[str] | None = None) -> np.ndarray:
        sess = self.session()
        out = np.zeros((len(seeds), NATIVE, NATIVE, 3), np.float32)
        for i, seed in enumerate(seeds):
            expr = None if expressions is None else [expressions[i]]
            z = self.latents([seed], expr).numpy().astype(np.float32)
            (x,) = sess.run(None, {"z": z})
            out[i] = np.clip((x[0].transpose(1, 2, 0) + 1.0) * 0.5, 0.0, 1.0)
        return out
