"""The KPI analyst on a real catalog and a real Optuna study (SQLite files)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from agent_fakes import FakeChatModel, as_json

from faceloop.agents.activities import AnalystActivities
from faceloop.agents.analyst import MIN_TRIALS_FOR_IMPORTANCE
from faceloop.agents.models import AnalyzeInput
from faceloop.models import AudienceSegment, Brief, CampaignConfig, KpiGoal, KpiObservation, Variant
from faceloop.optimization import Optimizer
from faceloop.storage.catalog import Catalog

CID = "camp-analyst"
BRIEF = Brief(
    product="Lumen",
    message="m",
    audience=[AudienceSegment(name="all")],
    markets=["DE"],
    budget_impressions=100_000,
)


@pytest.fixture
def env(tmp_path: Path) -> tuple[Catalog, Optimizer]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    catalog.upsert_campaign(CID, BRIEF, CampaignConfig(), "running")
    return catalog, Optimizer(f"sqlite:///{tmp_path / 'o.db'}", "random")


def play_round(catalog: Catalog, opt: Optimizer, rnd: int, n: int = 4) -> None:
    """n variants; CTR rises with the smile expression, so the study has a signal."""
    obs = []
    for p in opt.ask(CID, rnd, n, BRIEF.search_space):
        vid = f"{CID}-r{rnd}-t{p.trial_number}"
        v = Variant(
            variant_id=vid,
            campaign_id=CID,
            round=rnd,
            trial_number=p.trial_number,
            params=p.params,
            seed=1,
        )
        catalog.upsert_variant(v)
        clicks = 40 if p.params.expression == "smile" else 5 + p.trial_number % 7
        obs.append(
            KpiObservation(
                campaign_id=CID,
                variant_id=vid,
                ad_id=f"ad-{vid}",
                round=rnd,
                impressions=2000,
                clicks=clicks,
                conversions=clicks // 4,
                observed_at=datetime.now(UTC),
            )
        )
        opt.tell(CID, p.trial_number, clicks / 2000)
    catalog.record_observations(obs)


def test_first_round_states_numbers_and_why_no_importances(env: tuple[Catalog, Optimizer]) -> None:
    catalog, opt = env
    play_round(catalog, opt, 0)
    s = AnalystActivities(catalog, opt).run(AnalyzeInput(campaign_id=CID, round=0))
    assert s.written_by == "template" and s.round_impressions == 8000
    assert s.best is not None and s.worst is not None and s.best.rate >= s.worst.rate
    assert f"{s.round_impressions:,} impressions" in s.text
    assert f"{s.best.rate:.2%} CTR" in s.text and s.best.variant_id in s.text
    assert s.importances == {} and f"at least {MIN_TRIALS_FOR_IMPORTANCE}" in s.text
    assert s.best.params["expression"] in s.text
    kinds = [e.kind for e in catalog.audit_entries(CID)]
    AnalystActivities(catalog, opt).run(AnalyzeInput(campaign_id=CID, round=0))
    assert [e.kind for e in catalog.audit_entries(CID)] == kinds == ["analysis.round"]


def test_importances_once_enough_trials(env: tuple[Catalog, Optimizer]) -> None:
    catalog, opt = env
    for rnd in range(3):
        play_round(catalog, opt, rnd)
    s = AnalystActivities(catalog, opt).run(
        AnalyzeInput(campaign_id=CID, round=2, kpi_goal=KpiGoal.conversions)
    )
    assert s.completed_trials == 12
    assert s.importances and abs(sum(s.importances.values()) - 1) < 0.01
    top = max(s.importances, key=lambda k: s.importances[k])
    assert f"{top.replace('_', ' ')} ({s.importances[top]:.2f})" in s.text
    assert "conversions per 1k impressions" in s.text


def test_no_observations(env: tuple[Catalog, Optimizer]) -> None:
    catalog, opt = env
    s = AnalystActivities(catalog, opt).run(AnalyzeInput(campaign_id=CID, round=0))
    assert "no impressions were recorded" in s.text and s.round_rate is None


def test_llm_rephrasing_may_not_invent_numbers(env: tuple[Catalog, Optimizer]) -> None:
    catalog, opt = env
    play_round(catalog, opt, 0)
    base = AnalystActivities(catalog, opt).run(AnalyzeInput(campaign_id=CID, round=0))
    number = re.search(r"\d[\d,]*", base.text)
    assert number is not None
    honest = as_json(text=f"This round reached {number.group(0)} people.")
    s = AnalystActivities(catalog, opt, FakeChatModel(honest)).run(
        AnalyzeInput(campaign_id=CID, round=0)
    )
    assert s.written_by == "llm" and s.text == f"This round reached {number.group(0)} people."
    invented = as_json(text="CTR rose by 37.5% thanks to the new lighting.")
    s = AnalystActivities(catalog, opt, FakeChatModel(invented)).run(
        AnalyzeInput(campaign_id=CID, round=0)
    )
    assert s.written_by == "template" and s.text == base.text
    assert "numbers not in the data" in s.fallback_reason
