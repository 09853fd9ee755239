"""The spend check's sizing of a round (CampaignActivities.check_spend, docs/cost.md): what
the rest of a cap buys at the campaign's own price, on a real catalog, without a server."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from optuna.storages import InMemoryStorage

from faceloop.connectors.registry import planning_price
from faceloop.messages import SpendCheckInput, SpendCheckOutput
from faceloop.models import Brief, CampaignConfig, KpiObservation, SpendCap
from faceloop.optimization.study import Optimizer
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign_activities import CampaignActivities

CID = "sizing"
BRIEF = Brief(
    product="Lumen SPF 50",
    message="Everyday protection.",
    audience=[{"name": "all"}],
    markets=["DE"],
    budget_impressions=30_000,
)


@pytest.fixture
def activities(tmp_path: Path) -> CampaignActivities:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    catalog.upsert_campaign(CID, BRIEF, CampaignConfig(rounds=3), "running")
    return CampaignActivities(catalog, Optimizer(InMemoryStorage(), "thompson"))


def _delivered(acts: CampaignActivities, impressions: int, spend: float | None) -> None:
    """Round 0 delivered `impressions` and the platform billed `spend` (None: no figure)."""
    acts.catalog.record_observations(
        [
            KpiObservation(
                campaign_id=CID,
                variant_id="v0",
                ad_id="ad-0",
                round=0,
                impressions=impressions,
                clicks=10,
                conversions=1,
                observed_at=datetime.now(UTC),
            )
        ]
    )
    if spend is not None:
        acts.catalog.record_usage(CID, "ad_spend", spend, "window:0", round=0)


def _check(
    acts: CampaignActivities, amount: float, planned: int | None = 10_000
) -> SpendCheckOutput:
    cap = SpendCap(amount=amount, currency="USD", include_compute=False)
    return acts._check_spend(
        SpendCheckInput(campaign_id=CID, round=1, cap=cap, planned_impressions=planned)
    )


def test_the_rest_of_the_cap_buys_what_the_campaign_paid_per_impression(
    activities: CampaignActivities,
) -> None:
    _delivered(activities, 10_000, 20.0)  # 2.00 per 1,000
    out = _check(activities, 30.0)
    assert not out.reached and out.impressions_left == 5_000
    (entry,) = [
        e for e in activities.catalog.audit_entries(CID) if e.kind == "campaign.spend_cap_sized"
    ]
    assert entry.payload["planned_impressions"] == 10_000 and entry.payload["impressions"] == 5_000
    # a round the rest still pays for in full is not sized
    assert _check(activities, 100.0).impressions_left is None
    # older histories (no planned impressions) are never sized
    assert _check(activities, 30.0, planned=None).impressions_left is None


def test_a_rest_that_buys_no_impression_stops_the_campaign(activities: CampaignActivities) -> None:
    _delivered(activities, 10_000, 20.0)
    out = _check(activities, 20.001)
    assert out.reached and out.impressions_left is None
    assert out.reason.startswith("spend cap reached: 0.00 USD left of the cap buys no impression")
    kinds = [e.kind for e in activities.catalog.audit_entries(CID)]
    assert kinds.count("campaign.spend_cap") == 1 and "campaign.spend_cap_sized" not in kinds


@pytest.mark.parametrize(("impressions", "spend"), [(0, None), (10_000, None), (0, 5.0)])
def test_no_price_no_sizing(
    activities: CampaignActivities, impressions: int, spend: float | None
) -> None:
    """Nothing delivered yet, or a platform that reports no spend: the round is not sized."""
    _delivered(activities, impressions, spend)
    out = _check(activities, 1.0 if spend is None else 10.0)
    assert not out.reached and out.impressions_left is None


def test_a_first_round_is_sized_at_the_connectors_planning_price(tmp_path: Path) -> None:
    """Nothing delivered yet: a connector that plans its budgets at a CPM (Meta, Google Ads,
    TikTok) sizes round 0 at it; the campaign's own price takes over once it has one."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    config = CampaignConfig(rounds=3, connector="meta")
    catalog.upsert_campaign(CID, BRIEF, config, "running")
    settings = Settings(meta_cpm_minor=400)  # 4.00 per 1,000
    acts = CampaignActivities(
        catalog,
        Optimizer(InMemoryStorage(), "thompson"),
        planning_price=functools.partial(planning_price, settings),
    )
    cap = SpendCap(amount=10.0, currency="USD", include_compute=False)
    out = acts._check_spend(
        SpendCheckInput(campaign_id=CID, round=0, cap=cap, planned_impressions=10_000)
    )
    assert not out.reached and out.impressions_left == 2_500
    (entry,) = [e for e in catalog.audit_entries(CID) if e.kind == "campaign.spend_cap_sized"]
    assert entry.payload["round"] == 0 and entry.payload["per_1000_impressions"] == 4.0
    assert entry.payload["price_from"] == "meta's planning CPM"
    # delivered at 2.00 per 1,000: the campaign's own price, not the planned one
    _delivered(acts, 2_500, 5.0)
    out = _check(acts, 10.0)
    assert out.impressions_left == 2_500
    sized = [e for e in catalog.audit_entries(CID) if e.kind == "campaign.spend_cap_sized"]
    assert sized[-1].payload["price_from"] == "the campaign's own"
    catalog.close()


@pytest.mark.parametrize(
    ("connector", "per_1000"), [("meta", 10.0), ("google_ads", 2.0), ("tiktok", 2.0)]
)
def test_each_connectors_planning_price_is_what_its_budgets_are_set_at(
    connector: str, per_1000: float
) -> None:
    """The defaults: meta_cpm_minor 1000 (10.00), Google target_cpm_micros 2,000,000 and
    TikTok target_cpm 2.0 per 1,000; the sandbox plans no budget in money."""
    settings = Settings()
    assert planning_price(settings, connector) == pytest.approx(per_1000 / 1000)
    assert planning_price(settings, "sandbox") is None


def test_a_spend_check_refuses_a_round_of_no_impressions() -> None:
    """The workflow's planned round and the check's answer are whole impressions >= 1."""
    from pydantic import ValidationError

    cap = SpendCap(amount=10.0, currency="USD")
    with pytest.raises(ValidationError, match="planned_impressions"):
        SpendCheckInput(campaign_id=CID, round=1, cap=cap, planned_impressions=0)
    with pytest.raises(ValidationError, match="impressions_left"):
        SpendCheckOutput(reached=False, spent=1.0, impressions_left=0)
