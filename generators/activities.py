"""Generation activities; they run on the GPU task queue (`faceloop worker --queues gpu`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from faceloop.errors import GenerationError
from faceloop.generation import GenerationConfig
from faceloop.generators.base import GenerationRequest, Generator
from faceloop.generators.production import ConsentRefusedError, ProductionPath
from faceloop.messages import GenerateInput, VariantsPayload
from faceloop.models import Asset
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog


class GeneratorActivities:
    """`generator` makes the batches that carry no production path; `production` builds
    the generator a campaign's GenerationConfig names (default: on top of `generator`)."""

    def __init__(
        self,
        generator: Generator,
        store: AssetStore,
        catalog: Catalog,
        production: ProductionPath | None = None,
    ) -> None:
        self.generator = generator
        self.store = store
        self.catalog = catalog
        self.production = production or ProductionPath(
            generator, GenerationConfig(backend=generator.name), store=store, catalog=catalog
        )

    @activity.defn
    async def generate(self, inp: GenerateInput) -> VariantsPayload:
        loop = asyncio.get_running_loop()

        def progress(done: int, total: int) -> None:
            # the generator runs in a thread; heartbeats must be sent from the event loop
            loop.call_soon_threadsafe(activity.heartbeat, {"done": done, "total": total})

        info = activity.info()
        key = f"{info.workflow_run_id}:{info.activity_id}"
        return await asyncio.to_thread(self._generate, inp, progress, key)

    def _generate(
        self, inp: GenerateInput, progress: Callable[[int, int], None], audit_key: str = ""
    ) -> VariantsPayload:
        production = self.production.open(
            inp.generation,
            campaign_id=inp.campaign_id,
            persona=inp.persona,
            markets=inp.markets,
            audit_key=audit_key or None,
        )
        try:
            with production as run:
                requests = [
                    GenerationRequest(
                        params=v.params,
                        seed=v.seed,
                        size=inp.size,
                        prompt=run.prompt(v.prompt, v.params),
                        negative_prompt=v.negative_prompt,
                        aspect_ratio=run.aspect_ratio,
                    )
                    for v in inp.variants
                ]
                run.generator.validate(requests)
                images = run.generator.generate(requests, progress=progress)
        except ConsentRefusedError as exc:
            raise ApplicationError(str(exc), type="ConsentRefused", non_retryable=True) from exc
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
                generator=run.generator.name,
                model_version=run.model_version,
                seed=v.seed,
            )
            v = v.model_copy(update={"asset": asset})
            self.catalog.upsert_variant(v)
            out.append(v)
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=out)
