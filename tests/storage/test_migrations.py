"""Schema migrations: a fresh catalog is at head, the previous release's catalog upgrades with
every row intact (SQLite and PostgreSQL), an outdated or newer one is refused with the fix.

The release catalogs in fixtures/ were written by the catalog code of commit 18d3f89
(fixtures/make_release_catalog.py).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from faceloop.cli import app
from faceloop.consent import ConsentState
from faceloop.errors import FaceloopError, SubjectErasedError
from faceloop.storage import migrations
from faceloop.storage.catalog import Catalog
from faceloop.storage.schema import _set_wal, metadata

FIXTURES = Path(__file__).parent / "fixtures"
RELEASE_SQLITE = FIXTURES / "release_18d3f89.sqlite"
RELEASE_PG = FIXTURES / "release_18d3f89.postgresql.sql"
RELEASE_SCHEMA_NAME = "release_fixture"  # the schema the dump was taken from


def _pg_schema(url: str) -> str:
    # pg_url puts the scratch schema first on the search path: options=-csearch_path=<schema>
    return str(make_url(url).query["options"]).split("=", 1)[1]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def release_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A catalog the previous release wrote, with rows in every table."""
    if request.param == "sqlite":
        db = tmp_path / "release.db"
        shutil.copyfile(RELEASE_SQLITE, db)
        yield f"sqlite:///{db}"
        return
    url = request.getfixturevalue("pg_url")
    script = RELEASE_PG.read_text().replace(f"{RELEASE_SCHEMA_NAME}.", f"{_pg_schema(url)}.")
    engine = sa.create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            # the dump as pg_dump wrote it: many statements, no parameters
            raw.cursor().execute(script)
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
    yield url


def schema_drift(url: str) -> list[object]:
    """What alembic's autogenerate would change to make the database match schema.py."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"version_table": migrations.VERSION_TABLE, "compare_type": True}
            )
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- fresh catalogs


def test_a_fresh_catalog_is_at_head_and_matches_the_tables_in_code(catalog_url: str) -> None:
    assert migrations.current(catalog_url).kind == "empty"
    with Catalog(catalog_url) as catalog:
        # the head row comes from the migration: the first entry links to it
        assert catalog.audit(None, "k", "s", "a", {}).seq == 1
    found = migrations.current(catalog_url)
    assert (found.kind, found.current) == ("head", migrations.head())
    # schema.py and the revisions agree: a table changed in code needs a migration
    assert schema_drift(catalog_url) == []
    # opening it again writes nothing and finds the entry
    with Catalog(catalog_url) as catalog:
        assert [e.seq for e in catalog.audit_entries()] == [1]
        assert catalog.verify_audit() == []


def _together(target: Callable[[], None], n: int) -> None:
    """`target` on n threads at once; returns when all have ended."""
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_workers_creating_the_same_catalog_at_once_create_it_once(catalog_url: str) -> None:
    errors: list[BaseException] = []

    def open_catalog() -> None:
        try:
            Catalog(catalog_url).close()
        except BaseException as exc:
            errors.append(exc)

    _together(open_catalog, 4)
    assert errors == []
    with Catalog(catalog_url) as catalog:
        assert catalog.verify_audit() == []


def test_connections_switching_a_fresh_sqlite_file_to_wal_at_once_all_succeed(
    tmp_path: Path,
) -> None:
    """The first connections to a new SQLite file each switch it to WAL. SQLite answers a
    switch that races another with "database is locked" at once, without waiting out the
    busy timeout, so a worker and a CLI starting on a fresh data dir could fail to open the
    catalog (seen once in `make test`, through the test above). Eight connections, opened
    and then switched together at a barrier, on 60 fresh files: without the retry about a
    fifth of such races failed."""
    failures: list[str] = []
    for i in range(60):
        path = tmp_path / f"race{i}.db"
        barrier = threading.Barrier(8)

        def switch(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
            conn.isolation_level = None
            try:
                barrier.wait()
                _set_wal(conn)
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    failures.append(f"journal_mode {mode}")
            except sqlite3.Error as exc:
                failures.append(repr(exc))
            finally:
                conn.close()

        _together(switch, 8)
    assert failures == []


# --------------------------------------------------------------------------- the release


def test_the_release_catalog_is_refused_until_upgraded(release_url: str) -> None:
    assert migrations.current(release_url).kind == "release"
    with pytest.raises(FaceloopError, match=r"no version stamp.*run `faceloop db upgrade`"):
        Catalog(release_url)
    # refusing changed nothing
    assert migrations.current(release_url).kind == "release"


def test_the_release_catalog_upgrades_with_every_row_found(release_url: str) -> None:
    before, after = migrations.upgrade(release_url)
    assert (before.kind, after.kind, after.current) == ("release", "head", migrations.head())
    # the release's create_all and the migrations built the same schema
    assert schema_drift(release_url) == []
    with Catalog(release_url) as catalog:
        (campaign,) = catalog.list_campaigns()
        assert (campaign.campaign_id, campaign.status, campaign.round) == (
            "cmp-rel",
            "observing",
            1,
        )
        assert campaign.brief.persona is not None and campaign.brief.persona.persona_id == "ada"
        assert campaign.config.variants_per_round == 4

        v1, v2, v3 = catalog.variants("cmp-rel")
        assert [v.variant_id for v in (v1, v2, v3)] == [
            "cmp-rel-r0-v1",
            "cmp-rel-r0-v2",
            "cmp-rel-r1-v3",
        ]
        assert v1.report is not None and [c.name for c in v1.report.checks] == ["safety", "bias"]
        assert v1.report.checks[1].evidence == {"tones": [1]}
        assert (v2.prompt, v2.impressions, v2.live) == ("portrait 2, soft light", 2000, True)
        assert v3.erased_at is not None and v3.prompt == "" and v3.asset is not None
        assert v3.report is not None and v3.report.checks[0].evidence == {}

        deployments = catalog.deployments("cmp-rel")
        assert [(d.variant_id, d.ad_id) for d in deployments] == [
            ("cmp-rel-r0-v1", "ad-1"),
            ("cmp-rel-r0-v2", "ad-2"),
        ]
        assert v1.asset is not None
        assert catalog.deployments_for_assets([v1.asset.asset_id]) == deployments[:1]

        obs = catalog.observations("cmp-rel")
        assert len(obs) == 4
        assert {(o.variant_id, o.segment): o.negative_feedback for o in obs} == {
            ("cmp-rel-r0-v1", "established"): None,
            ("cmp-rel-r0-v1", "young_urban"): 1,
            ("cmp-rel-r0-v2", "established"): None,
            ("cmp-rel-r0-v2", "young_urban"): 2,
        }
        assert catalog.observations_frame("cmp-rel").height == 4

        entries = catalog.audit_entries()
        assert [e.kind for e in entries] == [
            "consent.recorded",
            "consent.recorded",
            "consent.revoked",
            "campaign.submitted",
            "variant.deployed",
            "variant.deployed",
            "variant.erased",
        ]
        assert catalog.verify_audit() == []
        # the chain goes on from the release's head, and an old idempotency key still holds
        assert catalog.audit(None, "after.upgrade", "s", "ops", {}).seq == len(entries) + 1
        assert catalog.audit(None, "variant.erased", "x", "dpo", {}, key="erase:v3").seq == 7
        assert catalog.verify_audit() == []

        ada = catalog.get_consent("c-ada")
        bob = catalog.get_consent("c-bob")
        assert ada is not None and ada.subject_name == "Ada Example" and ada.revoked_at is None
        assert bob is not None and bob.revoked_reason == "withdrawn by e-mail"
        status = catalog.consent_status("ada", ["DE"], dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
        assert status.state is ConsentState.valid
        assert catalog.campaigns_with_persona("ada") == ["cmp-rel"]

        assert catalog.subject_key("ada") == bytes(range(32))
        with pytest.raises(SubjectErasedError):
            catalog.subject_key("carol")
        carol = catalog.subject_key_info("carol")
        assert carol is not None and carol.destroyed_at is not None

        exports = catalog.exports([v1.asset.asset_id], ["cmp-rel"])
        assert [(e.kind, Path(e.path).name) for e in exports] == [
            ("report", "report.html"),
            ("thumbnail", "thumb-1.png"),
        ]
        trace = catalog.trace(v1.asset.asset_id)
        assert trace["variant_id"] == "cmp-rel-r0-v1"
        assert [a["kind"] for a in trace["audit"]] == ["variant.deployed"]

    # again: nothing to do
    before, after = migrations.upgrade(release_url)
    assert before.kind == after.kind == "head"


def test_a_catalog_from_before_the_release_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "older.db"
    shutil.copyfile(RELEASE_SQLITE, db)
    con = sqlite3.connect(db)
    # development builds before the release had no tombstones (the release added them in place)
    con.execute("ALTER TABLE variants DROP COLUMN erased_at")
    con.commit()
    con.close()
    url = f"sqlite:///{db}"
    with pytest.raises(FaceloopError, match=r"lacks variants\.erased_at.*nothing was changed"):
        migrations.upgrade(url)
    assert migrations.current(url).kind == "release"


# --------------------------------------------------------------------------- other revisions


def test_a_catalog_written_by_a_newer_faceloop_is_refused(catalog_url: str) -> None:
    Catalog(catalog_url).close()
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'f00d'"))
    engine.dispose()
    with pytest.raises(FaceloopError, match=r"revision f00d, which this faceloop does not know"):
        Catalog(catalog_url)
    with pytest.raises(FaceloopError, match="a newer faceloop wrote it"):
        migrations.upgrade(catalog_url)


# the revision after this faceloop's head, whatever that is
NEXT_REVISION = '''
"""A column for the test."""
import sqlalchemy as sa
from alembic import op

revision = "0999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exports", sa.Column("note", sa.Text))


def downgrade() -> None:
    op.drop_column("exports", "note")
'''


def test_a_catalog_behind_head_is_refused_and_upgrade_runs_the_new_revision(
    catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Catalog(catalog_url) as catalog:
        catalog.record_export(tmp_path / "r.html", "report", "cmp-1")
    # this faceloop, one release later: the shipped revisions plus 0999 after their head
    scripts = tmp_path / "migrations"
    shutil.copytree(Path(migrations.__file__).parent / "versions", scripts / "versions")
    shipped = migrations.head()
    (scripts / "versions" / "0999_note.py").write_text(NEXT_REVISION.replace("{head}", shipped))
    monkeypatch.setattr(migrations, "_script", lambda: ScriptDirectory(str(scripts)))

    with pytest.raises(
        FaceloopError,
        match=rf"revision {shipped} \(behind\); this faceloop needs 0999: run `faceloop db",
    ):
        Catalog(catalog_url)
    before, after = migrations.upgrade(catalog_url)
    assert (before.current, after.current, after.kind) == (shipped, "0999", "head")
    with Catalog(catalog_url) as catalog:
        assert [e.kind for e in catalog.exports(campaign_ids=["cmp-1"])] == ["report"]
    engine = sa.create_engine(catalog_url)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("exports")}
    finally:
        engine.dispose()
    assert "note" in columns


# --------------------------------------------------------------------------- the CLI

runner = CliRunner()


def test_faceloop_db_current_and_upgrade_on_the_release_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "release.db"
    shutil.copyfile(RELEASE_SQLITE, db)
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACELOOP_DATABASE_URL", f"sqlite:///{db}")

    outdated = runner.invoke(app, ["db", "current"])
    assert outdated.exit_code == 1, outdated.output
    assert "revision 0001 (made by the first release, no version stamp)" in outdated.output
    assert "run `faceloop db upgrade`" in outdated.output
    refused = runner.invoke(app, ["audit", "verify"])
    assert refused.exit_code == 2 and "faceloop db upgrade" in refused.output

    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert (
        f"upgraded: 0001 (made by the first release, no version stamp) -> {migrations.head()}"
        in (upgraded.output)
    )
    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0 and "nothing to do" in again.output
    now = runner.invoke(app, ["db", "current", "--json"])
    assert now.exit_code == 0, now.output
    assert json.loads(now.output)["state"] == "head"
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0 and "audit log intact: 7 entries" in verified.output


def test_db_upgrade_on_an_unreachable_database_says_what_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACELOOP_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/test")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "cannot open the catalog at postgresql+psycopg://postgres@127.0.0.1:1/test" in (
        result.output
    )


@pytest.mark.parametrize("command", ["up", "demo", "worker"])
def test_the_stack_commands_upgrade_the_catalog_before_they_start(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faceloop.cli.campaigns as campaigns

    db = tmp_path / "release.db"
    shutil.copyfile(RELEASE_SQLITE, db)
    url = f"sqlite:///{db}"
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACELOOP_DATABASE_URL", url)
    monkeypatch.setenv("FACELOOP_TEMPORAL_ADDRESS", "127.0.0.1:1")  # `worker` needs one
    started: list[object] = []

    def run_nothing(coro: Coroutine[Any, Any, object]) -> None:
        # the stack itself is not started here: tests/test_demo.py runs it
        started.append(coro)
        coro.close()

    monkeypatch.setattr(campaigns, "run", run_nothing)
    result = runner.invoke(app, [command])
    assert result.exit_code == 0, result.output
    assert "upgraded: 0001 (made by the first release, no version stamp)" in result.output
    assert len(started) == 1
    assert migrations.current(url).kind == "head"
