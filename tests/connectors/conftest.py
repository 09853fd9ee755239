"""Fixtures for the connector tests: scenarios, ad specs and sandbox connectors wired to an
in-process sandbox app (httpx's ASGI transport: real HTTP semantics, no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sandbox_helpers import SCENARIOS, ConnectorFactory

from faceloop.connectors.sandbox import SandboxConnector
from faceloop.connectors.sandbox_platform.app import create_app
from faceloop.connectors.sandbox_platform.scenario import Scenario, load_scenario


@pytest.fixture
def smooth() -> Scenario:
    return load_scenario(SCENARIOS / "smooth.yaml")


@pytest.fixture
async def connect() -> AsyncIterator[ConnectorFactory]:
    """connect(scenario, state_path=None) -> a SandboxConnector on a fresh in-process app;
    every connector and app made is closed after the test."""
    made: list[tuple[SandboxConnector, FastAPI]] = []

    def factory(scenario: Scenario, state_path: Path | None = None) -> SandboxConnector:
        app = create_app(scenario, state_path)
        conn = SandboxConnector("http://sandbox.test", transport=httpx.ASGITransport(app=app))
        made.append((conn, app))
        return conn

    yield factory
    for conn, app in made:
        await conn.aclose()
        app.state.store.close()
