"""Campaign activities: catalog, audit log and optimizer I/O for the campaign workflow."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from faceloop.errors import FaceloopError
from faceloop.messages import (
    CampaignInput,
    DecideInput,
    FinishInput,
    LearnInput,
    LearnOutput,
    ProposeInput,
    ReviewDecision,
    ScheduledRoundInput,
    StartCampaignInput,
    VariantsPayload,
)
from faceloop.models import Decision, KpiGoal, Variant
from faceloop.optimizer import (
    Optimizer,
    arms_from_observations,
    plan_learn,
    segment_shares,
    stable_seed,
    successes,
    trial_value,
)
from faceloop.playbooks.schema import Playbook
from faceloop.storage.catalog import Catalog


def variant_id(campaign_id: str, round_: int, trial_number: int) -> str:
    return f"{campaign_id}-r{round_}-t{trial_number}"


def kpi_value(goal: KpiGoal, v: Variant) -> float:
    return successes(goal, v.clicks, v.conversions) / max(v.impressions, 1)


class CampaignActivities:
    def __init__(
        self, catalog: Catalog, optimizer: Optimizer, playbook: Playbook | None = None
    ) -> None:
        self.catalog = catalog
        self.optimizer = optimizer
        # scheduled rounds run under the worker's configured playbook
        self.playbook = playbook

    @activity.defn
    async def next_round_input(self, inp: ScheduledRoundInput) -> CampaignInput:
        return await asyncio.to_thread(self._next_round_input, inp)

    def _next_round_input(self, inp: ScheduledRoundInput) -> CampaignInput:
        row = self.catalog.get_campaign(inp.campaign_id)
        if row is None:
            raise ApplicationError(
                f"campaign {inp.campaign_id!r} is not in the catalog: delete its schedule",
                type="UnknownCampaign",
                non_retryable=True,
            )
        if row.status not in ("done", "running"):
            raise ApplicationError(
                f"campaign {inp.campaign_id!r} is {row.status}: only live campaigns are optimised",
                type="CampaignNotLive",
                non_retryable=True,
            )
        live = [v for v in self.catalog.variants(inp.campaign_id) if v.live and v.ad_id]
        next_round = row.round + 1
        per_round = row.config.impressions_per_round or max(
            row.brief.budget_impressions // row.config.rounds, 1
        )
        # one more round, with the campaign's per-round budget (not its budget over rounds+1)
        config = row.config.model_copy(
            update={"rounds": next_round + 1, "impressions_per_round": per_round}
        )
        if self.playbook is None:
            raise FaceloopError("scheduled rounds need the worker's playbook")
        return CampaignInput(
            campaign_id=inp.campaign_id,
            brief=row.brief,
            config=config,
            round=next_round,
            live=live,
            playbook=self.playbook,
            gpu_task_queue=inp.gpu_task_queue,
            cpu_task_queue=inp.cpu_task_queue,
        )

    @activity.defn
    async def start_campaign(self, inp: StartCampaignInput) -> None:
        await asyncio.to_thread(self._start, inp)

    def _start(self, inp: StartCampaignInput) -> None:
        if self.catalog.get_campaign(inp.campaign_id) is None:
            self.catalog.upsert_campaign(inp.campaign_id, inp.brief, inp.config, "running")
            self.catalog.audit(
                inp.campaign_id,
                "brief.submitted",
                inp.campaign_id,
                inp.brief.submitted_by,
                {
                    "brief": inp.brief.model_dump(mode="json"),
                    "config": inp.config.model_dump(mode="json"),
                    "playbook": {"name": inp.playbook.name, "version": inp.playbook.version},
                },
            )

    @activity.defn
    async def propose(self, inp: ProposeInput) -> VariantsPayload:
        return await asyncio.to_thread(self._propose, inp)

    def _propose(self, inp: ProposeInput) -> VariantsPayload:
        proposals = self.optimizer.ask(inp.campaign_id, inp.round, inp.n, inp.brief.search_space)
        variants = []
        for p in proposals:
            v = Variant(
                variant_id=variant_id(inp.campaign_id, inp.round, p.trial_number),
                campaign_id=inp.campaign_id,
                round=inp.round,
                trial_number=p.trial_number,
                params=p.params,
                seed=stable_seed(inp.campaign_id, p.trial_number),
            )
            self.catalog.upsert_variant(v)
            variants.append(v)
        self.catalog.set_campaign_status(inp.campaign_id, "running", inp.round)
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=variants)

    @activity.defn
    async def decide(self, inp: DecideInput) -> VariantsPayload:
        return await asyncio.to_thread(self._decide, inp)

    def _decide(self, inp: DecideInput) -> VariantsPayload:
        out = []
        for v in inp.variants:
            report = v.report
            assert report is not None, "decide needs guarded variants"
            decision, reason = inp.playbook.decide(report)
            v = v.model_copy(update={"decision": decision, "decision_reason": reason})
            self.catalog.upsert_variant(v)
            self.catalog.audit(
                inp.campaign_id,
                f"decision.{decision.value}",
                v.variant_id,
                f"playbook:{inp.playbook.name}",
                {
                    "asset_id": v.asset.asset_id if v.asset else None,
                    "reason": reason,
                    "checks": {c.name: c.verdict.value for c in report.checks},
                    "escalate_to": inp.playbook.escalation.role
                    if decision == Decision.escalate
                    else None,
                },
            )
            out.append(v)
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=out)

    @activity.defn
    async def record_review(self, inp: ReviewDecision) -> None:
        await asyncio.to_thread(self._record_review, inp)

    def _record_review(self, inp: ReviewDecision) -> None:
        v = self.catalog.get_variant(inp.variant_id)
        if v is not None:
            self.catalog.upsert_variant(
                v.model_copy(update={"decision": inp.decision, "decision_reason": inp.reason})
            )
        self.catalog.audit(
            inp.campaign_id,
            f"review.{'approve' if inp.decision == Decision.deploy else 'reject'}",
            inp.variant_id,
            inp.reviewer,
            {"reason": inp.reason},
        )

    @activity.defn
    async def learn(self, inp: LearnInput) -> LearnOutput:
        return await asyncio.to_thread(self._learn, inp)

    def _learn(self, inp: LearnInput) -> LearnOutput:
        # the same keep/retire/stop rule the optimisation bench runs (faceloop.optimizer)
        shares = segment_shares(inp.brief)
        stats = arms_from_observations(
            self.catalog.observations(inp.campaign_id),
            [v.variant_id for v in inp.live],
            list(shares),
            inp.brief.kpi_goal,
            inp.round,
        )
        # blocked variants are told as failed so the sampler learns the infeasible region;
        # deployed ones are told their observed KPI once, after their first window
        for v in inp.round_variants:
            if v.trial_number is None or v.round != inp.round:
                continue
            value = trial_value(v.variant_id, stats) if v.decision == Decision.deploy else None
            self.optimizer.tell(inp.campaign_id, v.trial_number, value)
        plan = plan_learn(
            stats, shares, inp.config.incumbents, stable_seed(inp.campaign_id, inp.round, "learn")
        )
        by_id = {v.variant_id: v for v in inp.live}
        keep = [by_id[i] for i in plan.keep]
        retire = [by_id[i] for i in plan.retire]
        for v in inp.live:
            self.catalog.upsert_variant(v.model_copy(update={"live": v.variant_id in plan.keep}))
        self.catalog.audit(
            inp.campaign_id,
            "round.learned",
            f"round-{inp.round}",
            "optimizer",
            {
                "posterior_mean": plan.posterior_mean,
                "p_best": plan.p_best,
                "incumbents": plan.keep,
                "retired": plan.retire,
                "stopped_early": plan.stopped,
                "winners": plan.winners,
            },
        )
        return LearnOutput(
            incumbents=keep,
            retire=retire,
            posterior_mean=plan.posterior_mean,
            winner=by_id.get(plan.winner) if plan.winner else None,
        )

    @activity.defn
    async def finish(self, inp: FinishInput) -> None:
        await asyncio.to_thread(self._finish, inp)

    def _finish(self, inp: FinishInput) -> None:
        self.catalog.set_campaign_status(inp.campaign_id, inp.status, inp.round)
        self.catalog.audit(
            inp.campaign_id,
            f"campaign.{inp.status}",
            inp.campaign_id,
            "workflow",
            {
                "reason": inp.reason,
                "winner": inp.winner.variant_id if inp.winner else None,
            },
        )
