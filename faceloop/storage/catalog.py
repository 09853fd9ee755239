"""Catalog and audit log: what every asset came from and what happened to it.

One SQLAlchemy Core schema serves the embedded SQLite file and PostgreSQL at scale; only
the URL differs. Two rules shape it:

- Every write is an upsert keyed by a natural id (variant id, (platform, asset id),
  (variant id, round, segment), ...), because Temporal retries activities: recording the
  same fact twice must leave the same rows as recording it once.
- There are no foreign keys between the tables. Retried and parallel activities land in
  any order (observations may arrive for a variant whose upsert is still being retried),
  and a catalog that refuses a fact for ordering reasons loses it. `trace` joins by id.

The audit log is append-only and hash-chained: each entry stores the sha256 of its own
content and of the entry before it, so `verify_audit` finds an entry that was edited,
removed or moved. Appends are serialized through a single head row (row lock on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite) so that two processes never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, RowMapping, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from faceloop.errors import FaceloopError
from faceloop.models import (
    Asset,
    Brief,
    CampaignConfig,
    CheckResult,
    Decision,
    FaceParams,
    GuardrailReport,
    KpiObservation,
    Variant,
)

__all__ = ["GENESIS_HASH", "AuditEntry", "CampaignRow", "Catalog", "DeploymentRow"]

# prev_hash of the first entry: a fixed value, so the first entry is checked like any other
GENESIS_HASH = "0" * 64

# seconds a SQLite writer waits for the file lock held by another process (worker vs CLI)
_SQLITE_BUSY_TIMEOUT_S = 30.0

# any constant works; it only has to be the same in every process creating the tables
_PG_SCHEMA_LOCK_KEY = 0x6661_6365_6C6F_6F70 & 0x7FFF_FFFF_FFFF_FFFF  # "faceloop"


# --------------------------------------------------------------------------- row models


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CampaignRow(_Row):
    campaign_id: str
    brief: Brief
    config: CampaignConfig
    status: str
    round: int
    created_at: datetime
    updated_at: datetime


class DeploymentRow(_Row):
    platform: str
    asset_id: str
    ad_id: str
    variant_id: str
    campaign_id: str
    deployed_at: datetime


class AuditEntry(_Row):
    seq: int
    campaign_id: str | None
    kind: str
    subject: str
    actor: str
    ts: datetime
    payload: dict[str, Any]
    prev_hash: str
    hash: str


# --------------------------------------------------------------------------- schema


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type and would hand back naive values; the audit hash covers the
    timestamp, so a value must read back exactly as it was written, on either backend.
    Naive input is taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return _utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return _utc(value)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# JSONB on PostgreSQL so reviewers can query params and evidence; plain JSON text on SQLite
_Json = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String, primary_key=True),
    Column("brief", _Json, nullable=False),
    Column("config", _Json, nullable=False),
    Column("status", String, nullable=False),
    Column("round", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

variants = Table(
    "variants",
    metadata,
    Column("variant_id", String, primary_key=True),
    Column("campaign_id", String, nullable=False, index=True),
    Column("round", Integer, nullable=False),
    Column("trial_number", Integer),
    Column("params", _Json, nullable=False),
    # FaceParams.key(): finds the same face parameters across rounds without JSON queries
    Column("params_key", String, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("negative_prompt", Text, nullable=False),
    Column("disclosure", Text, nullable=False),
    Column("asset_id", String, index=True),
    Column("asset_uri", Text),
    Column("asset_width", Integer),
    Column("asset_height", Integer),
    Column("asset_media_type", String),
    Column("asset_generator", String),
    Column("asset_model_version", String),
    Column("asset_seed", BigInteger),
    Column("decision", String),
    Column("decision_reason", Text, nullable=False),
    Column("ad_id", String),
    Column("impressions", BigInteger, nullable=False),
    Column("clicks", BigInteger, nullable=False),
    Column("conversions", BigInteger, nullable=False),
    Column("live", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

guardrail_checks = Table(
    "guardrail_checks",
    metadata,
    Column("variant_id", String, primary_key=True),
    Column("name", String, primary_key=True),
    Column("asset_id", String, nullable=False, index=True),
    # keeps the order the guardrails ran in, which the report shows
    Column("position", Integer, nullable=False),
    Column("verdict", String, nullable=False),
    Column("score", Float, nullable=False),
    Column("evidence", _Json, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", String, nullable=False),
    Column("asset_id", String, nullable=False, index=True),
    Column("ad_id", String, nullable=False),
    Column("variant_id", String, nullable=False, index=True),
    Column("campaign_id", String, nullable=False, index=True),
    Column("deployed_at", UtcDateTime, nullable=False),
    # one ad per asset per platform: the idempotency key of the deploy activity
    UniqueConstraint("platform", "asset_id", name="uq_deployments_platform_asset"),
)

kpi_observations = Table(
    "kpi_observations",
    metadata,
    Column("variant_id", String, primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("segment", String, primary_key=True),
    Column("campaign_id", String, nullable=False, index=True),
    Column("ad_id", String, nullable=False),
    Column("impressions", BigInteger, nullable=False),
    Column("clicks", BigInteger, nullable=False),
    Column("conversions", BigInteger, nullable=False),
    Column("observed_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    # assigned by the appender, not the database: the number is part of the hashed content
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("campaign_id", String, index=True),
    Column("kind", String, nullable=False),
    Column("subject", String, nullable=False, index=True),
    Column("actor", String, nullable=False),
    Column("ts", UtcDateTime, nullable=False),
    # canonical JSON text, stored as hashed: a JSON column could re-serialise it differently
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)

# one row (id 1): the last seq and hash. Appenders lock it, so it is the serialization
# point of the chain, and it also reveals entries cut off the end of the log.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

Index("ix_variants_campaign_round", variants.c.campaign_id, variants.c.round)


# --------------------------------------------------------------------------- hashing


def canonical_json(payload: dict[str, Any]) -> str:
    """The one text form of a payload that its hash covers: sorted keys, no spaces."""
    try:
        return json.dumps(
            to_jsonable_python(payload),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (ValueError, TypeError) as err:
        raise FaceloopError(
            f"audit payload cannot be written as canonical JSON ({err}); pass only JSON-able "
            "values (str, numbers, bools, lists, dicts, pydantic models), and no NaN or inf"
        ) from err


def entry_hash(
    prev_hash: str,
    seq: int,
    ts: datetime,
    campaign_id: str | None,
    kind: str,
    subject: str,
    actor: str,
    payload_json: str,
) -> str:
    # a JSON array frames the fields, so moving text from one field to another changes the hash
    ts_text = _utc(ts).isoformat(timespec="microseconds")
    material = json.dumps(
        [prev_hash, seq, ts_text, campaign_id, kind, subject, actor, payload_json],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- catalog


class Catalog:
    """Campaigns, variants, verdicts, deployments, KPI observations and the audit log.

    `url` is a SQLAlchemy URL: `sqlite:///path/faceloop.db` (embedded) or
    `postgresql+psycopg://user@host/db` (at scale). Tables are created on first use.
    Methods are synchronous and thread-safe; call them from activities via a thread.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as err:
            raise FaceloopError(
                f"catalog URL {url!r} is not a SQLAlchemy URL; use sqlite:///path/faceloop.db "
                "or postgresql+psycopg://user@host:5432/db"
            ) from err
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self._engine = _sqlite_engine(url, parsed.database)
        elif self.dialect == "postgresql":
            self._engine = create_engine(url, pool_pre_ping=True)
        else:
            raise FaceloopError(
                f"catalog URL {parsed.render_as_string(hide_password=True)!r} names backend "
                f"{self.dialect!r}; the catalog supports sqlite and postgresql"
            )
        # on SQLite this option makes the begin hook take the write lock up front (see there)
        self._writer = self._engine.execution_options(faceloop_write=True)
        self._ensure_schema()

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_schema(self) -> None:
        try:
            self._create_tables()
        except OperationalError as err:
            self._engine.dispose()
            reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
            raise FaceloopError(
                f"cannot open the catalog at {self._safe_url()}: {reason}. Check that the "
                "database server runs and FACELOOP_DATABASE_URL points at it (unset: a SQLite "
                "file in the data dir)"
            ) from err

    def _create_tables(self) -> None:
        with self._write() as conn:
            if self.dialect == "postgresql":
                # concurrent CREATE TABLE of the same name fails in PostgreSQL; the worker
                # and the CLI may both start on an empty database
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK_KEY})
            metadata.create_all(conn, checkfirst=True)
            conn.execute(
                self._insert(audit_head)
                .values(id=1, seq=0, hash=GENESIS_HASH)
                .on_conflict_do_nothing(index_elements=["id"])
            )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    def _insert(self, table: Table) -> Any:
        # both dialects' Insert have on_conflict_do_update/do_nothing with the same arguments
        if self.dialect == "postgresql":
            return pg_insert(table)
        return sqlite_insert(table)

    def _upsert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[dict[str, Any]],
        keys: Sequence[str],
        keep: Sequence[str] = (),
    ) -> None:
        """Insert rows; on a key conflict overwrite every column except keys and `keep`."""
        if not rows:
            return
        stmt = self._insert(table)
        fixed = set(keys) | set(keep)
        update_cols = {c: stmt.excluded[c] for c in rows[0] if c not in fixed}
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update_cols), rows)

    # ------------------------------------------------------------------ campaigns

    def upsert_campaign(
        self, campaign_id: str, brief: Brief, config: CampaignConfig, status: str
    ) -> None:
        now = datetime.now(UTC)
        row = {
            "campaign_id": campaign_id,
            "brief": brief.model_dump(mode="json"),
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
            rows = conn.execute(
                select(campaigns).order_by(campaigns.c.created_at.desc(), campaigns.c.campaign_id)
            ).mappings()
            return [self._campaign_row(r) for r in rows]

    def _campaign_row(self, row: RowMapping) -> CampaignRow:
        try:
            return CampaignRow(
                campaign_id=row["campaign_id"],
                brief=Brief.model_validate(row["brief"]),
                config=CampaignConfig.model_validate(row["config"]),
                status=row["status"],
                round=row["round"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
            )
        except ValidationError as err:
            raise FaceloopError(
                f"campaign {row['campaign_id']!r} in the catalog at {self._safe_url()} no longer "
                f"matches the current Brief/CampaignConfig models: {err}"
            ) from err

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
            self._upsert(conn, variants, [row], ["variant_id"], keep=["created_at"])
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
        return _variant(row, reports.get(variant_id))

    def variants(self, campaign_id: str, round: int | None = None) -> list[Variant]:
        """The campaign's variants in round order, then in the order they were first stored."""
        query = select(variants).where(variants.c.campaign_id == campaign_id)
        if round is not None:
            query = query.where(variants.c.round == round)
        query = query.order_by(variants.c.round, variants.c.created_at, variants.c.variant_id)
        with self._read() as conn:
            rows = list(conn.execute(query).mappings())
            reports = self._reports(conn, [r["variant_id"] for r in rows])
        return [_variant(r, reports.get(r["variant_id"])) for r in rows]

    # ------------------------------------------------------------------ guardrail reports

    def record_report(self, variant_id: str, report: GuardrailReport) -> None:
        """Store one row per check; recording a report again replaces the previous one."""
        with self._write() as conn:
            self._record_report(conn, variant_id, report)

    def _record_report(self, conn: Connection, variant_id: str, report: GuardrailReport) -> None:
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

    # ------------------------------------------------------------------ KPI observations

    def record_observations(self, obs: list[KpiObservation]) -> None:
        """Store KPI windows; one row per (variant, round, segment), so a re-read replaces."""
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
            }
            for o in by_key.values()
        ]
        with self._write() as conn:
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
                _audit_entry(r)
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
            "brief": camp["brief"] if camp else None,
            "campaign_status": camp["status"] if camp else None,
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
            "deployments": [d.model_dump(mode="json") for d in deps],
            "observations": [o.model_dump(mode="json") for o in obs],
            "audit": [e.model_dump(mode="json") for e in audit],
        }
        return out

    # ------------------------------------------------------------------ audit log

    def audit(
        self,
        campaign_id: str | None,
        kind: str,
        subject: str,
        actor: str,
        payload: dict[str, Any],
        ts: datetime | None = None,
    ) -> AuditEntry:
        """Append one entry to the hash chain and return it (with its seq and hash)."""
        payload_json = canonical_json(payload)
        # the database keeps microseconds; hash exactly what will read back
        when = _utc(ts or datetime.now(UTC))
        with self._write() as conn:
            head_q = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            if self.dialect == "postgresql":
                # SQLite already holds the write lock (BEGIN IMMEDIATE); PostgreSQL needs the
                # row lock, or two appenders would both extend the same head
                head_q = head_q.with_for_update()
            head = conn.execute(head_q).one()
            seq = head.seq + 1
            digest = entry_hash(
                head.hash, seq, when, campaign_id, kind, subject, actor, payload_json
            )
            conn.execute(
                audit_log.insert().values(
                    seq=seq,
                    campaign_id=campaign_id,
                    kind=kind,
                    subject=subject,
                    actor=actor,
                    ts=when,
                    payload=payload_json,
                    prev_hash=head.hash,
                    hash=digest,
                )
            )
            conn.execute(
                update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest)
            )
        return AuditEntry(
            seq=seq,
            campaign_id=campaign_id,
            kind=kind,
            subject=subject,
            actor=actor,
            ts=when,
            payload=json.loads(payload_json),
            prev_hash=head.hash,
            hash=digest,
        )

    def audit_entries(self, campaign_id: str | None = None) -> list[AuditEntry]:
        """Entries in chain order; all of them, or those of one campaign."""
        query = select(audit_log).order_by(audit_log.c.seq)
        if campaign_id is not None:
            query = query.where(audit_log.c.campaign_id == campaign_id)
        with self._read() as conn:
            return [_audit_entry(r) for r in conn.execute(query).mappings()]

    def verify_audit(self) -> list[str]:
        """Check the whole chain; return one line per problem (empty: intact).

        Finds entries whose content no longer matches their hash (edited), gaps in seq
        (removed), broken links to the previous entry (removed or reordered), and a head
        that disagrees with the last entry (entries cut off the end).
        """
        problems: list[str] = []
        with self._read() as conn:
            head = conn.execute(
                select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            ).first()
            rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings()
            expected_seq, expected_prev = 1, GENESIS_HASH
            last_seq, last_hash = 0, GENESIS_HASH
            for r in rows:
                seq = r["seq"]
                gap = seq != expected_seq
                if gap:
                    missing = (
                        f"seq {expected_seq}"
                        if seq == expected_seq + 1
                        else f"seq {expected_seq}..{seq - 1}"
                    )
                    problems.append(f"audit entry {missing} missing before seq {seq} (removed)")
                recomputed = entry_hash(
                    r["prev_hash"],
                    seq,
                    r["ts"],
                    r["campaign_id"],
                    r["kind"],
                    r["subject"],
                    r["actor"],
                    r["payload"],
                )
                if recomputed != r["hash"]:
                    problems.append(
                        f"audit entry seq {seq}: content does not match its hash "
                        "(edited, or moved from another position)"
                    )
                # after a gap the link is broken by construction; the gap is the finding
                if not gap and r["prev_hash"] != expected_prev:
                    problems.append(
                        f"audit entry seq {seq}: link to seq {seq - 1} is broken "
                        "(an entry was reordered, replaced or removed)"
                    )
                expected_seq, expected_prev = seq + 1, r["hash"]
                last_seq, last_hash = seq, r["hash"]
        if head is None:
            problems.append("audit head row is missing (deleted); the chain end cannot be checked")
        elif head.seq != last_seq or head.hash != last_hash:
            if head.seq > last_seq:
                problems.append(
                    f"audit entries seq {last_seq + 1}..{head.seq} missing at the end (removed); "
                    f"the head records seq {head.seq}"
                )
            else:
                problems.append(
                    f"audit head (seq {head.seq}) does not match the last entry (seq {last_seq})"
                )
        return problems

    # ------------------------------------------------------------------ helpers

    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------- engines


def _sqlite_engine(url: str, database: str | None) -> Engine:
    memory = database is None or database in ("", ":memory:")
    if database is None or memory:
        # every connection to :memory: is a new empty database; share one connection
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        # a fresh data dir has no folder yet; sqlite would fail with "unable to open"
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # take transaction control from pysqlite, which would otherwise start them lazily
        # and as DEFERRED; the begin hook below emits the right BEGIN itself
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            if not memory:
                # WAL: the worker writes while the CLI and console read, without blocking
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # a write transaction takes the write lock at BEGIN. A DEFERRED one would upgrade
        # later, and in WAL mode an upgrade after another writer committed fails at once with
        # SQLITE_BUSY, whatever the busy timeout; IMMEDIATE waits its turn instead.
        if conn.get_execution_options().get("faceloop_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


# --------------------------------------------------------------------------- row -> model


def _variant(row: RowMapping, report: GuardrailReport | None) -> Variant:
    asset = None
    if row["asset_id"] is not None:
        asset = Asset(
            asset_id=row["asset_id"],
            uri=row["asset_uri"],
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
        report=report,
        decision=Decision(row["decision"]) if row["decision"] else None,
        decision_reason=row["decision_reason"],
        ad_id=row["ad_id"],
        impressions=row["impressions"],
        clicks=row["clicks"],
        conversions=row["conversions"],
        live=row["live"],
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


def _audit_entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        campaign_id=row["campaign_id"],
        kind=row["kind"],
        subject=row["subject"],
        actor=row["actor"],
        ts=row["ts"],
        payload=json.loads(row["payload"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
