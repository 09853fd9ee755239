"""MetaConnector against the FAKE Graph API (faceloop.connectors.fakes.meta): the connector
contract, Meta's error codes and usage header, idempotency under lost answers, review."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from faceloop.connectors.fakes.faults import FaultPlan, FaultyTransport
from faceloop.connectors.fakes.meta import TOKEN, MetaFake, connector_for
from faceloop.connectors.http_base import PlatformRefused, RetryPolicy, VirtualClock
from faceloop.connectors.meta import MetaConnector
from faceloop.errors import ConnectorError
from faceloop.testing import ConnectorContract
from faceloop.testing.connectors import SEGMENTS, ad_spec


@pytest.fixture
def fake() -> MetaFake:
    return MetaFake(clock=VirtualClock())


class TestMetaContract(ConnectorContract):
    @pytest.fixture
    def connector(self, fake: MetaFake) -> MetaConnector:
        conn: MetaConnector = connector_for(fake, rng=random.Random(0))
        return conn


async def test_creates_carry_the_external_id_and_the_visible_label(fake: MetaFake) -> None:
    async with connector_for(fake) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(ad_spec("c1", 0).model_copy(update={"markets": ["DE", "FR"]}))
    names = {kind: name for kind, name in fake.ledger.creates}
    (adset,) = [o for o in fake.objects.values() if o["kind"] == "adsets"]
    assert adset["targeting"] == {"geo_locations": {"countries": ["DE", "FR"]}}
    assert names["ads"] == names["adsets"] == names["adcreatives"] == "faceloop:c1:asset-0000"
    creative = next(o for o in fake.objects.values() if o["kind"] == "adcreatives")
    message = creative["object_story_spec"]["link_data"]["message"]
    assert message.endswith("AI-generated image")  # the disclosure label rides with the ad
    assert fake.objects[dep.ad_id]["name"] == "faceloop:c1:asset-0000"


async def test_lost_answers_never_duplicate(fake: MetaFake) -> None:
    # every other request's answer is lost after the fake committed it
    plan = FaultPlan(rate=0.5, mix={"timeout_after_commit": 1.0}, seed=3)
    transport = FaultyTransport(httpx.ASGITransport(app=fake.app), fake, plan)
    async with connector_for(fake, transport, rng=random.Random(0)) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        first = await conn.deploy(ad_spec("c1", 0))
        again = await conn.deploy(ad_spec("c1", 0))
    assert fake.ledger.injected["timeout_after_commit"] > 0
    assert fake.ledger.duplicates() == 0
    assert first.ad_id == again.ad_id
    assert sum(1 for o in fake.objects.values() if o["kind"] == "ads") == 1


async def test_a_spent_call_budget_is_paced_not_failed() -> None:
    clock = VirtualClock()
    fake = MetaFake(clock=clock, call_limit=12, window_s=300.0)
    async with connector_for(fake, rng=random.Random(0)) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        for n in range(4):
            await conn.deploy(ad_spec("c1", n))
        assert len(await conn.list_ads("c1")) == 4
        assert conn.pacer.last is not None
    # the usage header slowed the connector down before Meta cut it off, or it waited out
    # estimated_time_to_regain_access after an 80004: either way time passed, nothing failed
    assert clock.slept > 0 and fake.ledger.duplicates() == 0


@pytest.mark.parametrize("code", [4, 17, 613, 80004])
async def test_throttle_codes_are_retried(fake: MetaFake, code: int) -> None:
    answers = iter([code])

    class OneThrottle(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.ASGITransport(app=fake.app)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            c = next(answers, None)
            if c is not None:
                body = {
                    "error": {
                        "message": "slow down",
                        "type": "OAuthException",
                        "code": c,
                        "fbtrace_id": "x",
                    }
                }
                usage = {
                    "1": [
                        {
                            "type": "ads_management",
                            "call_count": 100,
                            "estimated_time_to_regain_access": 2,
                        }
                    ]
                }
                return httpx.Response(
                    400, json=body, headers={"x-business-use-case-usage": json.dumps(usage)}
                )
            return await self.inner.handle_async_request(request)

    clock = fake.clock
    assert isinstance(clock, VirtualClock)
    async with connector_for(fake, OneThrottle()) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        assert conn.stats.throttled == 1
    assert clock.slept >= 120  # estimated_time_to_regain_access: 2 minutes


async def test_a_bad_token_is_a_terminal_error_that_never_shows_the_token(fake: MetaFake) -> None:
    async with connector_for(fake) as conn:
        fake.token = "the-one-meta-expects"  # the connector still sends FAKE-META-TOKEN
        with pytest.raises(PlatformRefused) as err:
            await conn.ensure_campaign("c1", SEGMENTS)
    assert err.value.attempts == 1 and err.value.status == 400
    assert "190" in str(err.value) and "FACELOOP_META_ACCESS_TOKEN" in str(err.value)
    assert TOKEN not in str(err.value)


async def test_5xx_past_the_budget_is_a_clear_terminal_error(fake: MetaFake) -> None:
    plan = FaultPlan(rate=0.999, mix={"server_error": 1.0}, seed=1)
    transport = FaultyTransport(httpx.ASGITransport(app=fake.app), fake, plan)
    policy = RetryPolicy(max_attempts=3)
    async with connector_for(fake, transport, policy=policy) as conn:
        with pytest.raises(PlatformRefused, match="after 3 attempts"):
            await conn.list_ads("c1")


async def test_unmapped_segments_are_refused_by_name(fake: MetaFake) -> None:
    from faceloop.models import AudienceSegment

    async with connector_for(fake) as conn:
        with pytest.raises(ConnectorError, match="FACELOOP_META_SEGMENT_AGES"):
            await conn.ensure_campaign("c1", [AudienceSegment(name="teens")])


async def test_review_statuses_and_reasons(fake: MetaFake) -> None:
    fake.disapprove("asset-0001", "Ads may not use misleading imagery")
    async with connector_for(fake) as conn:
        await conn.ensure_campaign("c1", SEGMENTS)
        ok = await conn.deploy(ad_spec("c1", 0))
        bad = await conn.deploy(ad_spec("c1", 1))
        issues = await conn.deploy(ad_spec("c1", 2))
        fake.set_review(issues.ad_id, "WITH_ISSUES", {"IMAGE_TEXT": "too much text"})
        reviews = {r.ad_id: r for r in await conn.reviews("c1")}
        assert reviews[ok.ad_id].status == "approved"
        assert reviews[bad.ad_id].status == "disapproved"
        assert reviews[bad.ad_id].platform_status == "DISAPPROVED"
        assert reviews[bad.ad_id].reasons == [
            "MISLEADING_CLAIMS: Ads may not use misleading imagery"
        ]
        assert reviews[issues.ad_id].status == "with_issues"
        assert (await conn.pause("c1", bad.ad_id)).status == "paused"
        assert fake.objects[bad.ad_id]["status"] == "PAUSED"


def test_settings_build_it_and_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from faceloop.connectors.registry import get_connector
    from faceloop.settings import Settings

    with pytest.raises(ConnectorError, match="FACELOOP_META_ACCESS_TOKEN"):
        get_connector("meta", Settings())
    monkeypatch.setenv("FACELOOP_META_AD_ACCOUNT_ID", "act_42")
    monkeypatch.setenv("FACELOOP_META_PAGE_ID", "7")
    monkeypatch.setenv("FACELOOP_META_ACCESS_TOKEN", "EAAB-secret")
    monkeypatch.setenv("FACELOOP_META_LINK_URL", "https://example.com")
    monkeypatch.setenv("FACELOOP_META_SEGMENT_AGES", '{"young": ["18-24"]}')
    settings = Settings()
    assert "EAAB-secret" not in repr(settings)
    assert all("EAAB-secret" not in row[1] for row in settings.effective())
    conn = get_connector("meta", settings)
    assert isinstance(conn, MetaConnector) and conn.account == "act_42"
    assert conn.segment_ages == {"young": ["18-24"]}
