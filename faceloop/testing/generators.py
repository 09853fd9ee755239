"""What every Generator must do. A backend's tests subclass GeneratorContract and provide a
`generator` fixture; backend-specific tests live beside them. `request` builds a valid
GenerationRequest for a backend's own tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from faceloop.errors import GenerationError
from faceloop.generators.base import GenerationRequest, Generator
from faceloop.models import FaceParams


def request(seed: int, size: int = 256, **params: Any) -> GenerationRequest:
    return GenerationRequest(params=FaceParams(**params), seed=seed, size=size)


class GeneratorContract:
    """Shape, determinism, progress and up-front validation, for any Generator."""

    @pytest.fixture
    def generator(self) -> Generator:
        raise NotImplementedError("subclasses provide the generator under test")

    def test_names_itself(self, generator: Generator) -> None:
        assert generator.name and isinstance(generator.name, str)
        assert generator.model_version and isinstance(generator.model_version, str)
        assert set(FaceParams.model_fields) >= generator.PROMPT_ONLY

    @pytest.mark.parametrize("size", [256, 512])
    def test_shape_and_dtype(self, generator: Generator, size: int) -> None:
        (img,) = generator.generate([request(seed=1, size=size)])
        assert img.shape == (size, size, 3)
        assert img.dtype == np.uint8
        assert img.flags.c_contiguous

    def test_same_request_same_pixels(self, generator: Generator) -> None:
        reqs = [request(seed=s) for s in (3, 4, 5)]
        first = generator.generate(reqs)
        again = generator.generate(reqs)
        # Batch company must not matter: a request alone gives the same pixels as in a batch.
        alone = generator.generate([reqs[1]])[0]
        for a, b in zip(first, again, strict=True):
            assert np.array_equal(a, b)
        assert np.array_equal(first[1], alone)

    def test_different_seeds_differ(self, generator: Generator) -> None:
        a, b = generator.generate([request(seed=10), request(seed=11)])
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 5

    def test_progress_counts_every_image(self, generator: Generator) -> None:
        calls: list[tuple[int, int]] = []
        generator.generate(
            [request(seed=s, size=128) for s in range(3)],
            progress=lambda done, total: calls.append((done, total)),
        )
        assert calls[-1] == (3, 3)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    def test_empty_batch(self, generator: Generator) -> None:
        assert generator.generate([]) == []

    @pytest.mark.parametrize(
        ("fields", "named", "fix"),
        [
            ({"seed": -1}, "requests[0].seed", "integer seed between 0"),
            ({"size": 4096}, "requests[0].size", "between 64 and 2048"),
            ({"size": 32}, "requests[0].size", "between 64 and 2048"),
            ({"seed": True}, "requests[0].seed", "integer seed"),
        ],
    )
    def test_validate_names_the_field_and_the_fix(
        self, generator: Generator, fields: dict[str, object], named: str, fix: str
    ) -> None:
        # model_construct skips validation, as a hand-built or mutated request would.
        values: dict[str, Any] = {"params": FaceParams(), "seed": 1, "size": 256} | fields
        bad = GenerationRequest.model_construct(**values)
        with pytest.raises(GenerationError) as err:
            generator.validate([request(seed=0), bad])
        text = str(err.value).replace("requests[1]", "requests[0]")
        assert named in text and fix in text

    def test_validate_names_a_bad_face_parameter(self, generator: Generator) -> None:
        neon: Any = "neon"
        params = FaceParams.model_construct(lighting=neon)
        bad = GenerationRequest.model_construct(params=params, seed=1, size=256)
        with pytest.raises(GenerationError, match=r"requests\[0\]\.params\.lighting.*dramatic"):
            generator.generate([bad])

    def test_validate_rejects_what_is_not_a_request(self, generator: Generator) -> None:
        with pytest.raises(GenerationError, match=r"requests\[0\]: expected a GenerationRequest"):
            not_a_request: Any = {"seed": 1}
            generator.validate([not_a_request])
