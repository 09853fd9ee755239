"""The catalog's cost records (faceloop/storage/costs.py) and what faceloop.cost makes of
them: retried writes replace, resources sum, ad spend is the latest window's, money and
per-1,000-variant figures follow the prices."""

from __future__ import annotations

import pytest

from faceloop.cost import Prices, campaign_cost, cap_reason
from faceloop.models import Asset, FaceParams, SpendCap, Variant
from faceloop.storage.catalog import Catalog


def _variant(n: int, with_asset: bool = True) -> Variant:
    asset = (
        Asset(
            asset_id=f"{n:064x}",
            uri=f"file:///a/{n}.png",
            width=64,
            height=64,
            generator="dcgan",
            model_version="t",
            seed=n,
        )
        if with_asset
        else None
    )
    return Variant(
        variant_id=f"v{n}", campaign_id="c1", round=0, params=FaceParams(), seed=n, asset=asset
    )


def test_usage_is_summed_keyed_and_priced(catalog: Catalog) -> None:
    for n in range(4):
        catalog.upsert_variant(_variant(n))
    catalog.upsert_variant(_variant(9, with_asset=False))  # proposed, never generated
    assert catalog.count_variants("c1") == 4

    catalog.record_usage("c1", "gpu_seconds", 30.0, "run:1:1", detail="GPU wall time")
    # the same attempt writing again (an activity retried after its write) replaces
    catalog.record_usage("c1", "gpu_seconds", 36.0, "run:1:1", detail="GPU wall time")
    catalog.record_usage("c1", "gpu_seconds", 36.0, "run:1:2", detail="GPU wall time")
    catalog.record_usage("c1", "cpu_seconds", 7200.0, "run:2:1")
    catalog.record_usage("c1", "storage_bytes", 2e9, "asset:a")
    catalog.record_usage("c1", "storage_bytes", 2e9, "asset:a")  # same bytes, stored once
    catalog.record_usage("c1", "api_calls", 2000, "run:3:1")
    catalog.record_usage("c1", "review_minutes", 30, "review:v1")
    # cumulative per window: the latest window's figure is the campaign's spend
    catalog.record_usage("c1", "ad_spend", 10.0, "window:0", round=0)
    catalog.record_usage("c1", "ad_spend", 25.0, "window:1", round=1)
    catalog.record_usage("other", "cpu_seconds", 99.0, "run:9:1")

    assert catalog.usage_totals("c1") == {
        "gpu_seconds": 72.0,
        "cpu_seconds": 7200.0,
        "storage_bytes": 2e9,
        "api_calls": 2000.0,
        "review_minutes": 30.0,
        "ad_spend": 25.0,
    }
    assert catalog.usage_details("c1", "gpu_seconds") == ["GPU wall time"]
    with pytest.raises(ValueError, match="unknown resource"):
        catalog.record_usage("c1", "gpu_hours", 1, "k")  # type: ignore[arg-type]

    prices = Prices(
        currency="EUR",
        gpu_hour=3.6,
        cpu_hour=0.5,
        gb_month=0.02,
        per_1k_api_calls=0.1,
        reviewer_hour=60.0,
    )
    cost = campaign_cost(catalog, "c1", prices)
    lines = {line.resource: line for line in cost.lines}
    assert lines["gpu_seconds"].money == pytest.approx(72 / 3600 * 3.6)
    assert lines["gpu_seconds"].per_1k_variants == pytest.approx(72 * 1000 / 4)
    assert lines["cpu_seconds"].money == pytest.approx(1.0)
    assert lines["storage_bytes"].money == pytest.approx(0.04)
    assert lines["api_calls"].money == pytest.approx(0.2)
    assert lines["review_minutes"].money == pytest.approx(30.0)
    compute = 0.072 + 1.0 + 0.04 + 0.2 + 30.0
    assert cost.compute_money == pytest.approx(compute)
    assert cost.compute_money_per_1k_variants == pytest.approx(compute * 1000 / 4)
    assert cost.ad_spend == 25.0 and cost.total_money == pytest.approx(compute + 25.0)
    assert not cost.cap_reached and cost.capped_spend is None

    # the cap counts compute unless told not to
    with_compute = campaign_cost(catalog, "c1", prices, SpendCap(amount=50, currency="EUR"))
    assert with_compute.cap_reached and with_compute.capped_spend == pytest.approx(compute + 25)
    assert cap_reason(with_compute).startswith("spend cap reached: ad spend + compute 56.31 EUR")
    ads_only = SpendCap(amount=50, currency="EUR", include_compute=False)
    assert not campaign_cost(catalog, "c1", prices, ads_only).cap_reached


def test_a_campaign_without_variants_or_spend_has_no_per_1k_figures(catalog: Catalog) -> None:
    cost = campaign_cost(catalog, "empty", Prices())
    assert cost.variants == 0 and cost.ad_spend is None and cost.compute_money == 0
    assert all(line.per_1k_variants is None for line in cost.lines)
