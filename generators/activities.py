"""Generation activities; they run on the GPU task queue (`faceloop worker --queues gpu`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from temporalio import activity
from temporalio.exceptions import ApplicationError

from faceloop.cost import attempt_key, measure
from faceloop.errors import GenerationError, SubjectErasedError
from faceloop.generation import GenerationConfig
from faceloop.generators.base import GenerationRequest, Generator
from faceloop.generators.enforce import Perceive, render
from faceloop.generators.production import ConsentRefusedError, ProductionPath
from faceloop.heartbeats import run_with_heartbeats
from faceloop.messages import GenerateInput, VariantsPayload
from faceloop.models import Asset
from faceloop.storage.assets import AssetStore, png_bytes, put_for_variant
from faceloop.storage.catalog import Catalog

if TYPE_CHECKING:
    from faceloop.generators.perception import Perception


class GeneratorActivities:
    """`generator` makes the batches that carry no production path; `production` builds
    the generator a campaign's GenerationConfig names (default: on top of `generator`).
    `perceive` reads an image's face parameters from its pixels (default: the perception
    module, imported on first use so the workflow worker that imports this class stays
    light); tests pass a fake."""

    def __init__(
        self,
        generator: Generator,
        store: AssetStore,
        catalog: Catalog,
        *,
        production: ProductionPath | None = None,
        perceive: Perceive | None = None,
    ) -> None:
        self.generator = generator
        self.store = store
        self.catalog = catalog
        self.production = production or ProductionPath(
            generator, GenerationConfig(backend=generator.name), store=store, catalog=catalog
        )
        self._perceive = perceive

    def perceive(self, rgb: np.ndarray) -> Perception:
        if self._perceive is None:
            from faceloop.generators.perception import perceive

            self._perceive = perceive
        return self._perceive(rgb)

    @activity.defn
    async def generate(self, inp: GenerateInput) -> VariantsPayload:
        info = activity.info()
        key = f"{info.workflow_run_id}:{info.activity_id}"
        usage_key = attempt_key()
        # the generator's time for the campaign's cost (docs/cost.md), also when it fails;
        # `device` is filled in by the batch (activities may run concurrently)
        device = ["cpu"]
        with measure() as watch:
            try:
                # the generator runs in a thread; heartbeats per image and every few seconds
                return await run_with_heartbeats(
                    lambda progress: self._generate(inp, progress, key, device)
                )
            finally:
                on_gpu = device[0].startswith("cuda")
                await asyncio.to_thread(
                    self.catalog.record_usage,
                    inp.campaign_id,
                    "gpu_seconds",
                    watch.wall_s if on_gpu else watch.cpu_s,
                    usage_key,
                    round=inp.round,
                    # a host without a GPU has no GPU seconds to give: it says so
                    detail="GPU wall time" if on_gpu else "generator CPU time (no GPU)",
                )

    def _generate(
        self,
        inp: GenerateInput,
        progress: Callable[[int, int], None],
        audit_key: str = "",
        device: list[str] | None = None,
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
                if device is not None:
                    # its time counts as GPU seconds only when it runs on a GPU
                    device[0] = str(getattr(run.generator, "device", "cpu"))
                kept = render(run.generator, requests, self.perceive, inp.fidelity, progress)
        except ConsentRefusedError as exc:
            raise ApplicationError(str(exc), type="ConsentRefused", non_retryable=True) from exc
        except GenerationError as exc:
            raise ApplicationError(str(exc), type="GenerationError", non_retryable=True) from exc
        out = []
        for v, r in zip(inp.variants, kept, strict=True):
            try:
                asset_id, uri = put_for_variant(
                    self.store,
                    self.catalog,
                    png_bytes(r.image),
                    ".png",
                    campaign_id=inp.campaign_id,
                    variant_id=v.variant_id,
                    kind="generated",
                )
            except SubjectErasedError as exc:
                raise ApplicationError(str(exc), type="SubjectErased", non_retryable=True) from None
            # keyed by content hash: the same image stored again occupies no more room
            self.catalog.record_usage(
                inp.campaign_id,
                "storage_bytes",
                len(self.store.get_bytes(uri)),
                f"asset:{asset_id}",
                round=inp.round,
            )
            asset = Asset(
                asset_id=asset_id,
                uri=uri,
                width=int(r.image.shape[1]),
                height=int(r.image.shape[0]),
                generator=run.generator.name,
                model_version=run.model_version,
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
