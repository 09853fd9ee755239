"""A whole campaign through the google_ads and the tiktok connector, each against its FAKE
platform served over real HTTP, on the real Temporal dev server: the worker builds the
connector from the settings (FACELOOP_GOOGLE_ADS__* / FACELOOP_TIKTOK__*) as in production,
and its tokens are in no event of the workflow's history, not in the catalog and in no log
record. With a spend cap, the spend the platform reports stops the campaign."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from temporalio.testing import WorkflowEnvironment
from test_meta_campaign import assert_not_logged, assert_secret_absent

from faceloop.briefs import load_brief_and_config
from faceloop.connectors.fakes.google_ads import GoogleAdsFake
from faceloop.connectors.fakes.tiktok import TikTokFake
from faceloop.models import Brief, CampaignConfig, CampaignState, Channel, Decision, SpendCap
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.workflows.client import submit
from faceloop.workflows.stack import free_port, port_open
from faceloop.workflows.worker import Resources, build_workers

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """A FAKE platform's ASGI app on a free local port, in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError("the FAKE platform did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def platform_settings(settings: Settings, name: str, url: str, fake: Any) -> Settings:
    if name == "google_ads":
        section: dict[str, Any] = {
            "google_ads": {
                "base_url": url,
                "customer_id": fake.customer_id,
                "developer_token": fake.developer_token,
                "access_token": fake.access_token,
            }
        }
    else:
        section = {
            "tiktok": {
                "base_url": url,
                "advertiser_id": fake.advertiser_id,
                "access_token": fake.access_token,
            }
        }
    return settings.model_copy(
        update={k: type(getattr(settings, k)).model_validate(v) for k, v in section.items()}
    )


async def run_on_platform(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    name: str,
    fake: Any,
    brief: Brief,
    config: CampaignConfig,
    cid: str,
) -> tuple[CampaignState, Settings]:
    """Run a campaign to its end with the workers on `name`'s FAKE server; returns its
    final state and the settings it ran under."""
    with serve(fake.app) as url:
        s = platform_settings(settings, name, url, fake)
        res = Resources.open(s)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for w in build_workers(temporal_env.client, res):
                    await stack.enter_async_context(w)
                handle = await submit(temporal_env.client, s, brief, config, campaign_id=cid)
                state = await asyncio.wait_for(handle.result(), timeout=240)
        finally:
            await res.aclose()
    return state, s


@pytest.mark.parametrize("name", ["google_ads", "tiktok"])
async def test_a_campaign_runs_through_the_platform(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake: GoogleAdsFake | TikTokFake = GoogleAdsFake() if name == "google_ads" else TikTokFake()
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    brief = brief.model_copy(update={"channels": [Channel(name)]})
    config = CampaignConfig.model_validate(
        {
            "rounds": 2,
            "variants_per_round": 3,
            "incumbents": 1,
            "kpi_window_seconds": 1.0,
            "connector": name,
        }
    )
    cid = f"platform-{name.replace('_', '-')}"
    state, s = await run_on_platform(temporal_env, settings, name, fake, brief, config, cid)
    assert state.stage == "done" and state.round == 1

    # the platform's credentials never entered Temporal or the catalog
    client = temporal_env.client
    run_ids = [wf.run_id async for wf in client.list_workflows(f"WorkflowId = '{cid}'")]
    histories = [await client.get_workflow_handle(cid, run_id=r).fetch_history() for r in run_ids]
    secrets = [fake.access_token] + (
        [fake.developer_token] if isinstance(fake, GoogleAdsFake) else []
    )
    for secret in secrets:
        assert_secret_absent(secret, histories, s.resolved_database_url)
        assert_not_logged(secret, caplog)

    catalog = Catalog(s.resolved_database_url)
    try:
        deployed = [v for v in catalog.variants(cid) if v.decision == Decision.deploy]
        assert deployed, "the guardrails blocked every generated face"
        ads = {v.ad_id for v in deployed}
        assert all(a and a.startswith("fl-") for a in ads)
        obs = catalog.observations(cid)
        assert {o.round for o in obs} == {0, 1}
        assert sum(o.impressions for o in obs) > 0
        assert {o.segment for o in obs} <= {seg.name for seg in brief.audience}
    finally:
        catalog.close()

    # on the platform's side: one ad per deployed asset and segment, never two
    assert fake.ledger.duplicates() == 0
    if isinstance(fake, GoogleAdsFake):
        names = [o["ad"]["name"] for rn, o in fake.objects.items() if "/adGroupAds/" in rn]
        assets = [o for rn, o in fake.objects.items() if "/assets/" in rn]
        assert all(
            a["syntheticContentInfo"]["advertiserAttestation"]["status"] == "IS_SYNTHETIC"
            for a in assets
        )
        descriptions = {
            o["ad"]["responsiveDisplayAd"]["descriptions"][0]["text"]
            for rn, o in fake.objects.items()
            if "/adGroupAds/" in rn
        }
    else:
        names = [a["ad_name"] for a in fake.ads.values()]
        assert all(a["aigc_disclosure_type"] == "SELF_DISCLOSURE" for a in fake.ads.values())
        descriptions = {a["ad_text"].split(" | ", 1)[1] for a in fake.ads.values()}
    assert Counter(names) == dict.fromkeys(ads, len(brief.audience))
    # the playbook's label for the brief's markets (DE, FR, NL) goes with every ad
    assert all("KI-generiertes Bild" in d and "Image générée par IA" in d for d in descriptions)


async def test_a_campaign_through_tiktok_stops_at_its_spend_cap(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    """The spend TikTok reports (the FAKE's `spend`) is what the cap counts: a cap below
    one round's ad spend, compute left out, sizes round 0 at TikTok's planning CPM and stops
    the campaign before round 1 with its ads paused on the platform."""
    fake = TikTokFake()
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    cap = SpendCap(amount=0.01, currency=settings.cost_currency, include_compute=False)
    brief = brief.model_copy(update={"channels": [Channel("tiktok")], "spend_cap": cap})
    config = CampaignConfig(
        rounds=3, variants_per_round=2, incumbents=1, kpi_window_seconds=1.0, connector="tiktok"
    )
    cid = "capped-tiktok"
    state, s = await run_on_platform(temporal_env, settings, "tiktok", fake, brief, config, cid)
    assert state.stage == "stopped" and state.round == 1, state.blocked_reason
    assert state.blocked_reason.startswith("spend cap reached: ad spend "), state.blocked_reason

    catalog = Catalog(s.resolved_database_url)
    try:
        row = catalog.get_campaign(cid)
        assert row is not None and row.status == "stopped"
        assert {v.round for v in catalog.variants(cid)} == {0}
        # the catalog's ad spend is what the FAKE platform billed for round 0's window
        spend = catalog.usage_totals(cid)["ad_spend"]
        assert spend == pytest.approx(fake.billed(cid)) and spend >= cap.amount
        ads = {v.ad_id for v in catalog.variants(cid) if v.ad_id}
        # round 0 was sized at TikTok's planning CPM (2.00 per 1,000): 0.01 buys 5
        (sized,) = [e for e in catalog.audit_entries(cid) if e.kind == "campaign.spend_cap_sized"]
        assert (sized.payload["round"], sized.payload["impressions"]) == (0, 5)
        assert sized.payload["price_from"] == "tiktok's planning CPM"
        # and TikTok billed the cap, not the 60,000 impressions (120.00) the round planned
        assert sum(o.impressions for o in catalog.observations(cid)) == 5
        assert spend == pytest.approx(cap.amount)
    finally:
        catalog.close()
    assert ads and {fake.ad_status(a) for a in ads} == {"paused"}
