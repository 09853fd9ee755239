"""Guardrail activities; they run on the CPU task queue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import activity

from faceloop.guardrails.base import GuardContext, Guardrail
from faceloop.messages import GuardInput, GuardOutput
from faceloop.models import GuardrailReport
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog


class GuardrailActivities:
    def __init__(
        self,
        guardrails: Callable[..., list[Guardrail]],
        store: AssetStore,
        catalog: Catalog,
    ) -> None:
        # a factory, because thresholds come from the campaign's playbook
        self.guardrails = guardrails
        self.store = store
        self.catalog = catalog

    @activity.defn
    async def guard(self, inp: GuardInput) -> GuardOutput:
        loop = asyncio.get_running_loop()

        def progress(done: int, total: int) -> None:
            loop.call_soon_threadsafe(activity.heartbeat, {"done": done, "total": total})

        return await asyncio.to_thread(self._guard, inp, progress)

    def _guard(self, inp: GuardInput, progress: Callable[[int, int], None]) -> GuardOutput:
        checks = self.guardrails(inp.playbook)
        reports = []
        for i, v in enumerate(inp.variants):
            assert v.asset is not None, "guard needs generated variants"
            rgb = self.store.get_image(v.asset.uri)
            ctx = GuardContext(
                asset_id=v.asset.asset_id,
                params=v.params,
                min_resolution=inp.playbook.quality.min_resolution,
            )
            report = GuardrailReport(
                asset_id=v.asset.asset_id, checks=[g.check(rgb, ctx) for g in checks]
            )
            self.catalog.record_report(v.variant_id, report)
            reports.append(report)
            progress(i + 1, len(inp.variants))
        return GuardOutput(reports=reports)
