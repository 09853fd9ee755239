"""Spend from each platform connector's reports against its FAKE platform: the figure the
connector parses (Meta insights `spend`, Google Ads `metrics.cost_micros`, TikTok `spend`)
equals what the fake billed, stays cumulative across windows, and a report in another
currency than the deployment's is refused for good, not added up (docs/cost.md)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from platforms import PLATFORMS, Platform

from faceloop.connectors.base import AdConnector, AdInsight
from faceloop.connectors.fakes.delivery import CPM_MICROS
from faceloop.connectors.fakes.google_ads import GoogleAdsFake
from faceloop.connectors.fakes.meta import MetaFake, connector_for
from faceloop.connectors.http_base import VirtualClock
from faceloop.errors import ConnectorError
from faceloop.testing.connectors import SEGMENTS, ad_spec


@pytest.fixture(params=PLATFORMS, ids=[p.name for p in PLATFORMS])
def platform(request: pytest.FixtureRequest) -> Platform:
    p: Platform = request.param
    return p


async def _deliver_two_windows(
    conn: AdConnector, billed: Callable[[str], float]
) -> tuple[list[AdInsight], float, list[AdInsight], float]:
    """Two ads, window 0 at 3,000 + 1,000 impressions, window 1 at 2,000 for one; the
    insights of each window after it, each with what the fake had billed by then."""
    await conn.ensure_campaign("c1", SEGMENTS)
    a = await conn.deploy(ad_spec("c1", 0))
    b = await conn.deploy(ad_spec("c1", 1))
    await conn.set_allocation("c1", 0, {a.ad_id: 3000, b.ad_id: 1000})
    first = await conn.insights("c1", 0)
    billed_first = billed("c1")
    await conn.set_allocation("c1", 1, {a.ad_id: 2000, b.ad_id: 0})
    second = await conn.insights("c1", 1)
    return first, billed_first, second, billed("c1")


def _total(insights: list[AdInsight]) -> float:
    assert insights and all(i.spend is not None for i in insights)
    return sum(i.spend or 0.0 for i in insights)


async def test_segmented_spend_is_what_the_fake_billed(platform: Platform) -> None:
    fake = platform.fake()
    conn = platform.connect(fake)
    try:
        first, billed_first, second, billed = await _deliver_two_windows(conn, fake.billed)
        # every delivered impression at the fakes' CPM, nothing else
        for i in first + second:
            assert i.spend == pytest.approx(i.impressions * CPM_MICROS / 1_000_000_000)
        assert _total(first) == pytest.approx(billed_first) and billed_first > 0
        # cumulative: window 1's report holds window 0's spend plus what window 1 delivered
        assert _total(second) == pytest.approx(billed) and billed > billed_first
    finally:
        await conn.aclose()


async def test_meta_spend_is_what_the_fake_billed() -> None:
    fake = MetaFake(clock=VirtualClock(), cpm_minor=1234)
    async with connector_for(fake) as conn:
        first, billed_first, second, billed = await _deliver_two_windows(conn, fake.billed)
    for i in first + second:
        # cpm_minor minor units (cents) per 1,000 impressions, in account currency units
        assert i.spend == pytest.approx(i.impressions * 1234 / 100_000)
    assert _total(first) == pytest.approx(billed_first) and billed_first > 0
    assert _total(second) == pytest.approx(billed) and billed > billed_first


async def test_segmented_spend_in_another_currency_is_refused(platform: Platform) -> None:
    fake = platform.fake()
    if isinstance(fake, GoogleAdsFake):
        fake.currency_code = "EUR"
    else:
        fake.currency = "EUR"
    conn = platform.connect(fake)
    try:
        with pytest.raises(ConnectorError) as err:
            await _deliver_two_windows(conn, fake.billed)
        assert err.value.final
        message = str(err.value)
        assert "EUR" in message and "USD (FACELOOP_COST_CURRENCY)" in message
    finally:
        await conn.aclose()
    # a deployment in the account's currency reads it
    same = platform.connect(fake, cost_currency="EUR")
    try:
        await same.ensure_campaign("c2", SEGMENTS)
        ad = await same.deploy(ad_spec("c2", 0))
        await same.set_allocation("c2", 0, {ad.ad_id: 1000})
        assert _total(await same.insights("c2", 0)) == pytest.approx(fake.billed("c2"))
    finally:
        await same.aclose()


async def test_meta_spend_in_another_currency_is_refused() -> None:
    fake = MetaFake(clock=VirtualClock(), currency="GBP")
    async with connector_for(fake) as conn:
        with pytest.raises(ConnectorError, match=r"GBP.*USD \(FACELOOP_COST_CURRENCY\)") as err:
            await _deliver_two_windows(conn, fake.billed)
    assert err.value.final
    async with connector_for(fake, cost_currency="GBP") as conn:
        await conn.ensure_campaign("c2", SEGMENTS)
        ad = await conn.deploy(ad_spec("c2", 0))
        await conn.set_allocation("c2", 0, {ad.ad_id: 1000})
        assert _total(await conn.insights("c2", 0)) == pytest.approx(fake.billed("c2"))
