"""The google_ads connector against the FAKE Google Ads API (connectors/fakes/google_ads.py):
the connector contract, Google's error bodies (RESOURCE_EXHAUSTED, partial failure,
validate-only, refused credentials) and reconcile after a lost answer."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import httpx
import pytest
from platforms import GOOGLE, PNG

from faceloop.connectors.fakes.faults import FaultPlan
from faceloop.connectors.fakes.google_ads import GoogleAdsFake
from faceloop.connectors.fakes.google_ads import soak_rig as google_soak_rig
from faceloop.connectors.google_ads import GoogleAdsConnector
from faceloop.connectors.http_base import PlatformRefused, Uncertain, VirtualClock
from faceloop.connectors.soak import SoakRig, soak
from faceloop.errors import ConnectorError
from faceloop.testing.connectors import SEGMENTS, ad_spec

connect = GOOGLE.connect


@pytest.fixture
def fake() -> GoogleAdsFake:
    return GoogleAdsFake()


async def test_partial_failure_names_the_operation_and_field(fake: GoogleAdsFake) -> None:
    conn = connect(fake)
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        # both operations name objects that do not exist: each refusal names its operation
        with pytest.raises(PlatformRefused) as err:
            await conn.mutate(
                "adGroupAds",
                [
                    {"create": {"adGroup": "customers/1/adGroups/0", "ad": {}}},
                    {"remove": "customers/1234567890/adGroupAds/1~2"},
                ],
                partial_failure=True,
            )
        text = str(err.value)
        assert "2 of 2 operations refused" in text
        assert "operations[0].create.adGroup" in text and "operations[1].remove" in text
        assert "mutateError=RESOURCE_NOT_FOUND" in text
    finally:
        await conn.aclose()


async def test_partial_failure_keeps_the_valid_operations(fake: GoogleAdsFake) -> None:
    conn = connect(fake)
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(ad_spec("c1", 0))
        groups = [rn for rn in fake.objects if "/adGroups/" in rn]
        ad = next(o for rn, o in fake.objects.items() if "/adGroupAds/" in rn)["ad"]
        bad = {**ad, "responsiveDisplayAd": {**ad["responsiveDisplayAd"], "businessName": "x" * 40}}
        good = {**ad, "name": "fl-other"}
        with pytest.raises(PlatformRefused, match=r"1 of 2 operations refused.*business_name"):
            await conn.mutate(
                "adGroupAds",
                [
                    {"create": {"adGroup": groups[0], "ad": bad}},
                    {"create": {"adGroup": groups[1], "ad": good}},
                ],
                partial_failure=True,
            )
        names = {o["ad"]["name"] for rn, o in fake.objects.items() if "/adGroupAds/" in rn}
        assert names == {dep.ad_id, "fl-other"}
    finally:
        await conn.aclose()


async def test_validate_only_checks_and_creates_nothing(fake: GoogleAdsFake) -> None:
    conn = connect(fake, validate_only=True)
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        dep = await conn.deploy(ad_spec("c1", 0))
        assert (dep.ad_id, dep.status) == ("fl-asset-0000", "paused")
        assert fake.validate_only_calls == 2  # the budget and the image asset
        assert fake.objects == {} and fake.ledger.writes == 0
    finally:
        await conn.aclose()


async def test_bad_credentials_are_a_terminal_error_without_the_token(fake: GoogleAdsFake) -> None:
    conn = connect(fake, developer_token="wrong-secret-token")
    try:
        with pytest.raises(PlatformRefused) as err:
            await conn.ensure_campaign("c1", SEGMENTS)
        text = str(err.value)
        assert "DEVELOPER_TOKEN_NOT_APPROVED" in text and "DEVELOPER_TOKEN" in text
        assert "wrong-secret-token" not in text
        assert err.value.attempts == 1  # refused for good: not retried
    finally:
        await conn.aclose()


async def test_the_ad_carries_the_ai_attestation_and_the_visible_label(fake: GoogleAdsFake) -> None:
    conn = connect(fake)
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        spec = ad_spec("c1", 0).model_copy(
            update={
                "headline": "Everyday sun protection that feels like nothing on your skin.",
                "disclosure": "KI-generiertes Bild / Image générée par IA",
            }
        )
        await conn.deploy(spec)
        asset = next(o for rn, o in fake.objects.items() if "/assets/" in rn)
        assert asset["syntheticContentInfo"]["advertiserAttestation"] == {
            "source": "ADVERTISER_ATTESTED",
            "status": "IS_SYNTHETIC",
        }
        ad = next(o for rn, o in fake.objects.items() if "/adGroupAds/" in rn)["ad"]
        rda = ad["responsiveDisplayAd"]
        assert rda["descriptions"] == [{"text": spec.disclosure}]
        assert rda["longHeadline"] == {"text": spec.headline}
        assert len(rda["headlines"][0]["text"]) <= 30
        too_long = spec.model_copy(update={"asset_id": "asset-9", "disclosure": "x" * 91})
        with pytest.raises(ConnectorError, match="disclosure texts"):
            await conn.deploy(too_long)
    finally:
        await conn.aclose()


async def test_credentials_stay_out_of_repr_and_dumps(fake: GoogleAdsFake) -> None:
    cfg = fake.settings()
    assert fake.developer_token not in repr(cfg)
    assert fake.access_token not in str(cfg.model_dump())
    assert httpx  # imported for the transport types


class ForgetsTheBudget(GoogleAdsConnector):
    """A connector that acknowledges allocations without writing the budget."""

    async def mutate(self, collection: str, operations: Any, **kw: Any) -> Any:
        if collection == "campaignBudgets" and "update" in operations[0]:
            return [None]
        return await super().mutate(collection, operations, **kw)


def forgetful_rig(plan: FaultPlan, clock: VirtualClock, seed: int) -> SoakRig:
    rig = google_soak_rig(plan, clock, seed)
    conn = rig.connector
    assert isinstance(conn, GoogleAdsConnector)
    rig.connector = ForgetsTheBudget(
        conn.config, conn.read_creative, transport=rig.fake.transport(plan), clock=clock
    )
    return rig


async def test_the_soak_sees_an_allocation_that_was_not_written() -> None:
    result = await soak(
        "google_ads-forgetful", ops=120, fault_rate=0.0, seed=3, builder=forgetful_rig
    )
    assert result.lost_updates > 0


class BlindRetries(GoogleAdsConnector):
    """A connector that resends a create after a lost answer without looking first."""

    async def create_once(self, what: str, lookup: Any, create: Any) -> Any:
        found = await lookup()
        if found is not None:
            return found
        for _ in range(self.policy.max_attempts):
            with contextlib.suppress(Uncertain):
                return await create()
        raise AssertionError(f"{what} never went through")


async def test_the_fake_counts_duplicates_of_blind_retries(fake: GoogleAdsFake) -> None:
    conn = BlindRetries(
        fake.settings(),
        lambda uri: PNG,
        transport=fake.transport(FaultPlan(rate=0.3, mix={"timeout_after_commit": 1.0}, seed=2)),
        clock=VirtualClock(),
        rng=random.Random(0),
    )
    try:
        await conn.ensure_campaign("c1", SEGMENTS)
        for n in range(6):
            await conn.deploy(ad_spec("c1", n))
    finally:
        await conn.aclose()
    assert fake.ledger.duplicates() > 0


def test_config_names_the_nested_variables_and_masks_the_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from faceloop.cli.main import app

    monkeypatch.setenv("FACELOOP_GOOGLE_ADS__DEVELOPER_TOKEN", "dev-secret-123")
    monkeypatch.setenv("FACELOOP_TIKTOK__ACCESS_TOKEN", "tt-secret-456")
    out = CliRunner().invoke(app, ["config", "--json"]).output
    assert "dev-secret-123" not in out and "tt-secret-456" not in out
    data = json.loads(out)
    assert data["FACELOOP_GOOGLE_ADS__DEVELOPER_TOKEN"] == {"value": "**********", "source": "env"}
    assert data["FACELOOP_TIKTOK__ACCESS_TOKEN"]["value"] == "**********"
    assert data["FACELOOP_GOOGLE_ADS__API_VERSION"] == {"value": "v26", "source": "default"}
