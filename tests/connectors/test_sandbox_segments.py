"""Per-segment allocation: the sandbox serves {segment: {ad: impressions}} exactly, and a
connector without per-segment delivery falls back to each ad's total."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sandbox_helpers import ConnectorFactory, make_scenario, spec

from faceloop.connectors.base import AdConnector, AdDeployment, AdInsight, AdSpec
from faceloop.connectors.sandbox_platform.app import create_app
from faceloop.errors import ConnectorError
from faceloop.models import AudienceSegment

TWO = [AudienceSegment(name="a", share=0.3), AudienceSegment(name="b", share=0.7)]


def by_segment(rows: list[AdInsight]) -> dict[tuple[str, str], int]:
    return {(r.ad_id, r.segment): r.impressions for r in rows}


async def test_per_segment_impressions_are_served_exactly(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    assert conn.segment_targeting
    await conn.ensure_campaign("c", TWO)
    ad_x = await conn.deploy(spec("c", 0))
    ad_y = await conn.deploy(spec("c", 1))
    # x only to segment a, y mostly to b: nothing like the 30/70 split by share
    await conn.set_segment_allocation(
        "c", 0, {"a": {ad_x.ad_id: 4000, ad_y.ad_id: 100}, "b": {ad_y.ad_id: 6000}}
    )
    rows = await conn.insights("c", 0)
    assert by_segment(rows) == {
        (ad_x.ad_id, "a"): 4000,
        (ad_x.ad_id, "b"): 0,
        (ad_y.ad_id, "a"): 100,
        (ad_y.ad_id, "b"): 6000,
    }
    # a per-ad allocation in the next window is split by share again (30/70)
    await conn.set_allocation("c", 1, {ad_x.ad_id: 1000})
    rows = await conn.insights("c", 1)
    assert by_segment(rows)[(ad_x.ad_id, "a")] == 4000 + 300
    assert by_segment(rows)[(ad_x.ad_id, "b")] == 700


async def test_replacing_a_segment_allocation_and_pausing(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c", TWO)
    ad = await conn.deploy(spec("c", 1))
    other = await conn.deploy(spec("c", 2))
    await conn.set_segment_allocation("c", 0, {"a": {ad.ad_id: 500}})
    # set again before delivery: the new one replaces it, per-ad form included
    await conn.set_segment_allocation("c", 0, {"b": {ad.ad_id: 800, other.ad_id: 200}})
    await conn.pause("c", other.ad_id)
    rows = by_segment(await conn.insights("c", 0))
    assert rows[(ad.ad_id, "a")] == 0 and rows[(ad.ad_id, "b")] == 800
    # paused after its allocation: no impressions, as with a per-ad allocation
    assert rows[(other.ad_id, "b")] == 0
    with pytest.raises(ConnectorError, match="already delivered"):
        await conn.set_segment_allocation("c", 0, {"a": {ad.ad_id: 1}})


async def test_bad_segment_allocations_are_rejected(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c", TWO)
    ad = await conn.deploy(spec("c", 1))
    with pytest.raises(ConnectorError, match=r"segments not in campaign 'c': \['z'\]"):
        await conn.set_segment_allocation("c", 0, {"z": {ad.ad_id: 10}})
    with pytest.raises(ConnectorError, match="not in campaign"):
        await conn.set_segment_allocation("c", 0, {"a": {"ad-unknown": 10}})
    with pytest.raises(ConnectorError, match="greater than or equal to 0"):
        await conn.set_segment_allocation("c", 0, {"a": {ad.ad_id: -5}})


async def test_the_allocation_body_takes_one_form() -> None:
    app = create_app(make_scenario())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test"
    ) as http:
        await http.put("/campaigns/c", json={"segments": [s.model_dump() for s in TWO]})
        ad = (await http.post("/campaigns/c/ads", json=spec("c", 1).model_dump())).json()
        path = "/campaigns/c/windows/0/allocation"
        both = {"impressions": {ad["ad_id"]: 1}, "segments": {"a": {ad["ad_id"]: 1}}}
        for body in (both, {}):
            r = await http.put(path, json=body)
            assert r.status_code == 422 and "either impressions" in r.text
        r = await http.put(path, json={"segments": {"a": {ad["ad_id"]: 30}, "b": {ad["ad_id"]: 5}}})
        assert r.status_code == 200
        # the answer echoes both views: totals per ad and the per-segment split
        assert r.json()["impressions"] == {ad["ad_id"]: 35}
        assert r.json()["segments"] == {"a": {ad["ad_id"]: 30}, "b": {ad["ad_id"]: 5}}
    app.state.store.close()


async def test_removing_an_ad_drops_its_pending_segment_allocation(
    connect: ConnectorFactory,
) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c", TWO)
    ad = await conn.deploy(spec("c", 1))
    await conn.set_segment_allocation("c", 0, {"a": {ad.ad_id: 900}})
    await conn.remove("c", ad.ad_id)
    rows = await conn.insights("c", 0)
    assert sum(r.impressions for r in rows) == 0


class _TotalsOnly(AdConnector):
    """A connector without per-segment delivery (a fake that records what it was sent)."""

    name = "totals-only"

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, dict[str, int]]] = []

    async def ensure_campaign(self, campaign_id: str, segments: list[AudienceSegment]) -> None:
        return None

    async def deploy(self, spec: AdSpec) -> AdDeployment:
        raise AssertionError("this test sends allocations only; nothing deploys")

    async def set_allocation(
        self, campaign_id: str, window: int, impressions: dict[str, int]
    ) -> None:
        self.sent.append((campaign_id, window, impressions))

    async def insights(self, campaign_id: str, window: int) -> list[AdInsight]:
        return []

    async def pause(self, campaign_id: str, ad_id: str) -> AdDeployment:
        raise AssertionError("this test sends allocations only; nothing is paused")

    async def list_ads(self, campaign_id: str) -> list[AdDeployment]:
        return []

    async def aclose(self) -> None:
        return None


async def test_a_platform_without_segment_targeting_gets_each_ads_total() -> None:
    conn = _TotalsOnly()
    assert not conn.segment_targeting
    alloc: dict[str, Any] = {"a": {"ad1": 300, "ad2": 50}, "b": {"ad1": 700}}
    await conn.set_segment_allocation("c", 4, alloc)
    assert conn.sent == [("c", 4, {"ad1": 1000, "ad2": 50})]
