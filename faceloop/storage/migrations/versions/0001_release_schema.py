"""The schema of the first release (commit 18d3f89), which kept no schema version.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

That release created its tables with `metadata.create_all` on every open. RELEASE_SCHEMA is
a frozen copy of that metadata and is created the same way, so a new catalog and one the
release made have the same tables, columns, indexes and constraint names; a catalog the
release made is stamped at this revision instead of running it (faceloop.storage.migrations).
It also writes the audit head row, which the release wrote on every open.

Frozen: never edit this file to change the schema; add a revision (docs/storage.md).
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# the release's UtcDateTime and JSON types, as the DDL sees them
UtcDateTime = DateTime(timezone=True)
_Json = JSON().with_variant(JSONB(), "postgresql")

RELEASE_SCHEMA = MetaData()
campaigns = Table(
    "campaigns",
    RELEASE_SCHEMA,
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
    RELEASE_SCHEMA,
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
    RELEASE_SCHEMA,
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
    RELEASE_SCHEMA,
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
    RELEASE_SCHEMA,
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
    RELEASE_SCHEMA,
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
    RELEASE_SCHEMA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

Index("ix_variants_campaign_round", variants.c.campaign_id, variants.c.round)

# consent records of personas (faceloop/consent.py); immutable once recorded, except for
# revocation and, at erasure, blanking the subject's name
consents = Table(
    "consents",
    RELEASE_SCHEMA,
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
    RELEASE_SCHEMA,
    Column("subject_id", String, primary_key=True),
    Column("key", LargeBinary),
    Column("created_at", UtcDateTime, nullable=False),
    Column("destroyed_at", UtcDateTime),
)

# copies of assets written outside the asset store (report thumbnails, report files), so
# that erasure can find them again
exports = Table(
    "exports",
    RELEASE_SCHEMA,
    Column("path", Text, primary_key=True),
    Column("kind", String, nullable=False),
    Column("campaign_id", String, nullable=False, index=True),
    Column("asset_id", String, index=True),
    Column("written_at", UtcDateTime, nullable=False),
)


def upgrade() -> None:
    # checkfirst=False: a table already there means this is not an empty database, and the
    # migration must fail rather than adopt it half-made
    RELEASE_SCHEMA.create_all(op.get_bind(), checkfirst=False)
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    RELEASE_SCHEMA.drop_all(op.get_bind(), checkfirst=False)
