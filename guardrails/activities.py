"""Guardrail activities; they run on the CPU task queue.

`guard` judges a batch (per-image checks + the batch bias audit); `sign` watermarks and
C2PA-signs approved variants, writing new assets; `export` makes their per-placement
JPEG/WebP copies, each a C2PA transform of the signed file (guardrails/export.py).
`guard_and_decide` (guard, then the playbook's decision) and `sign_and_export` run each pair
as one activity, and `guard_decide_and_ship` runs all four, signing only what the playbook
deploys (what reviewers approve later is signed by `sign_and_export`): a round's workflow
uses it, three workflow tasks and dispatches fewer than four activities (docs/benchmarks.md,
"Loop under load"); the pairs and single ones serve histories recorded before. `recheck`
runs the safety and identity checks again over live creatives after each KPI window (a
real person enrolled since an ad shipped, a stricter threshold in the playbook), and what
blocks now becomes a safety flag for the playbook's rollback criteria.
A file that is not a decodable image is a business rejection (non-retryable
ApplicationError), never a worker crash.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from PIL import Image
from temporalio import activity
from temporalio.exceptions import ApplicationError

from faceloop.cost import attempt_key, measure
from faceloop.errors import FaceloopError, SubjectErasedError
from faceloop.guardrails.base import GuardContext, Guardrail
from faceloop.guardrails.chain import Item, run_chain
from faceloop.guardrails.imageio import BadImageError, decode_image
from faceloop.guardrails.provenance import Ledger, Provenance, init_keys
from faceloop.guardrails.settings import GuardrailSettings
from faceloop.guardrails.watermark import METHODS, Method, embed, payload_for
from faceloop.heartbeats import run_with_heartbeats
from faceloop.messages import (
    DecideInput,
    DecideOutput,
    ExportInput,
    GuardInput,
    GuardOutput,
    GuardShipInput,
    GuardShipOutput,
    RecheckInput,
    RecheckOutput,
    VariantsPayload,
)
from faceloop.models import Asset, Decision, Persona, Variant, Verdict
from faceloop.playbooks.schema import Playbook
from faceloop.settings import Settings
from faceloop.storage.assets import AssetStore, put_for_variant
from faceloop.storage.catalog import Catalog

Progress = Callable[[int, int], None]

# What can turn against a creative after it shipped: a real person enrolled in the identity
# gallery since (a lookalike now), a safety model or threshold changed. Quality, bias and
# the provenance checks judged the image as generated and do not change.
RECHECKS = frozenset({"safety", "identity"})


T = TypeVar("T")


class GuardrailActivities:
    def __init__(
        self,
        guardrails: Callable[..., list[Guardrail]],
        store: AssetStore,
        catalog: Catalog,
        signer: Callable[[], Signer] | None = None,
        decide: Callable[[DecideInput], DecideOutput] | None = None,
    ) -> None:
        # a factory, because thresholds come from the campaign's playbook
        self.guardrails = guardrails
        self.store = store
        self.catalog = catalog
        self._signer_factory = signer
        self._signer: Signer | None = None
        # the playbook's decision over checked variants (workflows/campaign_activities.py
        # decide_variants, bound to a catalog): guard_and_decide's second half
        self._decide = decide

    async def _metered(self, campaign_id: str, round_: int, work: Callable[[Progress], T]) -> T:
        """Run `work(progress)` in a thread, heartbeating per item and every few seconds
        (faceloop/heartbeats.py), and record its CPU seconds for the campaign's cost
        (docs/cost.md), also when it fails: a failed attempt used them too."""
        key = attempt_key()
        with measure() as watch:
            try:
                return await run_with_heartbeats(work)
            finally:
                await asyncio.to_thread(
                    self.catalog.record_usage,
                    campaign_id,
                    "cpu_seconds",
                    watch.cpu_s,
                    key,
                    round=round_,
                    detail="process CPU time",
                )

    def _stored(self, campaign_id: str, round_: int, asset_id: str, size: int) -> None:
        # keyed by content hash: the same bytes stored again occupy no more room
        self.catalog.record_usage(
            campaign_id, "storage_bytes", size, f"asset:{asset_id}", round=round_
        )

    @activity.defn
    async def guard(self, inp: GuardInput) -> GuardOutput:
        return await self._metered(
            inp.campaign_id, inp.round, lambda progress: self._guard(inp, progress)
        )

    @activity.defn
    async def sign(self, inp: VariantsPayload) -> VariantsPayload:
        return await self._metered(
            inp.campaign_id, inp.round, lambda progress: self._sign(inp, progress)
        )

    @activity.defn
    async def export(self, inp: ExportInput) -> VariantsPayload:
        """Per-placement exports of signed variants (guardrails/export.py, docs/export.md)."""
        return await self._metered(
            inp.campaign_id, inp.round, lambda progress: self._export(inp, progress)
        )

    @activity.defn
    async def guard_and_decide(self, inp: DecideInput) -> DecideOutput:
        """`guard`, then the playbook's decision on every variant that has an image (what
        the `decide` activity does), in one activity: `inp.variants` are the generated
        ones, without reports."""
        self._decider()
        return await self._metered(
            inp.campaign_id, inp.round, lambda progress: self._guard_decide(inp, progress)
        )

    @activity.defn
    async def sign_and_export(self, inp: ExportInput) -> VariantsPayload:
        """`sign`, then `export` of the signed files, in one activity. A retry signs again
        (new signed assets and ledger entries), as a retried `sign` does."""
        return await self._metered(
            inp.campaign_id, inp.round, lambda progress: self._ship(inp, progress)
        )

    @activity.defn
    async def guard_decide_and_ship(self, inp: GuardShipInput) -> GuardShipOutput:
        """`guard_and_decide`, then `sign_and_export` of the variants the playbook deploys,
        in one activity: a round whose playbook escalates nothing goes from the generated
        images to deployable files in one workflow task. Escalated variants are not signed
        here; the workflow signs the ones reviewers approve after the review. A retry
        guards and signs again, as the two activities' retries do."""
        self._decider()

        def work(progress: Progress) -> GuardShipOutput:
            decided = self._guard_decide(inp.decide, progress)
            deploy = [v for v in decided.variants if v.decision == Decision.deploy]
            shipped = (
                self._ship(inp.export.model_copy(update={"variants": deploy}), progress)
                if deploy
                else VariantsPayload(
                    campaign_id=inp.decide.campaign_id, round=inp.decide.round, variants=[]
                )
            )
            return GuardShipOutput(decided=decided, shipped=shipped)

        return await self._metered(inp.decide.campaign_id, inp.decide.round, work)

    def _decider(self) -> Callable[[DecideInput], DecideOutput]:
        decide = self._decide
        if decide is None:
            # a worker built without the decision (a test's bare GuardrailActivities): a
            # deployment error, retried until a worker that has it picks the task up
            raise FaceloopError("this worker's guardrail activities were built without decide")
        return decide

    def _guard_decide(self, inp: DecideInput, progress: Progress) -> DecideOutput:
        persona = inp.brief.persona if inp.brief is not None else None
        guarded = self._guard(
            GuardInput(
                campaign_id=inp.campaign_id,
                round=inp.round,
                playbook=inp.playbook,
                variants=inp.variants,
                persona=persona,
            ),
            progress,
        )
        checked = with_reports(inp.variants, guarded)
        return self._decider()(inp.model_copy(update={"variants": checked}))

    def _ship(self, inp: ExportInput, progress: Progress) -> VariantsPayload:
        batch = VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=inp.variants)
        signed = self._sign(batch, progress)
        return self._export(inp.model_copy(update={"variants": signed.variants}), progress)

    def _load(self, v: Variant) -> tuple[bytes, np.ndarray]:
        if v.asset is None:
            raise ApplicationError(
                f"variant {v.variant_id} has no asset; generate it first",
                type="MissingAsset",
                non_retryable=True,
            )
        data = self.store.get_bytes(v.asset.uri)
        try:
            return data, decode_image(data, f"asset {v.asset.asset_id} of {v.variant_id}")
        except BadImageError as exc:
            raise ApplicationError(str(exc), type="BadImage", non_retryable=True) from None

    def _item(self, v: Variant, playbook: Playbook, persona: Persona | None) -> Item:
        data, rgb = self._load(v)
        assert v.asset is not None
        ctx = GuardContext(
            asset_id=v.asset.asset_id,
            params=v.params,
            min_resolution=playbook.quality.min_resolution,
            persona_id=getattr(persona, "persona_id", None),
        )
        return Item(rgb=rgb, ctx=ctx, data=data, media_type=v.asset.media_type)

    def _guard(self, inp: GuardInput, progress: Progress) -> GuardOutput:
        guards = self.guardrails(inp.playbook)
        persona = getattr(inp, "persona", None)
        items = [self._item(v, inp.playbook, persona) for v in inp.variants]
        try:
            reports = run_chain(guards, items, progress)
        except BadImageError as exc:
            raise ApplicationError(str(exc), type="BadImage", non_retryable=True) from None
        for v, report in zip(inp.variants, reports, strict=True):
            self.catalog.record_report(v.variant_id, report)
            # the verdicts as the guardrails gave them, before the playbook turns them into a
            # decision: an auditor can tell a check's finding from the policy applied to it
            self.catalog.audit(
                inp.campaign_id,
                "guard.verdicts",
                v.variant_id,
                "guardrails",
                {
                    "asset_id": report.asset_id,
                    "checks": {
                        c.name: {
                            "verdict": c.verdict.value,
                            "score": round(c.score, 4) if math.isfinite(c.score) else None,
                        }
                        for c in report.checks
                    },
                },
            )
        return GuardOutput(reports=reports)

    @activity.defn
    async def recheck(self, inp: RecheckInput) -> RecheckOutput:
        return await self._metered(
            inp.campaign_id, inp.round, lambda progress: self._recheck(inp, progress)
        )

    def _recheck(self, inp: RecheckInput, progress: Progress) -> RecheckOutput:
        guards = [g for g in self.guardrails(inp.playbook) if g.name in RECHECKS]
        live = [v for v in inp.live if v.asset is not None]
        if not guards or not live:
            return RecheckOutput(flags={v.variant_id: [] for v in live})
        items = [self._item(v, inp.playbook, inp.persona) for v in live]
        try:
            reports = run_chain(guards, items, progress)
        except BadImageError as exc:
            raise ApplicationError(str(exc), type="BadImage", non_retryable=True) from None
        flags: dict[str, list[str]] = {}
        for v, report in zip(live, reports, strict=True):
            flags[v.variant_id] = [
                f"{c.name}: {c.evidence.get('reason') or 'blocked'}"
                for c in report.checks
                if c.verdict is Verdict.block
            ]
        # one entry per round: what was checked, and what blocks now
        self.catalog.audit(
            inp.campaign_id,
            "guard.recheck",
            f"{inp.campaign_id}-r{inp.round}",
            "guardrails",
            {
                "checks": sorted(g.name for g in guards),
                "checked": [v.variant_id for v in live],
                "flagged": {vid: why for vid, why in flags.items() if why},
            },
        )
        return RecheckOutput(flags=flags)

    def _sign(self, inp: VariantsPayload, progress: Progress) -> VariantsPayload:
        if self._signer is None:
            self._signer = (self._signer_factory or Signer.from_settings)()
        out = []
        for i, v in enumerate(inp.variants):
            _data, rgb = self._load(v)
            assert v.asset is not None
            try:
                signed = self._signer.sign(
                    rgb, v.asset, v.disclosure, inp.campaign_id, v.variant_id
                )
            except FaceloopError as exc:
                raise ApplicationError(str(exc), type="SignFailed", non_retryable=True) from None
            asset_id, uri = self._put(signed, ".png", inp.campaign_id, v.variant_id, "signed")
            self._stored(inp.campaign_id, inp.round, asset_id, len(signed))
            self._signer.ledger.record(
                {
                    "payload": self._signer.payload(v.asset.asset_id),
                    "asset_id": v.asset.asset_id,
                    "signed_asset_id": asset_id,
                    "variant_id": v.variant_id,
                    "campaign_id": inp.campaign_id,
                    "method": self._signer.method,
                }
            )
            new = v.asset.model_copy(update={"asset_id": asset_id, "uri": uri})
            out.append(v.model_copy(update={"asset": new}))
            progress(i + 1, len(inp.variants))
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=out)

    def _put(
        self, data: bytes, suffix: str, campaign_id: str, variant_id: str, kind: str
    ) -> tuple[str, str]:
        """Store a file of the variant, recorded first (`put_for_variant`); an erased
        variant's file is refused, not written."""
        try:
            return put_for_variant(
                self.store,
                self.catalog,
                data,
                suffix,
                campaign_id=campaign_id,
                variant_id=variant_id,
                kind=kind,
            )
        except SubjectErasedError as exc:
            raise ApplicationError(str(exc), type="SubjectErased", non_retryable=True) from None

    def _export(self, inp: ExportInput, progress: Progress) -> VariantsPayload:
        from faceloop.guardrails.export import SUFFIXES, Exporter, placements_for

        if self._signer is None:
            self._signer = (self._signer_factory or Signer.from_settings)()
        exporter = Exporter(self._signer.provenance, self._signer.method)
        placements = placements_for(inp.export, inp.channels)
        out = []
        for i, v in enumerate(inp.variants):
            data, _rgb = self._load(v)
            assert v.asset is not None
            try:
                results = exporter.export(
                    data, v.asset.asset_id, v.variant_id, placements, inp.export, v.asset.media_type
                )
            except FaceloopError as exc:
                raise ApplicationError(str(exc), type="ExportFailed", non_retryable=True) from None
            records = []
            for r in results:
                record = r.record
                if r.data:
                    # only what passed its read-back is stored: a refused export is never
                    # delivered, its record keeps the reason
                    aid, uri = self._put(
                        r.data, SUFFIXES[record.media_type], inp.campaign_id, v.variant_id, "export"
                    )
                    self._stored(inp.campaign_id, inp.round, aid, len(r.data))
                    record = record.model_copy(update={"uri": uri})
                records.append(record)
            self.catalog.record_placement_exports(v.variant_id, inp.campaign_id, records)
            self.catalog.audit(
                inp.campaign_id,
                "creative.exported",
                v.variant_id,
                "exporter",
                {
                    "parent_asset_id": v.asset.asset_id,
                    "exports": [
                        {
                            "placement": e.placement,
                            "media_type": e.media_type,
                            "asset_id": e.asset_id,
                            "fit": e.fit,
                            "watermark_recall": e.watermark_recall,
                            "manifest_ok": e.manifest_ok,
                            "refused": e.refused,
                        }
                        for e in records
                    ],
                },
                key=f"creative.exported:{v.variant_id}:{v.asset.asset_id}",
            )
            out.append(v.model_copy(update={"exports": records}))
            progress(i + 1, len(inp.variants))
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=out)


def with_reports(variants: list[Variant], guarded: GuardOutput) -> list[Variant]:
    """The variants that have an image, each with its guard report: what decide reads."""
    reports = {r.asset_id: r for r in guarded.reports}
    return [
        v.model_copy(update={"report": reports[v.asset.asset_id]})
        for v in variants
        if v.asset is not None
    ]


class Signer:
    """Watermark + C2PA manifest for one asset; the embedded default makes local keys."""

    def __init__(self, provenance: Provenance, ledger: Ledger, method: Method) -> None:
        self.provenance = provenance
        self.ledger = ledger
        self.method = method

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Signer:
        gs = GuardrailSettings(settings)
        if gs.c2pa_cert is None and not gs.key_path.exists():
            # the embedded default signs with local keys made on first use
            init_keys(gs.keys_dir)
        if gs.watermark_method not in METHODS:
            raise FaceloopError(
                f"FACELOOP_WATERMARK_METHOD={gs.watermark_method!r} is unknown; use one of "
                f"{', '.join(METHODS)}"
            )
        prov = Provenance(gs.cert_path, gs.key_path, gs.anchors_path)
        return cls(prov, Ledger(gs.ledger_path), gs.watermark_method)

    def payload(self, asset_id: str) -> str:
        return payload_for(asset_id)

    def sign(
        self, rgb: np.ndarray, asset: Asset, disclosure: str, campaign_id: str, variant_id: str
    ) -> bytes:
        marked = embed(rgb, self.payload(asset.asset_id), self.method)
        buf = io.BytesIO()
        Image.fromarray(marked, "RGB").save(buf, format="PNG", optimize=False)
        return self.provenance.sign_created(
            buf.getvalue(),
            asset_id=asset.asset_id,
            generator=asset.generator,
            model_version=asset.model_version,
            disclosure=disclosure or "AI-generated image",
            extra={"campaign_id": campaign_id, "variant_id": variant_id, "seed": asset.seed},
        )
