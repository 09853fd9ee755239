"""Shared fixtures. `--skip-slow` leaves out the heavy tests locally; CI runs everything.

PostgreSQL tests run in a fresh schema per test (dropped afterwards), so repeated runs never
see each other's rows. CI has the server; if it cannot be reached the tests fail and say so,
rather than skip and pass unnoticed. Deselect them locally with `-m "not postgres"`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--skip-slow",
        action="store_true",
        default=False,
        help="skip tests marked slow (real Temporal campaigns, worker crash)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--skip-slow"):
        return
    skip = pytest.mark.skip(reason="slow test skipped with --skip-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


PG_URL_ENV = "FACELOOP_TEST_POSTGRES_URL"
# the default server of CI; root is what some local installs create instead of postgres
PG_DEFAULT_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


def _pg_base_url() -> str:
    candidates = (os.environ[PG_URL_ENV],) if os.environ.get(PG_URL_ENV) else PG_DEFAULT_URLS
    errors = []
    for url in candidates:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return url
        except sa.exc.OperationalError as err:
            errors.append(f"{url}: {str(err.orig).strip().splitlines()[0]}")
        finally:
            engine.dispose()
    pytest.fail(
        "PostgreSQL is not reachable for the catalog tests (tried "
        + "; ".join(errors)
        + f"). Start it, set {PG_URL_ENV} to its SQLAlchemy URL, "
        'or deselect these tests with -m "not postgres".',
        pytrace=False,
    )


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    return _pg_base_url()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    base = request.getfixturevalue("pg_base_url")
    schema = f"faceloop_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        # search_path puts the catalog's unqualified tables into the test's own schema
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
