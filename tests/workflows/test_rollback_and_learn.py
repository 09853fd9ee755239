"""`CampaignActivities.rollback_and_learn` (patched `rollback-and-learn-in-one`): the rollback
check and learn as one activity must decide what the two did one after the other: the ads a
criterion fires on are paused, audited, and left out of learn's plan (never kept, never
retired a second time, never the winner)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from optuna.storages import InMemoryStorage

from faceloop.messages import LearnInput, ProposeInput, RollbackInput, RollbackLearnInput
from faceloop.models import (
    AudienceSegment,
    Brief,
    CampaignConfig,
    Decision,
    KpiObservation,
    Variant,
)
from faceloop.optimization.study import Optimizer
from faceloop.playbooks.schema import RollbackCriterion, load_playbook
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign_activities import CampaignActivities

CID = "fused"
BRIEF = Brief(
    product="Lumen",
    message="m",
    audience=[AudienceSegment(name="all", share=1.0)],
    markets=["DE"],
    budget_impressions=100_000,
)
CONFIG = CampaignConfig(variants_per_round=4, incumbents=2)


def _round_zero(tmp_path: Path) -> tuple[CampaignActivities, Catalog, list[Variant]]:
    """Four live ads after their first window; the first has a CTR of 0.2 %, the others 4-6 %."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    catalog.upsert_campaign(CID, BRIEF, CONFIG, "running")
    campaign = CampaignActivities(catalog, Optimizer(InMemoryStorage(), "thompson"))
    proposed = campaign._propose(ProposeInput(campaign_id=CID, round=0, n=4, brief=BRIEF))
    live = [
        v.model_copy(update={"decision": Decision.deploy, "ad_id": f"ad-{v.variant_id}"})
        for v in proposed.variants
    ]
    clicks = [4, 80, 100, 120]
    catalog.record_observations(
        [
            KpiObservation(
                campaign_id=CID,
                variant_id=v.variant_id,
                ad_id=f"ad-{v.variant_id}",
                round=0,
                segment="all",
                impressions=2_000,
                clicks=c,
                conversions=0,
                observed_at=datetime.now(UTC),
            )
            for v, c in zip(live, clicks, strict=True)
        ]
    )
    return campaign, catalog, live


def _inputs(live: list[Variant]) -> tuple[RollbackInput, LearnInput]:
    playbook = load_playbook().model_copy(deep=True)
    playbook.rollback = [
        RollbackCriterion(id="ctr-floor", metric="ctr", op="lt", threshold=0.01, min_impressions=1)
    ]
    rollback = RollbackInput(campaign_id=CID, round=0, playbook=playbook, live=live)
    learn = LearnInput(
        campaign_id=CID, round=0, brief=BRIEF, config=CONFIG, round_variants=live, live=live
    )
    return rollback, learn


def test_rolled_back_ads_leave_the_plan_learned_in_the_same_activity(tmp_path: Path) -> None:
    campaign, catalog, live = _round_zero(tmp_path)
    rollback, learn = _inputs(live)
    out = campaign._rollback_and_learn(RollbackLearnInput(rollback=rollback, learn=learn))
    worst = live[0].variant_id
    assert [r.variant_id for r in out.rolled.paused] == [worst]
    assert out.rolled.paused[0].criteria == ["ctr-floor"]
    planned = {v.variant_id for v in [*out.learned.incumbents, *out.learned.retire]}
    # the rolled-back ad is paused already: neither kept nor retired again, nor the winner
    assert worst not in planned and planned == {v.variant_id for v in live[1:]}
    assert out.learned.winner is not None and out.learned.winner.variant_id != worst
    kinds = [e.kind for e in catalog.audit_entries(CID)]
    assert kinds.count("rollback.paused") == 1 and kinds.count("round.learned") == 1
    (row,) = [v for v in catalog.variants(CID) if v.variant_id == worst]
    assert not row.live


def test_rollback_and_learn_decides_as_the_two_activities_did(tmp_path: Path) -> None:
    fused_campaign, _, fused_live = _round_zero(tmp_path / "fused")
    rollback, learn = _inputs(fused_live)
    fused = fused_campaign._rollback_and_learn(RollbackLearnInput(rollback=rollback, learn=learn))

    campaign, _, live = _round_zero(tmp_path / "apart")
    rollback, learn = _inputs(live)
    rolled = campaign._check_rollback(rollback)
    learned = campaign._learn(
        learn.model_copy(update={"paused": [r.variant_id for r in rolled.paused]})
    )
    # the same proposals (the sampler is seeded per campaign and round), the same plan
    assert [v.variant_id for v in fused_live] == [v.variant_id for v in live]
    assert fused.rolled == rolled
    assert fused.learned == learned
