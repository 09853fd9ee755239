"""Generation activities; they run on the GPU task queue (`faceloop worker --queues gpu`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from faceloop.errors import GenerationError
from faceloop.generators.base import GenerationRequest, Generator
from faceloop.messages import GenerateInput, VariantsPayload
from faceloop.models import Asset
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog


class GeneratorActivities:
    def __init__(self, generator: Generator, store: AssetStore, catalog: Catalog) -> None:
        self.generator = generator
        self.store = store
        self.catalog = catalog

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
            images = self.generator.generate(requests, progress=progress)
        except GenerationError as exc:
            raise ApplicationError(str(exc), type="GenerationError", non_retryable=True) from exc
        out = []
        for v, rgb in zip(inp.variants, images, strict=True):
            asset_id, uri = self.store.put_image(rgb)
            asset = Asset(
                asset_id=asset_id,
                uri=uri,
                width=int(rgb.shape[1]),
                height=int(rgb.shape[0]),
                generator=self.generator.name,
                model_version=self.generator.model_version,
                seed=v.seed,
            )
            v = v.model_copy(update={"asset": asset})
            self.catalog.upsert_variant(v)
            out.append(v)
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=out)
