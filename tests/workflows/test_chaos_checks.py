"""The checks after a chaos run find what they look for: a second ad for one variant on the
platform's side, an ad the catalog does not know, a lost asset and an asset whose bytes
changed (the control for the zeros `faceloop bench loop --chaos` reports)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from faceloop.connectors.base import AdSpec
from faceloop.connectors.sandbox_platform.app import create_app
from faceloop.connectors.sandbox_platform.scenario import load_scenario
from faceloop.examples import example_path
from faceloop.models import Asset, AudienceSegment, Brief, CampaignConfig, FaceParams, Variant
from faceloop.settings import Settings
from faceloop.storage import migrations
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog
from faceloop.workflows.chaos import check_invariants

CID = "c-chaos"


def asset(asset_id: str, uri: str) -> Asset:
    return Asset(
        asset_id=asset_id,
        uri=uri,
        width=64,
        height=64,
        generator="dcgan",
        model_version="dcgan-64@1.0",
        seed=1,
    )


def test_the_checks_report_duplicates_unknown_ads_and_lost_assets(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    migrations.upgrade(settings.resolved_database_url)
    store = AssetStore(settings.resolved_asset_root)
    kept_id, kept_uri = store.put_bytes(b"kept image")
    gone_id = hashlib.sha256(b"never stored").hexdigest()
    gone_uri = (Path(settings.resolved_asset_root) / gone_id[:2] / f"{gone_id}.png").as_uri()
    changed_id, changed_uri = store.put_bytes(b"original bytes")
    store.path_of(changed_uri).write_bytes(b"other bytes")

    # the platform holds two ads for variant v1 (two creatives) and one nobody recorded
    app = create_app(load_scenario(example_path("scenarios", "smooth.yaml")), tmp_path / "s.db")
    platform = app.state.store
    platform.ensure_campaign(CID, [])
    ads = []
    for variant_id, asset_id in (("v1", kept_id), ("v1", changed_id), ("v9", "f" * 64)):
        deployment, _ = platform.deploy(
            AdSpec(
                campaign_id=CID,
                variant_id=variant_id,
                asset_id=asset_id,
                creative_uri=kept_uri,
                params=FaceParams(),
                headline="h",
                disclosure="AI-generated image",
            )
        )
        ads.append(deployment.ad_id)
    platform.close()

    brief = Brief(
        product="Lumen",
        message="m",
        audience=[AudienceSegment(name="all", share=1.0)],
        markets=["DE"],
        budget_impressions=1000,
    )
    with Catalog(settings.resolved_database_url) as catalog:
        catalog.upsert_campaign(CID, brief, CampaignConfig(), "done")
        for n, (a, ad) in enumerate(
            [
                (asset(kept_id, kept_uri), ads[0]),
                (asset(changed_id, changed_uri), ads[1]),
                (asset(gone_id, gone_uri), None),
            ]
        ):
            catalog.upsert_variant(
                Variant(
                    variant_id=f"v{n + 1}",
                    campaign_id=CID,
                    round=0,
                    params=FaceParams(),
                    seed=n,
                    asset=a,
                    ad_id=ad,
                )
            )
        catalog.audit(CID, "brief.submitted", CID, "tester", {})

    found = check_invariants(settings, [CID], tmp_path / "s.db")
    assert found.ads == 3
    assert found.duplicate_ads_by_asset == 0  # the platform refuses a second ad per asset
    assert found.duplicate_ads_by_variant == 1
    assert found.unknown_ads == [ads[2]]
    assert found.assets_checked == 3
    assert len(found.lost_assets) == 2
    assert any(gone_id in line for line in found.lost_assets)
    assert any("hash to" in line and changed_id in line for line in found.lost_assets)
    assert found.audit_problems == [] and found.audit_entries == 1
    assert not found.hold
