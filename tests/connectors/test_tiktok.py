"""The tiktok connector against the FAKE TikTok API for Business
(connectors/fakes/tiktok.py): the connector contract, TikTok's envelope codes (40100 rate
limit, 5xxxx, refused token), the AIGC disclosure, and reconcile after a lost answer."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from faceloop.briefs import load_brief_and_config
from faceloop.connectors.base import AdConnector
from faceloop.connectors.channels import check_channels
from faceloop.connectors.fakes.faults import FaultPlan
from faceloop.connectors.fakes.tiktok import TikTokFake
from faceloop.connectors.http_base import PlatformRefused, RetryPolicy, VirtualClock
from faceloop.connectors.soak import soak
from faceloop.connectors.tiktok import AD_TEXT_MAX, TikTokConnector, ad_text
from faceloop.errors import ConnectorError, InputError
from faceloop.models import CampaignConfig, Channel
from faceloop.settings import Settings, TikTokSettings
from faceloop.testing import ConnectorContract
from faceloop.testing.connectors import SEGMENTS, ad_spec

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n FAKE creative bytes"


def config(fake: TikTokFake, **kw: Any) -> TikTokSettings:
    base: dict[str, Any] = {
        "base_url": "http://tiktok.fake",
        "advertiser_id": fake.advertiser_id,
        "access_token": fake.access_token,
        "api_version": fake.version,
    }
    return TikTokSettings.model_validate({**base, **kw})


def connect(fake: TikTokFake, plan: FaultPlan | None = None, **kw: Any) -> TikTokConnector:
    policy = kw.pop("policy", None)
    return TikTokConnector(
        config(fake, **kw),
        lambda uri: PNG,
        transport=fake.transport(plan),
        clock=VirtualClock(),
        rng=random.Random(0),
        policy=policy,
    )


class TestTikTokContract(ConnectorContract):
    # TikTok splits an ad group's budget over its ads itself
    exact_delivery = False

    @pytest.fixture
    async def connector(self) -> AsyncIterator[AdConnector]:
        conn = connect(TikTokFake())
        yield conn
        await conn.aclose()


@pytest.fixture
def fake() -> TikTokFake:
    return TikTokFake()


async def test_rate_limit_code_is_retried_with_backoff(fake: TikTokFake) -> None:
    conn = connect(fake, FaultPlan(rate=0.3, mix={"throttle": 1.0}, seed=5))
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(ad_spec("c1", 0))
        assert dep.status == "active"
        assert conn.stats.throttled > 0 and conn.stats.by_code.get("40100", 0) > 0
        # TikTok names no wait: the policy's throttle floor is waited at least
        assert conn.stats.backoff_s >= conn.stats.throttled * conn.policy.throttle_floor_s
        assert fake.ledger.duplicates() == 0
    finally:
        await conn.aclose()


async def test_lost_answers_are_reconciled_by_name(fake: TikTokFake) -> None:
    conn = connect(fake, FaultPlan(rate=0.25, mix={"timeout_after_commit": 1.0}, seed=11))
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        for n in range(4):
            await conn.deploy(ad_spec("c1", n))
            await conn.deploy(ad_spec("c1", n))  # a Temporal retry of the activity
        assert fake.ledger.injected["timeout_after_commit"] > 0
        assert fake.ledger.duplicates() == 0
        assert len(fake.ads) == 4 * len(SEGMENTS) and len(fake.images) == 4
    finally:
        await conn.aclose()


async def test_the_ad_carries_the_aigc_flag_and_the_visible_label(fake: TikTokFake) -> None:
    conn = connect(fake)
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        spec = ad_spec("c1", 0).model_copy(
            update={
                "headline": "Everyday sun protection that feels like nothing on your skin.",
                "disclosure": "KI-generiertes Bild / Image générée par IA / Afbeelding "
                "gegenereerd met AI",
            }
        )
        await conn.deploy(spec)
        for ad in fake.ads.values():
            assert ad["aigc_disclosure_type"] == "SELF_DISCLOSURE"
            assert ad["ad_text"].endswith(" | " + spec.disclosure)
            assert len(ad["ad_text"]) <= AD_TEXT_MAX
    finally:
        await conn.aclose()


def test_ad_text_never_cuts_the_label() -> None:
    assert ad_text("Short", "AI-generated image") == "Short | AI-generated image"
    long = ad_text("word " * 40, "AI-generated image")
    assert len(long) <= AD_TEXT_MAX and long.endswith("… | AI-generated image")
    with pytest.raises(ConnectorError, match="disclosure texts"):
        ad_text("x", "y" * 95)


async def test_a_refused_token_is_terminal_and_not_echoed(fake: TikTokFake) -> None:
    conn = connect(fake, access_token="wrong-secret-token")
    try:
        with pytest.raises(PlatformRefused) as err:
            await conn.ensure_campaign("c1", SEGMENTS)
        text = str(err.value)
        assert "40105" in text and "FACELOOP_TIKTOK__ACCESS_TOKEN" in text
        assert "wrong-secret-token" not in text and err.value.attempts == 1
    finally:
        await conn.aclose()


async def test_a_bad_field_is_terminal_and_named(fake: TikTokFake) -> None:
    conn = connect(fake)
    try:
        with pytest.raises(PlatformRefused, match=r"adgroup_id: ad group 1 not found.*40002"):
            await conn.post("ad/create/", {"adgroup_id": "1", "creatives": [{}]})
    finally:
        await conn.aclose()


async def test_system_errors_end_in_a_bounded_error(fake: TikTokFake) -> None:
    conn = connect(
        fake,
        FaultPlan(rate=0.99, mix={"server_error": 1.0}),
        policy=RetryPolicy(max_attempts=3),
    )
    try:
        with pytest.raises(PlatformRefused, match="after 3 attempts"):
            await conn.list_ads("c1")
    finally:
        await conn.aclose()


def test_unconfigured_connector_names_the_settings() -> None:
    with pytest.raises(ConnectorError, match="FACELOOP_TIKTOK__ADVERTISER_ID"):
        TikTokConnector(TikTokSettings(), lambda uri: b"")


async def test_a_tiktok_channel_without_an_account_is_refused_by_name(tmp_path: Path) -> None:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    brief = brief.model_copy(update={"channels": [Channel.tiktok]})
    with pytest.raises(InputError) as err:
        await check_channels(brief, CampaignConfig(connector="tiktok"), Settings(home=tmp_path))
    assert any(
        p.startswith("campaign.connector: 'tiktok' is not usable")
        and "FACELOOP_TIKTOK__ADVERTISER_ID" in p
        for p in err.value.problems
    )


async def test_soak_tiktok_has_no_duplicates_or_lost_updates() -> None:
    result = await soak("tiktok", ops=150, fault_rate=0.2, seed=3)
    assert set(result.faults_injected) == {"timeout_after_commit", "server_error", "throttle"}
    assert (result.duplicates, result.lost_updates, result.failed_ops) == (0, 0, 0)


async def test_an_unusable_campaign_id_is_refused_by_name(fake: TikTokFake) -> None:
    conn = connect(fake)
    try:
        with pytest.raises(ConnectorError, match="campaign id 'a b' cannot name a TikTok campaign"):
            await conn.ensure_campaign("a b", SEGMENTS)
        assert fake.campaigns == {}
    finally:
        await conn.aclose()


async def test_reviews_report_tiktok_rejections(fake: TikTokFake) -> None:
    conn = connect(fake)
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        first = await conn.deploy(ad_spec("c1", 0))
        second = await conn.deploy(ad_spec("c1", 1))
        assert {r.status for r in await conn.reviews("c1")} == {"approved"}
        fake.disapprove(second.ad_id, "Misleading content")
        by_ad = {r.ad_id: r for r in await conn.reviews("c1")}
        assert by_ad[first.ad_id].status == "approved"
        bad = by_ad[second.ad_id]
        assert (bad.status, bad.platform_status, bad.reasons) == (
            "disapproved",
            "UNAVAILABLE",
            ["Misleading content"],
        )
    finally:
        await conn.aclose()
