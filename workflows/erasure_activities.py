"""Erasure activities: one per store, each safe to repeat (GDPR Art. 17).

Temporal retries an activity whose worker died, and a person may run the whole erasure
again; so every step removes what is still there and reports what it removed *now*. A
second run therefore reports zero everywhere and succeeds. The workflow
(workflows/erasure.py) runs them in order: find, take ads down, delete files, delete
exported copies, tombstone catalog rows, crypto-shred, compact the catalog, audit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from faceloop.connectors.base import AdConnector
from faceloop.erasure import (
    AdRef,
    ErasureInput,
    ErasurePlan,
    ErasureRecordInput,
    StepResult,
    StoreReport,
)
from faceloop.errors import ConnectorError, FaceloopError
from faceloop.storage.assets import AssetStore, scrub_file
from faceloop.storage.catalog import Catalog, campaign_subject
from faceloop.storage.keys import SubjectKeyStore

if TYPE_CHECKING:
    from faceloop.guardrails.identity import Gallery
    from faceloop.settings import Settings

__all__ = ["ErasureActivities"]


class ErasureActivities:
    """The erasure steps, holding the stores they reach.

    `gallery` opens the identity gallery (None when there is none); `ledger` lists the
    signing ledger's entries (generated asset id -> signed asset id), which links a signed
    copy to its original even when a crash kept the catalog from recording the link.
    """

    def __init__(
        self,
        catalog: Catalog,
        store: AssetStore,
        connector: Callable[[str], AdConnector],
        gallery: Callable[[], Gallery | None] = lambda: None,
        ledger: Callable[[], list[dict[str, Any]]] = list,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.connector = connector
        self.gallery = gallery
        self.ledger = ledger
        self.keys = SubjectKeyStore(catalog)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        catalog: Catalog,
        store: AssetStore,
        connector: Callable[[str], AdConnector],
    ) -> ErasureActivities:
        from faceloop.guardrails.identity import Gallery
        from faceloop.guardrails.provenance import Ledger
        from faceloop.guardrails.settings import GuardrailSettings

        gs = GuardrailSettings(settings)

        def gallery() -> Gallery | None:
            if not gs.gallery_path.exists():
                return None
            return Gallery(gs.gallery_path, gs.identity_key_value())

        return cls(catalog, store, connector, gallery, Ledger(gs.ledger_path).entries)

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity of the erasure workflow, for the worker."""
        return [
            self.find_erasure_scope,
            self.take_down_ads,
            self.delete_asset_files,
            self.delete_exported_copies,
            self.tombstone_catalog_rows,
            self.shred_subject_keys,
            self.compact_catalog,
            self.record_erasure,
        ]

    # ------------------------------------------------------------------ (a) find

    @activity.defn
    async def find_erasure_scope(self, inp: ErasureInput) -> ErasurePlan:
        plan = await asyncio.to_thread(self._find, inp)
        info = activity.info()
        await asyncio.to_thread(
            self.catalog.audit,
            None,
            "erasure.started",
            _subject(plan),
            inp.requested_by,
            {
                "kind": plan.kind,
                "target": plan.target,
                "ticket": inp.ticket,
                "workflow_id": info.workflow_id,
                "campaigns": len(plan.campaign_ids),
                "variants": len(plan.variant_ids),
                "assets": len(plan.asset_ids),
                "adapters": len(plan.adapter_ids),
                "ads": len(plan.ads),
            },
            key=f"erasure.started:{info.workflow_run_id}",
        )
        return plan

    def _find(self, inp: ErasureInput) -> ErasurePlan:
        cat = self.catalog
        if inp.kind == "campaign" and cat.get_campaign(inp.target) is None:
            # refused, not run empty: the run would mark the id erased for good
            raise ApplicationError(
                f"campaign {inp.target!r} is not in the catalog at {cat._safe_url()}; "
                "`faceloop status` lists the campaigns (check the id)",
                type="UnknownCampaign",
                non_retryable=True,
            )
        adapters: list[str] = []
        if inp.kind != "asset":
            # a persona's campaigns, or the one campaign, are erased whole
            campaign_ids = (
                cat.campaigns_with_persona(inp.target) if inp.kind == "persona" else [inp.target]
            )
            variant_ids = [v.variant_id for c in campaign_ids for v in cat.variants(c)]
            # with every file written for the campaigns, even one whose variant has no row
            written = set(cat.asset_ids_of_campaigns(campaign_ids))
            assets = self._with_signed_links(set(cat.asset_ids_of_variants(variant_ids)) | written)
            adapters = self._adapters_of(inp.target) if inp.kind == "persona" else []
        else:
            assets = {inp.target}
            # two passes: the generated image leads to its variant, the variant to its
            # signed copy, and the signed copy to any other variant that carries it
            for _ in range(2):
                assets = self._with_signed_links(assets)
                variant_ids = cat.variant_ids_for_assets(sorted(assets))
                assets |= set(cat.asset_ids_of_variants(variant_ids))
            campaign_ids = cat.campaigns_of_variants(variant_ids)
        deployments = cat.deployments_for_assets(sorted(assets))
        if inp.kind != "asset":
            deployments += [d for c in campaign_ids for d in cat.deployments(c)]
        ads = {
            (d.platform, d.ad_id): AdRef(
                platform=d.platform, campaign_id=d.campaign_id, ad_id=d.ad_id, asset_id=d.asset_id
            )
            for d in deployments
        }
        connectors = {a.platform for a in ads.values()}
        for c in campaign_ids:
            row = cat.get_campaign(c)
            if row is not None:
                connectors.add(row.config.connector)
        return ErasurePlan(
            kind=inp.kind,
            target=inp.target,
            persona_id=inp.target if inp.kind == "persona" else None,
            campaign_ids=sorted(campaign_ids),
            variant_ids=sorted(set(variant_ids)),
            asset_ids=sorted(assets),
            adapter_ids=adapters,
            ads=sorted(ads.values(), key=lambda a: (a.platform, a.campaign_id, a.ad_id)),
            connectors=sorted(connectors),
        )

    def _with_signed_links(self, assets: set[str]) -> set[str]:
        out = set(assets)
        for e in self.ledger():
            pair = {str(e.get("asset_id")), str(e.get("signed_asset_id"))}
            if pair & out:
                out |= pair
        return out

    def _adapters_of(self, persona_id: str) -> list[str]:
        """Persona LoRA adapters in the asset store, found by their metadata sidecars."""
        found = []
        for sidecar in self.store.uris_ending(".json"):
            try:
                meta = json.loads(self.store.get_bytes(sidecar))
            except (FaceloopError, ValueError):
                continue
            if (
                isinstance(meta, dict)
                and meta.get("kind") == "persona_lora"
                and meta.get("persona_id") == persona_id
            ):
                name = sidecar.rsplit("/", 1)[-1]
                found.append(str(meta.get("asset_id") or name.split(".", 1)[0]))
        return sorted(set(found))

    # ------------------------------------------------------------------ (b) ads

    @activity.defn
    async def take_down_ads(self, plan: ErasurePlan) -> StepResult:
        """Remove the subject's ads (creative and copy) from every platform that has them."""
        done = _Resumed()
        reports: dict[str, StoreReport] = {}
        statuses: dict[tuple[str, str, str], str] = {}
        wanted = set(plan.asset_ids)
        on_record = {(a.platform, a.campaign_id, a.ad_id) for a in plan.ads}
        unavailable = set()
        for name in plan.connectors:
            report = reports.setdefault(name, StoreReport(store=f"ads:{name}"))
            try:
                conn = self.connector(name)
            except FaceloopError as exc:
                unavailable.add(name)
                report.incomplete.append(
                    f"connector {name!r} is not available to this worker ({exc}); its ads of "
                    f"campaigns {', '.join(plan.campaign_ids) or '-'} were not taken down"
                )
                continue
            campaigns = sorted(set(plan.campaign_ids) | {c for p, c, _ in on_record if p == name})
            for cid in campaigns:
                done.beat(listing=f"{name}/{cid}")
                try:
                    ads = await conn.list_ads(cid)
                except ConnectorError as exc:
                    if exc.status == 404:
                        continue  # the platform never had this campaign
                    raise  # an outage: retry
                for ad in ads:
                    # a persona's campaigns are wholly derived from it, and a campaign
                    # erasure takes the campaign: every ad goes
                    if plan.kind != "asset" or ad.asset_id in wanted:
                        statuses[(name, cid, ad.ad_id)] = ad.status
        for p, c, a in sorted(on_record - set(statuses)):
            if p in unavailable:
                continue
            reports[p].notes.append(f"ad {a} of campaign {c} is not on the platform (any more)")
        for report in reports.values():
            report.ids = done.ids(report.store)
        todo = sorted(k for k, status in statuses.items() if status != "removed")
        for name, cid, ad_id in todo:
            conn = self.connector(name)
            report = reports[name]
            if conn.can_remove:
                await conn.remove(cid, ad_id)
                report.ids.append(ad_id)
                done.add(report.store, ad_id)
            else:
                await conn.pause(cid, ad_id)
                report.incomplete.append(
                    f"ad {ad_id} of campaign {cid} was paused, not removed: connector {name!r} "
                    "cannot remove ads; delete its creative on the platform by hand"
                )
        for report in reports.values():
            report.removed = len(report.ids)
        return StepResult(stores=[reports[n] for n in sorted(reports)])

    # ------------------------------------------------------------------ (c) files

    @activity.defn
    async def delete_asset_files(self, plan: ErasurePlan) -> StoreReport:
        """Scrub and remove the images, their signed copies and the persona's adapters."""
        done = _Resumed()
        report = StoreReport(store="asset_store", ids=done.ids("asset_store"))
        for asset_id in [*plan.asset_ids, *plan.adapter_ids]:
            if await asyncio.to_thread(self._delete_asset, asset_id):
                report.ids.append(asset_id)
                done.add(report.store, asset_id)
        report.removed = len(report.ids)
        if report.removed:
            report.notes.append(self.store.erasure_note())
        return report

    def _delete_asset(self, asset_id: str) -> list[str]:
        return self.store.delete(asset_id)

    @activity.defn
    async def delete_exported_copies(self, plan: ErasurePlan) -> StoreReport:
        """Remove the copies written outside the asset store: report thumbnails of the
        assets and the report files of their campaigns (which show their prompts)."""
        done = _Resumed()
        report = StoreReport(store="exports", ids=done.ids("exports"))
        rows = await asyncio.to_thread(self.catalog.exports, plan.asset_ids, plan.campaign_ids)
        rebuild = set()
        for row in rows:
            if await asyncio.to_thread(scrub_file, Path(row.path)):
                report.ids.append(row.path)
                done.add(report.store, row.path)
            if row.kind == "report":
                rebuild.add(row.campaign_id)
        await asyncio.to_thread(self.catalog.forget_exports, [r.path for r in rows])
        report.removed = len(report.ids)
        report.notes += [
            f"report of campaign {c} removed (it showed erased variants); "
            f"`faceloop report {c}` writes a new one"
            for c in sorted(rebuild)
        ]
        return report

    # ------------------------------------------------------------------ (d) catalog

    @activity.defn
    async def tombstone_catalog_rows(self, plan: ErasurePlan) -> StoreReport:
        return await asyncio.to_thread(self._tombstone, plan)

    def _tombstone(self, plan: ErasurePlan) -> StoreReport:
        variants = self.catalog.tombstone_variants(plan.variant_ids)
        consents = self.catalog.erase_consents(plan.persona_id) if plan.persona_id else []
        # an asset is one image: its campaign's brief is not derived from it and stays
        briefs = [] if plan.kind == "asset" else plan.campaign_ids
        erased = [c for c in briefs if self.catalog.erase_brief(c)]
        report = StoreReport(store="catalog", removed=len(variants) + len(consents) + len(erased))
        report.ids = [*variants, *consents, *erased]
        if erased:
            report.notes.append(
                f"{len(erased)} brief(s): product, message, tone, constraints and audience "
                "descriptions removed; ids, markets, budget and search space kept"
            )
        for c in briefs:
            report.incomplete += [
                f"audit entry seq {seq} (brief.submitted of campaign {c}) holds the brief's "
                "text in the clear: it was recorded before briefs were sealed, and the "
                "append-only chain cannot be edited; say so in the answer to the request"
                for seq in self.catalog.clear_brief_entries(c)
            ]
        if variants:
            report.notes.append(
                f"{len(variants)} variant(s) tombstoned: prompts, decision reasons, asset URIs "
                "and guardrail evidence blanked; ids, hashes and KPI counts kept"
            )
        if consents:
            report.notes.append(
                f"{len(consents)} consent record(s): subject name removed, revoked if live"
            )
        return report

    # ------------------------------------------------------------------ (e) crypto-shred

    @activity.defn
    async def shred_subject_keys(self, plan: ErasurePlan) -> StepResult:
        """Destroy the persona's key (its sealed embeddings and adapters, wherever copies
        are, can no longer be opened) and the keys of the erased campaigns (their briefs'
        sealed text in the audit log), then drop the persona's entries from the gallery."""
        if plan.kind == "asset":
            return StepResult(stores=[])
        pid = plan.persona_id
        done = _Resumed()
        # the keys first: once they are gone the embeddings and the briefs' text are
        # unreadable, even if the gallery cannot be rewritten below
        keys = StoreReport(store="key_store", ids=done.ids("key_store"))
        subjects = [*([pid] if pid else []), *map(campaign_subject, plan.campaign_ids)]
        for subject in subjects:
            if await asyncio.to_thread(self.keys.destroy, subject):
                keys.ids.append(subject)
                done.add(keys.store, subject)
        keys.removed = len(keys.ids)
        if pid is not None and pid in keys.ids:
            keys.notes.append(
                "subject key destroyed: the persona's sealed embeddings and LoRA adapters, "
                "and every copy or backup of them, can no longer be opened"
            )
        if any(k != pid for k in keys.ids):
            keys.notes.append(
                "campaign key(s) destroyed: the briefs' text sealed in the audit log and in "
                "any backup can no longer be opened"
            )
        if pid is None:
            return StepResult(stores=[keys])
        gallery = StoreReport(store="gallery", ids=done.ids("gallery"))
        try:
            g = await asyncio.to_thread(self.gallery)
            removed = await asyncio.to_thread(g.remove, pid) if g is not None else None
            if removed is not None:
                gallery.ids.append(pid)
                done.add(gallery.store, pid)
            gallery.removed = len(gallery.ids)
        except FaceloopError as exc:
            gallery.incomplete.append(
                f"the persona's entry could not be removed from the identity gallery ({exc}); "
                "its embeddings are sealed under the destroyed key and unreadable"
            )
        return StepResult(stores=[keys, gallery])

    @activity.defn
    async def compact_catalog(self, plan: ErasurePlan) -> StoreReport:
        """Make the deleted catalog content unreadable on disk (SQLite WAL, PostgreSQL
        VACUUM); see Catalog.compact_after_erasure."""
        # a busy WAL raises FaceloopError, and Temporal retries the step
        note = await asyncio.to_thread(self.catalog.compact_after_erasure)
        return StoreReport(store="catalog_on_disk", notes=[note])

    # ------------------------------------------------------------------ (f) audit

    @activity.defn
    async def record_erasure(self, inp: ErasureRecordInput) -> int:
        """One audit entry with what was removed where; ids, hashes and counts only."""
        info = activity.info()
        plan = inp.plan
        stores: dict[str, Any] = {}
        for s in inp.stores:
            entry: dict[str, Any] = {"removed": s.removed, "incomplete": len(s.incomplete)}
            # export paths name folders on someone's machine, not the subject: counted only
            if s.store != "exports":
                entry["ids"] = s.ids
            stores[s.store] = entry
        entry_ = await asyncio.to_thread(
            self.catalog.audit,
            None,
            "erasure.completed",
            _subject(plan),
            inp.requested_by,
            {
                "kind": plan.kind,
                "target": plan.target,
                "ticket": inp.ticket,
                "workflow_id": info.workflow_id,
                "campaign_ids": plan.campaign_ids,
                "variant_ids": plan.variant_ids,
                "asset_ids": plan.asset_ids,
                "adapter_ids": plan.adapter_ids,
                "stores": stores,
                "started_at": inp.started_at.astimezone(UTC).isoformat(),
                "finished_at": inp.finished_at.astimezone(UTC).isoformat(),
                "duration_s": round((inp.finished_at - inp.started_at).total_seconds(), 3),
            },
            key=f"erasure.completed:{info.workflow_run_id}",
        )
        return entry_.seq


class _Resumed:
    """What earlier attempts of the running activity removed, read back from their last
    heartbeat, so a step retried after a crash still reports everything its run removed.
    Every removal heartbeats the full list, so the last heartbeat is always complete."""

    def __init__(self) -> None:
        details = activity.info().heartbeat_details
        last = details[-1] if details else None
        raw = last.get("removed") if isinstance(last, dict) else None
        self._removed: dict[str, list[str]] = (
            {str(k): [str(i) for i in v] for k, v in raw.items()} if isinstance(raw, dict) else {}
        )

    def ids(self, store: str) -> list[str]:
        return list(self._removed.get(store, []))

    def add(self, store: str, item: str) -> None:
        self._removed.setdefault(store, []).append(item)
        self.beat()

    def beat(self, **progress: str) -> None:
        """Heartbeat; the details always carry the full list of what was removed."""
        activity.heartbeat({"removed": self._removed, **progress})


def _subject(plan: ErasurePlan) -> str:
    return plan.target if plan.kind == "asset" else f"{plan.kind}:{plan.target}"
