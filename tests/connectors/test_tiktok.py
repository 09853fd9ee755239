"""The tiktok connector against the FAKE TikTok API for Business
(connectors/fakes/tiktok.py): the connector contract, TikTok's envelope codes (40100 rate
limit, 5xxxx, refused token), the AIGC disclosure, and reconcile after a lost answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from platforms import TIKTOK

from faceloop.briefs import load_brief_and_config
from faceloop.connectors.channels import check_channels
from faceloop.connectors.fakes.tiktok import TikTokFake
from faceloop.connectors.http_base import PlatformRefused
from faceloop.connectors.tiktok import AD_TEXT_MAX, ad_text
from faceloop.errors import ConnectorError, InputError
from faceloop.models import CampaignConfig, Channel
from faceloop.settings import Settings
from faceloop.testing.connectors import SEGMENTS, ad_spec

ROOT = Path(__file__).resolve().parents[2]


connect = TIKTOK.connect


@pytest.fixture
def fake() -> TikTokFake:
    return TikTokFake()


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
