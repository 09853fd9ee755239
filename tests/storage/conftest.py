"""Catalog fixtures: every catalog test runs on SQLite and on PostgreSQL.

PostgreSQL tests run in a fresh schema per test (dropped afterwards), so parallel and
repeated runs never see each other's rows. CI has the server; if it cannot be reached the
tests fail and say so, rather than skip and pass unnoticed. Deselect them locally with
`-m "not postgres"`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from faceloop.storage.catalog import Catalog


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = Catalog(catalog_url)
    try:
        yield cat
    finally:
        cat.close()


@pytest.fixture
def execute_sql(catalog_url: str) -> Callable[..., None]:
    """Run raw SQL in one transaction, outside the catalog: how tamper tests edit the log."""

    def run(*statements: str) -> None:
        engine = sa.create_engine(catalog_url)
        try:
            with engine.begin() as conn:
                for stmt in statements:
                    conn.exec_driver_sql(stmt)
        finally:
            engine.dispose()

    return run
