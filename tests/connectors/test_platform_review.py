"""The observe activity reads the platform's ad review (Meta, through its FAKE Graph API):
a disapproved ad is audited, paused on the platform and returned for the workflow with the
playbook's role to notify; an ad with issues is audited and keeps running."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from faceloop.connectors.activities import ConnectorActivities, ProvenanceGate
from faceloop.connectors.fakes.meta import MetaFake, connector_for
from faceloop.connectors.http_base import VirtualClock
from faceloop.messages import ObserveInput
from faceloop.models import (
    Asset,
    AudienceSegment,
    Brief,
    CampaignConfig,
    Decision,
    FaceParams,
    Variant,
)
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog
from faceloop.testing.connectors import SEGMENTS, ad_spec

CID = "review"
BRIEF = Brief(
    product="Lumen",
    message="Light that follows you",
    audience=[AudienceSegment(name="young", share=0.5), AudienceSegment(name="old", share=0.5)],
    markets=["DE"],
    budget_impressions=10_000,
    channels=["meta"],
)


async def test_observe_pauses_and_reports_a_disapproved_ad(tmp_path: Path) -> None:
    fake = MetaFake(clock=VirtualClock())
    fake.disapprove("asset-0001", "Ads may not use misleading imagery")
    conn = connector_for(fake, rng=random.Random(0))
    catalog = Catalog(f"sqlite:///{tmp_path / 'faceloop.db'}")
    try:
        catalog.upsert_campaign(CID, BRIEF, CampaignConfig(connector="meta"), "running")
        await conn.ensure_campaign(CID, SEGMENTS)
        live = []
        for n in range(3):
            dep = await conn.deploy(ad_spec(CID, n))
            v = Variant(
                variant_id=f"v{n}",
                campaign_id=CID,
                round=0,
                params=FaceParams(),
                seed=n,
                asset=Asset(
                    asset_id=dep.asset_id,
                    uri=f"file:///{n}.png",
                    width=256,
                    height=256,
                    generator="dcgan",
                    model_version="t",
                    seed=n,
                ),
                decision=Decision.deploy,
                disclosure="AI-generated image",
                ad_id=dep.ad_id,
                live=True,
            )
            catalog.upsert_variant(v)
            live.append(v)
        fake.set_review(live[2].ad_id or "", "WITH_ISSUES", {"IMAGE_TEXT": "too much text"})
        await conn.set_allocation(CID, 0, {v.ad_id or "": 1000 for v in live})

        gate = ProvenanceGate(AssetStore(tmp_path / "assets"), tmp_path / "ca.pem", "dwtDctSvd")
        acts = ConnectorActivities(lambda name: conn, catalog, gate)
        inp = ObserveInput(
            campaign_id=CID, round=0, live=live, connector="meta", notify_role="legal"
        )
        out = await ActivityEnvironment().run(acts.observe, inp)

        (record,) = out.disapproved
        assert (record.variant_id, record.ad_id, record.notify_role) == (
            "v1",
            live[1].ad_id,
            "legal",
        )
        assert record.criteria == ["platform_review"]
        assert (
            record.reason
            == "meta review DISAPPROVED: MISLEADING_CLAIMS: Ads may not use misleading imagery"
        )
        assert fake.objects[live[1].ad_id or ""]["status"] == "PAUSED"
        assert fake.objects[live[2].ad_id or ""]["status"] == "ACTIVE"  # issues: still runs
        entries = catalog.audit_entries(CID)
        kinds = [(e.kind, e.subject) for e in entries]
        assert ("ad.disapproved", "v1") in kinds and ("ad.paused", "v1") in kinds
        assert ("ad.review_issues", "v2") in kinds
        assert not any(s == "v0" for k, s in kinds if k.startswith("ad."))
        disapproved = next(e for e in entries if e.kind == "ad.disapproved")
        assert disapproved.actor == "platform:meta"
        assert disapproved.payload["platform_status"] == "DISAPPROVED"
        stored = catalog.get_variant("v1")
        assert stored is not None and not stored.live
        # observations of the window were recorded for every ad that delivered
        assert {o.variant_id for o in out.observations} >= {"v0", "v2"}
    finally:
        catalog.close()
        await conn.aclose()


async def test_a_final_refusal_ends_the_activity_without_temporal_retries(
    tmp_path: Path,
) -> None:
    from temporalio.exceptions import ApplicationError

    fake = MetaFake(clock=VirtualClock())
    conn = connector_for(fake, rng=random.Random(0))
    catalog = Catalog(f"sqlite:///{tmp_path / 'faceloop.db'}")
    try:
        await conn.ensure_campaign(CID, SEGMENTS)
        fake.token = "rotated"  # the token faceloop holds was revoked
        gate = ProvenanceGate(AssetStore(tmp_path / "assets"), tmp_path / "ca.pem", "dwtDctSvd")
        acts = ConnectorActivities(lambda name: conn, catalog, gate)
        inp = ObserveInput(campaign_id=CID, round=0, live=[], connector="meta")
        with pytest.raises(ApplicationError) as err:
            await ActivityEnvironment().run(acts.observe, inp)
        assert err.value.type == "PlatformRefused" and err.value.non_retryable
        assert "190" in err.value.message and "FACELOOP_META_ACCESS_TOKEN" in err.value.message
        assert fake.token not in err.value.message and "FAKE-META-TOKEN" not in err.value.message
    finally:
        catalog.close()
        await conn.aclose()
