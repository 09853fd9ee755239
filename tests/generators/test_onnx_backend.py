"""The ONNX Runtime backend: the contract, and the same outputs as torch within tolerance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceloop.generators.base import Generator
from faceloop.generators.onnx_backend import TOLERANCE, OnnxDcganGenerator
from faceloop.testing import GeneratorContract
from faceloop.testing.generators import request


@pytest.fixture(scope="module")
def onnx_gen(tmp_path_factory: pytest.TempPathFactory) -> OnnxDcganGenerator:
    mp = pytest.MonkeyPatch()
    mp.setenv("FACELOOP_ONNX_CACHE", str(tmp_path_factory.mktemp("onnx")))
    gen = OnnxDcganGenerator()
    gen.session()  # export while the cache variable points at the temporary folder
    mp.undo()
    return gen


class TestOnnxContract(GeneratorContract):
    @pytest.fixture
    def generator(self, onnx_gen: OnnxDcganGenerator) -> Generator:
        return onnx_gen


def test_exports_once_into_the_cache(onnx_gen: OnnxDcganGenerator) -> None:
    path: Path = onnx_gen.onnx_path()
    assert onnx_gen.model_version.startswith("dcgan-onnx-")
    assert onnx_gen.providers[-1] == "CPUExecutionProvider"
    assert path.is_file() and path.stat().st_size > 10_000_000


def test_same_outputs_as_torch(onnx_gen: OnnxDcganGenerator, dcgan: Generator) -> None:
    seeds = list(range(8))
    exprs = ["smile", "serious", "neutral", "laugh", "surprised", "smile", "smile", "serious"]
    raw_onnx = onnx_gen.raw(seeds, exprs)
    raw_torch = dcgan.raw(seeds, exprs)  # type: ignore[attr-defined]
    assert np.abs(raw_onnx - raw_torch).max() < TOLERANCE
    reqs = [request(seed=s, size=128) for s in seeds]
    for a, b in zip(onnx_gen.generate(reqs), dcgan.generate(reqs), strict=True):
        # a 1e-6 difference can flip a rounding or a detector box by a pixel
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
