"""The campaign's playbook governs every stage: the planner's prompt filter, scheduled rounds,
and an escalated plan, which waits for reviewers instead of ending the campaign."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from faceloop.agents.activities import PlannerActivities
from faceloop.agents.planner import Planner
from faceloop.briefs import load_brief_and_config
from faceloop.messages import (
    PendingEscalation,
    PlanInput,
    ReviewInput,
    ScheduledRoundInput,
    StartCampaignInput,
)
from faceloop.models import (
    AudienceSegment,
    Brief,
    CampaignConfig,
    CampaignState,
    Decision,
    FaceParams,
    Variant,
)
from faceloop.optimization.study import Optimizer
from faceloop.playbooks.schema import Escalation, Playbook, PromptFilterRules, load_playbook
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign import CampaignWorkflow
from faceloop.workflows.campaign_activities import CampaignActivities
from faceloop.workflows.client import submit
from faceloop.workflows.review import plan_subject
from faceloop.workflows.worker import Resources, build_workers

ROOT = Path(__file__).resolve().parents[2]
BRIEF = Brief(
    product="Lumen SPF 50",
    message="Everyday sun protection, as worn by Zorbulax.",
    audience=[AudienceSegment(name="all")],
    markets=["NL"],
    budget_impressions=1000,
)


def naming(action: str, name: str = "custom") -> Playbook:
    """A playbook whose prompt filter knows the real person Zorbulax (a one-word stage
    name, which the default name detector does not catch): `action` on a match."""
    return Playbook(
        name=name,
        prompt_filter=PromptFilterRules(
            real_people=["Zorbulax"],
            actions={"real_people": action},  # type: ignore[dict-item]
        ),
    )


def plan_input(playbook: Playbook | None, approved: list[str] | None = None) -> PlanInput:
    variants = [
        Variant(variant_id="c-r0-t0", campaign_id="c", round=0, params=FaceParams(), seed=1)
    ]
    return PlanInput(
        campaign_id="c",
        brief=BRIEF,
        variants=variants,
        playbook=playbook,
        approved=approved or [],
    )


# --------------------------------------------------------------------------- planner


async def test_the_plan_uses_the_campaigns_prompt_filter() -> None:
    acts = PlannerActivities(Planner())  # built with the default playbook's rules
    assert (await acts.plan(plan_input(None))).plan.status == "planned"
    out = await acts.plan(plan_input(naming("block")))
    assert out.plan.status == "blocked" and "real_people" in out.plan.reason


async def test_an_approved_finding_no_longer_stops_the_plan_and_nothing_else_is_waived() -> None:
    acts = PlannerActivities(Planner())
    escalated = await acts.plan(plan_input(naming("escalate")))
    assert escalated.plan.status == "escalated" and escalated.plan.variants == []
    assert escalated.escalated == ["real_people:message"]

    approved = await acts.plan(plan_input(naming("escalate"), escalated.escalated))
    assert approved.plan.status == "planned" and approved.escalated == []
    assert [v.variant_id for v in approved.plan.variants] == ["c-r0-t0"]

    # an approval names a finding: a block is never waived, another field still escalates
    blocked = await acts.plan(plan_input(naming("block"), ["real_people:message"]))
    assert blocked.plan.status == "blocked"
    acts_tone = await acts.plan(
        plan_input(naming("escalate"), ["real_people:tone"]),
    )
    assert acts_tone.plan.status == "escalated"


# --------------------------------------------------------------------------- scheduled rounds


@pytest.fixture
def activities(tmp_path: Path) -> CampaignActivities:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    optimizer = Optimizer(f"sqlite:///{tmp_path / 'optuna.db'}")
    return CampaignActivities(catalog, optimizer, load_playbook())  # the worker's: default


def submitted(acts: CampaignActivities, playbook: Playbook) -> None:
    acts._start(
        StartCampaignInput(campaign_id="c", brief=BRIEF, config=CampaignConfig(), playbook=playbook)
    )
    acts.catalog.set_campaign_status("c", "done", 0)


def test_a_scheduled_round_runs_under_the_campaigns_playbook(
    activities: CampaignActivities,
) -> None:
    custom = naming("escalate")
    custom.escalation = Escalation(role="legal", sla_seconds=600, approvers=2)
    submitted(activities, custom)
    nxt = activities._next_round_input(ScheduledRoundInput(campaign_id="c"))
    assert nxt.round == 1 and nxt.playbook == custom
    assert activities.playbook is not None and activities.playbook != custom


def test_a_campaign_recorded_without_its_playbook_needs_the_same_one(
    activities: CampaignActivities,
) -> None:
    # the entry as it was written before it held the whole playbook
    activities.catalog.upsert_campaign("c", BRIEF, CampaignConfig(), "done")
    activities.catalog.audit(
        "c", "brief.submitted", "c", "maria", {"playbook": {"name": "default", "version": "1"}}
    )
    nxt = activities._next_round_input(ScheduledRoundInput(campaign_id="c"))
    assert nxt.playbook == load_playbook()

    activities.playbook = naming("block", name="other")
    with pytest.raises(ApplicationError, match="must not run under other rules") as info:
        activities._next_round_input(ScheduledRoundInput(campaign_id="c"))
    assert info.value.non_retryable


# --------------------------------------------------------------------------- on the dev server


async def run_campaign(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    playbook: Playbook,
    rounds: int = 1,
    reviewer: str | None = None,
) -> tuple[CampaignState, list[PendingEscalation]]:
    """The example brief naming Zorbulax, under `playbook`, no image guardrails; `reviewer`
    approves the first escalated plan. The final state and what waited."""
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    brief = brief.model_copy(update={"message": "Sun protection, as worn by Zorbulax."})
    config = CampaignConfig(
        rounds=rounds, variants_per_round=2, incumbents=1, kpi_window_seconds=0.5
    )
    res = Resources.open(settings)
    seen: list[PendingEscalation] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(temporal_env.client, res, guardrails=lambda pb: []):
                await stack.enter_async_context(w)
            handle: WorkflowHandle[CampaignWorkflow, CampaignState] = await submit(
                temporal_env.client, settings, brief, config, playbook
            )
            if reviewer is not None:
                for _ in range(300):
                    seen = await handle.query(CampaignWorkflow.escalations)
                    if seen:
                        break
                    await asyncio.sleep(0.1)
                vote = ReviewInput(
                    campaign_id=handle.id,
                    variant_id=seen[0].variant_id,
                    decision=Decision.deploy,
                    reviewer=reviewer,
                    role="compliance",
                    reason="a look-alike name, not the person",
                )
                said = await handle.execute_update(CampaignWorkflow.review, vote)
                assert said.startswith(f"{seen[0].variant_id}: deploy"), said
            state = await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        await res.aclose()
    return state, seen


@pytest.mark.slow
async def test_a_name_the_campaigns_playbook_blocks_is_never_planned(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    state, _ = await run_campaign(temporal_env, settings, naming("block"))
    assert state.stage == "blocked" and "real_people" in state.blocked_reason
    with Catalog(settings.resolved_database_url) as catalog:
        assert catalog.deployments(state.campaign_id) == []


@pytest.mark.slow
async def test_an_escalated_plan_waits_for_review_and_continues_once_approved(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    playbook = naming("escalate")
    playbook.escalation = Escalation(role="compliance", sla_seconds=120)
    state, seen = await run_campaign(temporal_env, settings, playbook, rounds=2, reviewer="rita")
    cid = state.campaign_id
    assert [(p.variant_id, p.role, p.asset_id) for p in seen] == [
        (plan_subject(cid, 0), "compliance", None)
    ]
    assert "real_people" in seen[0].flagged
    assert state.stage == "done" and state.round == 1
    with Catalog(settings.resolved_database_url) as catalog:
        assert catalog.deployments(cid)
        kinds = [(e.kind, e.subject) for e in catalog.audit_entries(cid)]
    # approved once: the second round plans the same brief without asking again
    assert [k for k in kinds if k[0].startswith("review.")] == [
        ("review.vote.approve", plan_subject(cid, 0)),
        ("review.approve", plan_subject(cid, 0)),
    ]


@pytest.mark.slow
async def test_an_escalated_plan_nobody_approves_ends_the_campaign(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    playbook = naming("escalate")
    # even a chain that would deploy on expiry: a plan nobody approved does not go ahead
    playbook.escalation = Escalation(role="compliance", sla_seconds=2, on_expiry=Decision.deploy)
    state, _ = await run_campaign(temporal_env, settings, playbook)
    assert state.stage == "blocked"
    assert "escalated plan not approved (no decision by compliance" in state.blocked_reason
    with Catalog(settings.resolved_database_url) as catalog:
        assert catalog.deployments(state.campaign_id) == []
        outcome = [e for e in catalog.audit_entries(state.campaign_id) if e.kind == "review.reject"]
    assert [(e.subject, e.actor) for e in outcome] == [
        (plan_subject(state.campaign_id, 0), "sla-timer")
    ]
