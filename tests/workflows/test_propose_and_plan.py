"""`CampaignActivities.propose_and_plan` (patched `propose-and-plan-in-one`): propose and the
planner's prompts as one activity must give what the two gave one after the other, and a
worker whose campaign activities were built without the planner must say so, not plan
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.storages import InMemoryStorage
from test_rollback_and_learn import BRIEF

from faceloop.agents.activities import PlannerActivities
from faceloop.agents.planner.graph import Planner
from faceloop.errors import FaceloopError
from faceloop.messages import PlanInput, ProposeAndPlanInput, ProposeInput
from faceloop.models import CampaignConfig
from faceloop.optimization.study import Optimizer
from faceloop.playbooks.schema import load_playbook
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign_activities import CampaignActivities

CID = "fused-plan"


def _campaign(tmp_path: Path, *, planner: bool = True) -> CampaignActivities:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    catalog.upsert_campaign(CID, BRIEF, CampaignConfig(variants_per_round=4), "running")
    plan = PlannerActivities(Planner(), catalog).plan_output if planner else None
    return CampaignActivities(catalog, Optimizer(InMemoryStorage(), "thompson"), plan=plan)


def _inputs() -> tuple[ProposeInput, PlanInput]:
    propose = ProposeInput(campaign_id=CID, round=0, n=4, brief=BRIEF)
    plan = PlanInput(campaign_id=CID, brief=BRIEF, variants=[], playbook=load_playbook())
    return propose, plan


async def test_propose_and_plan_gives_what_the_two_activities_gave(tmp_path: Path) -> None:
    fused_campaign = _campaign(tmp_path / "fused")
    propose, plan = _inputs()
    fused = await fused_campaign.propose_and_plan(ProposeAndPlanInput(propose=propose, plan=plan))

    campaign = _campaign(tmp_path / "apart")
    proposed = await campaign.propose(propose)
    planner = PlannerActivities(Planner(), campaign.catalog)
    planned = await planner.plan(plan.model_copy(update={"variants": proposed.variants}))

    assert len(fused.proposed.variants) == 4
    # the same proposals (the sampler is seeded per campaign and round), the same prompts
    assert fused.proposed == proposed
    assert fused.planned == planned
    assert fused.planned.plan.status == "planned"
    prompts = {p.variant_id for p in fused.planned.plan.variants}
    assert prompts == {v.variant_id for v in fused.proposed.variants}


async def test_propose_and_plan_refuses_without_a_planner(tmp_path: Path) -> None:
    campaign = _campaign(tmp_path, planner=False)
    propose, plan = _inputs()
    with pytest.raises(FaceloopError, match="without a planner"):
        await campaign.propose_and_plan(ProposeAndPlanInput(propose=propose, plan=plan))
