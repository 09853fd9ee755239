"""The platform holds the spend cap too (`AdConnector.set_spend_limit`): on Meta the brief's
cap becomes the campaign's `spend_cap`, so delivery stops there while no faceloop worker
runs and the ad sets' daily budgets would go on spending every day. Counted on the FAKE
Graph API's side (`MetaFake.billed`); the other connectors say why they hold nothing; the
deploy activity writes what the platform holds, or why not, to the audit log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from platforms import PLATFORMS, Platform
from temporalio.testing import ActivityEnvironment

from faceloop.connectors.activities import ConnectorActivities
from faceloop.connectors.base import AdConnector
from faceloop.connectors.fakes.meta import MetaFake, connector_for
from faceloop.connectors.http_base import VirtualClock
from faceloop.errors import ConnectorError, SpendLimitUnsupportedError
from faceloop.messages import DeployInput
from faceloop.models import Brief, CampaignConfig, SpendCap
from faceloop.storage.catalog import Catalog
from faceloop.testing.connectors import SEGMENTS, ad_spec

# 2.00 USD per 1,000 impressions; 100,000 impressions a day is 200 USD a day
CPM_MINOR = 200
PER_DAY = 100_000


async def _worker_down_for_days(conn: AdConnector, limit: float | None, days: int) -> None:
    """Day 0 allocated at 200 USD, then faceloop is gone: its next call asks for the
    insights of day `days`, and every day in between spent the last daily budgets."""
    await conn.ensure_campaign("c1", SEGMENTS)
    if limit is not None:
        await conn.set_spend_limit("c1", limit, "USD")
    a = await conn.deploy(ad_spec("c1", 0))
    b = await conn.deploy(ad_spec("c1", 1))
    await conn.set_allocation("c1", 0, {a.ad_id: PER_DAY // 2, b.ad_id: PER_DAY // 2})
    await conn.insights("c1", days)


async def test_meta_stops_a_campaign_at_its_spend_cap_while_no_worker_runs() -> None:
    capped = MetaFake(clock=VirtualClock(), cpm_minor=CPM_MINOR)
    async with connector_for(capped) as conn:
        await _worker_down_for_days(conn, 150.0, days=5)
    free = MetaFake(clock=VirtualClock(), cpm_minor=CPM_MINOR)
    async with connector_for(free) as conn:
        await _worker_down_for_days(conn, None, days=5)
    # six days at 200 USD without the limit; with it, Meta stops at 150.00
    assert free.billed("c1") == pytest.approx(1200.0)
    assert 149.99 <= capped.billed("c1") <= 150.0


async def test_meta_spend_cap_is_set_once_and_moved_when_the_cap_moves() -> None:
    fake = MetaFake(clock=VirtualClock(), cpm_minor=CPM_MINOR)
    async with connector_for(fake) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        held = await conn.set_spend_limit("c1", 150.0, "USD")
        assert held == "campaign spend_cap 15000 (150.00 USD)"
        writes = fake.ledger.writes
        assert await conn.set_spend_limit("c1", 150.0, "USD") == held
        assert fake.ledger.writes == writes  # already held: nothing written
        # rounded down, never above the cap
        assert await conn.set_spend_limit("c1", 250.999, "USD") == (
            "campaign spend_cap 25099 (250.99 USD)"
        )
        (camp,) = [o for o in fake.objects.values() if o["kind"] == "campaigns"]
        assert camp["spend_cap"] == "25099"


async def test_meta_refuses_a_cap_below_its_minimum_for_good() -> None:
    fake = MetaFake(clock=VirtualClock(), cpm_minor=CPM_MINOR)
    async with connector_for(fake) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        with pytest.raises(ConnectorError, match=r"spend cap must be at least 100") as err:
            await conn.set_spend_limit("c1", 50.0, "USD")
    assert err.value.final


@pytest.mark.parametrize("platform", PLATFORMS, ids=[p.name for p in PLATFORMS])
async def test_connectors_without_a_limit_say_why(platform: Platform) -> None:
    conn = platform.connect(platform.fake())
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        with pytest.raises(SpendLimitUnsupportedError, match=r"keeps spending|nothing is spent"):
            await conn.set_spend_limit("c1", 150.0, "USD")
    finally:
        await conn.aclose()


async def test_the_deploy_activity_audits_what_the_platform_holds(tmp_path: Path) -> None:
    fake = MetaFake(clock=VirtualClock(), cpm_minor=CPM_MINOR)
    catalog = Catalog(f"sqlite:///{tmp_path / 'faceloop.db'}")
    brief = Brief(
        product="Lumen",
        message="Light that follows you",
        audience=SEGMENTS,
        markets=["DE"],
        budget_impressions=10_000,
    )
    try:
        async with connector_for(fake) as conn:
            acts = ConnectorActivities(lambda name: conn, catalog, gate=None)  # type: ignore[arg-type]
            for amount in (150.0, 150.0, 50.0):
                capped = brief.model_copy(
                    update={"spend_cap": SpendCap(amount=amount, currency="USD")}
                )
                await ActivityEnvironment().run(
                    acts.deploy,
                    DeployInput(
                        campaign_id="c1",
                        round=0,
                        brief=capped,
                        config=CampaignConfig(connector="meta"),
                        live=[],
                        impressions=1000,
                    ),
                )
        entries = [
            e for e in catalog.audit_entries("c1") if e.kind == "campaign.platform_spend_limit"
        ]
        # once per outcome: the 150 USD limit held (asked twice, written once), 50 refused
        assert [(e.payload["amount"], e.payload["held"]) for e in entries] == [
            (150.0, True),
            (50.0, False),
        ]
        assert entries[0].payload["limit"] == "campaign spend_cap 15000 (150.00 USD)"
        assert "the platform refused the limit" in entries[1].payload["reason"]
        (camp,) = [o for o in fake.objects.values() if o["kind"] == "campaigns"]
        assert camp["spend_cap"] == "15000"  # the refused one changed nothing
    finally:
        catalog.close()


async def test_the_sandbox_says_it_needs_no_limit() -> None:
    from faceloop.connectors.sandbox import SandboxConnector

    # no call reaches the platform: the answer is the connector's own
    conn = SandboxConnector("http://127.0.0.1:9")
    try:
        with pytest.raises(SpendLimitUnsupportedError, match=r"nothing is spent while no worker"):
            await conn.set_spend_limit("c1", 150.0, "USD")
    finally:
        await conn.aclose()
