"""CampaignWorkflow: one per campaign, up to ROUNDS_PER_RUN rounds per run, continue-as-new
between runs (sooner when the history grows past a safe share of Temporal's limits).

Orchestration only: every piece of I/O (optimizer, planner, generator, guardrails, catalog,
ad platform) is an activity. Time comes from workflow.now() and timers, never the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from faceloop.agents.activities import AnalystActivities, PlannerActivities
    from faceloop.agents.models import AnalyzeInput
    from faceloop.connectors.activities import ConnectorActivities
    from faceloop.consent import ConsentCheckInput
    from faceloop.generators.activities import GeneratorActivities
    from faceloop.guardrails.activities import GuardrailActivities, with_reports
    from faceloop.messages import (
        CAMPAIGN_INPUT_ONLY,
        CampaignInput,
        DecideInput,
        DecideOutput,
        DeployInput,
        ExportInput,
        FinishInput,
        GenerateInput,
        GuardInput,
        GuardShipInput,
        LearnInput,
        ObserveInput,
        PendingEscalation,
        PlanInput,
        PlanOutput,
        ProposeAndPlanInput,
        ProposeInput,
        RecheckInput,
        RecheckOutput,
        RetireInput,
        ReviewInput,
        ReviewRecord,
        RollbackInput,
        RollbackLearnInput,
        SpendCheckInput,
        StartCampaignInput,
        VariantsPayload,
    )
    from faceloop.models import (
        CampaignState,
        Decision,
        RollbackRecord,
        RoundSummary,
        Stage,
        Variant,
    )
    from faceloop.playbooks.schema import Escalation, Playbook
    from faceloop.workflows.campaign_activities import CampaignActivities
    from faceloop.workflows.consent_activities import ConsentActivities
    from faceloop.workflows.review import ReviewBoard
    from faceloop.workflows.review_activities import ReviewActivities

A = TypeVar("A")
R = TypeVar("R")

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
# generate, guard, sign, export, recheck heartbeat per item and every 4 s while they run
# (faceloop/heartbeats.py): a killed worker's attempt is retried after this, not after a
# minute. Activity options are not part of replay's determinism check: recorded histories
# with 60 s replay unchanged (tests/workflows/test_campaign.py::test_recorded_history_replay)
WORK_HEARTBEAT = timedelta(seconds=20)
HISTORY_KEPT = 5
# the state carries only the latest rollbacks, so it does not grow with rounds; every one is
# in the audit log (`rollback.paused`), which is what the report reads
ROLLBACKS_KEPT = 50
# History bounds (docs/architecture.md "History bounds"): a run ends with continue-as-new
# after ROUNDS_PER_RUN rounds, or sooner past these thresholds, a fifth and a tenth of
# Temporal's hard limits (51,200 events, 50 MB) so a round that runs long (many review votes,
# retries) still ends far under them
ROUNDS_PER_RUN = 20
HISTORY_EVENTS_LIMIT = 10_000
HISTORY_BYTES_LIMIT = 5 * 1024 * 1024


@workflow.defn
class CampaignWorkflow:
    def __init__(self) -> None:
        self._state: CampaignState | None = None
        self._board: ReviewBoard | None = None
        # review events not yet written to the catalog/audit log (votes arrive in updates)
        self._records: list[ReviewRecord] = []
        # the previous round's analysis and retirements, while they run beside this round
        self._tail: asyncio.Task[None] | None = None

    @workflow.query
    def status(self) -> CampaignState:
        if self._state is None:
            raise ApplicationError("campaign has not started yet", type="NotStarted")
        return self._state

    @workflow.query
    def pending_reviews(self) -> list[Variant]:
        if self._board is None:
            return []
        return [
            i.variant
            for i in self._board.items.values()
            if i.outcome is None and i.variant is not None
        ]

    @workflow.query
    def escalations(self) -> list[PendingEscalation]:
        """What waits for reviewers: role, approvals so far, deadline, what expiry does."""
        if self._board is None:
            return []
        return self._board.pending(workflow.info().workflow_id)

    @workflow.update
    async def review(self, vote: ReviewInput) -> str:
        assert self._board is not None
        board = self._board
        # who cast the vote is checked by an activity (keys, users, the clock are I/O);
        # patched, so votes recorded before the check replay as they were accepted then
        if workflow.patched("review-verified-votes"):
            check = await workflow.execute_activity_method(
                ReviewActivities.verify_vote,
                vote,
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            if not check.ok:
                raise ApplicationError(check.reason, type="VoteRefused", non_retryable=True)
            if self._board is not board:
                raise ApplicationError(
                    f"the review of {vote.variant_id} ended while the vote was checked",
                    type="VoteRefused",
                    non_retryable=True,
                )
            try:
                # the board may have moved while the check ran (another vote, a deadline)
                records = board.cast(vote, workflow.now(), identity=check.identity)
            except ValueError as exc:
                raise ApplicationError(str(exc), type="VoteRefused", non_retryable=True) from None
        else:
            records = board.cast(vote, workflow.now())
        self._records.extend(records)
        outcome = records[-1]
        if outcome.event == "decided":
            assert outcome.decision is not None
            return f"{vote.variant_id}: {outcome.decision.value} ({outcome.reason})"
        item = board.items[vote.variant_id]
        return (
            f"{vote.variant_id}: approval {len(item.approvals)}/{item.level.approvers} "
            f"recorded; waiting for {item.level.approvers - len(item.approvals)} more "
            f"({item.level.role})"
        )

    @review.validator
    def _validate_review(self, vote: ReviewInput) -> None:
        if self._board is None:
            raise ValueError(
                f"variant {vote.variant_id} is not waiting for a review: nothing in this "
                "campaign waits now"
            )
        # the deadline is checked here too, not only by the timer: a vote that arrives after
        # it (say, the worker was down when it fell) is refused before the timer's expiry runs
        self._board.validate(vote, workflow.now())

    def _stage(self, stage: Stage) -> None:
        assert self._state is not None
        self._state.stage = stage

    @workflow.run
    async def run(self, inp: CampaignInput) -> CampaignState:
        state = CampaignState.model_validate(inp.model_dump(exclude=set(CAMPAIGN_INPUT_ONLY)))
        self._state = state
        # prompt filter findings reviewers approved: grows in a round's plan review and is
        # carried to the next round, in this run or the next
        cleared = list(inp.approved_plan_findings)
        rounds_this_run = 0
        while True:
            finished = await self._round(inp, state, cleared)
            if finished is not None:
                return finished
            rounds_this_run += 1
            state.round += 1
            state.stage = "propose"
            if self._run_is_full(rounds_this_run):
                break
        # the next run starts from a state with every round's summary in it
        await self._settle_round()
        # only the bounded state travels (live variants, the last HISTORY_KEPT summaries, the
        # last ROLLBACKS_KEPT rollbacks); everything else is in the catalog and audit log
        workflow.continue_as_new(
            CampaignInput(
                **state.model_dump(),
                playbook=inp.playbook,
                gpu_task_queue=inp.gpu_task_queue,
                cpu_task_queue=inp.cpu_task_queue,
                approved_plan_findings=cleared,
            )
        )

    def _run_is_full(self, rounds_this_run: int) -> bool:
        """Whether this run should hand over to a new one (continue-as-new) before the next
        round: after ROUNDS_PER_RUN rounds, or earlier when Temporal suggests it or the
        history nears a safe share of Temporal's limits (51,200 events / 50 MB), whichever
        comes first. A round is short next to these thresholds (about 96 events; 80 KB with
        the smallest outputs, more with real ones), so a run never nears the hard limits.

        Patched: campaigns recorded before this ran one round per run and continued as new
        after each; they replay that way."""
        if not workflow.patched("rounds-per-run"):
            return True
        info = workflow.info()
        return (
            rounds_this_run >= ROUNDS_PER_RUN
            or info.is_continue_as_new_suggested()
            or info.get_current_history_length() > HISTORY_EVENTS_LIMIT
            or info.get_current_history_size() > HISTORY_BYTES_LIMIT
        )

    async def _round(
        self, inp: CampaignInput, state: CampaignState, cleared: list[str]
    ) -> CampaignState | None:
        """One round, propose to learn. None when the campaign goes on with another round;
        its final state when it ended (done after the last round, blocked, or stopped at
        its spend cap)."""
        cid, brief, config, playbook = state.campaign_id, state.brief, state.config, inp.playbook
        rnd = state.round

        if rnd == 0:
            await workflow.execute_activity_method(
                CampaignActivities.start_campaign,
                StartCampaignInput(campaign_id=cid, brief=brief, config=config, playbook=playbook),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )

        # a spend cap is checked before each round, so nothing more is made or deployed once
        # the campaign cost what it may (docs/cost.md): the live ads are paused through the
        # connector and the campaign ends `stopped`. Campaigns from before the cap existed
        # have none, so they replay unchanged.
        round_impressions = config.impressions_per_round or max(
            brief.budget_impressions // config.rounds, 1
        )
        # within the round too: from the second round on, a round the rest of the cap cannot
        # pay for at the campaign's price so far deploys only what it can (patched: older
        # histories checked without sizing)
        impressions_left: int | None = None
        if brief.spend_cap is not None:
            sized = workflow.patched("spend-cap-sizes-the-round")
            spend = await workflow.execute_activity_method(
                CampaignActivities.check_spend,
                SpendCheckInput(
                    campaign_id=cid,
                    round=rnd,
                    cap=brief.spend_cap,
                    planned_impressions=round_impressions if sized else None,
                ),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            if spend.reached:
                await self._pause_live(state, spend.reason)
                return await self._finish(state, "stopped", spend.reason)
            impressions_left = spend.impressions_left

        # a persona is usable only under a valid consent record: checked every round, so a
        # revocation stops new variants from the next round on (erasure takes the ads down)
        if brief.persona is not None:
            consent = await workflow.execute_activity_method(
                ConsentActivities.check_consent,
                ConsentCheckInput(
                    campaign_id=cid,
                    persona_id=brief.persona.persona_id,
                    markets=list(brief.markets),
                    consent_ref=brief.persona.consent_ref,
                ),
                task_queue=inp.cpu_task_queue,
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            if not consent.ok:
                await self._pause_live(state, f"consent: {consent.reason}")
                return await self._finish(state, "blocked", f"consent: {consent.reason}")

        # propose: new Optuna trials fill the places the incumbents leave free; plan: one
        # prompt per variant, under the campaign's playbook's prompt filter
        n_new = config.variants_per_round - len(state.live)
        propose = ProposeInput(campaign_id=cid, round=rnd, n=n_new, brief=brief)

        def plan_input(variants: list[Variant]) -> PlanInput:
            return PlanInput(
                campaign_id=cid, brief=brief, variants=variants, playbook=playbook, approved=cleared
            )

        # both in one activity: the plan reads nothing but what propose returns, so a round
        # waits for one workflow task fewer. Patched: older histories ran them one after the
        # other; an escalated plan is planned again on its own, as before
        planned: PlanOutput | None = None
        if workflow.patched("propose-and-plan-in-one"):
            self._stage("plan")
            made = await workflow.execute_activity_method(
                CampaignActivities.propose_and_plan,
                ProposeAndPlanInput(propose=propose, plan=plan_input([])),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            proposed, planned = made.proposed, made.planned
        else:
            self._stage("propose")
            proposed = await workflow.execute_activity_method(
                CampaignActivities.propose,
                propose,
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            self._stage("plan")

        async def plan() -> PlanOutput:
            return await workflow.execute_activity_method(
                PlannerActivities.plan,
                plan_input(proposed.variants),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )

        if planned is None:
            planned = await plan()
        # an escalated plan waits for reviewers like an escalated variant; approved, it is
        # planned again with what they approved waived. Each pass approves at least one new
        # finding, so this ends. Patched: campaigns recorded before it ended here, blocked.
        if (
            planned.plan.status == "escalated"
            and playbook.on_escalate == Decision.escalate
            and workflow.patched("review-escalated-plans")
        ):
            while planned.plan.status == "escalated":
                unreviewed = [f for f in planned.escalated if f not in cleared]
                if not unreviewed:
                    break
                ok, why = await self._review_plan(rnd, planned.plan.reason, playbook)
                if not ok:
                    return await self._finish(state, "blocked", f"planner: {why}")
                cleared += unreviewed
                planned = await plan()
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
        # the activity re-seeds images off their request (playbook fidelity); the campaign's
        # production path travels with the batch; a persona's adapter is
        # loaded only if its consent still holds when the batch starts (checked there)
        try:
            generated = await workflow.execute_activity_method(
                GeneratorActivities.generate,
                GenerateInput(
                    campaign_id=cid,
                    round=rnd,
                    size=config.image_size,
                    variants=new,
                    fidelity=playbook.fidelity,
                    generation=config.generation,
                    persona=brief.persona,
                    markets=list(brief.markets),
                ),
                task_queue=inp.gpu_task_queue,
                start_to_close_timeout=timedelta(minutes=20),
                heartbeat_timeout=WORK_HEARTBEAT,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == "ConsentRefused"):
                raise
            # consent withdrawn between the round's check and the batch: as at the check
            await self._pause_live(state, f"consent: {cause.message}")
            return await self._finish(state, "blocked", f"consent: {cause.message}")

        self._stage("guard")
        decide_input = DecideInput(
            campaign_id=cid,
            round=rnd,
            playbook=playbook,
            variants=generated.variants,
            brief=brief,
            config=config,
        )

        def export_input(variants: list[Variant]) -> ExportInput:
            return ExportInput(
                campaign_id=cid,
                round=rnd,
                variants=variants,
                export=config.export,
                channels=[c.value for c in brief.channels],
            )

        # sign: invisible watermark + C2PA manifest on what ships; the signed file is a new
        # asset (new content hash) and that is what the ad platform gets. Export: one
        # JPEG/WebP per ad placement (1:1, 4:5, 9:16, 1.91:1) with the face in the
        # placement's safe area, each a C2PA transform of the signed file whose watermark is
        # read back (docs/export.md).
        # Guard, decide, sign and export as one activity on the CPU queue: what the
        # playbook deploys is signed and exported in it, what it escalates is signed after
        # the review; a round goes from images to deployable files in one workflow task.
        # Patched: older histories ran guard + decide, then sign + export, as two activities
        # (older still, as four, and the oldest went straight from sign to deploy); they
        # replay that way.
        shipped_now: dict[str, Variant] = {}
        if workflow.patched("guard-decide-and-ship-in-one"):
            guarded = await self._cpu_work(
                inp,
                GuardrailActivities.guard_decide_and_ship,
                GuardShipInput(decide=decide_input, export=export_input([])),
                minutes=40,
            )
            decided = guarded.decided
            shipped_now = {v.variant_id: v for v in guarded.shipped.variants}
        elif workflow.patched("guard-and-decide-in-one"):
            decided = await self._cpu_work(
                inp, GuardrailActivities.guard_and_decide, decide_input, minutes=10
            )
        else:
            decided = await self._guard_then_decide(inp, decide_input)
        # decided; what the playbook escalated waits for reviewers in this stage
        self._stage("decide")
        round_variants = await self._escalations(decided.variants, decided.escalations, playbook)
        round_variants = [shipped_now.get(v.variant_id, v) for v in round_variants]

        approved = [v for v in round_variants if v.decision == Decision.deploy]
        unsigned = [v for v in approved if v.variant_id not in shipped_now]
        if unsigned:
            self._stage("sign")
            if workflow.patched("sign-and-export-in-one"):
                shipped = await self._cpu_work(
                    inp, GuardrailActivities.sign_and_export, export_input(unsigned), minutes=30
                )
            else:
                shipped = await self._sign_then_export(inp, export_input(unsigned))
            by_id = {**shipped_now, **{v.variant_id: v for v in shipped.variants}}
            approved = [by_id[v.variant_id] for v in approved]
            round_variants = [by_id.get(v.variant_id, v) for v in round_variants]

        self._stage("deploy")
        # the previous round's retirements are done before this round's ads go live
        await self._settle_round()
        impressions = (
            round_impressions
            if impressions_left is None
            else min(round_impressions, impressions_left)
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

        # the variants whose creative the deploy gate refused (do-not-serve): blocked in
        # the round's record, so the learn step tells the optimizer they failed and the
        # round summary shows them blocked. No new command: histories replay unchanged.
        if deployed.refused:
            round_variants = [
                v.model_copy(
                    update={
                        "decision": Decision.block,
                        "decision_reason": deployed.refused[v.variant_id],
                        "live": False,
                    }
                )
                if v.variant_id in deployed.refused
                else v
                for v in round_variants
            ]

        # observe: a durable timer for the KPI window; a worker restart does not reset it
        self._stage("observe")
        await workflow.sleep(timedelta(seconds=config.kpi_window_seconds))
        observe = workflow.execute_activity_method(
            ConnectorActivities.observe,
            ObserveInput(
                campaign_id=cid,
                round=rnd,
                live=deployed.live,
                connector=config.connector,
                notify_role=playbook.escalation.role,
            ),
            start_to_close_timeout=PLATFORM,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
        )

        # post-deployment re-check: the live creatives go through the safety and identity
        # checks again (a real person enrolled since they shipped is a lookalike now); what
        # blocks now is a safety flag for the playbook's `safety_flag` criteria. Patched, so
        # campaigns that started before it existed replay unchanged.
        def recheck(live: list[Variant]) -> Awaitable[RecheckOutput]:
            return self._cpu_work(
                inp,
                GuardrailActivities.recheck,
                RecheckInput(
                    campaign_id=cid, round=rnd, playbook=playbook, live=live, persona=brief.persona
                ),
                minutes=10,
            )

        wants_recheck = any(c.metric == "safety_flag" for c in playbook.rollback)
        rechecked: RecheckOutput | None = None
        # the re-check reads the images, not the counts: it runs beside observe (on the CPU
        # queue), one workflow task for both instead of one after the other. Patched: older
        # histories ran it after observe
        together = workflow.patched("observe-and-recheck-at-once")
        if (
            together
            and wants_recheck
            and deployed.live
            and workflow.patched("recheck-live-creatives")
        ):
            observed, rechecked = await asyncio.gather(observe, recheck(deployed.live))
        else:
            observed = await observe
        # ads the platform's review disapproved: observe recorded and paused them; here they
        # leave the rollback check, the optimizer hears they failed and the playbook's
        # escalation role is told (state.rollbacks). Patched: histories from before it
        # existed never see a disapproval, so they replay unchanged.
        refused: set[str] = set()
        if observed.disapproved and workflow.patched("platform-review-disapprovals"):
            refused = {r.variant_id for r in observed.disapproved}
            state.rollbacks = [*state.rollbacks, *observed.disapproved][-ROLLBACKS_KEPT:]
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
        if not together and wants_recheck and live and workflow.patched("recheck-live-creatives"):
            rechecked = await recheck(live)
        safety_flags: dict[str, int] | None = (
            None if rechecked is None else {vid: len(why) for vid, why in rechecked.flags.items()}
        )

        # rollback: a playbook criterion that fires on what an ad delivered pauses it now,
        # within the window that showed it, and the role it names is told (audit log, state)
        rollback = RollbackInput(
            campaign_id=cid,
            round=rnd,
            playbook=playbook,
            live=[v for v in live if v.variant_id not in refused],
            safety_flags=safety_flags,
        )
        live_ids = {v.variant_id for v in live}
        learn = LearnInput(
            campaign_id=cid,
            round=rnd,
            brief=brief,
            config=config,
            round_variants=[v for v in round_variants if v.variant_id not in live_ids] + live,
            live=live,
            failed=sorted(refused | set(deployed.refused)),
        )
        # the rollback check and learn as one activity: learn needs to know which ads the
        # check paused, not that the platform has paused them yet, so they are paused right
        # after it, and a round without a rollback waits for one workflow task fewer.
        # Patched: older histories ran the check, the pause and learn one after the other
        if workflow.patched("rollback-and-learn-in-one"):
            self._stage("learn")
            both = await workflow.execute_activity_method(
                CampaignActivities.rollback_and_learn,
                RollbackLearnInput(rollback=rollback, learn=learn),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            rolled, learned = both.rolled, both.learned
            await self._pause_rolled_back(state, playbook, rnd, rolled.paused, live)
        else:
            rolled = await workflow.execute_activity_method(
                CampaignActivities.check_rollback,
                rollback,
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            await self._pause_rolled_back(state, playbook, rnd, rolled.paused, live)
            self._stage("learn")
            learned = await workflow.execute_activity_method(
                CampaignActivities.learn,
                learn.model_copy(update={"paused": sorted(r.variant_id for r in rolled.paused)}),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
        # the analyst reads the round's KPIs and the study; a failure here must not lose the
        # round, so its own fallback (a templated summary) covers an unavailable LLM
        analyze = workflow.execute_activity_method(
            AnalystActivities.analyze,
            AnalyzeInput(campaign_id=cid, round=rnd, kpi_goal=brief.kpi_goal),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )

        # the ads that did not stay are paused now, also after the last round: a finished
        # campaign keeps only its incumbents live, ready for scheduled rounds
        # a retired ad is paused; the rolled-back ones already are
        def retire() -> Awaitable[None]:
            return workflow.execute_activity_method(
                ConnectorActivities.retire,
                RetireInput(
                    campaign_id=cid, round=rnd, connector=config.connector, variants=learned.retire
                ),
                start_to_close_timeout=PLATFORM,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=RETRY,
            )

        # the analyst reads KPIs and the study, not the ads' status: both at once, one
        # workflow task instead of two. Patched: older histories ran them one after the other
        together = workflow.patched("analyze-and-retire-at-once")
        summary_variants = [v for v in round_variants if v.decision != Decision.deploy] + live
        allocation = {k: float(n) for k, n in deployed.allocation.items()}
        # and both beside the next round's first steps (spend and consent checks, propose:
        # they read what learn wrote, not the analysis or the ads' status), so the workflow
        # task that would start them after the analysis is off the loop's path; the round's
        # summary joins the history when they are done, and every step that needs them
        # (deploy, pausing live ads, finishing, continue-as-new) waits for them first
        # (_settle_round). Patched: older histories waited for them here.
        if (
            together
            and rnd + 1 < config.rounds
            and workflow.patched("round-tail-beside-next-round")
        ):
            tail = asyncio.gather(analyze, *([retire()] if learned.retire else []))
            self._tail = asyncio.create_task(
                self._close_round(state, rnd, tail, summary_variants, allocation)
            )
            state.winner = learned.winner
            state.live = learned.incumbents
            return None
        if together and learned.retire:
            analysis, _ = await asyncio.gather(analyze, retire())
        else:
            analysis = await analyze
        _add_summary(
            state,
            RoundSummary(
                round=rnd, variants=summary_variants, allocation=allocation, analysis=analysis
            ),
        )
        state.winner = learned.winner
        if not together and learned.retire:
            await retire()
        state.live = learned.incumbents
        if rnd + 1 >= config.rounds:
            return await self._finish(state, "done", "")
        return None

    async def _pause_rolled_back(
        self,
        state: CampaignState,
        playbook: Playbook,
        rnd: int,
        paused: list[RollbackRecord],
        live: list[Variant],
    ) -> None:
        """Pause the ads a rollback criterion fired on, and keep their records in the state."""
        if not paused:
            return
        ids = {r.variant_id for r in paused}
        await workflow.execute_activity_method(
            ConnectorActivities.retire,
            RetireInput(
                campaign_id=state.campaign_id,
                round=rnd,
                connector=state.config.connector,
                variants=[v for v in live if v.variant_id in ids],
                reason="rollback criterion fired (the rollback.paused entry says which)",
                actor=f"playbook:{playbook.name}",
            ),
            start_to_close_timeout=PLATFORM,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
        )
        state.rollbacks = [*state.rollbacks, *paused][-ROLLBACKS_KEPT:]

    async def _close_round(
        self,
        state: CampaignState,
        rnd: int,
        tail: Awaitable[list[Any]],
        variants: list[Variant],
        allocation: dict[str, float],
    ) -> None:
        """The end of round `rnd` that runs beside the next round: its analysis (and the
        retirements), then its summary in the history."""
        analysis = (await tail)[0]
        _add_summary(
            state,
            RoundSummary(round=rnd, variants=variants, allocation=allocation, analysis=analysis),
        )

    async def _settle_round(self) -> None:
        """Wait for the previous round's analysis and retirements if they still run beside
        this round (`round-tail-beside-next-round`); a failure of theirs surfaces here."""
        if self._tail is not None:
            tail, self._tail = self._tail, None
            await tail

    def _cpu_work(
        self, inp: CampaignInput, fn: Callable[[Any, A], Awaitable[R]], arg: A, *, minutes: int
    ) -> Awaitable[R]:
        """An activity of the CPU queue that works through a batch (guard, sign, export,
        recheck, and the pairs run as one): it heartbeats per item, so a killed worker's
        attempt is retried after WORK_HEARTBEAT, and may take `minutes`."""
        return workflow.execute_activity_method(
            fn,
            arg,
            task_queue=inp.cpu_task_queue,
            start_to_close_timeout=timedelta(minutes=minutes),
            heartbeat_timeout=WORK_HEARTBEAT,
            retry_policy=RETRY,
        )

    async def _guard_then_decide(self, inp: CampaignInput, d: DecideInput) -> DecideOutput:
        """Guard and decide as two activities, as histories from before
        `guard-and-decide-in-one` ran them."""
        guarded = await self._cpu_work(
            inp,
            GuardrailActivities.guard,
            GuardInput(
                campaign_id=d.campaign_id,
                round=d.round,
                playbook=d.playbook,
                variants=d.variants,
                persona=d.brief.persona if d.brief is not None else None,
            ),
            minutes=10,
        )
        self._stage("decide")
        return await workflow.execute_activity_method(
            CampaignActivities.decide,
            d.model_copy(update={"variants": with_reports(d.variants, guarded)}),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )

    async def _sign_then_export(self, inp: CampaignInput, e: ExportInput) -> VariantsPayload:
        """Sign, then export, as two activities: how histories from before
        `sign-and-export-in-one` ran them (the oldest, from before `export-placements`,
        did not export)."""
        signed = await self._cpu_work(
            inp,
            GuardrailActivities.sign,
            VariantsPayload(campaign_id=e.campaign_id, round=e.round, variants=e.variants),
            minutes=10,
        )
        if not workflow.patched("export-placements"):
            return signed
        self._stage("export")
        return await self._cpu_work(
            inp,
            GuardrailActivities.export,
            e.model_copy(update={"variants": signed.variants}),
            minutes=20,
        )

    async def _escalations(
        self, variants: list[Variant], chains: dict[str, Escalation], playbook: Playbook
    ) -> list[Variant]:
        """Escalated variants wait for reviewers (update `review`) under the playbook's SLAs."""
        assert self._state is not None
        escalated = [v for v in variants if v.decision == Decision.escalate]
        if not escalated:
            return variants
        board = self._new_board()
        now = workflow.now()
        for v in escalated:
            board.open(v, chains.get(v.variant_id, playbook.escalation), now)
        await self._decided(board)
        return [board.resolved(v) for v in variants]

    async def _review_plan(self, rnd: int, reason: str, playbook: Playbook) -> tuple[bool, str]:
        """The round's escalated prompt plan waits for reviewers on the playbook's chain:
        (True, why) once approved; (False, why) rejected or expired."""
        assert self._state is not None
        board = self._new_board()
        subject = board.open_plan(
            self._state.campaign_id,
            rnd,
            f"prompt plan escalated: {reason}",
            playbook.escalation,
            workflow.now(),
        )
        await self._decided(board)
        item = board.items[subject]
        if item.outcome == Decision.deploy:
            return True, item.outcome_reason
        return False, f"escalated plan not approved ({item.outcome_reason}); it was: {reason}"

    async def _decided(self, board: ReviewBoard) -> None:
        """Wait until everything on the board is decided: by votes (update `review`) or by
        each level's SLA, a durable timer, so a restart neither resets nor skips a deadline."""
        self._board = board
        while True:
            await self._flush_reviews()
            if board.done:
                break
            deadline = board.next_deadline()
            assert deadline is not None
            wait = deadline - workflow.now()
            if wait > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: bool(self._records), timeout=wait)
            self._records.extend(board.expire(workflow.now()))
        self._board = None

    def _new_board(self) -> ReviewBoard:
        assert self._state is not None
        # canonical names, required roles and the deadline checked on each vote: patched, so
        # votes recorded under the earlier rules replay as they were accepted then
        legacy = not workflow.patched("review-canonical-names-roles-deadline")
        return ReviewBoard(self._state.brief.submitted_by, legacy_rules=legacy)

    async def _flush_reviews(self) -> None:
        while self._records:
            record = self._records.pop(0)
            await workflow.execute_activity_method(
                CampaignActivities.record_review,
                record,
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )

    async def _pause_live(self, state: CampaignState, reason: str) -> None:
        await self._settle_round()
        if not state.live:
            return
        await workflow.execute_activity_method(
            ConnectorActivities.retire,
            RetireInput(
                campaign_id=state.campaign_id,
                round=state.round,
                connector=state.config.connector,
                variants=state.live,
                reason=reason,
                actor="workflow",
            ),
            start_to_close_timeout=PLATFORM,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
        )
        state.live = []

    async def _finish(self, state: CampaignState, status: Stage, reason: str) -> CampaignState:
        await self._settle_round()
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


def _add_summary(state: CampaignState, summary: RoundSummary) -> None:
    """A round's summary into the state's history, which keeps the last HISTORY_KEPT."""
    state.history = [*state.history[-(HISTORY_KEPT - 1) :], summary]
