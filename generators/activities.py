"""Generation activities; they run on the GPU task queue (`faceloop worker --queues gpu`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from temporalio import activity
from temporalio.exceptions import ApplicationError

from faceloop.errors import GenerationError
from faceloop.generators.base import GenerationRequest, Generator
from faceloop.generators.enforce import Perceive, render
from faceloop.messages import GenerateInput, VariantsPayload
from faceloop.models import Asset
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog

if TYPE_CHECKING:
    from faceloop.generators.perception import Perception


class GeneratorActivities:
    """`perceive` reads an image's face parameters from its pixels (default: the perception
    module, imported on first use so the workflow worker that imports this class stays
    light); tests pass a fake."""

    def __init__(
        self,
        generator: Generator,
        store: AssetStore,
        catalog: Catalog,
        perceive: Perceive | None = None,
    ) -> None:
        self.generator = generator
        self.store = store
        self.catalog = catalog
        self._perceive = perceive

    def perceive(self, rgb: np.ndarray) -> Perception:
        if self._perceive is None:
            from faceloop.generators.perception import perceive

            self._perceive = perceive
        return self._perceive(rgb)

    @activity.defn
    async def generate(self, inp: GenerateInput) -> VariantsPayload:
        loop = asyncio.get_running_loop()

        def progress(done: int, total: int) -> None:
            # the generator runs in a thread; heartbeats must be sent from the event loop
            loop.call_soon_threadsafe(activity.heartbeat, {"done": done, "total": total})

        return await asyncio.to_thread(self._generate, inp, progress)

    def _generate(
        self, inp: GenerateInput, progress: Callable[[int, int], None]
    ) -> VariantsPayload:
        requests = [
            GenerationRequest(
                params=v.params,
                seed=v.seed,
                size=inp.size,
                prompt=v.prompt,
                negative_prompt=v.negative_prompt,
            )
            for v in inp.variants
        ]
        try:
            self.generator.validate(requests)
            kept = render(self.generator, requests, self.perceive, inp.fidelity, progress)
        except GenerationError as exc:
            raise ApplicationError(str(exc), type="GenerationError", non_retryable=True) from exc
        out = []
        for v, r in zip(inp.variants, kept, strict=True):
            asset_id, uri = self.store.put_image(r.image)
            asset = Asset(
                asset_id=asset_id,
                uri=uri,
                width=int(r.image.shape[1]),
                height=int(r.image.shape[0]),
                generator=self.generator.name,
                model_version=self.generator.model_version,
                seed=r.seed,  # the seed of the kept try: the variant's own, or a re-seed
            )
            v = v.model_copy(update={"asset": asset, "fidelity": r.fidelity})
            self.catalog.upsert_variant(v)
            if r.fidelity.tries > 1 or r.fidelity.not_rendered:
                # keyed by the activity execution: a retried activity records it once
                self.catalog.audit(
                    inp.campaign_id,
                    "variant.fidelity",
                    v.variant_id,
                    "generator",
                    {
                        "round": inp.round,
                        "tries": r.fidelity.tries,
                        "kept_seed": r.seed,
                        "not_rendered": r.fidelity.not_rendered,
                        "asset_id": asset_id,
                    },
                )
            out.append(v)
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=out)
