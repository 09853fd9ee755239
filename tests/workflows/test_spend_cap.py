"""Spend caps and measured cost on the real Temporal dev server and sandbox platform: a
campaign whose cap is below one round's spend stops before its second round with the
reason, its ads paused; a schedule with a cap pauses itself; the cost figures are the
catalog's measurements (docs/cost.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from faceloop.briefs import load_brief_and_config
from faceloop.connectors.sandbox import SandboxConnector
from faceloop.cost import Prices, campaign_cost
from faceloop.models import CampaignConfig, CampaignState, SpendCap
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.workflows import client as schedules
from faceloop.workflows.campaign import CampaignWorkflow
from faceloop.workflows.client import submit, write_report
from faceloop.workflows.worker import Resources, build_workers

ROOT = Path(__file__).resolve().parents[2]
# the sandbox scenario's price (smooth.yaml leaves the default): spend per 1,000 impressions
SANDBOX_CPM = 2.0

pytestmark = [pytest.mark.slow]


def _config(rounds: int) -> CampaignConfig:
    return CampaignConfig(rounds=rounds, variants_per_round=4, incumbents=1, kpi_window_seconds=1.0)


async def _ads(settings: Settings, campaign_id: str) -> dict[str, str]:
    conn = SandboxConnector(settings.resolved_sandbox_url)
    try:
        return {a.ad_id: a.status for a in await conn.list_ads(campaign_id)}
    finally:
        await conn.aclose()


def _stored_bytes(root: str) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


async def _replay(client: Client, cid: str) -> None:
    handle = client.get_workflow_handle(cid)
    replayer = Replayer(workflows=[CampaignWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await handle.fetch_history())


async def _run_capped(client: Client, settings: Settings, cap: SpendCap, cid: str) -> CampaignState:
    """The example brief under `cap`, 3 rounds, on fresh workers; its final state."""
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    brief = brief.model_copy(update={"spend_cap": cap})
    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(client, res):
                await stack.enter_async_context(w)
            handle = await submit(client, settings, brief, _config(3), campaign_id=cid)
            state: CampaignState = await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        await res.aclose()
    return state


async def test_campaign_stops_at_its_spend_cap_with_measured_cost(
    temporal_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    client = temporal_env.client
    # one round buys 180,000 / 3 impressions, 120 USD at the sandbox's CPM: far past 50
    cap = SpendCap(amount=50.0, currency="USD", include_compute=False)
    cid = "capped-lumen"
    state = await _run_capped(client, settings, cap, cid)

    # stopped before round 1 made or deployed anything, with the reason
    assert state.stage == "stopped" and state.round == 1, state.blocked_reason
    assert state.blocked_reason.startswith("spend cap reached: ad spend "), state.blocked_reason
    assert state.live == []

    catalog = Catalog(settings.resolved_database_url)
    try:
        row = catalog.get_campaign(cid)
        assert row is not None and row.status == "stopped"
        variants = catalog.variants(cid)
        assert {v.round for v in variants} == {0}
        entries = catalog.audit_entries(cid)
        kinds = Counter(e.kind for e in entries)
        assert kinds["campaign.spend_cap"] == 1 and kinds["campaign.stopped"] == 1
        # the ads still live at the cap were paused with its reason (others by learn)
        capped = [
            e
            for e in entries
            if e.kind == "ad.paused" and e.payload["reason"] == state.blocked_reason
        ]
        assert capped and all(e.actor == "workflow" for e in capped)

        # every ad of the campaign is paused at the platform
        ads = await _ads(settings, cid)
        assert ads and set(ads.values()) == {"paused"}, ads

        # the platform's spend: 2 USD per 1,000 impressions it delivered in round 0
        totals = catalog.usage_totals(cid)
        delivered = sum(o.impressions for o in catalog.observations(cid))
        assert delivered > 0
        assert totals["ad_spend"] == pytest.approx(delivered * SANDBOX_CPM / 1000)
        assert totals["ad_spend"] >= cap.amount

        # measured, not zero: the generator's time (CPU time on this GPU-less host), the
        # guardrails' CPU time, platform requests, and the bytes the asset store holds
        assert totals["gpu_seconds"] > 0 and totals["cpu_seconds"] > 0
        assert catalog.usage_details(cid, "gpu_seconds") == ["generator CPU time (no GPU)"]
        # ensure_campaign + an ad per deployed creative + the allocation + insights + pauses
        assert totals["api_calls"] >= len(ads) + 4
        # this test's asset store holds only this campaign's files, each counted once
        assert totals["storage_bytes"] == _stored_bytes(settings.resolved_asset_root)
        # escalations the playbook's 3 s SLA decided: each waited 3 s of workflow time
        decided = sum(n for k, n in kinds.items() if k in ("review.approve", "review.reject"))
        if decided:
            assert decided * 3 / 60 <= totals["review_minutes"] <= decided * 8 / 60
        else:
            assert "review_minutes" not in totals

        prices = Prices.from_settings(settings)
        cost = campaign_cost(catalog, cid, prices, cap)
        assert cost.cap_reached and cost.variants == len(variants) > 0
    finally:
        catalog.close()

    # report.json: the same figures, per 1,000 variants, and why the campaign stopped
    json_path, html_path = write_report(settings, cid, tmp_path / "out")
    report = json.loads(json_path.read_text())
    assert report["status"] == "stopped"
    got = report["cost"]
    assert got["stopped_reason"] == state.blocked_reason
    assert got["ad_spend"] == pytest.approx(totals["ad_spend"])
    lines = {line["resource"]: line for line in got["lines"]}
    for resource in ("gpu_seconds", "cpu_seconds", "storage_bytes", "api_calls"):
        assert lines[resource]["quantity"] == pytest.approx(totals[resource])
        assert lines[resource]["per_1k_variants"] == pytest.approx(
            totals[resource] * 1000 / len(variants)
        )
    assert lines["gpu_seconds"]["money"] == pytest.approx(
        totals["gpu_seconds"] / 3600 * settings.price_gpu_hour
    )
    html = html_path.read_text()
    assert "<h2>Cost</h2>" in html and "spend cap reached" in html

    await _replay(client, cid)


async def test_a_round_the_rest_of_the_cap_cannot_pay_for_is_sized_down_to_it(
    temporal_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    """Round 0 spends 120 USD of a 150 USD cap (60,000 impressions at 2 USD per 1,000);
    round 1 deploys the 15,000 impressions the other 30 USD buy at the price round 0 paid,
    not another 60,000 (240 USD in all); round 2 finds the cap reached."""
    cap = SpendCap(amount=150.0, currency="USD", include_compute=False)
    cid = "sized-lumen"
    state = await _run_capped(temporal_env.client, settings, cap, cid)
    await _replay(temporal_env.client, cid)

    assert state.stage == "stopped" and state.round == 2, state.blocked_reason
    assert state.blocked_reason.startswith("spend cap reached: ad spend 150.00 USD"), (
        state.blocked_reason
    )
    catalog = Catalog(settings.resolved_database_url)
    try:
        per_round = Counter[int]()
        for o in catalog.observations(cid):
            per_round[o.round] += o.impressions
        assert per_round == {0: 60_000, 1: 15_000}, per_round
        # the platform billed the cap, not a round past it
        assert catalog.usage_totals(cid)["ad_spend"] == pytest.approx(cap.amount)
        (sized,) = [e for e in catalog.audit_entries(cid) if e.kind == "campaign.spend_cap_sized"]
        assert sized.payload["round"] == 1
        assert sized.payload["planned_impressions"] == 60_000
        assert sized.payload["impressions"] == 15_000
        assert sized.payload["per_1000_impressions"] == pytest.approx(SANDBOX_CPM)
    finally:
        catalog.close()

    # the report says which round the cap sized, and to what
    json_path, html_path = write_report(settings, cid, tmp_path / "out")
    (row,) = json.loads(json_path.read_text())["cost"]["sized_rounds"]
    assert row == {
        "round": 1,
        "planned_impressions": 60_000,
        "impressions": 15_000,
        "per_1000_impressions": pytest.approx(SANDBOX_CPM),
        "price_from": "the campaign's own",
    }
    assert "Round 1 sized by the spend cap:</b>\n15,000 impressions instead of 60,000" in (
        html_path.read_text()
    )
    # the sandbox holds no limit of its own, and the report says so
    limit = json.loads(json_path.read_text())["cost"]["platform_limit"]
    assert limit["platform"] == "sandbox" and limit["held"] is False
    assert "nothing is spent while no worker runs" in limit["reason"]
    assert "Held by faceloop alone, not by sandbox:" in html_path.read_text()


async def test_schedule_with_a_spend_cap_pauses_itself(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = temporal_env.client
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    res = Resources.open(settings)
    catalog = Catalog(settings.resolved_database_url)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(client, res):
                await stack.enter_async_context(w)
            handle = await submit(
                client, settings, brief, _config(1), campaign_id="capped-schedule"
            )
            first = await asyncio.wait_for(handle.result(), timeout=120)
            cid = first.campaign_id
            assert first.stage == "done" and first.live
            spent = catalog.usage_totals(cid)["ad_spend"]
            assert spent > 0

            # the campaign already spent more than the schedule allows: its first firing
            # stops the campaign (ads paused) and pauses the schedule
            cap = SpendCap(amount=spent / 2, currency="USD")
            sid = await schedules.create_or_update_schedule(
                client, settings, cid, timedelta(seconds=2), spend_cap=cap
            )
            sched = client.get_schedule_handle(sid)
            row = None
            for _ in range(600):  # up to 60 s
                row = catalog.get_campaign(cid)
                desc = await sched.describe()
                if row is not None and row.status == "stopped" and desc.schedule.state.paused:
                    break
                await asyncio.sleep(0.1)
            assert row is not None and row.status == "stopped", row
            desc = await sched.describe()
            assert desc.schedule.state.paused
            assert (desc.schedule.state.note or "").startswith("schedule spend cap reached: ")
            fired = desc.info.num_actions
            await asyncio.sleep(5)  # two and a half intervals: no further run
            assert (await sched.describe()).info.num_actions == fired
            await schedules.delete_schedule(client, cid)

        kinds = Counter(e.kind for e in catalog.audit_entries(cid))
        assert kinds["schedule.spend_cap"] >= 1 and kinds["campaign.stopped"] == 1
        assert {v.round for v in catalog.variants(cid)} == {0}
        assert set((await _ads(settings, cid)).values()) == {"paused"}
    finally:
        catalog.close()
        await res.aclose()
