"""The consent check activity the campaign workflow runs on the CPU task queue."""

from __future__ import annotations

import asyncio
import datetime as dt

from temporalio import activity

from faceloop.consent import ConsentCheckInput, ConsentStatus
from faceloop.storage.catalog import Catalog


class ConsentActivities:
    """The consent check the campaign workflow runs (CPU task queue): never raises for a
    bad status (the workflow decides what a refusal does), but writes it to the audit log."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @activity.defn
    async def check_consent(self, inp: ConsentCheckInput) -> ConsentStatus:
        info = activity.info()
        return await asyncio.to_thread(
            self._check, inp, f"consent-check:{info.workflow_run_id}:{info.activity_id}"
        )

    def _check(self, inp: ConsentCheckInput, audit_key: str) -> ConsentStatus:
        status = self.catalog.consent_status(
            inp.persona_id,
            inp.markets,
            dt.datetime.now(dt.UTC),
            scope=inp.scope,
            consent_ref=inp.consent_ref,
        )
        if not status.ok:
            # ids, markets and dates only: the audit chain cannot be erased later
            self.catalog.audit(
                inp.campaign_id,
                "consent.check_failed",
                inp.persona_id,
                "consent-check",
                {
                    "persona_id": inp.persona_id,
                    "state": status.state.value,
                    "reason": status.reason,
                    "consent_ids": status.consent_ids,
                    "markets": status.markets,
                    "missing_markets": status.missing_markets,
                    "scope": inp.scope,
                },
                key=audit_key,
            )
        return status
