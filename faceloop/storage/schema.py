"""The catalog's tables and how it connects to its database.

One SQLAlchemy Core schema serves the embedded SQLite file and PostgreSQL at scale; only
the URL differs. There are no foreign keys between the tables. Retried and parallel
activities land in any order (observations may arrive for a variant whose upsert is still
being retried), and a catalog that refuses a fact for ordering reasons loses it; reads
join by id.

`metadata` is the schema this code reads and writes. The database gets it through the
migrations in faceloop/storage/migrations, never through `create_all`: a change here needs
a new migration (docs/storage.md says how), and a test checks that the two agree.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict
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
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from faceloop.errors import FaceloopError
from faceloop.storage.files import private_file

__all__ = [
    "CatalogBase",
    "Row",
    "UtcDateTime",
    "audit_head",
    "audit_log",
    "campaign_owners",
    "campaigns",
    "connect",
    "consents",
    "console_sessions",
    "console_tokens",
    "console_users",
    "cost_usage",
    "deployments",
    "exports",
    "guardrail_checks",
    "kpi_observations",
    "metadata",
    "open_engine",
    "placement_exports",
    "safe_url",
    "subject_keys",
    "utc",
    "variants",
]

# seconds a SQLite writer waits for the file lock held by another process (worker vs CLI)
_SQLITE_BUSY_TIMEOUT_S = 30.0


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
        return utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return utc(value)


def utc(value: datetime) -> datetime:
    """The same instant in UTC; naive values are taken to be UTC already."""
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
    # what the image shows, measured from its pixels (generate stage): the perception
    # reading, requested vs measured per parameter, and how many images were made
    Column("measured", _Json),
    Column("fidelity", _Json),
    Column("tries", Integer),
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


# every asset file written for a variant (the generated image, each signed copy, each
# placement export), recorded before its bytes reach the store and never replaced: a retried
# sign or export writes new files under new ids and replaces the rows above, and an activity
# killed between the write and its record leaves a file no other row names. Erasure reads
# this table too, so neither kind of file outlives the subject (docs/privacy.md).
asset_writes = Table(
    "asset_writes",
    metadata,
    Column("asset_id", String, primary_key=True),
    Column("variant_id", String, primary_key=True),
    Column("campaign_id", String, nullable=False, index=True),
    Column("kind", String, nullable=False),
    Column("written_at", UtcDateTime, nullable=False),
)


# per-placement exports of signed creatives (guardrails/export.py): one row per variant,
# placement and media type; a refused export has no URI (it was never stored) and a reason
placement_exports = Table(
    "placement_exports",
    metadata,
    Column("variant_id", String, primary_key=True),
    Column("placement", String, primary_key=True),
    Column("media_type", String, primary_key=True),
    Column("campaign_id", String, nullable=False, index=True),
    Column("asset_id", String, nullable=False, index=True),
    Column("parent_asset_id", String, nullable=False),
    Column("uri", Text),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("quality", Integer, nullable=False),
    Column("fit", String, nullable=False),
    Column("face_in_safe_area", Boolean),
    Column("manifest_ok", Boolean, nullable=False),
    Column("watermark_bit_errors", Integer, nullable=False),
    Column("watermark_recall", Float, nullable=False),
    Column("refused", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

# --------------------------------------------------------------------------- the console
# People who log in to the web console and HTTP API (faceloop/console). The username is
# stored in its canonical form (workflows/review.py `canonical`), unique, because it is the
# identity the review board compares: submitter and reviewers must never collide by case.
console_users = Table(
    "console_users",
    metadata,
    Column("user_id", String, primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    # playbook escalation roles this person may vote as (e.g. ["compliance", "legal"])
    Column("review_roles", _Json, nullable=False),
    # argon2id, PHC string format (argon2-cffi)
    Column("password_hash", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),
)

# API tokens: only the SHA-256 of the random token is kept; the token is shown once
console_tokens = Table(
    "console_tokens",
    metadata,
    Column("token_id", String, primary_key=True),
    Column("user_id", String, nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
)

# server-side sessions: the cookie holds a random id, the table its SHA-256 and the
# session's CSRF token (synchronizer pattern)
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("session_sha256", String(64), primary_key=True),
    Column("user_id", String, nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# who submitted a campaign through the console or API: a marketer sees these campaigns only
campaign_owners = Table(
    "campaign_owners",
    metadata,
    Column("campaign_id", String, primary_key=True),
    Column("user_id", String, nullable=False, index=True),
    Column("submitted_at", UtcDateTime, nullable=False),
)

# --------------------------------------------------------------------------- cost
# What a campaign used, measured where it was used (faceloop/cost.py, docs/cost.md): one row
# per measurement, keyed so that a retried write replaces rather than adds (an activity
# attempt, an asset's content hash, a review subject, a KPI window). `ad_spend` rows hold
# the platform's cumulative spend through a window; every other resource is summed.
cost_usage = Table(
    "cost_usage",
    metadata,
    Column("campaign_id", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("resource", String, primary_key=True),
    Column("round", Integer, nullable=False),
    Column("amount", Float, nullable=False),
    Column("detail", String, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)


class Row(BaseModel):
    """A row as the catalog hands it out: a frozen copy, not a live record."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- engines


def open_engine(url: str) -> Engine:
    """An engine for a catalog URL, set up for the catalog's transactions (see
    `_sqlite_engine`); a FaceloopError names the fix for a URL it cannot serve."""
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise FaceloopError(
            f"catalog URL {url!r} is not a SQLAlchemy URL; use sqlite:///path/faceloop.db "
            "or postgresql+psycopg://user@host:5432/db"
        ) from err
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    raise FaceloopError(
        f"catalog URL {parsed.render_as_string(hide_password=True)!r} names backend "
        f"{backend!r}; the catalog supports sqlite and postgresql"
    )


def connect(engine: Engine, url: str) -> Connection:
    """A connection, or a FaceloopError that says where the catalog could not be opened and
    what to check."""
    try:
        return engine.connect()
    except OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        raise FaceloopError(
            f"cannot open the catalog at {safe_url(url)}: {reason}. Check that the database "
            "server runs and FACELOOP_DATABASE_URL points at it (unset: a SQLite file in the "
            "data dir)"
        ) from err


def safe_url(url: str) -> str:
    """The URL as messages show it: without the password."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_engine(url: str, database: str | None) -> Engine:
    memory = database is None or database in ("", ":memory:")
    if database is None or memory:
        # every connection to :memory: is a new empty database; share one connection
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        # a fresh data dir has no folder yet (sqlite would fail with "unable to open"); the
        # file holds every subject's key, so it is created owner-only before SQLite opens
        # it (its -wal and -shm files take the database file's mode)
        private_file(Path(database).expanduser(), private_parent=False)
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
                _set_wal(dbapi_conn)
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


def _set_wal(dbapi_conn: sqlite3.Connection) -> None:
    """Switch a SQLite connection's file to WAL. Connections that switch a fresh file at
    the same time race, and SQLite answers the loser "database is locked" at once, without
    waiting out the busy timeout; so the switch is retried, with backoff, for up to that
    timeout (a worker and the CLI starting on a new data dir both open the catalog)."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            dbapi_conn.execute("PRAGMA journal_mode=WAL").close()
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class CatalogBase:
    """The connection plumbing that every part of the catalog (campaigns, audit log,
    subject records) writes and reads through.

    Methods are synchronous and thread-safe; call them from activities via a thread.
    """

    # the stores a process opens on its own (Catalog, the console's UserStore) bring an empty
    # database to head and refuse an outdated one; the parts they are built from do not
    prepares_schema: ClassVar[bool] = False

    def __init__(self, url: str) -> None:
        self._engine = open_engine(url)
        self.url = url
        self.dialect = self._engine.dialect.name
        # on SQLite this option makes the begin hook take the write lock up front (see there)
        self._writer = self._engine.execution_options(faceloop_write=True)
        if self.prepares_schema:
            from faceloop.storage import migrations  # it imports this module

            try:
                migrations.prepare(self._engine, url)
            except BaseException:
                self._engine.dispose()
                raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

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

    def _safe_url(self) -> str:
        return safe_url(self.url)
