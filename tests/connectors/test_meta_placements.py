"""Meta placement asset customization against the FAKE Graph API: every export the deploy
gate admitted is one ad image, and the creative's asset_customization_rules show each
placement group its ratio; the fake refuses an asset feed Meta would refuse."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
from typing import Any

import httpx
import pytest

from faceloop.connectors.fakes.faults import FaultPlan, FaultyTransport
from faceloop.connectors.fakes.meta import PAGE, TOKEN, MetaFake, connector_for
from faceloop.connectors.http_base import VirtualClock
from faceloop.models import Placement, PlacementExport
from faceloop.testing.connectors import SEGMENTS, ad_spec

FEED = {
    "publisher_platforms": ["facebook", "instagram"],
    "facebook_positions": ["feed"],
    "instagram_positions": ["stream"],
}
STORIES = {
    "publisher_platforms": ["facebook", "instagram"],
    "facebook_positions": ["story", "facebook_reels"],
    "instagram_positions": ["story", "reels"],
}
RIGHT_COLUMN = {
    "publisher_platforms": ["facebook"],
    "facebook_positions": ["right_hand_column", "search"],
}


def export(placement: Placement, media_type: str = "image/jpeg") -> PlacementExport:
    ext = "jpg" if media_type == "image/jpeg" else "webp"
    return PlacementExport(
        placement=placement,
        asset_id=f"export-{placement}-{ext}",
        parent_asset_id="asset-0000",
        uri=f"file:///exports/0/{placement.replace(':', 'x')}.{ext}",
        media_type=media_type,
        width=1080,
        height=1080,
        quality=95,
        fit="crop",
        manifest_ok=True,
        watermark_bit_errors=0,
        watermark_recall=1.0,
    )


def md5(uri: str) -> str:
    """The fake's image hash of a URI's bytes (connector_for's reader returns the URI)."""
    return hashlib.md5(uri.encode()).hexdigest()


def shown(fake: MetaFake) -> list[tuple[dict[str, Any], str]]:
    """(customization_spec, image hash) of the one creative's rules, by priority."""
    (creative,) = [o for o in fake.objects.values() if o["kind"] == "adcreatives"]
    feed = creative["asset_feed_spec"]
    hash_of = {i["adlabels"][0]["name"]: i["hash"] for i in feed["images"]}
    rules = sorted(feed["asset_customization_rules"], key=lambda r: r["priority"])
    return [(r["customization_spec"], hash_of[r["image_label"]["name"]]) for r in rules]


@pytest.fixture
def fake() -> MetaFake:
    return MetaFake(clock=VirtualClock())


async def test_each_admitted_export_is_an_image_shown_where_its_ratio_fits(
    fake: MetaFake,
) -> None:
    exports = [export(p) for p in ("1:1", "4:5", "9:16", "1.91:1")] + [export("9:16", "image/webp")]
    spec = ad_spec("c1", 0).model_copy(update={"exports": exports})
    async with connector_for(fake) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(spec)
        again = await conn.deploy(spec)
    assert again == dep and fake.ledger.duplicates() == 0
    jpeg = {e.placement: e for e in exports if e.media_type == "image/jpeg"}
    # one ad image per JPEG export; neither the WebP (Meta's image ads take JPG/PNG) nor
    # the creative itself (the 1:1 export is the default) was uploaded
    assert fake.images == {
        md5(e.uri): f"asset-0000-{p.replace('.', '').replace(':', 'x')}.jpg"
        for p, e in jpeg.items()
    }
    assert shown(fake) == [
        (FEED, md5(jpeg["4:5"].uri)),
        (STORIES, md5(jpeg["9:16"].uri)),
        (RIGHT_COLUMN, md5(jpeg["1.91:1"].uri)),
        ({}, md5(jpeg["1:1"].uri)),  # every other position: the square export
    ]
    assert dep.placements == [
        "1:1 image/jpeg",
        "4:5 image/jpeg",
        "9:16 image/jpeg",
        "1.91:1 image/jpeg",
    ]
    (creative,) = [o for o in fake.objects.values() if o["kind"] == "adcreatives"]
    assert creative["object_story_spec"] == {"page_id": PAGE}
    feed = creative["asset_feed_spec"]
    assert feed["bodies"] == [{"text": "Try it today\n\nAI-generated image"}]  # the AI label
    assert feed["link_urls"] == [{"website_url": "https://example.com/landing"}]


async def test_without_a_square_export_the_creative_is_the_default(fake: MetaFake) -> None:
    story = export("9:16")
    spec = ad_spec("c1", 0).model_copy(update={"exports": [story]})
    async with connector_for(fake) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(spec)
    assert shown(fake) == [(STORIES, md5(story.uri)), ({}, md5(spec.creative_uri))]
    assert set(fake.images) == {md5(story.uri), md5(spec.creative_uri)}
    assert dep.placements == ["9:16 image/jpeg"]


async def test_a_square_export_alone_serves_the_feeds_and_the_rest(fake: MetaFake) -> None:
    square = export("1:1")
    async with connector_for(fake) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(ad_spec("c1", 0).model_copy(update={"exports": [square]}))
    assert shown(fake) == [(FEED, md5(square.uri)), ({}, md5(square.uri))]
    assert list(fake.images) == [md5(square.uri)] and dep.placements == ["1:1 image/jpeg"]


async def test_without_exports_the_creative_is_one_image(fake: MetaFake) -> None:
    spec = ad_spec("c1", 0).model_copy(update={"exports": [export("9:16", "image/webp")]})
    async with connector_for(fake) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(spec)
    (creative,) = [o for o in fake.objects.values() if o["kind"] == "adcreatives"]
    assert "asset_feed_spec" not in creative
    assert creative["object_story_spec"]["link_data"]["image_hash"] == md5(spec.creative_uri)
    assert dep.placements == []


async def test_lost_answers_never_duplicate_a_customized_ad(fake: MetaFake) -> None:
    exports = [export(p) for p in ("1:1", "4:5", "9:16")]
    plan = FaultPlan(rate=0.5, mix={"timeout_after_commit": 1.0}, seed=5)
    transport = FaultyTransport(httpx.ASGITransport(app=fake.app), fake, plan)
    async with connector_for(fake, transport, rng=random.Random(0)) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        for n in range(3):
            spec = ad_spec("c1", n).model_copy(update={"exports": exports})
            first = await conn.deploy(spec)
            assert await conn.deploy(spec) == first
    assert fake.ledger.injected["timeout_after_commit"] > 0
    assert fake.ledger.duplicates() == 0
    assert sum(1 for o in fake.objects.values() if o["kind"] == "adcreatives") == 3
    assert len(fake.images) == 3  # the three exports' bytes, whatever the retries sent


# -- the fake refuses what Meta refuses -------------------------------------------------------


async def post(fake: MetaFake, edge: str, body: dict[str, Any]) -> httpx.Response:
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app),
        base_url="http://meta.fake/v23.0",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        return await client.post(f"/{fake.account}/{edge}", data=data)


async def upload(fake: MetaFake, data: bytes) -> str:
    answer = await post(fake, "adimages", {"bytes": base64.b64encode(data).decode(), "name": "x"})
    return str(answer.json()["images"]["x"]["hash"])


def feed_with(square: str, story: str) -> dict[str, Any]:
    return {
        "ad_formats": ["SINGLE_IMAGE"],
        "images": [
            {"hash": square, "adlabels": [{"name": "sq"}]},
            {"hash": story, "adlabels": [{"name": "st"}]},
        ],
        "bodies": [{"text": "Try it today"}],
        "link_urls": [{"website_url": "https://example.com"}],
        "call_to_action_types": ["LEARN_MORE"],
        "asset_customization_rules": [
            # a copy: the cases below break the rules in place
            {
                "customization_spec": copy.deepcopy(STORIES),
                "image_label": {"name": "st"},
                "priority": 1,
            },
            {"customization_spec": {}, "image_label": {"name": "sq"}, "priority": 2},
        ],
    }


def _rules(feed: dict[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = feed["asset_customization_rules"]
    return rules


BROKEN = {
    "a rule names a label no image has": (
        lambda f: _rules(f)[0].update(image_label={"name": "nope"}),
        "image_label 'nope' is not a label of the feed's images",
    ),
    "one rule only": (
        lambda f: f.update(asset_customization_rules=_rules(f)[:1]),
        "more than one customization rule",
    ),
    "a rule without an image label": (
        lambda f: _rules(f)[0].pop("image_label"),
        "image_label is required for the SINGLE_IMAGE format",
    ),
    "an undocumented position": (
        lambda f: _rules(f)[0]["customization_spec"].update(instagram_positions=["feed"]),
        "instagram_positions must be a non-empty list",
    ),
    "facebook without its positions": (
        lambda f: _rules(f)[0]["customization_spec"].pop("facebook_positions"),
        "facebook_positions is required when facebook is a publisher platform",
    ),
    "positions of a platform not selected": (
        lambda f: _rules(f)[0]["customization_spec"].update(publisher_platforms=["facebook"]),
        "instagram_positions given but instagram is not in publisher_platforms",
    ),
    "the default rule not last": (
        lambda f: _rules(f)[1].update(priority=0) or _rules(f)[0].update(priority=3),
        "priority must be a positive integer",
    ),
    "the default rule above another": (
        lambda f: _rules(f)[1].update(priority=1) or _rules(f)[0].update(priority=2),
        "the default rule (empty customization_spec) must have the lowest priority",
    ),
    "an image outside the library": (
        lambda f: f["images"][1].update(hash="0" * 32),
        "images[1]: Invalid image hash",
    ),
    "an image without a label": (
        lambda f: f["images"][0].pop("adlabels"),
        "images[0].adlabels must be one label",
    ),
    "two link descriptions": (
        lambda f: f.update(descriptions=[{"text": "a"}, {"text": "b"}]),
        "only one link description",
    ),
    "no link": (lambda f: f.pop("link_urls"), "link_urls is required"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
async def test_the_fake_refuses_an_asset_feed_meta_would_refuse(fake: MetaFake, case: str) -> None:
    square, story = await upload(fake, b"square"), await upload(fake, b"story")
    body = {"name": "c", "object_story_spec": {"page_id": PAGE}}
    ok = await post(fake, "adcreatives", body | {"asset_feed_spec": feed_with(square, story)})
    assert ok.status_code == 200, ok.text
    feed = feed_with(square, story)
    breaks, message = BROKEN[case]
    breaks(feed)
    answer = await post(fake, "adcreatives", body | {"asset_feed_spec": feed})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == 100 and error["fbtrace_id"]
    assert message in error["message"] and error["message"].startswith("(#100) asset_feed_spec")
    assert sum(1 for o in fake.objects.values() if o["kind"] == "adcreatives") == 1
