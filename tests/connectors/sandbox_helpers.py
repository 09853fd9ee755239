"""Helpers shared by the connector tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from faceloop.connectors.base import AdSpec
from faceloop.connectors.sandbox import SandboxConnector
from faceloop.connectors.sandbox_platform.scenario import Scenario
from faceloop.models import FaceParams

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def make_scenario(**overrides: Any) -> Scenario:
    """A small scenario with large rates, so few impressions give clear numbers."""
    data: dict[str, Any] = {
        "name": "test",
        "seed": 7,
        "base_ctr": 0.2,
        "base_cvr": 0.3,
        "effects": {"ctr": {"expression": {"smile": 0.5, "serious": -0.5}}},
    }
    data.update(overrides)
    return Scenario.model_validate(data)


def spec(campaign_id: str, n: int, **params: Any) -> AdSpec:
    return AdSpec(
        campaign_id=campaign_id,
        variant_id=f"v{n}",
        asset_id=f"asset-{n:04d}",
        creative_uri=f"file:///assets/asset-{n:04d}.png",
        params=FaceParams(**params),
        headline="Try it today",
        disclosure="AI-generated image",
    )


# connect(scenario, state_path=None) -> SandboxConnector; the `connect` fixture's type
ConnectorFactory = Callable[..., SandboxConnector]
