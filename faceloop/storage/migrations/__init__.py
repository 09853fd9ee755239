"""The catalog's schema versions, with Alembic.

versions/ holds one file per revision. Revision 0001 is the schema of the first release
(commit 18d3f89), which created its tables without keeping a version; a catalog that has
the tables but no version is that release's, and is stamped at 0001 before it is upgraded.
The revision a catalog is at lives in its own table, `catalog_alembic_version`: on
PostgreSQL the catalog shares its database with Optuna, whose tables keep their Alembic
version in `alembic_version`.

Who migrates:
- `Catalog(url)` on an empty database runs every revision. On a catalog behind head it
  refuses, naming `faceloop db upgrade`: changing the schema of a catalog in use is an
  operator's step (with a backup at hand), not a side effect of `faceloop status`.
- `upgrade(url)`: `faceloop db upgrade`, and `faceloop up`/`demo`/`worker`, which run
  the stack that owns the catalog.
Both migrate inside one transaction holding PostgreSQL's advisory lock (SQLite: the write
lock), so workers starting together migrate once and a failed upgrade leaves nothing behind.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

from faceloop.errors import FaceloopError
from faceloop.storage.schema import connect, metadata, open_engine, safe_url

__all__ = [
    "BASELINE",
    "VERSION_TABLE",
    "SchemaState",
    "current",
    "head",
    "prepare",
    "state",
    "upgrade",
]

VERSION_TABLE = "catalog_alembic_version"
# the release schema: what a catalog without a version was made with
BASELINE = "0001"

# any constant works; it only has to be the same in every process migrating the catalog
_PG_SCHEMA_LOCK_KEY = 0x6661_6365_6C6F_6F70 & 0x7FFF_FFFF_FFFF_FFFF  # "faceloop"

UPGRADE_HINT = (
    "run `faceloop db upgrade` (back the database up first; `faceloop up`, `faceloop demo` "
    "and `faceloop worker` upgrade on their own)"
)

Kind = Literal["empty", "release", "behind", "head", "newer"]


@dataclass(frozen=True)
class SchemaState:
    """Where a catalog's schema stands.

    kind: `empty` (no catalog tables yet), `release` (the first release's tables, no
    version), `behind` (an older revision), `head`, or `newer` (a revision this faceloop
    does not know: a newer faceloop wrote it).
    """

    kind: Kind
    current: str | None
    head: str

    def describe(self) -> str:
        return {
            "empty": "empty (no catalog yet)",
            "release": f"{BASELINE} (made by the first release, no version stamp)",
            "behind": f"{self.current} (behind)",
            "head": f"{self.current} (head)",
            "newer": f"{self.current} (unknown to this faceloop: written by a newer one)",
        }[self.kind]


@functools.cache
def _script() -> ScriptDirectory:
    # read once per process: a fresh catalog in every test must not re-read versions/
    return ScriptDirectory.from_config(_config())


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    return cfg


def _migrate(conn: Connection, to: str, *, stamp: bool = False) -> None:
    """Run the revisions up to `to` on `conn`, inside its transaction (stamp: only record
    `to` as the version). What alembic's upgrade and stamp commands do, without an env.py:
    the connection and its transaction (holding the schema lock) come from the caller."""
    script = _script()

    def steps(rev: Any, _context: Any) -> Any:
        return script._stamp_revs(to, rev) if stamp else script._upgrade_revs(to, rev)

    with EnvironmentContext(_config(), script, fn=steps, destination_rev=to) as env:
        env.configure(connection=conn, version_table=VERSION_TABLE)
        env.run_migrations()


def head() -> str:
    rev = _script().get_current_head()
    assert rev is not None  # versions/ ships with the package
    return rev


def state(conn: Connection) -> SchemaState:
    tables = set(inspect(conn).get_table_names())
    top = head()
    if VERSION_TABLE in tables:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        rev = ctx.get_current_revision()
        if rev == top:
            return SchemaState("head", rev, top)
        if rev is not None:
            known = {s.revision for s in _script().walk_revisions()}
            return SchemaState("behind" if rev in known else "newer", rev, top)
    if tables & set(metadata.tables):
        return SchemaState("release", None, top)
    return SchemaState("empty", None, top)


def prepare(engine: Engine, url: str) -> None:
    """Make the catalog usable by this code: create the schema on an empty database;
    refuse, saying what to run, a catalog at any other revision than head."""
    with connect(engine, url) as conn:
        found = state(conn)
    if found.kind == "head":
        return
    if found.kind == "empty":
        with _locked(engine, url) as conn:
            # another process may have created it while this one waited for the lock
            found = state(conn)
            if found.kind == "empty":
                _migrate(conn, "head")
                return
    if found.kind != "head":
        raise _outdated(found, url)


def upgrade(url: str) -> tuple[SchemaState, SchemaState]:
    """Bring the catalog at `url` to head (creating it if empty); returns the state before
    and after. A catalog made by a newer faceloop is refused."""
    engine = open_engine(url)
    try:
        with _locked(engine, url) as conn:
            before = state(conn)
            if before.kind == "newer":
                raise _outdated(before, url)
            if before.kind == "release":
                _check_release_tables(conn, url)
                _migrate(conn, BASELINE, stamp=True)
            if before.kind != "head":
                _migrate(conn, "head")
            after = state(conn)
    finally:
        engine.dispose()
    return before, after


def current(url: str) -> SchemaState:
    """Where the catalog at `url` stands, without changing it."""
    engine = open_engine(url)
    try:
        with connect(engine, url) as conn:
            return state(conn)
    finally:
        engine.dispose()


@contextmanager
def _locked(engine: Engine, url: str) -> Iterator[Connection]:
    with connect(engine, url) as conn:
        # on SQLite this option makes the transaction take the write lock at BEGIN (schema.py)
        conn.execution_options(faceloop_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # concurrent CREATE TABLE of the same name fails in PostgreSQL; the worker and
                # the CLI may both start on an empty database
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK_KEY})
            yield conn


def _check_release_tables(conn: Connection, url: str) -> None:
    """A catalog without a version is taken to be the release's; stamping it at the
    baseline is only right if it has every table and column the baseline creates."""
    release = _script().get_revision(BASELINE)
    assert release is not None
    schema: MetaData = release.module.RELEASE_SCHEMA
    insp = inspect(conn)
    have = set(insp.get_table_names())
    missing = []
    for table in schema.sorted_tables:
        if table.name not in have:
            missing.append(table.name)
            continue
        columns = {c["name"] for c in insp.get_columns(table.name)}
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in columns]
    if missing:
        raise FaceloopError(
            f"the catalog at {safe_url(url)} has no schema version and is not the first "
            f"release's schema either: it lacks {', '.join(missing)}. It was made by a "
            "faceloop older than that release (open it once with that release, which adds "
            "them) or it is not a faceloop catalog; nothing was changed"
        )


def _outdated(found: SchemaState, url: str) -> FaceloopError:
    where = f"the catalog at {safe_url(url)}"
    if found.kind == "newer":
        return FaceloopError(
            f"{where} is at schema revision {found.current}, which this faceloop does not "
            f"know (its newest is {found.head}): a newer faceloop wrote it. Upgrade faceloop, "
            "or point FACELOOP_DATABASE_URL at another catalog"
        )
    return FaceloopError(
        f"{where} is at schema revision {found.describe()}; this faceloop needs "
        f"{found.head}: {UPGRADE_HINT}"
    )
