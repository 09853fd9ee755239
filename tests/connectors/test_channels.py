"""A brief's channels are honoured or refused at submit: a channel without a connector here
never falls back to the sandbox, and nothing reaches Temporal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faceloop.errors import InputError
from faceloop.models import Brief, CampaignConfig
from faceloop.settings import Settings
from faceloop.workflows.client import submit

BRIEF = {
    "product": "Lumen",
    "message": "Sun care",
    "audience": [{"name": "all"}],
    "markets": ["DE"],
    "budget_impressions": 1000,
}


class NoTemporal:
    """A client that fails the test if submit ever reaches it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"submit reached Temporal ({name}) for a refused brief")


async def test_a_channel_without_a_connector_is_refused_at_submit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceloop.connectors import registry

    # a deployment where only the sandbox is installed
    monkeypatch.setattr(registry, "connector_names", lambda: ["sandbox"])
    brief = Brief.model_validate({**BRIEF, "channels": ["meta"]})
    with pytest.raises(InputError) as err:
        await submit(NoTemporal(), Settings(home=tmp_path), brief, CampaignConfig())  # type: ignore[arg-type]
    assert any(p.startswith("channels.0: no 'meta' connector") for p in err.value.problems)


async def test_an_unconfigured_meta_channel_is_refused_naming_the_settings(
    tmp_path: Path,
) -> None:
    brief = Brief.model_validate({**BRIEF, "channels": ["meta"]})
    config = CampaignConfig(connector="meta")
    with pytest.raises(InputError) as err:
        await submit(NoTemporal(), Settings(home=tmp_path), brief, config)  # type: ignore[arg-type]
    (problem,) = err.value.problems
    assert problem.startswith("campaign.connector: 'meta' is not usable")
    assert "FACELOOP_META_ACCESS_TOKEN" in problem


async def test_a_channel_the_campaign_would_not_serve_is_refused(tmp_path: Path) -> None:
    brief = Brief.model_validate({**BRIEF, "channels": ["sandbox", "tiktok"]})
    with pytest.raises(InputError) as err:
        await submit(NoTemporal(), Settings(home=tmp_path), brief, CampaignConfig())  # type: ignore[arg-type]
    assert [p.split(":")[0] for p in err.value.problems] == ["channels.1"]


async def test_the_sandbox_channel_passes_the_check(tmp_path: Path) -> None:
    from faceloop.connectors.channels import check_channels

    brief = Brief.model_validate({**BRIEF, "channels": ["sandbox"]})
    await check_channels(brief, CampaignConfig(), Settings(home=tmp_path))
