"""What the bench's simulated audience sees when a scenario says `audience_sees: measured`.

The bench (`faceloop.optimization.simulate`) has no images: by default its audience reacts
to the declared face parameters. In measured mode each creative is made as the generate
stage makes it (`faceloop.generators.enforce.render`: the CPU default generator, small
images, the default playbook's fidelity re-seeds) and read with the perception module; the
audience then reacts to the face the image shows (`Fidelity.shown`), and faceloop's
optimizer learns that face, as the campaign's learn stage does.

Rendering is the slow part (about half a second a creative on two CPU cores at 64 px, more
at 128 px), so readings are cached per process by (parameters, seed).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from faceloop.models import FaceParams, Fidelity

if TYPE_CHECKING:
    from faceloop.generators.base import Generator
    from faceloop.generators.enforce import Perceive
    from faceloop.playbooks.schema import FidelitySettings

# small for speed, but not the generators' 64 px minimum: since dcgan post4 draws
# head-and-shoulders and half-body shots, a face at 64 px has too few cheek pixels for the
# skin probe (its ITA is then unmeasured); at 128 px every framing's skin is read
IMAGE_SIZE = 128


class MeasuredFaces:
    """Renders a creative and reads what it shows; `generator` and `perceive` default to
    the CPU default generator (dcgan) and the perception module (tests pass fakes)."""

    def __init__(
        self,
        size: int = IMAGE_SIZE,
        settings: FidelitySettings | None = None,
        generator: Generator | None = None,
        perceive: Perceive | None = None,
    ) -> None:
        from faceloop.playbooks.schema import FidelitySettings

        self.size = size
        self.settings = settings or FidelitySettings()
        self._generator = generator
        self._perceive = perceive
        self._cache: dict[tuple[str, int], tuple[FaceParams, Fidelity]] = {}

    def _parts(self) -> tuple[Generator, Perceive]:
        if self._generator is None:
            from faceloop.generators.registry import get_generator

            self._generator = get_generator("dcgan")
        if self._perceive is None:
            from faceloop.generators.perception import perceive

            self._perceive = perceive
        return self._generator, self._perceive

    def seen(self, params: FaceParams, seed: int) -> tuple[FaceParams, Fidelity]:
        """The face the creative (params, seed) shows, and its fidelity record."""
        key = (params.key(), seed)
        if key not in self._cache:
            from faceloop.generators.base import GenerationRequest
            from faceloop.generators.enforce import render

            generator, perceive = self._parts()
            request = GenerationRequest(params=params, seed=seed, size=self.size)
            (kept,) = render(generator, [request], perceive, self.settings)
            face, _ = kept.fidelity.shown(params)
            self._cache[key] = (face, kept.fidelity)
        return self._cache[key]


@functools.cache
def default_eyes() -> MeasuredFaces:
    """One MeasuredFaces per process: the generator's weights load once, and every strategy
    of a seed shares the readings."""
    return MeasuredFaces()


__all__ = ["IMAGE_SIZE", "MeasuredFaces", "default_eyes"]
