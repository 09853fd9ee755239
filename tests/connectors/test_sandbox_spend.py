"""The sandbox reports what it billed (spend at the scenario's CPM), and every request a
connector sends is counted for the campaign whose activity sent it (docs/cost.md)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sandbox_helpers import make_scenario, spec

from faceloop.connectors.base import count_api_call, counting_api_calls
from faceloop.connectors.sandbox import SandboxConnector
from faceloop.connectors.sandbox_platform.app import create_app
from faceloop.models import AudienceSegment


class CountingTransport(httpx.AsyncBaseTransport):
    """The ASGI transport, counting the requests that reach the platform."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return await self.inner.handle_async_request(request)


async def test_spend_at_the_scenarios_cpm_and_every_request_counted() -> None:
    scenario = make_scenario(cpm=5.0)
    app = create_app(scenario)
    transport = CountingTransport(httpx.ASGITransport(app=app))
    conn = SandboxConnector("http://sandbox.test", transport=transport)
    try:
        with counting_api_calls() as calls:
            await conn.ensure_campaign("cmp", [AudienceSegment(name="all")])
            ads = [await conn.deploy(spec("cmp", n)) for n in range(2)]
            await conn.set_allocation("cmp", 0, {a.ad_id: 1000 for a in ads})
            rows = await conn.insights("cmp", 0)
        assert calls.count == transport.sent == 5
        # outside a counting block nothing is counted, and nothing fails
        await conn.list_ads("cmp")
        assert calls.count == 5 and transport.sent == 6
    finally:
        await conn.aclose()
        app.state.store.close()
    assert sum(r.impressions for r in rows) == 2000
    for r in rows:
        assert r.spend == pytest.approx(r.impressions * 5.0 / 1000)


async def test_concurrent_activities_count_their_own_calls() -> None:
    async def activity(n: int) -> int:
        with counting_api_calls() as calls:
            for _ in range(n):
                count_api_call()
                await asyncio.sleep(0)
            return calls.count

    assert await asyncio.gather(activity(3), activity(5), activity(0)) == [3, 5, 0]


def test_the_price_is_no_part_of_the_audience() -> None:
    # a state file written before the sandbox reported spend still matches its scenario
    assert make_scenario(cpm=9.0).fingerprint() == make_scenario().fingerprint()
