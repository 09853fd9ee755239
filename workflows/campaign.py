"""CampaignWorkflow: one per campaign, one round per run, continue-as-new between rounds.

Orchestration only: every piece of I/O (optimizer, planner, generator, guardrails, catalog,
ad platform) is an activity. Time comes from workflow.now() and timers, never the clock.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from faceloop.agents.activities import AnalystActivities, PlannerActivities
    from faceloop.agents.models import AnalyzeInput
    from faceloop.connectors.activities import ConnectorActivities
    from faceloop.generators.activities import GeneratorActivities
    from faceloop.guardrails.activities import GuardrailActivities
    from faceloop.messages import (
        CampaignInput,
        DecideInput,
        DeployInput,
        FinishInput,
        GenerateInput,
        GuardInput,
        LearnInput,
        ObserveInput,
        PlanInput,
        ProposeInput,
        RetireInput,
        ReviewInput,
        StartCampaignInput,
        VariantsPayload,
    )
    from faceloop.models import CampaignState, Decision, RoundSummary, Stage, Variant
    from faceloop.playbooks.schema import Playbook
    from faceloop.workflows.activities import CampaignActivities

# Retries: transient failures (a worker crash, a 5xx from the platform) retry with backoff;
# business rejections are raised non-retryable by the activities themselves.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
# quick activities: a crashed worker's attempt is retried after this, so keep it short
SHORT = timedelta(seconds=30)
# platform calls heartbeat per ad: a dead worker is noticed within HEARTBEAT, however many ads
PLATFORM = timedelta(minutes=10)
HEARTBEAT = timedelta(seconds=15)
HISTORY_KEPT = 5


@workflow.defn
class CampaignWorkflow:
    def __init__(self) -> None:
        self._state: CampaignState | None = None
        self._pending: dict[str, Variant] = {}
        self._reviews: dict[str, ReviewInput] = {}

    @workflow.query
    def status(self) -> CampaignState:
        if self._state is None:
            raise ApplicationError("campaign has not started yet", type="NotStarted")
        return self._state

    @workflow.query
    def pending_reviews(self) -> list[Variant]:
        return list(self._pending.values())

    @workflow.update
    async def review(self, vote: ReviewInput) -> str:
        self._reviews[vote.variant_id] = vote
        return f"{vote.variant_id}: {vote.decision.value} recorded"

    @review.validator
    def _validate_review(self, vote: ReviewInput) -> None:
        state = self._state
        if vote.variant_id not in self._pending or vote.variant_id in self._reviews:
            raise ValueError(f"variant {vote.variant_id} is not waiting for a review")
        if vote.decision not in (Decision.deploy, Decision.block):
            raise ValueError("a review approves (deploy) or rejects (block)")
        if state is not None and vote.reviewer == state.brief.submitted_by:
            raise ValueError("the brief's submitter cannot review their own campaign")
        if not vote.reason.strip():
            raise ValueError("a review needs a reason")

    def _stage(self, stage: Stage) -> None:
        assert self._state is not None
        self._state.stage = stage

    @workflow.run
    async def run(self, inp: CampaignInput) -> CampaignState:
        state = CampaignState.model_validate(
            inp.model_dump(exclude={"playbook", "gpu_task_queue", "cpu_task_queue"})
        )
        self._state = state
        cid, brief, config, playbook = state.campaign_id, state.brief, state.config, inp.playbook
        rnd = state.round

        if rnd == 0:
            await workflow.execute_activity_method(
                CampaignActivities.start_campaign,
                StartCampaignInput(campaign_id=cid, brief=brief, config=config, playbook=playbook),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )

        # propose: new Optuna trials fill the places the incumbents leave free
        self._stage("propose")
        n_new = config.variants_per_round - len(state.live)
        proposed = await workflow.execute_activity_method(
            CampaignActivities.propose,
            ProposeInput(campaign_id=cid, round=rnd, n=n_new, brief=brief),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )

        # plan: one prompt per variant
        self._stage("plan")
        planned = await workflow.execute_activity_method(
            PlannerActivities.plan,
            PlanInput(campaign_id=cid, brief=brief, variants=proposed.variants),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        if planned.plan.status != "planned":
            return await self._finish(state, "blocked", f"planner: {planned.plan.reason}")
        prompts = {p.variant_id: p for p in planned.plan.variants}
        new = [
            v.model_copy(
                update={
                    "prompt": prompts[v.variant_id].prompt,
                    "negative_prompt": prompts[v.variant_id].negative_prompt,
                    "disclosure": prompts[v.variant_id].disclosure,
                }
            )
            for v in proposed.variants
        ]

        # generate on the GPU queue; heartbeats carry progress, so a dead worker is noticed
        self._stage("generate")
        generated = await workflow.execute_activity_method(
            GeneratorActivities.generate,
            GenerateInput(campaign_id=cid, round=rnd, size=config.image_size, variants=new),
            task_queue=inp.gpu_task_queue,
            start_to_close_timeout=timedelta(minutes=20),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=RETRY,
        )

        self._stage("guard")
        guarded = await workflow.execute_activity_method(
            GuardrailActivities.guard,
            GuardInput(
                campaign_id=cid,
                round=rnd,
                playbook=playbook,
                variants=generated.variants,
                persona=brief.persona,
            ),
            task_queue=inp.cpu_task_queue,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=RETRY,
        )
        reports = {r.asset_id: r for r in guarded.reports}
        checked = [
            v.model_copy(update={"report": reports[v.asset.asset_id]})
            for v in generated.variants
            if v.asset is not None
        ]

        self._stage("decide")
        decided = await workflow.execute_activity_method(
            CampaignActivities.decide,
            DecideInput(campaign_id=cid, round=rnd, playbook=playbook, variants=checked),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        round_variants = await self._escalations(decided.variants, playbook)

        # sign: invisible watermark + C2PA manifest on what ships; the signed file is a new
        # asset (new content hash) and that is what the ad platform gets
        approved = [v for v in round_variants if v.decision == Decision.deploy]
        if approved:
            self._stage("sign")
            signed = await workflow.execute_activity_method(
                GuardrailActivities.sign,
                VariantsPayload(campaign_id=cid, round=rnd, variants=approved),
                task_queue=inp.cpu_task_queue,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=RETRY,
            )
            by_id = {v.variant_id: v for v in signed.variants}
            approved = [by_id[v.variant_id] for v in approved]
            round_variants = [by_id.get(v.variant_id, v) for v in round_variants]

        self._stage("deploy")
        impressions = config.impressions_per_round or max(
            brief.budget_impressions // config.rounds, 1
        )
        deployed = await workflow.execute_activity_method(
            ConnectorActivities.deploy,
            DeployInput(
                campaign_id=cid,
                round=rnd,
                brief=brief,
                config=config,
                live=state.live + approved,
                impressions=impressions,
            ),
            start_to_close_timeout=PLATFORM,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
        )

        # observe: a durable timer for the KPI window; a worker restart does not reset it
        self._stage("observe")
        await workflow.sleep(timedelta(seconds=config.kpi_window_seconds))
        observed = await workflow.execute_activity_method(
            ConnectorActivities.observe,
            ObserveInput(
                campaign_id=cid, round=rnd, live=deployed.live, connector=config.connector
            ),
            start_to_close_timeout=PLATFORM,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
        )
        per_variant: dict[str, tuple[int, int, int]] = {}
        for o in observed.observations:
            i, c, k = per_variant.get(o.variant_id, (0, 0, 0))
            per_variant[o.variant_id] = (i + o.impressions, c + o.clicks, k + o.conversions)
        live = []
        for v in deployed.live:
            i, c, k = per_variant.get(v.variant_id, (0, 0, 0))
            live.append(
                v.model_copy(
                    update={
                        "impressions": v.impressions + i,
                        "clicks": v.clicks + c,
                        "conversions": v.conversions + k,
                    }
                )
            )

        self._stage("learn")
        live_ids = {v.variant_id for v in live}
        learned = await workflow.execute_activity_method(
            CampaignActivities.learn,
            LearnInput(
                campaign_id=cid,
                round=rnd,
                brief=brief,
                config=config,
                round_variants=[v for v in round_variants if v.variant_id not in live_ids] + live,
                live=live,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        # the analyst reads the round's KPIs and the study; a failure here must not lose the
        # round, so its own fallback (a templated summary) covers an unavailable LLM
        analysis = await workflow.execute_activity_method(
            AnalystActivities.analyze,
            AnalyzeInput(campaign_id=cid, round=rnd, kpi_goal=brief.kpi_goal),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        summary_variants = [v for v in round_variants if v.decision != Decision.deploy] + live
        state.history = [
            *state.history[-(HISTORY_KEPT - 1) :],
            RoundSummary(
                round=rnd,
                variants=summary_variants,
                allocation={k: float(n) for k, n in deployed.allocation.items()},
                analysis=analysis,
            ),
        ]
        state.winner = learned.winner

        # the ads that did not stay are paused now, also after the last round: a finished
        # campaign keeps only its incumbents live, ready for scheduled rounds
        if learned.retire:
            await workflow.execute_activity_method(
                ConnectorActivities.retire,
                RetireInput(
                    campaign_id=cid, round=rnd, connector=config.connector, variants=learned.retire
                ),
                start_to_close_timeout=PLATFORM,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=RETRY,
            )
        state.live = learned.incumbents
        if rnd + 1 >= config.rounds:
            return await self._finish(state, "done", "")

        state.round = rnd + 1
        state.stage = "propose"
        next_input = CampaignInput(
            **state.model_dump(),
            playbook=playbook,
            gpu_task_queue=inp.gpu_task_queue,
            cpu_task_queue=inp.cpu_task_queue,
        )
        workflow.continue_as_new(next_input)

    async def _escalations(self, variants: list[Variant], playbook: Playbook) -> list[Variant]:
        """Escalated variants wait for a reviewer (update `review`) or the playbook's SLA."""
        self._pending = {v.variant_id: v for v in variants if v.decision == Decision.escalate}
        if not self._pending:
            return variants
        self._stage("decide")
        sla = timedelta(seconds=playbook.escalation.sla_seconds)
        # on timeout the playbook's on_expiry applies to every variant still waiting
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: all(vid in self._reviews for vid in self._pending), timeout=sla
            )
        out: list[Variant] = []
        for v in variants:
            if v.variant_id not in self._pending:
                out.append(v)
                continue
            vote = self._reviews.get(v.variant_id)
            if vote is None:
                vote = ReviewInput(
                    campaign_id=v.campaign_id,
                    variant_id=v.variant_id,
                    decision=playbook.escalation.on_expiry,
                    reviewer="sla-timer",
                    reason=f"no review within {playbook.escalation.sla_seconds:.0f}s",
                )
            await workflow.execute_activity_method(
                CampaignActivities.record_review,
                vote,
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            out.append(
                v.model_copy(update={"decision": vote.decision, "decision_reason": vote.reason})
            )
        self._pending = {}
        return out

    async def _finish(self, state: CampaignState, status: Stage, reason: str) -> CampaignState:
        state.stage = status
        state.blocked_reason = reason
        await workflow.execute_activity_method(
            CampaignActivities.finish,
            FinishInput(
                campaign_id=state.campaign_id,
                status=status,
                round=state.round,
                winner=state.winner,
                reason=reason,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        return state
