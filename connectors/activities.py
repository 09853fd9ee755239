"""Ad-platform activities: deploy (idempotent, keyed by asset id), retire, observe.

Every creative passes the provenance gate before any connector sees it: a file whose C2PA
manifest does not verify, or whose watermark does not decode to its asset's payload, is
refused here (do-not-serve), so no connector, built-in or plugin, can ship it. Each
placement export goes through the same gate, and must also be a C2PA transform of the
creative; one that fails is left out of the AdSpec and recorded (`export.refused`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from faceloop.connectors.base import AdConnector, AdSpec, counting_api_calls, per_variant
from faceloop.errors import ConnectorError, FaceloopError, SpendLimitUnsupportedError
from faceloop.guardrails.provenance import CreativeCheck, Provenance, check_creative
from faceloop.guardrails.settings import GuardrailSettings
from faceloop.guardrails.watermark import METHODS, Method
from faceloop.messages import DeployInput, DeployOutput, ObserveInput, ObserveOutput, RetireInput
from faceloop.models import (
    Asset,
    Decision,
    KpiObservation,
    PlacementExport,
    RollbackRecord,
    Variant,
)
from faceloop.optimization import (
    allocate_window,
    campaign_evidence,
    segment_shares,
    settled_segments,
    shown_faces,
    stable_seed,
)
from faceloop.settings import Settings
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog

REFUSED = "ProvenanceRefused"
PLATFORM_REFUSED = "PlatformRefused"

A = TypeVar("A")
R = TypeVar("R")


def _final_refusals(
    fn: Callable[[Any, A], Awaitable[R]],
) -> Callable[[Any, A], Awaitable[R]]:
    """A platform's refusal for good (bad token, bad parameter, policy) ends the activity
    without Temporal retries: ApplicationError type PlatformRefused, non-retryable, with the
    connector's message (call, code, fix). Throttles and outages past the connector's own
    retry budget stay retryable."""

    @functools.wraps(fn)
    async def run(self: Any, inp: A) -> R:
        # the platform requests this attempt sent, counted where the connector sends them
        # and recorded for the campaign's cost (docs/cost.md), failed attempts included
        with counting_api_calls() as calls:
            try:
                return await fn(self, inp)
            except ConnectorError as err:
                if not err.final:
                    raise
                raise ApplicationError(str(err), type=PLATFORM_REFUSED, non_retryable=True) from err
            finally:
                if calls.count:
                    await _record_calls(self.catalog, inp, calls.count)

    return run


async def _record_calls(catalog: Catalog, inp: Any, count: int) -> None:
    info = activity.info()
    await asyncio.to_thread(
        catalog.record_usage,
        inp.campaign_id,
        "api_calls",
        count,
        f"{info.workflow_run_id}:{info.activity_id}:{info.attempt}",
        round=getattr(inp, "round", 0),
        detail=info.activity_type,
    )


class ProvenanceGate:
    """Do-not-serve: reads a creative from the asset store and refuses it unless it is the
    file the sign stage wrote (guardrails.provenance.check_creative says what that means)."""

    def __init__(self, store: AssetStore, anchors: Path, method: Method) -> None:
        if method not in METHODS:
            raise FaceloopError(
                f"watermark method {method!r} is unknown; use one of {', '.join(METHODS)}"
            )
        self.store = store
        self.anchors = anchors
        self.method = method
        self._reader: Provenance | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, store: AssetStore) -> ProvenanceGate:
        # the anchors and method the sign stage uses (Signer.from_settings), so whatever a
        # worker of this deployment signed verifies here
        gs = GuardrailSettings(settings)
        return cls(store, gs.anchors_path, gs.watermark_method)

    def reader(self) -> Provenance:
        with self._lock:
            if self._reader is None:
                # read at first use: the embedded default makes its keys at the first sign,
                # after the workers were built
                if not self.anchors.is_file():
                    # a configuration error, not the creative's: retried until fixed, and
                    # nothing ships meanwhile
                    raise FaceloopError(
                        f"no C2PA trust anchors at {self.anchors}: the deploy gate verifies "
                        "every creative against them; set FACELOOP_C2PA_TRUST_ANCHORS to the "
                        "CA that signs the creatives (the sign stage's ca.pem)"
                    )
                self._reader = Provenance(None, None, self.anchors)
            return self._reader

    def check(self, variant_id: str, asset: Asset) -> CreativeCheck:
        data = self.store.get_bytes(asset.uri)
        return check_creative(
            data, asset.asset_id, variant_id, self.reader(), self.method, asset.media_type
        )

    def check_export(
        self, variant_id: str, parent: Asset, export: PlacementExport
    ) -> CreativeCheck:
        """A placement export checked like the creative, and as a transform of it."""
        try:
            data = self.store.get_bytes(export.uri)
        except FaceloopError as exc:
            return CreativeCheck([f"not readable from the asset store: {exc}"], {})
        return check_creative(
            data,
            export.asset_id,
            variant_id,
            self.reader(),
            self.method,
            export.media_type,
            parent_asset_id=parent.asset_id,
        )

    def admit(self, variant_id: str, asset: Asset) -> CreativeCheck:
        """The check's evidence when the creative may ship; else a non-retryable
        ApplicationError of type ProvenanceRefused naming the variant, asset and failures."""
        found = self.check(variant_id, asset)
        if not found.servable:
            raise ApplicationError(
                f"variant {variant_id}: creative {asset.asset_id} refused at the deploy "
                f"boundary: {'; '.join(found.failures)}",
                found.evidence,
                type=REFUSED,
                non_retryable=True,
            )
        return found


class ConnectorActivities:
    def __init__(
        self, connector: Callable[[str], AdConnector], catalog: Catalog, gate: ProvenanceGate
    ) -> None:
        self.connector = connector
        self.catalog = catalog
        # not optional: the one way to a connector's deploy goes through it
        self.gate = gate

    async def _hold_spend_limit(self, conn: AdConnector, inp: DeployInput) -> None:
        """Have the platform hold the brief's spend cap too (`AdConnector.set_spend_limit`),
        every round, so a cap changed since is set again; what it holds, or why it holds
        nothing, goes to the audit log once per outcome (docs/cost.md)."""
        cap = inp.brief.spend_cap
        assert cap is not None
        payload: dict[str, Any] = {
            "platform": conn.name,
            "amount": cap.amount,
            "currency": cap.currency,
        }
        try:
            payload |= {
                "held": True,
                "limit": await conn.set_spend_limit(inp.campaign_id, cap.amount, cap.currency),
            }
        except SpendLimitUnsupportedError as exc:
            payload |= {"held": False, "reason": str(exc)}
        except ConnectorError as exc:
            if not exc.final:
                raise  # an outage: the activity is retried
            # refused (e.g. below the platform's minimum): the campaign still runs, held by
            # faceloop's own check before each round
            payload |= {"held": False, "reason": f"the platform refused the limit: {exc}"}
        await asyncio.to_thread(
            self.catalog.audit,
            inp.campaign_id,
            "campaign.platform_spend_limit",
            inp.campaign_id,
            "connector",
            payload,
            key=f"campaign.platform_spend_limit:{inp.campaign_id}:{conn.name}:"
            f"{cap.amount}:{payload['held']}",
        )

    @activity.defn
    @_final_refusals
    async def deploy(self, inp: DeployInput) -> DeployOutput:
        conn = self.connector(inp.config.connector)
        await conn.ensure_campaign(inp.campaign_id, inp.brief.audience)
        if inp.brief.spend_cap is not None:
            await self._hold_spend_limit(conn, inp)
        live = []
        # refused by the deploy gate, now or on an earlier attempt: the workflow tells the
        # optimizer they failed, as it does for a disapproval by the platform's review
        refused: dict[str, str] = {}
        for n, v in enumerate(inp.live):
            activity.heartbeat({"deployed": n, "total": len(inp.live)})
            stored = await asyncio.to_thread(self.catalog.get_variant, v.variant_id)
            if stored is not None and stored.erased_at is not None:
                # erased (GDPR Art. 17) while the campaign ran: its ad is gone for good and
                # the variant never runs again
                continue
            asset = v.asset
            assert asset is not None, "deploy needs generated variants"
            if v.ad_id is None:
                if stored is not None and _refused(stored, asset):
                    # refused on an earlier attempt, already recorded
                    refused[v.variant_id] = stored.decision_reason or "refused by the deploy gate"
                    continue
                try:
                    await asyncio.to_thread(self.gate.admit, v.variant_id, asset)
                except ApplicationError as exc:
                    if exc.type != REFUSED:
                        raise
                    # one bad file must not end the campaign: it is recorded, never shipped,
                    # and the rest of the batch deploys
                    await asyncio.to_thread(self._refuse, inp, v, asset, exc)
                    refused[v.variant_id] = exc.message
                    continue
                exports = await asyncio.to_thread(self._admit_exports, inp, v, asset)
                # the platform dedupes on asset id, so a retry after a crash returns the same ad
                dep = await conn.deploy(
                    AdSpec(
                        campaign_id=inp.campaign_id,
                        variant_id=v.variant_id,
                        asset_id=asset.asset_id,
                        creative_uri=asset.uri,
                        params=v.params,
                        headline=inp.brief.message,
                        disclosure=v.disclosure,
                        markets=list(inp.brief.markets),
                        exports=exports,
                    )
                )
                v = v.model_copy(update={"ad_id": dep.ad_id, "live": True})
                new = await asyncio.to_thread(
                    self.catalog.record_deployment,
                    v.variant_id,
                    asset.asset_id,
                    dep.ad_id,
                    conn.name,
                    inp.campaign_id,
                )
                await asyncio.to_thread(self.catalog.upsert_variant, v)
                if new:
                    await asyncio.to_thread(
                        self.catalog.audit,
                        inp.campaign_id,
                        "ad.deployed",
                        v.variant_id,
                        f"connector:{conn.name}",
                        {
                            "asset_id": asset.asset_id,
                            "ad_id": dep.ad_id,
                            "round": inp.round,
                            "exports": [f"{e.placement} {e.media_type}" for e in exports],
                        },
                    )
            live.append(v)
        # per-segment Thompson sampling on each segment's KPI model and the observations so
        # far (the bench runs the same: faceloop.optimization.simulate)
        by_segment = await asyncio.to_thread(self._allocate, inp, live)
        ad_of = {v.variant_id: v.ad_id for v in live if v.ad_id}
        by_ad = {
            segment: {ad_of[vid]: n for vid, n in arms.items() if vid in ad_of}
            for segment, arms in by_segment.items()
        }
        # {segment: {ad: n}}: a platform without per-segment delivery gets each ad's total
        await conn.set_segment_allocation(inp.campaign_id, inp.round, by_ad)
        totals = per_variant(by_segment)
        await asyncio.to_thread(
            self.catalog.audit,
            inp.campaign_id,
            "traffic.allocated",
            f"round-{inp.round}",
            "optimizer",
            {
                "impressions": totals,
                "by_segment": by_segment,
                "segment_targeting": conn.segment_targeting,
            },
        )
        return DeployOutput(live=live, allocation=totals, refused=refused)

    def _admit_exports(self, inp: DeployInput, v: Variant, asset: Asset) -> list[PlacementExport]:
        """The variant's placement exports that pass the gate. One that fails is recorded
        (`export.refused`) and left out; the creative and its other placements still ship."""
        admitted = []
        for e in v.exports:
            if e.refused or not e.uri:
                continue  # refused at export (watermark lost): never stored, never sent
            found = self.gate.check_export(v.variant_id, asset, e)
            if found.servable:
                admitted.append(e)
                continue
            self.catalog.audit(
                inp.campaign_id,
                "export.refused",
                v.variant_id,
                "deploy-gate",
                {
                    "asset_id": e.asset_id,
                    "parent_asset_id": asset.asset_id,
                    "placement": e.placement,
                    "media_type": e.media_type,
                    "round": inp.round,
                    "reason": "; ".join(found.failures),
                    **found.evidence,
                },
                key=f"export.refused:{v.variant_id}:{e.asset_id}",
            )
        return admitted

    def _refuse(self, inp: DeployInput, v: Variant, asset: Asset, exc: ApplicationError) -> None:
        evidence = exc.details[0] if exc.details else {}
        # audit first: a crash before the variant is marked repeats the entry on retry rather
        # than losing it
        self.catalog.audit(
            inp.campaign_id,
            "ad.refused",
            v.variant_id,
            "deploy-gate",
            {"asset_id": asset.asset_id, "round": inp.round, "reason": exc.message, **evidence},
        )
        self.catalog.upsert_variant(
            v.model_copy(
                update={"decision": Decision.block, "decision_reason": exc.message, "live": False}
            )
        )

    def _allocate(self, inp: DeployInput, live: list[Variant]) -> dict[str, dict[str, int]]:
        # the evidence after the last observed window: this round has not been observed yet
        # the models learn the face each image shows (measured where measured)
        shown = shown_faces([*self.catalog.variants(inp.campaign_id), *live])
        evidence = campaign_evidence(
            self.catalog.observations(inp.campaign_id),
            shown.faces,
            {v.variant_id: v.segment for v in live},
            segment_shares(inp.brief),
            inp.brief.kpi_goal,
            inp.brief.search_space,
            inp.round - 1,
        )
        return allocate_window(
            evidence,
            inp.config.exploration_floor,
            stable_seed(inp.campaign_id, inp.round),
            inp.impressions,
            # where no new creative repays its test, this round's new one gets the floor
            settled_segments(
                evidence,
                inp.config.rounds - inp.round,
                inp.config.variants_per_round,
                inp.config.incumbents,
                stable_seed(inp.campaign_id, inp.round, "settled"),
            ),
        )

    @activity.defn
    @_final_refusals
    async def retire(self, inp: RetireInput) -> None:
        conn = self.connector(inp.connector)
        for v in inp.variants:
            activity.heartbeat(v.variant_id)
            if v.ad_id is None:
                continue
            await conn.pause(inp.campaign_id, v.ad_id)
            await asyncio.to_thread(
                self.catalog.upsert_variant, v.model_copy(update={"live": False})
            )
            await asyncio.to_thread(
                self.catalog.audit,
                inp.campaign_id,
                "ad.paused",
                v.variant_id,
                inp.actor,
                {"ad_id": v.ad_id, "reason": inp.reason},
            )

    @activity.defn
    @_final_refusals
    async def observe(self, inp: ObserveInput) -> ObserveOutput:
        conn = self.connector(inp.connector)
        activity.heartbeat("insights")
        now = await conn.insights(inp.campaign_id, inp.round)
        before = await conn.insights(inp.campaign_id, inp.round - 1) if inp.round > 0 else []
        prev = {(i.ad_id, i.segment): i for i in before}
        by_ad = {v.ad_id: v for v in inp.live if v.ad_id}
        ts = activity.info().current_attempt_scheduled_time
        obs = []
        for i in now:
            v = by_ad.get(i.ad_id)
            if v is None:
                continue
            p = prev.get((i.ad_id, i.segment))
            obs.append(
                KpiObservation(
                    campaign_id=inp.campaign_id,
                    variant_id=v.variant_id,
                    ad_id=i.ad_id,
                    round=inp.round,
                    segment=i.segment,
                    impressions=i.impressions - (p.impressions if p else 0),
                    clicks=i.clicks - (p.clicks if p else 0),
                    conversions=i.conversions - (p.conversions if p else 0),
                    observed_at=ts,
                    negative_feedback=_window_count(
                        i.negative_feedback, p.negative_feedback if p else 0
                    ),
                    complaints=_window_count(i.complaints, p.complaints if p else 0),
                )
            )
        await asyncio.to_thread(self.catalog.record_observations, obs)
        # the platform's own figure of what the campaign cost so far (all its ads, cumulative
        # through this window): what a spend cap is checked against
        billed = [i.spend for i in now if i.spend is not None]
        if billed:
            await asyncio.to_thread(
                self.catalog.record_usage,
                inp.campaign_id,
                "ad_spend",
                sum(billed),
                f"window:{inp.round}",
                round=inp.round,
                detail=conn.name,
            )
        activity.heartbeat("review")
        disapproved = await self._platform_review(conn, inp, by_ad)
        return ObserveOutput(observations=obs, disapproved=disapproved)

    async def _platform_review(
        self, conn: AdConnector, inp: ObserveInput, by_ad: dict[str, Variant]
    ) -> list[RollbackRecord]:
        """The platform's ad review of the live ads. A disapproved ad is recorded (audit),
        paused here, and returned: the workflow tells the optimizer it failed and the
        playbook's escalation role that it was refused. An ad with issues is recorded."""
        out = []
        for review in await conn.reviews(inp.campaign_id):
            v = by_ad.get(review.ad_id)
            if v is None or review.status in ("approved", "pending"):
                continue
            detail = {
                "ad_id": review.ad_id,
                "asset_id": review.asset_id,
                "platform_status": review.platform_status,
                "reasons": review.reasons,
                "round": inp.round,
            }
            actor = f"platform:{conn.name}"
            if review.status == "with_issues":
                await asyncio.to_thread(
                    self.catalog.audit,
                    inp.campaign_id,
                    "ad.review_issues",
                    v.variant_id,
                    actor,
                    detail,
                )
                continue
            why = "; ".join(review.reasons) or "no reason given"
            record = RollbackRecord(
                round=inp.round,
                variant_id=v.variant_id,
                ad_id=review.ad_id,
                criteria=["platform_review"],
                reason=f"{conn.name} review {review.platform_status}: {why}",
                notify_role=inp.notify_role,
            )
            # audit before pausing: a crash in between repeats the entry on retry rather
            # than losing it
            await asyncio.to_thread(
                self.catalog.audit,
                inp.campaign_id,
                "ad.disapproved",
                v.variant_id,
                actor,
                {**detail, "notify_role": inp.notify_role},
            )
            await conn.pause(inp.campaign_id, review.ad_id)
            await asyncio.to_thread(
                self.catalog.upsert_variant, v.model_copy(update={"live": False})
            )
            await asyncio.to_thread(
                self.catalog.audit,
                inp.campaign_id,
                "ad.paused",
                v.variant_id,
                actor,
                {"ad_id": review.ad_id, "reason": record.reason},
            )
            out.append(record)
        return out


def _refused(stored: Variant, asset: Asset) -> bool:
    """Whether the deploy gate already refused this very file for this variant."""
    return (
        stored.decision is Decision.block
        and stored.asset is not None
        and stored.asset.asset_id == asset.asset_id
    )


def _window_count(now: int | None, before: int | None) -> int | None:
    """A window's count from two cumulative readings; None when the platform does not
    report the signal."""
    return None if now is None else now - (before or 0)
