"""The sandbox ad platform (a fake) through its connector: delivery, idempotency, state."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sandbox_helpers import ConnectorFactory, make_scenario, spec

from faceloop.connectors.base import AdInsight
from faceloop.connectors.sandbox import SandboxConnector
from faceloop.connectors.sandbox_platform.app import create_app
from faceloop.connectors.sandbox_platform.scenario import Scenario, true_rates
from faceloop.errors import ConnectorError, InputError
from faceloop.models import AudienceSegment, FaceParams

TWO = [AudienceSegment(name="a", share=0.3), AudienceSegment(name="b", share=0.7)]


def totals(rows: list[AdInsight]) -> dict[str, tuple[int, int, int]]:
    """Per ad: (impressions, clicks, conversions) summed over segments."""
    out: dict[str, tuple[int, int, int]] = {}
    for r in rows:
        i, c, v = out.get(r.ad_id, (0, 0, 0))
        out[r.ad_id] = (i + r.impressions, c + r.clicks, v + r.conversions)
    return out


async def run_campaign(
    conn: SandboxConnector, windows: int = 3, campaign_id: str = "c1"
) -> list[list[AdInsight]]:
    await conn.ensure_campaign(campaign_id, TWO)
    ads = [
        await conn.deploy(spec(campaign_id, n, expression=e))
        for n, e in enumerate(["smile", "neutral", "serious"])
    ]
    out = []
    for w in range(windows):
        await conn.set_allocation(
            campaign_id, w, {a.ad_id: 5000 + 1000 * i for i, a in enumerate(ads)}
        )
        out.append(await conn.insights(campaign_id, w))
    return out


# --------------------------------------------------------------------------- reproducibility


async def test_same_seed_gives_same_insights(connect: ConnectorFactory) -> None:
    sc = make_scenario(noise={"ad_sd": 0.1}, conversion_delay={"mean_windows": 1.0})
    first = await run_campaign(connect(sc))
    second = await run_campaign(connect(sc))
    assert first == second
    assert sum(r.clicks for r in first[-1]) > 1000  # real numbers, not zeros
    other = await run_campaign(connect(make_scenario(seed=8, noise={"ad_sd": 0.1})))
    assert [r.clicks for r in other[-1]] != [r.clicks for r in first[-1]]


async def test_insights_are_memoized_and_cumulative(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario(conversion_delay={"mean_windows": 1.0}))
    per_window = await run_campaign(conn, windows=3)
    assert await conn.insights("c1", 2) == per_window[2]
    assert await conn.insights("c1", 1) == per_window[1]  # an earlier window, asked later
    for earlier, later in itertools.pairwise(per_window):
        for ad, (i0, c0, v0) in totals(earlier).items():
            i1, c1, v1 = totals(later)[ad]
            assert i1 > i0 and c1 > c0 and v1 >= v0
    # three windows of 5000 impressions for ad 0, split 0.3 / 0.7 exactly
    first_ad = (await conn.list_ads("c1"))[0].ad_id
    rows = [r for r in per_window[2] if r.ad_id == first_ad]
    assert [(r.segment, r.impressions) for r in rows] == [("a", 4500), ("b", 10500)]


async def test_segment_split_uses_largest_remainder(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c1", TWO)
    ad = await conn.deploy(spec("c1", 1))
    await conn.set_allocation("c1", 0, {ad.ad_id: 1001})
    rows = await conn.insights("c1", 0)
    assert [(r.segment, r.impressions) for r in rows] == [("a", 300), ("b", 701)]


async def test_observed_rates_match_the_truth(connect: ConnectorFactory) -> None:
    sc = make_scenario(
        segments=[
            {"name": "a", "share": 0.5, "effects": {"ctr": {"intercept": -1.0}}},
            {"name": "b", "share": 0.5},
        ]
    )
    conn = connect(sc)
    await conn.ensure_campaign("c1", [])  # empty: the scenario's own segments
    ad = await conn.deploy(spec("c1", 1, expression="smile"))
    await conn.set_allocation("c1", 0, {ad.ad_id: 400_000})
    for r in await conn.insights("c1", 0):
        ctr, cvr = true_rates(sc, FaceParams(expression="smile"), r.segment, 0, 0)
        assert r.impressions == 200_000
        sd = math.sqrt(ctr * (1 - ctr) / r.impressions)
        assert abs(r.clicks / r.impressions - ctr) < 4 * sd
        sd_cvr = math.sqrt(cvr * (1 - cvr) / r.clicks)
        assert abs(r.conversions / r.clicks - cvr) < 4 * sd_cvr


# --------------------------------------------------------------------------- idempotency


async def test_deploy_is_idempotent_on_asset(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c1", TWO)
    first = await conn.deploy(spec("c1", 1))
    again = await conn.deploy(spec("c1", 1).model_copy(update={"variant_id": "retry"}))
    assert again == first and first.status == "active" and first.platform == "sandbox"
    assert [a.ad_id for a in await conn.list_ads("c1")] == [first.ad_id]
    # the same asset in another campaign is another ad
    await conn.ensure_campaign("c2", TWO)
    other = await conn.deploy(spec("c2", 1))
    assert other.ad_id != first.ad_id


async def test_concurrent_deploys_create_one_ad_per_asset(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c1", TWO)
    results = await asyncio.gather(*(conn.deploy(spec("c1", n % 3)) for n in range(30)))
    ads = await conn.list_ads("c1")
    assert len(ads) == 3
    assert {r.ad_id for r in results} == {a.ad_id for a in ads}


async def test_two_platform_processes_on_one_state_file_keep_idempotency(
    connect: ConnectorFactory, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    sc = make_scenario()
    one, two = connect(sc, state), connect(sc, state)
    await one.ensure_campaign("c1", TWO)
    await two.ensure_campaign("c1", TWO)
    calls = [c.deploy(spec("c1", n % 2)) for n in range(20) for c in (one, two)]
    results = await asyncio.gather(*calls)
    assert len({r.ad_id for r in results}) == 2
    assert len(await one.list_ads("c1")) == len(await two.list_ads("c1")) == 2


async def test_deploy_answers_201_then_200(connect: ConnectorFactory) -> None:
    app = create_app(make_scenario())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test"
    ) as http:
        await http.put("/campaigns/c1", json={"segments": []})
        body = spec("c1", 1).model_dump(mode="json")
        first = await http.post("/campaigns/c1/ads", json=body)
        second = await http.post("/campaigns/c1/ads", json=body)
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json() == second.json()
        wrong = await http.post("/campaigns/c2/ads", json=body)
        assert wrong.status_code == 422 and "differs from the path" in wrong.json()["detail"]
    app.state.store.close()


async def test_ensure_campaign_is_idempotent_and_refuses_other_segments(
    connect: ConnectorFactory,
) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c1", TWO)
    await conn.ensure_campaign("c1", TWO)
    with pytest.raises(ConnectorError, match=r"returned 409: .*segments cannot change"):
        await conn.ensure_campaign("c1", [AudienceSegment(name="a")])
    with pytest.raises(ConnectorError, match=r"404: campaign 'nope' not found"):
        await conn.deploy(spec("nope", 1))


# --------------------------------------------------------------------------- allocation


async def test_allocation_replaces_until_delivery_then_is_refused(
    connect: ConnectorFactory,
) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c1", TWO)
    a = await conn.deploy(spec("c1", 1))
    b = await conn.deploy(spec("c1", 2))
    await conn.set_allocation("c1", 0, {a.ad_id: 1000})
    await conn.set_allocation("c1", 0, {a.ad_id: 0, b.ad_id: 2000})
    await conn.set_allocation("c1", 1, {a.ad_id: 300})
    got = totals(await conn.insights("c1", 0))
    assert got[a.ad_id] == (0, 0, 0) and got[b.ad_id][0] == 2000
    with pytest.raises(ConnectorError, match=r"409: window 0 .* already delivered"):
        await conn.set_allocation("c1", 0, {b.ad_id: 5})
    # delivering window 2 delivers window 1 first, with its allocation
    assert totals(await conn.insights("c1", 2))[a.ad_id][0] == 300
    with pytest.raises(ConnectorError, match=r"allocate window 3 or later"):
        await conn.set_allocation("c1", 1, {b.ad_id: 5})
    await conn.set_allocation("c1", 3, {b.ad_id: 5})


async def test_allocation_checks_ads(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c1", TWO)
    a = await conn.deploy(spec("c1", 1))
    with pytest.raises(ConnectorError, match=r"404: allocation names ads not in campaign"):
        await conn.set_allocation("c1", 0, {"ad-unknown": 10})
    with pytest.raises(ConnectorError, match=r"422: .*impressions.*greater than or equal to 0"):
        await conn.set_allocation("c1", 0, {a.ad_id: -1})
    paused = await conn.pause("c1", a.ad_id)
    assert paused.status == "paused"
    assert (await conn.pause("c1", a.ad_id)).status == "paused"  # no-op
    with pytest.raises(ConnectorError, match=r"409: .*not active"):
        await conn.set_allocation("c1", 0, {a.ad_id: 10})
    await conn.set_allocation("c1", 0, {a.ad_id: 0})
    with pytest.raises(ConnectorError, match=r"404: ad 'ad-x' not found"):
        await conn.pause("c1", "ad-x")


async def test_ad_paused_after_allocation_gets_no_impressions(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c1", TWO)
    a = await conn.deploy(spec("c1", 1))
    b = await conn.deploy(spec("c1", 2))
    await conn.set_allocation("c1", 0, {a.ad_id: 1000, b.ad_id: 1000})
    await conn.pause("c1", a.ad_id)
    got = totals(await conn.insights("c1", 0))
    assert got[a.ad_id] == (0, 0, 0)
    assert got[b.ad_id][0] == 1000
    assert [d.status for d in await conn.list_ads("c1")] == ["paused", "active"]


# --------------------------------------------------------------------------- delays, fatigue


async def test_delayed_conversions_appear_in_later_windows(connect: ConnectorFactory) -> None:
    sc = make_scenario(conversion_delay={"mean_windows": 2.0})
    conn = connect(sc)
    await conn.ensure_campaign("c1", TWO)
    ad = await conn.deploy(spec("c1", 1, expression="smile"))
    await conn.set_allocation("c1", 0, {ad.ad_id: 50_000})
    series = [totals(await conn.insights("c1", w))[ad.ad_id] for w in range(30)]
    clicks = {c for _, c, _ in series}
    assert len(clicks) == 1  # all clicks happened in window 0
    conversions = [v for _, _, v in series]
    assert conversions == sorted(conversions)
    assert conversions[1] > conversions[0] and conversions[3] > conversions[2]
    # geometric delay with mean 2: a third reported at once, about all of them after 30
    assert 0.29 < conversions[0] / conversions[-1] < 0.38
    cvr = true_rates(sc, FaceParams(expression="smile"), "a", 0, 0)[1]
    assert abs(conversions[-1] / clicks.pop() - cvr) < 0.02


async def test_without_delay_conversions_are_reported_at_once(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c1", TWO)
    ad = await conn.deploy(spec("c1", 1))
    await conn.set_allocation("c1", 0, {ad.ad_id: 20_000})
    now = totals(await conn.insights("c1", 0))[ad.ad_id]
    assert now[2] > 0 and totals(await conn.insights("c1", 5))[ad.ad_id] == now


async def test_fatigue_lowers_delivered_ctr(connect: ConnectorFactory) -> None:
    sc = make_scenario(fatigue={"half_life_impressions": 20_000, "floor": 0.3})
    conn = connect(sc)
    await conn.ensure_campaign("c1", [])
    ad = await conn.deploy(spec("c1", 1))
    before = (0, 0, 0)
    window_ctr = []
    for w in range(4):
        await conn.set_allocation("c1", w, {ad.ad_id: 20_000})
        now = totals(await conn.insights("c1", w))[ad.ad_id]
        window_ctr.append((now[1] - before[1]) / (now[0] - before[0]))
        before = now
    assert window_ctr == sorted(window_ctr, reverse=True)
    # at the middle of window 3 (70k impressions): 0.3 + 0.7 * 0.5 ** 3.5 of the fresh CTR
    fresh = true_rates(sc, FaceParams(), "all", 0, 0)[0]
    assert window_ctr[3] == pytest.approx(fresh * (0.3 + 0.7 * 0.5**3.5), rel=0.08)


# --------------------------------------------------------------------------- state


async def test_state_survives_a_restart(connect: ConnectorFactory, tmp_path: Path) -> None:
    sc = make_scenario(conversion_delay={"mean_windows": 1.0}, noise={"ad_sd": 0.1})
    state = tmp_path / "sandbox.db"

    async def first_half(conn: SandboxConnector) -> list[AdInsight]:
        await conn.ensure_campaign("c1", TWO)
        ads = [await conn.deploy(spec("c1", n)) for n in range(2)]
        await conn.set_allocation("c1", 0, {a.ad_id: 4000 for a in ads})
        await conn.set_allocation("c1", 1, {a.ad_id: 4000 for a in ads})
        return await conn.insights("c1", 0)

    # reference: the same campaign without a restart
    ref = connect(sc)
    ref_w0 = await first_half(ref)
    ref_w1 = await ref.insights("c1", 1)

    app = create_app(sc, state)
    conn = SandboxConnector("http://s", transport=httpx.ASGITransport(app=app))
    w0 = await first_half(conn)
    ads = await conn.list_ads("c1")
    await conn.pause("c1", ads[1].ad_id)
    await conn.aclose()
    app.state.store.close()

    again = connect(sc, state)
    assert await again.list_ads("c1") == [ads[0], ads[1].model_copy(update={"status": "paused"})]
    assert await again.insights("c1", 0) == w0 == ref_w0
    assert (await again.deploy(spec("c1", 0))).ad_id == ads[0].ad_id
    assert len(await again.list_ads("c1")) == 2
    with pytest.raises(ConnectorError, match="already delivered"):
        await again.set_allocation("c1", 0, {})
    # window 1's allocation survived; the paused ad gets nothing, the other as in the reference
    w1 = totals(await again.insights("c1", 1))
    assert w1[ads[1].ad_id][:2] == totals(w0)[ads[1].ad_id][:2]
    assert w1[ads[0].ad_id] == totals(ref_w1)[ads[0].ad_id]


async def test_campaigns_stay_with_the_scenario_they_began_under(
    connect: ConnectorFactory, tmp_path: Path
) -> None:
    state = tmp_path / "sandbox.db"
    old = connect(make_scenario(), state)
    await old.ensure_campaign("c1", TWO)
    ad = await old.deploy(spec("c1", 1))
    await old.set_allocation("c1", 0, {ad.ad_id: 1000})
    delivered = await old.insights("c1", 0)
    edited = connect(make_scenario(base_ctr=0.1), state)  # the scenario file was edited
    # what was delivered can be read; nothing new happens to the campaign
    assert await edited.insights("c1", 0) == delivered
    assert await edited.list_ads("c1") == [ad]
    with pytest.raises(ConnectorError, match=r"409: campaign 'c1' was created under scenario"):
        await edited.insights("c1", 1)
    with pytest.raises(ConnectorError, match=r"409: campaign 'c1' was created under scenario"):
        await edited.set_allocation("c1", 1, {ad.ad_id: 10})
    with pytest.raises(ConnectorError, match="restart the sandbox with the scenario file"):
        await edited.ensure_campaign("c1", TWO)
    await edited.ensure_campaign("c2", TWO)  # new campaigns run under the new scenario
    assert (await edited.deploy(spec("c2", 1))).status == "active"


def test_a_file_that_is_not_a_state_file_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="not a sandbox state file"):
        create_app(make_scenario(), junk)


# --------------------------------------------------------------------------- truth stays inside

FORBIDDEN = ("ctr", "cvr", "rate", "effect", "seed", "noise", "fatigue", "drift", "truth", "prob")


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.fixture
async def raw(smooth: Scenario) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(smooth)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test"
    ) as http:
        yield app, http
    app.state.store.close()


async def test_no_endpoint_exposes_the_truth(
    raw: tuple[FastAPI, httpx.AsyncClient], smooth: Scenario
) -> None:
    app, http = raw
    seen: list[Any] = []
    called: set[str] = set()

    async def call(method: str, route: str, payload: Any = None, **ids: str) -> Any:
        response = await http.request(method, route.format(**ids), json=payload)
        assert response.status_code < 300, (route, response.text)
        called.add(route)
        seen.append(response.json())
        return response.json()

    c = {"campaign_id": "c1"}
    await call("GET", "/health")
    await call("PUT", "/campaigns/{campaign_id}", {"segments": [s.model_dump() for s in TWO]}, **c)
    ad = await call("POST", "/campaigns/{campaign_id}/ads", spec("c1", 1).model_dump(), **c)
    await call("GET", "/campaigns/{campaign_id}/ads", **c)
    window = "/campaigns/{campaign_id}/windows/{window}"
    alloc = {"impressions": {ad["ad_id"]: 10_000}}
    await call("PUT", window + "/allocation", alloc, window="0", **c)
    rows = await call("GET", window + "/insights", window="0", **c)
    assert sum(r["clicks"] for r in rows["insights"]) > 0
    await call("POST", "/campaigns/{campaign_id}/ads/{ad_id}/pause", ad_id=ad["ad_id"], **c)
    await call("DELETE", "/campaigns/{campaign_id}/ads/{ad_id}", ad_id=ad["ad_id"], **c)
    await call("GET", "/openapi.json")
    # every route of the API was called above, so a new endpoint must be added here
    docs = {"/docs", "/docs/oauth2-redirect", "/redoc"}
    assert {getattr(r, "path", "") for r in app.routes} - docs == called
    # response fields are counts and ids, never rates or scenario internals
    leaked = {k for k in _keys(seen) if any(word in k.lower() for word in FORBIDDEN)}
    assert leaked == set()
    text = " ".join(str(s) for s in seen)
    assert str(smooth.seed) not in text and str(smooth.base_ctr) not in text
    assert smooth.description[:40] not in text
