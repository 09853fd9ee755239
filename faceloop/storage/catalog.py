"""The catalog: what every asset came from and what happened to it.

`Catalog` is the one object the rest of faceloop holds. Its parts live beside it:
- schema.py: the tables and the connection plumbing;
- audit.py: the hash-chained audit log (`audit`, `audit_entries`, `verify_audit`);
- subjects.py: consents, subject keys, exported copies and erasure;
- migrations/: the schema's versions (Alembic); `Catalog(url)` creates an empty catalog
  and refuses one behind head (`faceloop db upgrade`).
This module holds campaigns, variants, guardrail reports, deployments, KPI observations and
`trace`, which joins them by id.

Every write is an upsert keyed by a natural id (variant id, (platform, asset id),
(variant id, round, segment), ...), because Temporal retries activities: recording the same
fact twice must leave the same rows as recording it once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, RowMapping

from faceloop.errors import FaceloopError, SubjectErasedError
from faceloop.models import (
    Asset,
    Brief,
    CampaignConfig,
    CheckResult,
    Decision,
    FaceParams,
    Fidelity,
    GuardrailReport,
    KpiObservation,
    PlacementExport,
    Variant,
)
from faceloop.storage.audit import (
    GENESIS_HASH,
    AuditEntry,
    ChainCheck,
    ChainLink,
    canonical_json,
    entry_from_row,
    entry_hash,
    verify_chain,
)
from faceloop.storage.costs import CostRecords
from faceloop.storage.keys import SubjectKeyStore
from faceloop.storage.schema import (
    Row,
    audit_log,
    campaigns,
    deployments,
    guardrail_checks,
    kpi_observations,
    placement_exports,
    variants,
)
from faceloop.storage.subjects import ExportRow, SubjectKeyRow, SubjectRecords

# the audit and subject names are re-exported: callers import the catalog's API from here
__all__ = [
    "ERASED",
    "GENESIS_HASH",
    "AuditEntry",
    "AuditRecord",
    "CampaignRow",
    "Catalog",
    "ChainCheck",
    "ChainLink",
    "DeploymentRow",
    "ExportRow",
    "SubjectKeyRow",
    "campaign_subject",
    "canonical_json",
    "entry_hash",
    "verify_chain",
]

# what an erased brief's free text reads as
ERASED = "[erased]"
# the stored brief's keys beside the Brief's own: the sealed free text, or when it was erased
_SEALED, _ERASED_AT = "sealed_text", "erased_at"
# what a marketer writes in their own words, which may describe a person (the persona's
# name in the message, a customer's story): sealed under the campaign's key. Segment names,
# markets, channels, budgets and the search space are ids and numbers that connectors,
# the optimizer and the playbook need in the clear; `submitted_by` is the accountable
# actor (the audit log's actor column keeps it, as it keeps reviewers'), not the subject.
_FREE_TEXT = ("product", "message", "tone", "constraints")


def campaign_subject(campaign_id: str) -> str:
    """The key-store subject whose key seals a campaign's brief text."""
    return f"campaign:{campaign_id}"


@dataclass(frozen=True)
class AuditRecord:
    """An audit entry to append with the change it records (`Catalog.audit`'s arguments)."""

    kind: str
    subject: str
    actor: str
    payload: dict[str, Any]
    key: str | None = None


class CampaignRow(Row):
    campaign_id: str
    brief: Brief
    config: CampaignConfig
    status: str
    round: int
    created_at: datetime
    updated_at: datetime
    # set once the brief's free text was erased: `brief` then reads ERASED in its place
    brief_erased_at: datetime | None = None


class DeploymentRow(Row):
    platform: str
    asset_id: str
    ad_id: str
    variant_id: str
    campaign_id: str
    deployed_at: datetime


class Catalog(SubjectRecords, CostRecords):
    """Campaigns, variants, verdicts, deployments, KPI observations, the audit log and the
    records of data subjects.

    `url` is a SQLAlchemy URL: `sqlite:///path/faceloop.db` (embedded) or
    `postgresql+psycopg://user@host/db` (at scale). An empty database gets the schema on
    first use; a catalog behind head is refused until `faceloop db upgrade` ran.
    Methods are synchronous and thread-safe; call them from activities via a thread.
    """

    prepares_schema = True

    # ------------------------------------------------------------------ campaigns

    def upsert_campaign(
        self, campaign_id: str, brief: Brief, config: CampaignConfig, status: str
    ) -> None:
        now = datetime.now(UTC)
        row = {
            "campaign_id": campaign_id,
            "brief": self.seal_brief(campaign_id, brief),
            "config": config.model_dump(mode="json"),
            "status": status,
            "round": 0,
            "created_at": now,
            "updated_at": now,
        }
        with self._write() as conn:
            # a retried submit must not rewind the round the campaign has reached
            self._upsert(conn, campaigns, [row], ["campaign_id"], keep=["round", "created_at"])

    def set_campaign_status(self, campaign_id: str, status: str, round: int | None = None) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": datetime.now(UTC)}
        if round is not None:
            values["round"] = round
        with self._write() as conn:
            result = conn.execute(
                update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(**values)
            )
            if result.rowcount == 0:
                raise FaceloopError(
                    f"campaign {campaign_id!r} is not in the catalog at {self._safe_url()}; "
                    "record it with upsert_campaign before setting its status"
                )

    def get_campaign(self, campaign_id: str) -> CampaignRow | None:
        with self._read() as conn:
            row = (
                conn.execute(select(campaigns).where(campaigns.c.campaign_id == campaign_id))
                .mappings()
                .first()
            )
        return None if row is None else self._campaign_row(row)

    def list_campaigns(self) -> list[CampaignRow]:
        """All campaigns, newest first."""
        with self._read() as conn:
            rows = list(
                conn.execute(
                    select(campaigns).order_by(
                        campaigns.c.created_at.desc(), campaigns.c.campaign_id
                    )
                ).mappings()
            )
        # opened outside the read: opening a brief reads its key on a connection of its own
        return [self._campaign_row(r) for r in rows]

    def _campaign_row(self, row: RowMapping) -> CampaignRow:
        try:
            brief, erased_at = self.open_brief(row["campaign_id"], row["brief"])
            return CampaignRow(
                campaign_id=row["campaign_id"],
                brief=brief,
                config=CampaignConfig.model_validate(row["config"]),
                status=row["status"],
                round=row["round"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                brief_erased_at=erased_at,
            )
        except ValidationError as err:
            raise FaceloopError(
                f"campaign {row['campaign_id']!r} in the catalog at {self._safe_url()} no longer "
                f"matches the current Brief/CampaignConfig models: {err}"
            ) from err

    # ------------------------------------------------------------------ the brief's free text

    def seal_campaign_data(self, campaign_id: str, data: Any, purpose: str) -> str:
        """JSON data sealed under the campaign's key (made on first use), as base64 text
        for a JSON column or an audit payload. SubjectErasedError once the campaign's brief
        was erased: nothing new is written under an erased campaign."""
        blob = SubjectKeyStore(self).seal(
            campaign_subject(campaign_id), json.dumps(data).encode(), purpose
        )
        return base64.b64encode(blob).decode()

    def open_campaign_data(self, campaign_id: str, sealed: str, purpose: str) -> Any:
        """What seal_campaign_data sealed; SubjectErasedError once the key was destroyed."""
        blob = base64.b64decode(sealed)
        return json.loads(SubjectKeyStore(self).open(campaign_subject(campaign_id), blob, purpose))

    def seal_brief(self, campaign_id: str, brief: Brief) -> dict[str, Any]:
        """The brief as the catalog and the audit log store it: its free text sealed under
        the campaign's key, everything else in the clear. Shredding the key erases the text
        in every copy at once, and an audit entry holding it still verifies (its hash
        covers the ciphertext)."""
        data = brief.model_dump(mode="json")
        text = {k: data.pop(k) for k in _FREE_TEXT}
        text["audience"] = [seg.pop("description") for seg in data["audience"]]
        return {**data, _SEALED: self.seal_campaign_data(campaign_id, text, "brief")}

    def open_brief(self, campaign_id: str, stored: dict[str, Any]) -> tuple[Brief, datetime | None]:
        """A stored brief (catalog row or `brief.submitted` payload) and when its free text
        was erased (None while it reads). Erased text reads as ERASED; a brief stored in the
        clear by an earlier release reads as it was stored."""
        erased_at = stored.get(_ERASED_AT)
        data = {k: v for k, v in stored.items() if k not in (_SEALED, _ERASED_AT)}
        text: dict[str, Any] | None = None
        if erased_at is None and _SEALED in stored:
            try:
                text = self.open_campaign_data(campaign_id, stored[_SEALED], "brief")
            except SubjectErasedError:
                info = self.subject_key_info(campaign_subject(campaign_id))
                erased_at = info.destroyed_at if info is not None else None
                erased_at = erased_at or datetime.now(UTC)
        elif erased_at is None:
            return Brief.model_validate(stored), None  # clear, from an earlier release
        else:
            erased_at = datetime.fromisoformat(erased_at)
        if text is None:
            text = {
                "product": ERASED,
                "message": ERASED,
                "tone": ERASED,
                "constraints": [],
                "audience": [ERASED] * len(data["audience"]),
            }
        audience = [
            {**seg, "description": d}
            for seg, d in zip(data["audience"], text.pop("audience"), strict=True)
        ]
        return Brief.model_validate({**data, **text, "audience": audience}), erased_at

    def erase_brief(self, campaign_id: str) -> bool:
        """Remove the brief's free text from the campaign's row, sealed or (stored by an
        earlier release) clear; True when removed now. The campaign's key, which still
        opens the sealed copy in its `brief.submitted` audit entry, is destroyed by the
        erasure's crypto-shred step."""
        with self._write() as conn:
            stored = conn.execute(
                select(campaigns.c.brief).where(campaigns.c.campaign_id == campaign_id)
            ).scalar_one_or_none()
            if stored is None or _ERASED_AT in stored:
                return False
            data = {k: v for k, v in stored.items() if k not in (*_FREE_TEXT, _SEALED)}
            data["audience"] = [
                {k: v for k, v in seg.items() if k != "description"} for seg in data["audience"]
            ]
            data[_ERASED_AT] = datetime.now(UTC).isoformat()
            conn.execute(
                update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(brief=data)
            )
        return True

    def clear_brief_entries(self, campaign_id: str) -> list[int]:
        """Seqs of the campaign's `brief.submitted` audit entries that hold the brief in the
        clear (written before briefs were sealed): the append-only chain keeps them."""
        return [
            e.seq
            for e in self.audit_entries(campaign_id)
            if e.kind == "brief.submitted"
            and isinstance(e.payload.get("brief"), dict)
            and _SEALED not in e.payload["brief"]
        ]

    # ------------------------------------------------------------------ variants

    def upsert_variant(self, v: Variant) -> None:
        """Store the variant's current state. Its report, if set, is recorded too.

        A variant without a report leaves any recorded checks alone: reports have their own
        write path (`record_report`), and a later state of the variant may not carry it.
        """
        now = datetime.now(UTC)
        asset = v.asset
        row: dict[str, Any] = {
            "variant_id": v.variant_id,
            "campaign_id": v.campaign_id,
            "round": v.round,
            "trial_number": v.trial_number,
            "params": v.params.model_dump(mode="json"),
            "params_key": v.params.key(),
            "seed": v.seed,
            "prompt": v.prompt,
            "negative_prompt": v.negative_prompt,
            "disclosure": v.disclosure,
            "asset_id": asset.asset_id if asset else None,
            "asset_uri": asset.uri if asset else None,
            "asset_width": asset.width if asset else None,
            "asset_height": asset.height if asset else None,
            "asset_media_type": asset.media_type if asset else None,
            "asset_generator": asset.generator if asset else None,
            "asset_model_version": asset.model_version if asset else None,
            "asset_seed": asset.seed if asset else None,
            "measured": v.fidelity.perception if v.fidelity else None,
            "fidelity": (
                v.fidelity.model_dump(mode="json", exclude={"perception"}) if v.fidelity else None
            ),
            "tries": v.fidelity.tries if v.fidelity else None,
            "decision": v.decision.value if v.decision else None,
            "decision_reason": v.decision_reason,
            "ad_id": v.ad_id,
            "impressions": v.impressions,
            "clicks": v.clicks,
            "conversions": v.conversions,
            "live": v.live,
            "created_at": now,
            "updated_at": now,
        }
        with self._write() as conn:
            # a tombstone is final: a late retry of a campaign activity (which still holds
            # the variant's prompt and URI) must not bring erased data back
            self._upsert(
                conn,
                variants,
                [row],
                ["variant_id"],
                keep=["created_at"],
                where=variants.c.erased_at.is_(None),
            )
            if v.report is not None:
                self._record_report(conn, v.variant_id, v.report)

    def get_variant(self, variant_id: str) -> Variant | None:
        with self._read() as conn:
            row = (
                conn.execute(select(variants).where(variants.c.variant_id == variant_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            reports = self._reports(conn, [variant_id])
            exported = self._placement_exports(conn, [variant_id])
        return _variant(row, reports.get(variant_id), exported.get(variant_id, []))

    def variants(self, campaign_id: str, round: int | None = None) -> list[Variant]:
        """The campaign's variants in round order, then in the order they were first stored."""
        query = select(variants).where(variants.c.campaign_id == campaign_id)
        if round is not None:
            query = query.where(variants.c.round == round)
        query = query.order_by(variants.c.round, variants.c.created_at, variants.c.variant_id)
        with self._read() as conn:
            rows = list(conn.execute(query).mappings())
            ids = [r["variant_id"] for r in rows]
            reports = self._reports(conn, ids)
            exported = self._placement_exports(conn, ids)
        return [
            _variant(r, reports.get(r["variant_id"]), exported.get(r["variant_id"], []))
            for r in rows
        ]

    # ------------------------------------------------------------------ guardrail reports

    def record_report(self, variant_id: str, report: GuardrailReport) -> None:
        """Store one row per check; recording a report again replaces the previous one."""
        with self._write() as conn:
            self._record_report(conn, variant_id, report)

    def _record_report(self, conn: Connection, variant_id: str, report: GuardrailReport) -> None:
        erased = conn.execute(
            select(variants.c.erased_at).where(
                variants.c.variant_id == variant_id, variants.c.erased_at.is_not(None)
            )
        ).first()
        if erased is not None:
            return  # the evidence of an erased variant stays blank
        now = datetime.now(UTC)
        rows = [
            {
                "variant_id": variant_id,
                "name": c.name,
                "asset_id": report.asset_id,
                "position": i,
                "verdict": c.verdict.value,
                "score": c.score,
                # JSON mode turns NaN/inf into null, which PostgreSQL's JSONB requires
                "evidence": c.model_dump(mode="json")["evidence"],
                "recorded_at": now,
            }
            for i, c in enumerate(report.checks)
        ]
        # upsert then prune (not delete then insert): two retries of the same guard activity
        # running at once must not collide on the primary key
        self._upsert(conn, guardrail_checks, rows, ["variant_id", "name"])
        names = [c.name for c in report.checks]
        prune = guardrail_checks.delete().where(guardrail_checks.c.variant_id == variant_id)
        if names:
            prune = prune.where(guardrail_checks.c.name.not_in(names))
        conn.execute(prune)

    def _reports(self, conn: Connection, variant_ids: list[str]) -> dict[str, GuardrailReport]:
        if not variant_ids:
            return {}
        rows = conn.execute(
            select(guardrail_checks)
            .where(guardrail_checks.c.variant_id.in_(variant_ids))
            .order_by(guardrail_checks.c.variant_id, guardrail_checks.c.position)
        ).mappings()
        out: dict[str, GuardrailReport] = {}
        for r in rows:
            check = CheckResult(
                name=r["name"], verdict=r["verdict"], score=r["score"], evidence=r["evidence"]
            )
            report = out.setdefault(
                r["variant_id"], GuardrailReport(asset_id=r["asset_id"], checks=[])
            )
            report.checks.append(check)
        return out

    # ------------------------------------------------------------------ placement exports

    def record_placement_exports(
        self, variant_id: str, campaign_id: str, records: Sequence[PlacementExport]
    ) -> None:
        """Store a variant's exports (guardrails/export.py); recording them again replaces
        the previous set. An erased variant's exports are not written back."""
        now = datetime.now(UTC)
        rows = [
            {
                "variant_id": variant_id,
                "campaign_id": campaign_id,
                **e.model_dump(mode="json", exclude={"uri"}),
                "uri": e.uri or None,
                "recorded_at": now,
            }
            for e in records
        ]
        with self._write() as conn:
            erased = conn.execute(
                select(variants.c.erased_at).where(
                    variants.c.variant_id == variant_id, variants.c.erased_at.is_not(None)
                )
            ).first()
            if erased is not None:
                return
            self._upsert(conn, placement_exports, rows, ["variant_id", "placement", "media_type"])
            keep = {(e.placement, e.media_type) for e in records}
            for r in conn.execute(
                select(placement_exports.c.placement, placement_exports.c.media_type).where(
                    placement_exports.c.variant_id == variant_id
                )
            ):
                if (r.placement, r.media_type) not in keep:
                    conn.execute(
                        placement_exports.delete().where(
                            placement_exports.c.variant_id == variant_id,
                            placement_exports.c.placement == r.placement,
                            placement_exports.c.media_type == r.media_type,
                        )
                    )

    def _placement_exports(
        self, conn: Connection, variant_ids: list[str]
    ) -> dict[str, list[PlacementExport]]:
        if not variant_ids:
            return {}
        rows = conn.execute(
            select(placement_exports)
            .where(placement_exports.c.variant_id.in_(variant_ids))
            .order_by(
                placement_exports.c.variant_id,
                placement_exports.c.placement,
                placement_exports.c.media_type,
            )
        ).mappings()
        out: dict[str, list[PlacementExport]] = {}
        fields = set(PlacementExport.model_fields)
        for r in rows:
            data = {k: v for k, v in r.items() if k in fields}
            data["uri"] = r["uri"] or ""  # NULL: refused, or erased
            out.setdefault(r["variant_id"], []).append(PlacementExport.model_validate(data))
        return out

    # ------------------------------------------------------------------ deployments

    def record_deployment(
        self, variant_id: str, asset_id: str, ad_id: str, platform: str, campaign_id: str
    ) -> bool:
        """Record that an asset runs as an ad; True if new, False if already recorded.

        Unique on (platform, asset_id), like the deploy activity's idempotency key: the first
        ad recorded for an asset stays the one on record.
        """
        row = {
            "platform": platform,
            "asset_id": asset_id,
            "ad_id": ad_id,
            "variant_id": variant_id,
            "campaign_id": campaign_id,
            "deployed_at": datetime.now(UTC),
        }
        stmt = (
            self._insert(deployments)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["platform", "asset_id"])
            # rowcount is not reliable here on PostgreSQL drivers; a returned id is
            .returning(deployments.c.id)
        )
        with self._write() as conn:
            return conn.execute(stmt).first() is not None

    def deployments(self, campaign_id: str) -> list[DeploymentRow]:
        with self._read() as conn:
            rows = conn.execute(
                select(deployments)
                .where(deployments.c.campaign_id == campaign_id)
                .order_by(deployments.c.id)
            ).mappings()
            return [_deployment(r) for r in rows]

    def deployments_for_assets(self, asset_ids: Sequence[str]) -> list[DeploymentRow]:
        with self._read() as conn:
            rows = conn.execute(
                select(deployments)
                .where(deployments.c.asset_id.in_(list(asset_ids)))
                .order_by(deployments.c.id)
            ).mappings()
            return [_deployment(r) for r in rows]

    # ------------------------------------------------------------------ KPI observations

    def record_observations(self, obs: list[KpiObservation]) -> None:
        """Store KPI windows; one row per (variant, round, segment), so a re-read replaces."""
        with self._write() as conn:
            self._record_observations(conn, obs)

    def import_observations(
        self,
        campaign_id: str,
        obs: list[KpiObservation],
        check: Callable[[list[KpiObservation]], None],
        audit: AuditRecord,
    ) -> AuditEntry:
        """Store imported KPI windows and the audit entry that records them in one
        transaction: both commit, or neither does.

        `check` is given the campaign's stored observations as the transaction sees them,
        before anything is written, and raises to refuse (say, a window another import
        changed since the file was checked)."""
        with self._write() as conn:
            check(self._observations(conn, kpi_observations.c.campaign_id == campaign_id))
            entry = self._append_audit(
                conn,
                campaign_id,
                audit.kind,
                audit.subject,
                audit.actor,
                audit.payload,
                None,
                audit.key,
            )
            self._record_observations(conn, obs)
        return entry

    def _record_observations(self, conn: Connection, obs: list[KpiObservation]) -> None:
        now = datetime.now(UTC)
        # the last reading of a key within one batch wins, as it would across batches
        by_key = {(o.variant_id, o.round, o.segment): o for o in obs}
        rows = [
            {
                "variant_id": o.variant_id,
                "round": o.round,
                "segment": o.segment,
                "campaign_id": o.campaign_id,
                "ad_id": o.ad_id,
                "impressions": o.impressions,
                "clicks": o.clicks,
                "conversions": o.conversions,
                "observed_at": o.observed_at,
                "recorded_at": now,
                "negative_feedback": o.negative_feedback,
                "complaints": o.complaints,
            }
            for o in by_key.values()
        ]
        self._upsert(conn, kpi_observations, rows, ["variant_id", "round", "segment"])

    def observations(self, campaign_id: str) -> list[KpiObservation]:
        with self._read() as conn:
            return self._observations(conn, kpi_observations.c.campaign_id == campaign_id)

    def _observations(self, conn: Connection, where: Any) -> list[KpiObservation]:
        rows = conn.execute(
            select(kpi_observations)
            .where(where)
            .order_by(
                kpi_observations.c.round,
                kpi_observations.c.variant_id,
                kpi_observations.c.segment,
            )
        ).mappings()
        return [
            KpiObservation(
                campaign_id=r["campaign_id"],
                variant_id=r["variant_id"],
                ad_id=r["ad_id"],
                round=r["round"],
                segment=r["segment"],
                impressions=r["impressions"],
                clicks=r["clicks"],
                conversions=r["conversions"],
                observed_at=r["observed_at"],
                negative_feedback=r["negative_feedback"],
                complaints=r["complaints"],
            )
            for r in rows
        ]

    def observations_frame(self, campaign_id: str) -> pl.DataFrame:
        """The campaign's observations as a polars frame (same columns as KpiObservation)."""
        obs = self.observations(campaign_id)
        schema: dict[str, Any] = {
            "campaign_id": pl.String,
            "variant_id": pl.String,
            "ad_id": pl.String,
            "round": pl.Int64,
            "segment": pl.String,
            "impressions": pl.Int64,
            "clicks": pl.Int64,
            "conversions": pl.Int64,
            "observed_at": pl.Datetime("us", "UTC"),
            "negative_feedback": pl.Int64,
            "complaints": pl.Int64,
        }
        return pl.DataFrame([o.model_dump() for o in obs], schema=schema, orient="row")

    # ------------------------------------------------------------------ trace

    def trace(self, asset_id: str) -> dict[str, Any]:
        """Everything recorded about one asset, as JSON-ready data.

        brief, prompt, params, seed, model and generator, guardrail verdicts, decision,
        deployments, KPI observations and the audit entries about it. If several variants
        carry the same image (identical bytes), the first one stored is the origin and all
        of them are listed under `variants`.
        """
        with self._read() as conn:
            vrows = list(
                conn.execute(
                    select(variants)
                    .where(variants.c.asset_id == asset_id)
                    .order_by(variants.c.round, variants.c.created_at, variants.c.variant_id)
                ).mappings()
            )
            if not vrows:
                raise FaceloopError(
                    f"asset {asset_id!r} is not in the catalog at {self._safe_url()}: no variant "
                    "carries it (check the id: it is the sha256 of the image bytes)"
                )
            ids = [r["variant_id"] for r in vrows]
            reports = self._reports(conn, ids)
            origin = _variant(vrows[0], reports.get(ids[0]))
            camp = (
                conn.execute(select(campaigns).where(campaigns.c.campaign_id == origin.campaign_id))
                .mappings()
                .first()
            )
            deps = [
                _deployment(r)
                for r in conn.execute(
                    select(deployments)
                    .where(deployments.c.asset_id == asset_id)
                    .order_by(deployments.c.id)
                ).mappings()
            ]
            obs = self._observations(conn, kpi_observations.c.variant_id.in_(ids))
            audit = [
                entry_from_row(r)
                for r in conn.execute(
                    select(audit_log)
                    .where(audit_log.c.subject.in_([asset_id, *ids]))
                    .order_by(audit_log.c.seq)
                ).mappings()
            ]
        assert origin.asset is not None  # selected by asset_id
        report = origin.report
        out: dict[str, Any] = {
            "asset_id": asset_id,
            "asset": origin.asset.model_dump(mode="json"),
            "campaign_id": origin.campaign_id,
            "brief": (
                self.open_brief(camp["campaign_id"], camp["brief"])[0].model_dump(mode="json")
                if camp
                else None
            ),
            "campaign_status": camp["status"] if camp else None,
            "brief_erased": bool(camp and "erased_at" in camp["brief"]),
            "variant_id": origin.variant_id,
            "variants": ids,
            "round": origin.round,
            "trial_number": origin.trial_number,
            "prompt": origin.prompt,
            "negative_prompt": origin.negative_prompt,
            "disclosure": origin.disclosure,
            "params": origin.params.model_dump(mode="json"),
            "seed": origin.seed,
            "model_version": origin.asset.model_version,
            "generator": origin.asset.generator,
            "verdict": report.verdict.value if report else None,
            "verdicts": [c.model_dump(mode="json") for c in report.checks] if report else [],
            "decision": origin.decision.value if origin.decision else None,
            "decision_reason": origin.decision_reason,
            "ad_id": origin.ad_id,
            "erased_at": origin.erased_at.isoformat() if origin.erased_at else None,
            "deployments": [d.model_dump(mode="json") for d in deps],
            "observations": [o.model_dump(mode="json") for o in obs],
            "audit": [e.model_dump(mode="json") for e in audit],
        }
        return out


# --------------------------------------------------------------------------- row -> model


def _variant(
    row: RowMapping, report: GuardrailReport | None, exported: list[PlacementExport] | None = None
) -> Variant:
    asset = None
    if row["asset_id"] is not None:
        asset = Asset(
            asset_id=row["asset_id"],
            uri=row["asset_uri"] or "",  # NULL after erasure
            width=row["asset_width"],
            height=row["asset_height"],
            media_type=row["asset_media_type"],
            generator=row["asset_generator"],
            model_version=row["asset_model_version"],
            seed=row["asset_seed"],
        )
    return Variant(
        variant_id=row["variant_id"],
        campaign_id=row["campaign_id"],
        round=row["round"],
        trial_number=row["trial_number"],
        params=FaceParams.model_validate(row["params"]),
        seed=row["seed"],
        prompt=row["prompt"],
        negative_prompt=row["negative_prompt"],
        disclosure=row["disclosure"],
        asset=asset,
        fidelity=(
            Fidelity.model_validate({**row["fidelity"], "perception": row["measured"] or {}})
            if row["fidelity"] is not None
            else None
        ),
        report=report,
        decision=Decision(row["decision"]) if row["decision"] else None,
        decision_reason=row["decision_reason"],
        ad_id=row["ad_id"],
        impressions=row["impressions"],
        clicks=row["clicks"],
        conversions=row["conversions"],
        live=row["live"],
        erased_at=row["erased_at"],
        exports=exported or [],
    )


def _deployment(row: RowMapping) -> DeploymentRow:
    return DeploymentRow(
        platform=row["platform"],
        asset_id=row["asset_id"],
        ad_id=row["ad_id"],
        variant_id=row["variant_id"],
        campaign_id=row["campaign_id"],
        deployed_at=row["deployed_at"],
    )
