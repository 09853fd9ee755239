"""Blocked and escalated variants on the real dev server: what the playbook decides is what
happens, reviewers vote through the `review` update, and the SLA timer closes the rest."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from faceloop.briefs import load_brief_and_config
from faceloop.guardrails.base import GuardContext, Guardrail
from faceloop.models import CampaignConfig, CheckResult, Decision, Verdict
from faceloop.optimizer import Optimizer
from faceloop.playbooks.schema import Playbook, load_playbook
from faceloop.service import submit
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign import CampaignWorkflow, ReviewInput
from faceloop.workflows.worker import Resources, build_workers, optuna_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]


class FakeEscalateEverything(Guardrail):
    """A fake check (test double) that flags every image for human review."""

    name = "fake_flag"

    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        return CheckResult(
            name=self.name, verdict=Verdict.escalate, score=0.5, evidence={"reason": "test flag"}
        )


async def test_every_variant_blocked_is_told_failed_and_nothing_deploys(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    strict = load_playbook().model_copy(deep=True)
    strict.quality.min_face_score = 1.0  # no detection scores 1.0: everything is blocked
    config = CampaignConfig(rounds=1, variants_per_round=3, incumbents=1, kpi_window_seconds=0.5)
    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(temporal_env.client, res):
                await stack.enter_async_context(w)
            handle = await submit(temporal_env.client, settings, brief, config, strict)
            state = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        await res.aclose()
    assert state.stage == "done" and state.winner is None
    with Catalog(settings.resolved_database_url) as catalog:
        variants = catalog.variants(state.campaign_id)
        assert [v.decision for v in variants] == [Decision.block] * 3
        assert all("quality blocked" in v.decision_reason for v in variants)
        assert catalog.deployments(state.campaign_id) == []
    trials = Optimizer(optuna_url(settings)).trials(state.campaign_id)
    assert [t.state for t in trials] == [TrialState.FAIL] * 3


async def test_escalations_wait_for_reviewers_and_the_sla(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    playbook: Playbook = load_playbook().model_copy(deep=True)
    playbook.escalation.sla_seconds = 20
    config = CampaignConfig(rounds=1, variants_per_round=3, incumbents=1, kpi_window_seconds=0.5)
    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(
                temporal_env.client, res, guardrails=lambda pb: [FakeEscalateEverything()]
            ):
                await stack.enter_async_context(w)
            handle = await submit(temporal_env.client, settings, brief, config, playbook)
            pending = []
            for _ in range(300):
                pending = await handle.query(CampaignWorkflow.pending_reviews)
                if len(pending) == 3:
                    break
                await asyncio.sleep(0.1)
            assert len(pending) == 3
            first, second, third = (v.variant_id for v in pending)

            def vote(
                vid: str, decision: Decision, reviewer: str, reason: str = "ok"
            ) -> ReviewInput:
                return ReviewInput(
                    campaign_id=handle.id,
                    variant_id=vid,
                    decision=decision,
                    reviewer=reviewer,
                    reason=reason,
                )

            with pytest.raises(WorkflowUpdateFailedError):  # the submitter cannot approve
                await handle.execute_update(
                    CampaignWorkflow.review, vote(first, Decision.deploy, brief.submitted_by)
                )
            with pytest.raises(WorkflowUpdateFailedError):  # a reason is required
                await handle.execute_update(
                    CampaignWorkflow.review, vote(first, Decision.deploy, "rita", reason=" ")
                )
            await handle.execute_update(
                CampaignWorkflow.review, vote(first, Decision.deploy, "rita")
            )
            with pytest.raises(WorkflowUpdateFailedError):  # already decided
                await handle.execute_update(
                    CampaignWorkflow.review, vote(first, Decision.block, "omar")
                )
            await handle.execute_update(
                CampaignWorkflow.review, vote(second, Decision.block, "omar", "off-brand")
            )
            # nobody reviews the third: the SLA timer applies the playbook's on_expiry (block)
            state = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        await res.aclose()
    with Catalog(settings.resolved_database_url) as catalog:
        by_id = {v.variant_id: v for v in catalog.variants(state.campaign_id)}
        assert by_id[first].decision == Decision.deploy
        assert by_id[second].decision == Decision.block
        assert by_id[third].decision == Decision.block
        assert "no review within" in by_id[third].decision_reason
        assert [d.variant_id for d in catalog.deployments(state.campaign_id)] == [first]
        kinds = Counter(e.kind for e in catalog.audit_entries(state.campaign_id))
        actors = {
            e.subject: e.actor
            for e in catalog.audit_entries(state.campaign_id)
            if e.kind.startswith("review.")
        }
    assert kinds["decision.escalate"] == 3
    assert kinds["review.approve"] == 1 and kinds["review.reject"] == 2
    assert actors == {first: "rita", second: "omar", third: "sla-timer"}
