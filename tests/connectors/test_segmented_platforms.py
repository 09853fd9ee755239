"""What the google_ads and tiktok connectors must both do against their FAKE platforms
(connectors/fakes/): the connector contract, throttles retried with backoff, lost answers
reconciled by name, a bounded error when the platform stays down, settings named when
missing, unusable ids refused, the platform's review read, and the soak."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from platforms import PLATFORMS, Fake, Platform

from faceloop.connectors.base import AdConnector
from faceloop.connectors.fakes.faults import FaultPlan
from faceloop.connectors.fakes.google_ads import GoogleAdsFake
from faceloop.connectors.http_base import PlatformRefused, RetryPolicy
from faceloop.connectors.soak import soak
from faceloop.errors import ConnectorError
from faceloop.models import Placement, PlacementExport
from faceloop.testing import ConnectorContract
from faceloop.testing.connectors import SEGMENTS, ad_spec


@pytest.fixture(params=PLATFORMS, ids=[p.name for p in PLATFORMS])
def platform(request: pytest.FixtureRequest) -> Platform:
    p: Platform = request.param
    return p


@pytest.fixture
def fake(platform: Platform) -> Fake:
    return platform.fake()


class TestSegmentedContract(ConnectorContract):
    # neither platform takes a per-ad budget: it splits a campaign's (Google) or an ad
    # group's (TikTok) budget over the serving ads itself
    exact_delivery = False

    @pytest.fixture
    async def connector(self, platform: Platform) -> AsyncIterator[AdConnector]:
        conn = platform.connect(platform.fake())
        yield conn
        await conn.aclose()


async def test_throttles_are_retried_with_backoff(platform: Platform, fake: Fake) -> None:
    conn = platform.connect(fake, FaultPlan(rate=0.3, mix={"throttle": 1.0}, seed=5))
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(ad_spec("c1", 0))
        assert dep.status == "active"
        assert conn.stats.throttled > 0
        assert conn.stats.by_code.get(platform.throttle_code, 0) == conn.stats.throttled
        # at least the policy's throttle floor (or the delay Google names) per throttle
        assert conn.stats.backoff_s >= conn.stats.throttled * conn.policy.throttle_floor_s
        assert fake.ledger.duplicates() == 0
    finally:
        await conn.aclose()


async def test_lost_answers_are_reconciled_by_name_not_created_twice(
    platform: Platform, fake: Fake
) -> None:
    conn = platform.connect(fake, FaultPlan(rate=0.25, mix={"timeout_after_commit": 1.0}, seed=7))
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        ads = []
        for n in range(4):
            ads.append(await conn.deploy(ad_spec("c1", n)))
            await conn.deploy(ad_spec("c1", n))  # a Temporal retry of the activity
        assert fake.ledger.injected["timeout_after_commit"] > 0
        assert fake.ledger.duplicates() == 0
        # on the fake's side: one copy of each ad in every segment's ad group
        for dep in ads:
            assert fake.ad_status(dep.ad_id) == "active"
            assert len(fake._copy_statuses(dep.ad_id)) == len(SEGMENTS)
    finally:
        await conn.aclose()


async def test_a_platform_down_for_good_ends_in_a_bounded_error(
    platform: Platform, fake: Fake
) -> None:
    conn = platform.connect(
        fake,
        FaultPlan(rate=0.99, mix={"server_error": 1.0}),
        policy=RetryPolicy(max_attempts=3),
    )
    try:
        with pytest.raises(PlatformRefused, match="after 3 attempts") as err:
            await conn.list_ads("c1")
        assert not err.value.final  # a later attempt may get through: Temporal retries
    finally:
        await conn.aclose()


def test_unconfigured_connector_names_the_settings(platform: Platform) -> None:
    with pytest.raises(ConnectorError, match=f"{platform.connector.env_prefix}") as err:
        platform.connector(type(platform.fake().settings())(), lambda uri: b"")
    assert "is not configured" in str(err.value)


async def test_an_unusable_campaign_id_is_refused_by_name(platform: Platform, fake: Fake) -> None:
    conn = platform.connect(fake)
    try:
        with pytest.raises(ConnectorError, match=r"campaign id 'a b' cannot name a \w"):
            await conn.ensure_campaign("a b", SEGMENTS)
        assert fake.ledger.writes == 0 and sum(fake.ledger.creates.values()) == 0
    finally:
        await conn.aclose()


async def test_reviews_report_the_platforms_disapprovals(platform: Platform, fake: Fake) -> None:
    conn = platform.connect(fake)
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        first = await conn.deploy(ad_spec("c1", 0))
        second = await conn.deploy(ad_spec("c1", 1))
        assert {r.status for r in await conn.reviews("c1")} == {"approved"}
        fake.disapprove(second.ad_id, "MISLEADING_CONTENT")
        by_ad = {r.ad_id: r for r in await conn.reviews("c1")}
        assert by_ad[first.ad_id].status == "approved"
        bad = by_ad[second.ad_id]
        assert (bad.status, bad.platform_status, bad.asset_id) == (
            "disapproved",
            platform.disapproved_word,
            "asset-0001",
        )
        assert len(bad.reasons) == 1 and "MISLEADING_CONTENT" in bad.reasons[0]
    finally:
        await conn.aclose()


async def test_soak_has_no_duplicates_or_lost_updates(platform: Platform) -> None:
    result = await soak(platform.name, ops=150, fault_rate=0.2, seed=3)
    assert set(result.faults_injected) == {"timeout_after_commit", "server_error", "throttle"}
    assert (result.duplicates, result.lost_updates, result.failed_ops) == (0, 0, 0)


def export(placement: Placement, n: int) -> PlacementExport:
    """A placement export as the deploy gate admits it (the FAKE reader returns PNG bytes
    for any URI: the platform side is what is checked here)."""
    w, h = {"1.91:1": (1200, 628), "1:1": (1080, 1080), "9:16": (1080, 1920)}.get(
        placement, (1080, 1350)
    )
    return PlacementExport(
        placement=placement,
        asset_id=f"export-{n}-{placement}",
        parent_asset_id=f"asset-{n:04d}",
        uri=f"file:///exports/{n}/{placement.replace(':', 'x')}.jpg",
        media_type="image/jpeg",
        width=w,
        height=h,
        quality=90,
        fit="crop",
        manifest_ok=True,
        watermark_bit_errors=0,
        watermark_recall=1.0,
    )


async def test_the_platform_gets_its_placement_exports(platform: Platform, fake: Fake) -> None:
    conn = platform.connect(fake)
    exports = [export(p, 0) for p in ("1:1", "4:5", "9:16", "1.91:1")]
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(ad_spec("c1", 0).model_copy(update={"exports": exports}))
        again = await conn.deploy(ad_spec("c1", 0).model_copy(update={"exports": exports}))
    finally:
        await conn.aclose()
    assert fake.ledger.duplicates() == 0 and again == dep
    if isinstance(fake, GoogleAdsFake):
        assert dep.placements == ["1.91:1 image/jpeg", "1:1 image/jpeg"]
        assets = {
            o["resourceName"]: o["name"] for rn, o in fake.objects.items() if "/assets/" in rn
        }
        assert sorted(assets.values()) == ["fl-asset-0000 1.91:1", "fl-asset-0000 1:1"]
        for rn, ad in fake.objects.items():
            if "/adGroupAds/" in rn:
                rda = ad["ad"]["responsiveDisplayAd"]
                assert assets[rda["marketingImages"][0]["asset"]].endswith(" 1.91:1")
                assert assets[rda["squareMarketingImages"][0]["asset"]].endswith(" 1:1")
    else:
        assert dep.placements == ["9:16 image/jpeg"]
        assert [i["file_name"] for i in fake.images.values()] == ["fl-asset-0000-9x16.jpg"]
