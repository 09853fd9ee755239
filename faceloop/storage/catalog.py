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
import time
from collections.abc import Iterable, Iterator, Sequence
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
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
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

from faceloop.consent import ConsentRecord, ConsentStatus, RegisteredConsent, evaluate_consents
from faceloop.errors import FaceloopError, InputError, SubjectErasedError
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

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "CampaignRow",
    "Catalog",
    "ChainLink",
    "DeploymentRow",
    "ExportRow",
    "SubjectKeyRow",
    "verify_chain",
]

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


class SubjectKeyRow(_Row):
    """A subject key's bookkeeping, without the key."""

    subject_id: str
    created_at: datetime
    destroyed_at: datetime | None


class ExportRow(_Row):
    path: str
    kind: str
    campaign_id: str
    asset_id: str | None
    written_at: datetime


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
    # GDPR erasure: prompts, URI and check evidence were blanked; ids and hashes remain
    Column("erased_at", UtcDateTime),
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
    # NULL: not reported by the platform (not zero)
    Column("negative_feedback", BigInteger, nullable=True),
    Column("complaints", BigInteger, nullable=True),
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
    # set by activities (workflow run + activity id + what): a retried activity finds its
    # entry instead of appending a second one. Not hashed: it names the writer, not the fact.
    Column("idem_key", String, unique=True),
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

# consent records of personas (faceloop/consent.py); immutable once recorded, except for
# revocation and, at erasure, blanking the subject's name
consents = Table(
    "consents",
    metadata,
    Column("consent_id", String, primary_key=True),
    Column("persona_id", String, nullable=False, index=True),
    Column("subject", Text, nullable=False),
    Column("scope", _Json, nullable=False),
    Column("markets", _Json, nullable=False),
    Column("expires", Date, nullable=False),
    Column("evidence_sha256", String(64), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("revoked_reason", Text),
    Column("erased_at", UtcDateTime),
)

# one random key per data subject (faceloop/storage/keys.py). Destroying it sets key to NULL
# and keeps the row, so the subject reads as erased (not unknown) and its id is not reused.
subject_keys = Table(
    "subject_keys",
    metadata,
    Column("subject_id", String, primary_key=True),
    Column("key", LargeBinary),
    Column("created_at", UtcDateTime, nullable=False),
    Column("destroyed_at", UtcDateTime),
)

# copies of assets written outside the asset store (report thumbnails, report files), so
# that erasure can find them again
exports = Table(
    "exports",
    metadata,
    Column("path", Text, primary_key=True),
    Column("kind", String, nullable=False),
    Column("campaign_id", String, nullable=False, index=True),
    Column("asset_id", String, index=True),
    Column("written_at", UtcDateTime, nullable=False),
)


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


class ChainLink(BaseModel):
    """One audit entry as hashed: the payload as its stored canonical JSON text."""

    seq: int
    ts: datetime
    campaign_id: str | None
    kind: str
    subject: str
    actor: str
    payload_json: str
    prev_hash: str
    hash: str

    @classmethod
    def from_entry(cls, entry: AuditEntry) -> ChainLink:
        return cls(
            **entry.model_dump(exclude={"payload"}), payload_json=canonical_json(entry.payload)
        )


class ChainCheck(BaseModel):
    lines: list[str]
    last: tuple[int, str]
    count: int


def verify_chain(links: Iterable[ChainLink], start_seq: int = 1) -> ChainCheck:
    """Walk a chain in order: edited entries, gaps (removed) and broken links (reordered).

    `start_seq` > 1 checks a slice (an export from a later entry on): its first entry's link
    is taken as given, since the entry it points at is not in the slice.
    """
    problems: list[str] = []
    # a file can be reordered or carry an entry twice; the database cannot (seq is its key)
    ordered: list[ChainLink] = []
    seen: set[int] = set()
    for r in links:
        if r.seq in seen:
            problems.append(f"audit entry seq {r.seq} appears twice")
            continue
        if ordered and r.seq < ordered[-1].seq:
            problems.append(
                f"audit entry seq {r.seq} comes after seq {ordered[-1].seq} (reordered)"
            )
        seen.add(r.seq)
        ordered.append(r)
    ordered.sort(key=lambda r: r.seq)
    expected_seq, expected_prev = start_seq, GENESIS_HASH if start_seq == 1 else None
    last_seq, last_hash = start_seq - 1, GENESIS_HASH
    for r in ordered:
        seq = r.seq
        gap = seq != expected_seq
        if gap:
            missing = (
                f"seq {expected_seq}"
                if seq == expected_seq + 1
                else f"seq {expected_seq}..{seq - 1}"
            )
            problems.append(f"audit entry {missing} missing before seq {seq} (removed)")
        recomputed = entry_hash(
            r.prev_hash, seq, r.ts, r.campaign_id, r.kind, r.subject, r.actor, r.payload_json
        )
        if recomputed != r.hash:
            problems.append(
                f"audit entry seq {seq}: content does not match its hash "
                "(edited, or moved from another position)"
            )
        # after a gap the link is broken by construction; the gap is the finding
        if not gap and expected_prev is not None and r.prev_hash != expected_prev:
            problems.append(
                f"audit entry seq {seq}: link to seq {seq - 1} is broken "
                "(an entry was reordered, replaced or removed)"
            )
        expected_seq, expected_prev = seq + 1, r.hash
        last_seq, last_hash = seq, r.hash
    return ChainCheck(lines=problems, last=(last_seq, last_hash), count=len(ordered))


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
            # catalogs created before audit idempotency keys existed: add the column in place
            columns = {c["name"] for c in inspect(conn).get_columns("audit_log")}
            if "idem_key" not in columns:
                conn.execute(text("ALTER TABLE audit_log ADD COLUMN idem_key VARCHAR"))
                conn.execute(
                    text("CREATE UNIQUE INDEX IF NOT EXISTS ix_audit_idem ON audit_log (idem_key)")
                )
            # catalogs created before erasure tombstones: add the column in place
            if "erased_at" not in {c["name"] for c in inspect(conn).get_columns("variants")}:
                kind = "TIMESTAMP WITH TIME ZONE" if self.dialect == "postgresql" else "DATETIME"
                conn.execute(text(f"ALTER TABLE variants ADD COLUMN erased_at {kind}"))
            # catalogs created before platforms reported hides and complaints
            have = {c["name"] for c in inspect(conn).get_columns("kpi_observations")}
            for column in ("negative_feedback", "complaints"):
                if column not in have:
                    conn.execute(text(f"ALTER TABLE kpi_observations ADD COLUMN {column} BIGINT"))
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
        where: Any = None,
    ) -> None:
        """Insert rows; on a key conflict overwrite every column except keys and `keep`
        (only rows matching `where`, when given)."""
        if not rows:
            return
        stmt = self._insert(table)
        fixed = set(keys) | set(keep)
        update_cols = {c: stmt.excluded[c] for c in rows[0] if c not in fixed}
        conn.execute(
            stmt.on_conflict_do_update(index_elements=list(keys), set_=update_cols, where=where),
            rows,
        )

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
                "negative_feedback": o.negative_feedback,
                "complaints": o.complaints,
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
            "erased_at": origin.erased_at.isoformat() if origin.erased_at else None,
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
        key: str | None = None,
    ) -> AuditEntry:
        """Append one entry to the hash chain and return it (with its seq and hash).

        `key` makes the append idempotent: an entry already written under the same key is
        returned as it is. Inside a Temporal activity it defaults to the activity execution
        (workflow run, activity id) plus kind and subject, so a retried activity does not
        record the same fact twice.
        """
        payload_json = canonical_json(payload)
        key = key if key is not None else _activity_audit_key(kind, subject)
        # the database keeps microseconds; hash exactly what will read back
        when = _utc(ts or datetime.now(UTC))
        with self._write() as conn:
            if key is not None:
                existing = (
                    conn.execute(select(audit_log).where(audit_log.c.idem_key == key))
                    .mappings()
                    .first()
                )
                if existing is not None:
                    return _audit_entry(existing)
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
                    idem_key=key,
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
        with self._read() as conn:
            head = conn.execute(
                select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            ).first()
            rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings()
            problems = verify_chain(
                ChainLink(
                    seq=r["seq"],
                    ts=r["ts"],
                    campaign_id=r["campaign_id"],
                    kind=r["kind"],
                    subject=r["subject"],
                    actor=r["actor"],
                    payload_json=r["payload"],
                    prev_hash=r["prev_hash"],
                    hash=r["hash"],
                )
                for r in rows
            )
        last_seq, last_hash = problems.last
        out = list(problems.lines)
        if head is None:
            out.append("audit head row is missing (deleted); the chain end cannot be checked")
        elif head.seq != last_seq or head.hash != last_hash:
            if head.seq > last_seq:
                out.append(
                    f"audit entries seq {last_seq + 1}..{head.seq} missing at the end (removed); "
                    f"the head records seq {head.seq}"
                )
            else:
                out.append(
                    f"audit head (seq {head.seq}) does not match the last entry (seq {last_seq})"
                )
        return out

    # ------------------------------------------------------------------ consents

    def record_consent(self, record: ConsentRecord, actor: str) -> RegisteredConsent:
        """Keep a consent record; recording the same record again changes nothing.

        A kept record is immutable: the same consent id with other content is refused (give
        the new consent a new id), and so is a record for an erased persona, whose id must
        not come back to life. The `consent.recorded` audit entry holds ids and the evidence
        hash only, since the audit chain outlives any erasure.
        """
        source = f"consent {record.consent_id}"
        with self._write() as conn:
            erased = conn.execute(
                select(subject_keys.c.destroyed_at).where(
                    subject_keys.c.subject_id == record.persona_id,
                    subject_keys.c.destroyed_at.is_not(None),
                )
            ).first()
            if erased is not None:
                raise InputError(
                    source,
                    [
                        f"persona_id: persona {record.persona_id!r} was erased on "
                        f"{erased.destroyed_at:%Y-%m-%d}; an erased id is not reused: give "
                        "the new consent a new persona_id"
                    ],
                )
            row = (
                conn.execute(select(consents).where(consents.c.consent_id == record.consent_id))
                .mappings()
                .first()
            )
            if row is not None:
                kept = _consent(row)
                differ = [
                    k for k in ConsentRecord.model_fields if getattr(kept, k) != getattr(record, k)
                ]
                if differ:
                    raise InputError(
                        source,
                        [
                            f"{k}: consent {record.consent_id!r} is already recorded with "
                            "another value; consent records cannot change: record the new "
                            "consent under a new consent_id"
                            for k in differ
                        ],
                    )
            else:
                conn.execute(
                    consents.insert().values(
                        consent_id=record.consent_id,
                        persona_id=record.persona_id,
                        subject=record.subject_name,
                        scope=record.scope,
                        markets=record.markets,
                        expires=record.expires,
                        evidence_sha256=record.evidence_sha256,
                        recorded_at=datetime.now(UTC),
                    )
                )
        # keyed: a crash between the insert and this append is healed by recording again
        self.audit(
            None,
            "consent.recorded",
            record.consent_id,
            actor,
            {
                "consent_id": record.consent_id,
                "persona_id": record.persona_id,
                "evidence_sha256": record.evidence_sha256,
            },
            key=f"consent.recorded:{record.consent_id}",
        )
        got = self.get_consent(record.consent_id)
        assert got is not None
        return got

    def get_consent(self, consent_id: str) -> RegisteredConsent | None:
        with self._read() as conn:
            row = (
                conn.execute(select(consents).where(consents.c.consent_id == consent_id))
                .mappings()
                .first()
            )
        return None if row is None else _consent(row)

    def consents(self, persona_id: str | None = None) -> list[RegisteredConsent]:
        """Consent records in the order they were recorded; all, or one persona's."""
        query = select(consents).order_by(consents.c.recorded_at, consents.c.consent_id)
        if persona_id is not None:
            query = query.where(consents.c.persona_id == persona_id)
        with self._read() as conn:
            return [_consent(r) for r in conn.execute(query).mappings()]

    def revoke_consent(self, consent_id: str, reason: str, actor: str) -> RegisteredConsent:
        """Mark a consent revoked from now on; revoking it again changes nothing.

        The reason is kept with the record; the audit entry carries only its sha256.
        """
        if not reason.strip():
            raise InputError("--reason", ["the reason is empty; say why consent is revoked"])
        with self._write() as conn:
            row = (
                conn.execute(select(consents).where(consents.c.consent_id == consent_id))
                .mappings()
                .first()
            )
            if row is None:
                raise FaceloopError(
                    f"consent {consent_id!r} is not in the consent registry at "
                    f"{self._safe_url()}; `faceloop consent list` shows the recorded ones"
                )
            if row["revoked_at"] is None:
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id == consent_id)
                    .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
                )
        got = self.get_consent(consent_id)
        assert got is not None and got.revoked_at is not None
        self.audit(
            None,
            "consent.revoked",
            consent_id,
            actor,
            {
                "consent_id": consent_id,
                "persona_id": got.persona_id,
                "reason_sha256": hashlib.sha256((got.revoked_reason or "").encode()).hexdigest(),
            },
            key=f"consent.revoked:{consent_id}",
        )
        return got

    def consent_status(
        self,
        persona_id: str,
        markets: Sequence[str] = (),
        at: datetime | None = None,
        *,
        scope: str = "ads",
        consent_ref: str | None = None,
    ) -> ConsentStatus:
        """May the persona be used for `scope` in `markets` (empty: any) at `at` (default
        now)? See faceloop.consent.evaluate_consents for the rule."""
        records = self.consents(persona_id)
        if consent_ref is not None and all(r.consent_id != consent_ref for r in records):
            ref = self.get_consent(consent_ref)
            records += [ref] if ref is not None else []
        return evaluate_consents(
            records,
            persona_id,
            markets,
            _utc(at or datetime.now(UTC)),
            scope=scope,
            consent_ref=consent_ref,
        )

    def erase_consents(self, persona_id: str) -> list[str]:
        """Blank the subject's name on the persona's consent records and revoke the live
        ones; returns the ids erased now (none when run again)."""
        now = datetime.now(UTC)
        with self._write() as conn:
            ids = list(
                conn.execute(
                    select(consents.c.consent_id).where(
                        consents.c.persona_id == persona_id, consents.c.erased_at.is_(None)
                    )
                ).scalars()
            )
            if ids:
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id.in_(ids), consents.c.revoked_at.is_(None))
                    .values(revoked_at=now, revoked_reason="erased (GDPR Art. 17)")
                )
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id.in_(ids))
                    .values(subject="", erased_at=now)
                )
        return ids

    # ------------------------------------------------------------------ subject keys

    def subject_key(self, subject_id: str) -> bytes | None:
        """The subject's key; None if it never had one. SubjectErasedError once destroyed."""
        with self._read() as conn:
            row = conn.execute(
                select(subject_keys).where(subject_keys.c.subject_id == subject_id)
            ).first()
        if row is None:
            return None
        if row.destroyed_at is not None or row.key is None:
            raise _erased(subject_id, row.destroyed_at)
        return bytes(row.key)

    def create_subject_key(self, subject_id: str, key: bytes) -> bytes:
        """Keep `key` as the subject's key unless it has one; returns the key kept (so two
        racing creators agree). SubjectErasedError for an erased subject."""
        with self._write() as conn:
            conn.execute(
                self._insert(subject_keys)
                .values(subject_id=subject_id, key=key, created_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=["subject_id"])
            )
            row = conn.execute(
                select(subject_keys).where(subject_keys.c.subject_id == subject_id)
            ).one()
        if row.destroyed_at is not None or row.key is None:
            raise _erased(subject_id, row.destroyed_at)
        return bytes(row.key)

    def destroy_subject_key(self, subject_id: str) -> bool:
        """Crypto-shred: overwrite the subject's key with NULL and mark it destroyed; a subject
        without a key gets a destroyed marker, so its id cannot be reused either. True when
        a live key was destroyed now; False when there was none (or it already was)."""
        now = datetime.now(UTC)
        with self._write() as conn:
            done = conn.execute(
                update(subject_keys)
                .where(
                    subject_keys.c.subject_id == subject_id,
                    subject_keys.c.destroyed_at.is_(None),
                )
                .values(key=None, destroyed_at=now)
                .returning(subject_keys.c.subject_id)
            ).first()
            conn.execute(
                self._insert(subject_keys)
                .values(subject_id=subject_id, key=None, created_at=now, destroyed_at=now)
                .on_conflict_do_nothing(index_elements=["subject_id"])
            )
        return done is not None

    def subject_key_info(self, subject_id: str) -> SubjectKeyRow | None:
        with self._read() as conn:
            row = conn.execute(
                select(
                    subject_keys.c.subject_id,
                    subject_keys.c.created_at,
                    subject_keys.c.destroyed_at,
                ).where(subject_keys.c.subject_id == subject_id)
            ).first()
        return None if row is None else SubjectKeyRow(**row._asdict())

    # ------------------------------------------------------------------ exported copies

    def record_export(
        self, path: str | Path, kind: str, campaign_id: str, asset_id: str | None = None
    ) -> None:
        """Remember a copy written outside the asset store (a report thumbnail, a report)."""
        row = {
            "path": str(Path(path).resolve()),
            "kind": kind,
            "campaign_id": campaign_id,
            "asset_id": asset_id,
            "written_at": datetime.now(UTC),
        }
        with self._write() as conn:
            self._upsert(conn, exports, [row], ["path"])

    def exports(
        self, asset_ids: Sequence[str] = (), campaign_ids: Sequence[str] = ()
    ) -> list[ExportRow]:
        """Copies of these assets, and the reports (kind "report") of these campaigns."""
        where = exports.c.asset_id.in_(list(asset_ids)) | (
            (exports.c.kind == "report") & exports.c.campaign_id.in_(list(campaign_ids))
        )
        with self._read() as conn:
            rows = conn.execute(select(exports).where(where).order_by(exports.c.path)).mappings()
            return [ExportRow(**r) for r in rows]

    def forget_exports(self, paths: Sequence[str]) -> int:
        if not paths:
            return 0
        with self._write() as conn:
            gone = conn.execute(exports.delete().where(exports.c.path.in_(list(paths))))
            return int(gone.rowcount)

    # ------------------------------------------------------------------ erasure

    def campaigns_with_persona(self, persona_id: str) -> list[str]:
        """Campaigns whose brief uses the persona."""
        with self._read() as conn:
            rows = conn.execute(
                select(campaigns.c.campaign_id, campaigns.c.brief).order_by(campaigns.c.campaign_id)
            )
            return [
                r.campaign_id
                for r in rows
                if ((r.brief or {}).get("persona") or {}).get("persona_id") == persona_id
            ]

    def variant_ids_for_assets(self, asset_ids: Sequence[str]) -> list[str]:
        """Variants that carry one of the assets now, or were judged on it before signing."""
        ids = list(asset_ids)
        with self._read() as conn:
            now = conn.execute(
                select(variants.c.variant_id).where(variants.c.asset_id.in_(ids))
            ).scalars()
            judged = conn.execute(
                select(guardrail_checks.c.variant_id).where(guardrail_checks.c.asset_id.in_(ids))
            ).scalars()
            return sorted({*now, *judged})

    def asset_ids_of_variants(self, variant_ids: Sequence[str]) -> list[str]:
        """Every asset the variants carried: the generated one (judged by the guardrails)
        and the signed copy the sign stage wrote."""
        ids = list(variant_ids)
        with self._read() as conn:
            now = conn.execute(
                select(variants.c.asset_id).where(
                    variants.c.variant_id.in_(ids), variants.c.asset_id.is_not(None)
                )
            ).scalars()
            judged = conn.execute(
                select(guardrail_checks.c.asset_id).where(guardrail_checks.c.variant_id.in_(ids))
            ).scalars()
            return sorted({*now, *judged})

    def campaigns_of_variants(self, variant_ids: Sequence[str]) -> list[str]:
        with self._read() as conn:
            return sorted(
                set(
                    conn.execute(
                        select(variants.c.campaign_id).where(
                            variants.c.variant_id.in_(list(variant_ids))
                        )
                    ).scalars()
                )
            )

    def deployments_for_assets(self, asset_ids: Sequence[str]) -> list[DeploymentRow]:
        with self._read() as conn:
            rows = conn.execute(
                select(deployments)
                .where(deployments.c.asset_id.in_(list(asset_ids)))
                .order_by(deployments.c.id)
            ).mappings()
            return [_deployment(r) for r in rows]

    def tombstone_variants(self, variant_ids: Sequence[str]) -> list[str]:
        """Blank what may describe a person (prompts, decision reasons, the asset URI, the
        guardrail evidence) and mark the variants erased. Ids, asset hashes, parameters,
        verdicts and KPI counts stay for the audit trail. Returns the ids erased now."""
        now = datetime.now(UTC)
        with self._write() as conn:
            ids = list(
                conn.execute(
                    select(variants.c.variant_id).where(
                        variants.c.variant_id.in_(list(variant_ids)),
                        variants.c.erased_at.is_(None),
                    )
                ).scalars()
            )
            if ids:
                conn.execute(
                    update(variants)
                    .where(variants.c.variant_id.in_(ids))
                    .values(
                        prompt="",
                        negative_prompt="",
                        decision_reason="",
                        asset_uri=None,
                        live=False,
                        erased_at=now,
                        updated_at=now,
                    )
                )
                conn.execute(
                    update(guardrail_checks)
                    .where(guardrail_checks.c.variant_id.in_(ids))
                    .values(evidence={})
                )
        return ids

    def compact_after_erasure(self) -> str:
        """Make deleted rows unreadable on disk as far as the database allows; says what ran.

        SQLite: secure_delete (on for every connection) already zeroed the deleted content
        in the file; a TRUNCATE checkpoint copies the WAL into it and cuts the WAL to zero
        bytes, since old page images in the WAL would still hold it. PostgreSQL: deleted
        row versions stay in the table files until VACUUM; VACUUM FULL rewrites the small
        key and consent tables into new files, plain VACUUM frees the erased variants' old
        versions without locking the tables the campaigns write. VACUUM cannot run inside
        a transaction, hence the autocommit connection.
        """
        if self.dialect == "sqlite":
            if make_url(self.url).database in (None, "", ":memory:"):
                return "in-memory catalog: nothing on disk"
            raw = self._engine.raw_connection()
            try:
                for _ in range(50):
                    cur = raw.cursor()
                    busy = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                    cur.close()
                    if not busy:
                        return "WAL checkpointed into the database file and truncated to 0 bytes"
                    time.sleep(0.1)  # a reader holds an old snapshot; it ends soon
            finally:
                raw.close()
            raise FaceloopError(
                f"the catalog's WAL at {self._safe_url()} could not be truncated: readers kept "
                "it busy for 5 s; the erasure retries this step"
            )
        done = []
        with self._engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table, full in (
                ("subject_keys", True),
                ("consents", True),
                ("variants", False),
                ("guardrail_checks", False),
                ("exports", False),
            ):
                auto.execute(text(f"VACUUM {'FULL ' if full else ''}{table}"))
                done.append(f"VACUUM {'FULL ' if full else ''}{table}")
        return "; ".join(done)

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
            # deleted and overwritten content (destroyed subject keys, erased prompts) is
            # zeroed in the file, not left in free pages where a file scan would find it
            cur.execute("PRAGMA secure_delete=ON")
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
        report=report,
        decision=Decision(row["decision"]) if row["decision"] else None,
        decision_reason=row["decision_reason"],
        ad_id=row["ad_id"],
        impressions=row["impressions"],
        clicks=row["clicks"],
        conversions=row["conversions"],
        live=row["live"],
        erased_at=row["erased_at"],
    )


def _erased(subject_id: str, when: datetime | None) -> SubjectErasedError:
    day = f" on {when:%Y-%m-%d}" if when else ""
    return SubjectErasedError(
        f"subject erased: the key of {subject_id!r} was destroyed{day} (GDPR erasure), so "
        "nothing sealed under it can be read again; this is final"
    )


def _consent(row: RowMapping) -> RegisteredConsent:
    return RegisteredConsent(
        consent_id=row["consent_id"],
        persona_id=row["persona_id"],
        subject_name=row["subject"],
        scope=list(row["scope"]),
        markets=list(row["markets"]),
        expires=row["expires"],
        evidence_sha256=row["evidence_sha256"],
        recorded_at=row["recorded_at"],
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
        erased_at=row["erased_at"],
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


def _activity_audit_key(kind: str, subject: str) -> str | None:
    from temporalio import activity

    if not activity.in_activity():
        return None
    info = activity.info()
    # the activity id is stable across retries of one execution; the run id separates
    # continue-as-new runs that reuse activity ids
    return f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}/{kind}/{subject}"


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
