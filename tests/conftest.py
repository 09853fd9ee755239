"""Shared fixtures. `--skip-slow` leaves out the heavy tests locally; CI runs everything.

PostgreSQL tests run in a fresh schema per test (dropped afterwards), so repeated runs never
see each other's rows. CI has the server; if it cannot be reached the tests fail and say so,
rather than skip and pass unnoticed. Deselect them locally with `-m "not postgres"`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server for the tests: moto's server mode in a process of its own
    on a free port of 127.0.0.1 (the workers under test reach it over HTTP, as they would
    MinIO or AWS). Any access key is accepted."""
    import subprocess
    import sys
    import time

    from faceloop.workflows.stack import free_port, port_open

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"moto server did not start (is moto[server] installed?): {err}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def s3_settings(s3_endpoint: str) -> Any:
    """faceloop's S3Settings for the test server (moto takes any key pair)."""
    from faceloop.settings import S3Settings

    return S3Settings(
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id="faceloop-test",
        secret_access_key="faceloop-test-secret",
    )


@pytest.fixture(scope="session")
def s3_client(s3_settings: Any) -> Any:
    """A boto3 client of the test S3 server, for checks that must not go through the store
    under test."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_settings.endpoint_url,
        aws_access_key_id=s3_settings.access_key_id.get_secret_value(),
        aws_secret_access_key=s3_settings.secret_access_key.get_secret_value(),
        region_name=s3_settings.region,
    )


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A fresh, empty bucket on the test S3 server; its name."""
    name = f"faceloop-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name
