"""`faceloop status` reconciles the catalog with Temporal: a campaign whose workflow was
terminated never records it, so the catalog alone would show it running forever."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from click.testing import Result
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from faceloop.cli import app
from faceloop.messages import CampaignInput
from faceloop.models import Brief, CampaignConfig
from faceloop.playbooks.schema import load_playbook
from faceloop.settings import get_settings
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign import CampaignWorkflow

pytestmark = [pytest.mark.slow]

BRIEF = Brief.model_validate(
    {
        "product": "Lumen",
        "message": "Sun care",
        "audience": [{"name": "all"}],
        "markets": ["DE"],
        "budget_impressions": 1000,
    }
)


async def test_a_terminated_campaign_shows_terminated_with_its_reason(
    temporal_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACELOOP_DATABASE_URL", raising=False)
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    target = temporal_env.client.service_client.config.target_host
    monkeypatch.setenv("FACELOOP_TEMPORAL_ADDRESS", target)
    q = uuid.uuid4().hex[:8]
    stopped, running = f"lumen-stopped-{q}", f"lumen-running-{q}"
    with Catalog(get_settings().resolved_database_url) as catalog:
        for cid in (stopped, running):
            catalog.upsert_campaign(cid, BRIEF, CampaignConfig(), "running")
    # no worker serves this queue: the workflows stay running until terminated
    for cid in (stopped, running):
        await temporal_env.client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(
                campaign_id=cid, brief=BRIEF, config=CampaignConfig(), playbook=load_playbook()
            ),
            id=cid,
            task_queue=f"nobody-{q}",
        )
    handle = temporal_env.client.get_workflow_handle(stopped)
    await handle.terminate(reason="stopped by the operator")

    # status runs its own event loop (asyncio.run), so not on this test's
    result = await asyncio.to_thread(runner_invoke, ["status", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["campaign_id"]: r for r in json.loads(result.stdout)}
    assert rows[stopped]["status"] == "terminated"
    assert rows[stopped]["reason"] == "stopped by the operator"
    assert rows[stopped]["checked_with_temporal"] is True
    assert rows[running]["status"] == "running"
    assert rows[running]["checked_with_temporal"] is True
    # and the catalog now records it
    with Catalog(get_settings().resolved_database_url) as catalog:
        row = catalog.get_campaign(stopped)
        assert row is not None and row.status == "terminated"

    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    table = await asyncio.to_thread(runner_invoke, ["status", stopped])
    assert "terminated: stopped by the operator" in table.output
    await temporal_env.client.get_workflow_handle(running).terminate(reason="test over")


def runner_invoke(args: list[str]) -> Result:
    return CliRunner().invoke(app, args)
