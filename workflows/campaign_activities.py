"""Campaign activities: catalog, audit log and optimizer I/O for the campaign workflow."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from faceloop.consent import ADS_SCOPE
from faceloop.cost import CampaignCost, Prices, campaign_cost, cap_reason
from faceloop.errors import FaceloopError
from faceloop.messages import (
    CampaignInput,
    DecideInput,
    DecideOutput,
    FinishInput,
    LearnInput,
    LearnOutput,
    PlanInput,
    PlanOutput,
    ProposeAndPlanInput,
    ProposeAndPlanOutput,
    ProposeInput,
    ReviewRecord,
    RollbackInput,
    RollbackLearnInput,
    RollbackLearnOutput,
    RollbackOutput,
    ScheduledRoundInput,
    SpendCheckInput,
    SpendCheckOutput,
    StartCampaignInput,
    VariantsPayload,
)
from faceloop.models import Brief, Decision, KpiGoal, RollbackRecord, SpendCap, Variant
from faceloop.optimization import (
    CampaignEvidence,
    Optimizer,
    campaign_evidence,
    learn_round,
    segment_shares,
    shown_faces,
    stable_seed,
    successes,
)
from faceloop.playbooks.rollback import RollbackHit, RollbackKpis
from faceloop.playbooks.rules import RuleContext
from faceloop.playbooks.schema import Playbook
from faceloop.storage.catalog import Catalog
from faceloop.storage.checkpoints import Checkpoints


def variant_id(campaign_id: str, round_: int, trial_number: int) -> str:
    return f"{campaign_id}-r{round_}-t{trial_number}"


def kpi_value(goal: KpiGoal, v: Variant) -> float:
    return successes(goal, v.clicks, v.conversions) / max(v.impressions, 1)


def decide_variants(catalog: Catalog, inp: DecideInput) -> DecideOutput:
    """The playbook's decision on each guarded variant: deploy, block or escalate (with the
    review chain), a persona's consent checked again, each written to the catalog and the
    audit log. The `decide` activity, and guard_and_decide's second half on the CPU queue."""
    out = []
    escalations = {}
    for v in inp.variants:
        report = v.report
        assert report is not None, "decide needs guarded variants"
        ctx = (
            RuleContext.for_variant(inp.campaign_id, inp.brief, inp.config, v.params)
            if inp.brief is not None
            else None
        )
        ruling = inp.playbook.rule(report, ctx)
        decision, reason = ruling.decision, ruling.reason
        brief = inp.brief
        if brief is not None and brief.persona is not None and decision != Decision.block:
            # checked again here, after generation: a consent revoked while this round's
            # images were made stops them before they ship. The playbook may ask for more
            # (scope, markets) than a persona always needs (ads, the brief's markets).
            req = ruling.consent
            status = catalog.consent_status(
                brief.persona.persona_id,
                req.markets if req is not None else list(brief.markets),
                scope=req.scope if req is not None else ADS_SCOPE,
                consent_ref=brief.persona.consent_ref,
            )
            if not status.ok:
                by = f"required by {', '.join(req.rules)}" if req is not None else "required"
                decision = Decision.block
                reason = f"{reason}; consent {by}: {status.reason}"
        update: dict[str, object] = {"decision": decision, "decision_reason": reason}
        if ruling.disclosures:
            # the playbook's disclosure is the one that ships (AI Act Art. 50 labels)
            update["disclosure"] = ruling.disclosure_text()
        if decision == Decision.escalate:
            escalations[v.variant_id] = ruling.escalation or inp.playbook.escalation
        v = v.model_copy(update=update)
        catalog.upsert_variant(v)
        chain = escalations.get(v.variant_id)
        catalog.audit(
            inp.campaign_id,
            f"decision.{decision.value}",
            v.variant_id,
            f"playbook:{inp.playbook.name}",
            {
                "asset_id": v.asset.asset_id if v.asset else None,
                "reason": reason,
                "checks": {c.name: c.verdict.value for c in report.checks},
                "rules": ruling.matched_rules,
                "escalate_to": chain.role if chain else None,
                "approvers": chain.approvers if chain else None,
                "disclosures": ruling.disclosures,
                "consent": ruling.consent.model_dump(mode="json") if ruling.consent else None,
            },
        )
        out.append(v)
    return DecideOutput(
        campaign_id=inp.campaign_id, round=inp.round, variants=out, escalations=escalations
    )


class CampaignActivities:
    def __init__(
        self,
        catalog: Catalog,
        optimizer: Optimizer,
        playbook: Playbook | None = None,
        checkpoints: Checkpoints | None = None,
        prices: Prices | None = None,
        plan: Callable[[PlanInput], PlanOutput] | None = None,
        planning_price: Callable[[str], float | None] = lambda connector: None,
    ) -> None:
        self.catalog = catalog
        # a connector's planning price per impression (connectors.registry.planning_price):
        # what a spend cap sizes a first round at, before anything was billed
        self.planning_price = planning_price
        self.optimizer = optimizer
        # the planner's step (PlannerActivities.plan_output): propose_and_plan's second half
        self._plan = plan
        # what measured use costs, for spend caps that count compute (docs/cost.md)
        self.prices = prices or Prices()
        # a finished campaign anchors the audit log with a signed checkpoint
        self.checkpoints = checkpoints
        # scheduled rounds of campaigns recorded before their playbook was kept in full run
        # under this one, when it has the name and version they were submitted with
        self.playbook = playbook

    @activity.defn
    async def next_round_input(self, inp: ScheduledRoundInput) -> CampaignInput:
        nxt = await asyncio.to_thread(self._next_round_input, inp)
        if inp.spend_cap is None:
            return nxt
        # the schedule's cap travels as the round's cap (the tighter of it and the brief's),
        # so the round's own check stops the campaign and pauses its ads at it
        cap = _tighter(nxt.brief.spend_cap, inp.spend_cap)
        nxt.brief = nxt.brief.model_copy(update={"spend_cap": cap})
        cost = await asyncio.to_thread(
            campaign_cost, self.catalog, inp.campaign_id, self.prices, inp.spend_cap
        )
        if cost.cap_reached and inp.schedule_id is not None:
            reason = f"schedule {cap_reason(cost)}"
            # no further runs: the schedule is paused with the reason as its note, where
            # `faceloop schedules` shows it; resuming it needs a higher cap
            await activity.client().get_schedule_handle(inp.schedule_id).pause(note=reason)
            await asyncio.to_thread(
                self.catalog.audit,
                inp.campaign_id,
                "schedule.spend_cap",
                inp.schedule_id,
                "schedule",
                {"reason": reason, "spent": cost.capped_spend, "cap": inp.spend_cap.model_dump()},
            )
        return nxt

    @activity.defn
    async def check_spend(self, inp: SpendCheckInput) -> SpendCheckOutput:
        return await asyncio.to_thread(self._check_spend, inp)

    def _check_spend(self, inp: SpendCheckInput) -> SpendCheckOutput:
        """The campaign's spend so far against its cap (docs/cost.md); reached, the reason
        goes to the audit log, where the report reads it."""
        cost = campaign_cost(self.catalog, inp.campaign_id, self.prices, inp.cap)
        assert cost.capped_spend is not None
        if cost.cap_reached:
            reason = cap_reason(cost)
        else:
            sized = self._round_under_cap(inp, cost)
            if sized is None:
                return SpendCheckOutput(reached=False, spent=cost.capped_spend)
            left, price, source = sized
            if left >= 1:
                self.catalog.audit(
                    inp.campaign_id,
                    "campaign.spend_cap_sized",
                    inp.campaign_id,
                    "workflow",
                    {
                        "round": inp.round,
                        "planned_impressions": inp.planned_impressions,
                        "impressions": left,
                        "left": inp.cap.amount - cost.capped_spend,
                        "per_1000_impressions": 1000 * price,
                        "price_from": source,
                        "cap": inp.cap.model_dump(),
                    },
                    key=f"campaign.spend_cap_sized:{inp.campaign_id}:{inp.round}",
                )
                return SpendCheckOutput(
                    reached=False, spent=cost.capped_spend, impressions_left=left
                )
            reason = (
                f"spend cap reached: {inp.cap.amount - cost.capped_spend:.2f} "
                f"{cost.currency} left of the cap buys no impression at "
                f"{1000 * price:.2f} {cost.currency} per 1,000"
            )
        self.catalog.audit(
            inp.campaign_id,
            "campaign.spend_cap",
            inp.campaign_id,
            "workflow",
            {
                "reason": reason,
                "round": inp.round,
                "spent": cost.capped_spend,
                "ad_spend": cost.ad_spend,
                "compute": cost.compute_money,
                "cap": inp.cap.model_dump(),
            },
            key=f"campaign.spend_cap:{inp.campaign_id}",
        )
        return SpendCheckOutput(reached=True, spent=cost.capped_spend, reason=reason)

    def _round_under_cap(
        self, inp: SpendCheckInput, cost: CampaignCost
    ) -> tuple[int, float, str] | None:
        """(the impressions the rest of the cap buys, the price per impression, where the
        price came from) where that is fewer than the round planned; None where the round
        fits or no price is known. The price is the campaign's own (its ad spend over the
        impressions delivered); before anything was delivered, the connector's planning
        price (`planning_price`: the CPM its budgets are set at; none on the sandbox). A
        platform that delivered but reports no spend is not sized: its spend is unknown.
        The coming round's compute is not projected: a cap with compute may still be passed
        by that much."""
        if inp.planned_impressions is None:
            return None
        delivered = sum(o.impressions for o in self.catalog.observations(inp.campaign_id))
        if delivered > 0 and cost.ad_spend:
            price, source = cost.ad_spend / delivered, "the campaign's own"
        elif delivered <= 0:
            row = self.catalog.get_campaign(inp.campaign_id)
            connector = row.config.connector if row is not None else ""
            planned = self.planning_price(connector)
            if not planned:
                return None
            price, source = planned, f"{connector}'s planning CPM"
        else:
            return None
        assert cost.capped_spend is not None
        left = math.floor((inp.cap.amount - cost.capped_spend) / price)
        return (left, price, source) if left < inp.planned_impressions else None

    def _next_round_input(self, inp: ScheduledRoundInput) -> CampaignInput:
        row = self.catalog.get_campaign(inp.campaign_id)
        if row is None:
            raise ApplicationError(
                f"campaign {inp.campaign_id!r} is not in the catalog: delete its schedule",
                type="UnknownCampaign",
                non_retryable=True,
            )
        if row.brief_erased_at is not None:
            raise ApplicationError(
                f"campaign {inp.campaign_id!r} was erased on {row.brief_erased_at:%Y-%m-%d}: its "
                "brief's text is gone, so no round can be planned; delete its schedule",
                type="CampaignErased",
                non_retryable=True,
            )
        if row.status not in ("done", "running"):
            raise ApplicationError(
                f"campaign {inp.campaign_id!r} is {row.status}: only live campaigns are optimised",
                type="CampaignNotLive",
                non_retryable=True,
            )
        live = [v for v in self.catalog.variants(inp.campaign_id) if v.live and v.ad_id]
        # the catalog does not keep a variant's target segment; its trial does
        segment_of = {
            t.number: t.user_attrs.get("segment") for t in self.optimizer.trials(inp.campaign_id)
        }
        live = [
            v.model_copy(update={"segment": segment_of.get(v.trial_number)})
            if v.trial_number is not None
            else v
            for v in live
        ]
        next_round = row.round + 1
        per_round = row.config.impressions_per_round or max(
            row.brief.budget_impressions // row.config.rounds, 1
        )
        # one more round, with the campaign's per-round budget (not its budget over rounds+1)
        config = row.config.model_copy(
            update={"rounds": next_round + 1, "impressions_per_round": per_round}
        )
        # the campaign's own playbook, not the worker's: the brief.submitted audit entry keeps
        # the one it was submitted with (the append-only record of what governs it)
        submitted = next(
            (e for e in self.catalog.audit_entries(inp.campaign_id) if e.kind == "brief.submitted"),
            None,
        )
        recorded = submitted.payload.get("playbook") if submitted is not None else None
        if isinstance(recorded, dict) and "document" in recorded:
            try:
                playbook = Playbook.model_validate(recorded["document"])
            except ValidationError as err:
                raise ApplicationError(
                    f"campaign {inp.campaign_id!r} was submitted with playbook "
                    f"{recorded.get('name')!r}, which no longer validates: {err}. Submit a new "
                    "campaign under a valid playbook and delete this schedule",
                    type="CampaignPlaybookInvalid",
                    non_retryable=True,
                ) from err
        elif (
            isinstance(recorded, dict)
            and self.playbook is not None
            and (recorded.get("name"), recorded.get("version"))
            == (self.playbook.name, self.playbook.version)
        ):
            # submitted before the entry held the whole playbook: the worker's is the same
            # playbook by name and version
            playbook = self.playbook
        else:
            worker = (
                f"{self.playbook.name!r} version {self.playbook.version}"
                if self.playbook is not None
                else "none"
            )
            raise ApplicationError(
                f"campaign {inp.campaign_id!r} was submitted under playbook {recorded!r}, which "
                f"the catalog does not keep in full, and this worker's playbook is {worker}: "
                "a scheduled round must not run under other rules. Start the worker with that "
                "playbook (FACELOOP_PLAYBOOK) or delete this schedule",
                type="CampaignPlaybookUnknown",
                non_retryable=True,
            )
        return CampaignInput(
            campaign_id=inp.campaign_id,
            brief=row.brief,
            config=config,
            round=next_round,
            live=live,
            playbook=playbook,
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
                    # free text sealed under the campaign's key: the chain is append-only,
                    # so erasure shreds the key instead of editing the entry
                    "brief": self.catalog.seal_brief(inp.campaign_id, inp.brief),
                    "config": inp.config.model_dump(mode="json"),
                    # in full: scheduled rounds run under it (`next_round_input`)
                    "playbook": {
                        "name": inp.playbook.name,
                        "version": inp.playbook.version,
                        "document": inp.playbook.model_dump(mode="json"),
                    },
                },
            )

    @activity.defn
    async def propose(self, inp: ProposeInput) -> VariantsPayload:
        return await asyncio.to_thread(self._propose, inp)

    @activity.defn
    async def propose_and_plan(self, inp: ProposeAndPlanInput) -> ProposeAndPlanOutput:
        """propose, then the planner's prompts for what it proposed: one workflow task on
        the round's path instead of two (`propose-and-plan-in-one`). A retry proposes the
        same variants again (propose is idempotent per round) and plans them again, as a
        retried plan activity does."""
        plan = self._plan
        if plan is None:
            # a worker wired without the planner must not pass for one that plans
            raise FaceloopError("this worker's campaign activities were built without a planner")

        def both() -> ProposeAndPlanOutput:
            proposed = self._propose(inp.propose)
            planned = plan(inp.plan.model_copy(update={"variants": proposed.variants}))
            return ProposeAndPlanOutput(proposed=proposed, planned=planned)

        return await asyncio.to_thread(both)

    def _propose(self, inp: ProposeInput) -> VariantsPayload:
        # Thompson proposals from each segment's KPI model, fitted on everything observed
        # (the bench runs the same: faceloop.optimization.simulate)
        every = self.catalog.variants(inp.campaign_id)
        evidence = self._evidence(inp.campaign_id, inp.brief, every, [], inp.round - 1)
        row = self.catalog.get_campaign(inp.campaign_id)
        proposals = self.optimizer.ask(
            inp.campaign_id,
            inp.round,
            inp.n,
            inp.brief.search_space,
            models=evidence.models,
            segments=evidence.shares,
            avoid=[v.params for v in every if v.live],
            objectives=row.config.objectives if row is not None else None,
        )
        variants = []
        for p in proposals:
            v = Variant(
                variant_id=variant_id(inp.campaign_id, inp.round, p.trial_number),
                campaign_id=inp.campaign_id,
                round=inp.round,
                trial_number=p.trial_number,
                params=p.params,
                seed=stable_seed(inp.campaign_id, p.trial_number),
                segment=p.segment,
            )
            self.catalog.upsert_variant(v)
            variants.append(v)
        self.catalog.set_campaign_status(inp.campaign_id, "running", inp.round)
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=variants)

    @activity.defn
    async def decide(self, inp: DecideInput) -> DecideOutput:
        return await asyncio.to_thread(self._decide, inp)

    def _decide(self, inp: DecideInput) -> DecideOutput:
        return decide_variants(self.catalog, inp)

    @activity.defn
    async def record_review(self, inp: ReviewRecord) -> None:
        await asyncio.to_thread(self._record_review, inp)

    def _record_review(self, inp: ReviewRecord) -> None:
        if inp.event == "decided":
            v = self.catalog.get_variant(inp.variant_id)
            if v is not None:
                self.catalog.upsert_variant(
                    v.model_copy(update={"decision": inp.decision, "decision_reason": inp.reason})
                )
        if inp.event == "vote":
            kind = f"review.vote.{'approve' if inp.decision == Decision.deploy else 'reject'}"
        elif inp.event == "escalated":
            kind = "review.escalated"
        else:
            kind = f"review.{'approve' if inp.decision == Decision.deploy else 'reject'}"
        self.catalog.audit(
            inp.campaign_id,
            kind,
            inp.variant_id,
            inp.actor,
            {
                "reason": inp.reason,
                "role": inp.role,
                "level": inp.level,
                "approvals": inp.approvals,
                # only votes carry it; absent from entries written before votes were checked
                **({"identity": inp.identity} if inp.identity is not None else {}),
            },
        )
        if inp.event == "decided" and inp.waited_seconds is not None:
            # one decision per subject: its wait is the review time of the campaign's cost
            self.catalog.record_usage(
                inp.campaign_id,
                "review_minutes",
                inp.waited_seconds / 60,
                f"review:{inp.variant_id}",
                round=inp.round,
                detail="escalation open to decision",
            )

    @activity.defn
    async def check_rollback(self, inp: RollbackInput) -> RollbackOutput:
        return await asyncio.to_thread(self._check_rollback, inp)

    def _check_rollback(self, inp: RollbackInput) -> RollbackOutput:
        """The playbook's rollback criteria over what each live ad delivered so far."""
        if not inp.playbook.rollback or not inp.live:
            return RollbackOutput(paused=[])
        live = {v.variant_id: v for v in inp.live}
        rows = [o for o in self.catalog.observations(inp.campaign_id) if o.variant_id in live]
        kpis = RollbackKpis.from_observations(rows)
        if inp.safety_flags is not None:
            # the re-check ran over every live ad: an ad it did not flag has 0, not "unknown"
            kpis = [
                k.model_copy(update={"safety_flags": inp.safety_flags.get(k.variant_id, 0)})
                for k in kpis
            ]
        hits = inp.playbook.rollback_hits(kpis)
        by_variant: dict[str, list[RollbackHit]] = {}
        for hit in hits:
            by_variant.setdefault(hit.variant_id, []).append(hit)
        paused = []
        for vid, vhits in by_variant.items():
            record = RollbackRecord(
                round=inp.round,
                variant_id=vid,
                ad_id=live[vid].ad_id or vhits[0].ad_id,
                criteria=[h.criterion for h in vhits],
                reason="; ".join(h.reason for h in vhits),
                notify_role=vhits[0].notify_role,
            )
            paused.append(record)
            self.catalog.audit(
                inp.campaign_id,
                "rollback.paused",
                vid,
                f"playbook:{inp.playbook.name}",
                {
                    **record.model_dump(mode="json"),
                    "signals": [
                        {
                            "criterion": h.criterion,
                            "metric": h.metric,
                            "value": h.value,
                            "op": h.op,
                            "threshold": h.threshold,
                            "impressions": h.impressions,
                        }
                        for h in vhits
                    ],
                },
            )
        return RollbackOutput(paused=paused)

    @activity.defn
    async def learn(self, inp: LearnInput) -> LearnOutput:
        return await asyncio.to_thread(self._learn, inp)

    @activity.defn
    async def rollback_and_learn(self, inp: RollbackLearnInput) -> RollbackLearnOutput:
        """check_rollback, then learn without the ads it paused: one workflow task on the
        round's path instead of two (`rollback-and-learn-in-one`). A retry runs both again,
        as retried ones did: the same hits (audited again), and trials already told stay as
        they were (`Optimizer.tell`)."""
        return await asyncio.to_thread(self._rollback_and_learn, inp)

    def _rollback_and_learn(self, inp: RollbackLearnInput) -> RollbackLearnOutput:
        rolled = self._check_rollback(inp.rollback)
        paused = [r.variant_id for r in rolled.paused]
        learn = inp.learn.model_copy(update={"paused": sorted({*inp.learn.paused, *paused})})
        return RollbackLearnOutput(rolled=rolled, learned=self._learn(learn))

    def _learn(self, inp: LearnInput) -> LearnOutput:
        # the same learn step the optimisation bench runs each round
        # (faceloop.optimization.learn, faceloop.optimization.simulate)
        evidence = self._evidence(
            inp.campaign_id,
            inp.brief,
            self.catalog.variants(inp.campaign_id),
            inp.live,
            inp.round,
        )
        # blocked variants are told as failed; deployed ones their observed KPI (or
        # objectives), once, after their first window
        # an ad the platform's review refused failed as surely as a blocked one
        failed = set(inp.failed)
        told = {
            v.trial_number: (
                v.variant_id
                if v.decision == Decision.deploy and v.variant_id not in failed
                else None
            )
            for v in inp.round_variants
            if v.trial_number is not None and v.round == inp.round
        }
        plan = learn_round(
            self.optimizer,
            inp.campaign_id,
            inp.round,
            evidence,
            told,
            inp.config.incumbents,
            objectives=inp.config.objectives,
            refresh=inp.config.refresh_creatives,
            paused=[*inp.paused, *inp.failed],
            places=inp.config.variants_per_round,
            # new creatives only where they can repay their test in the rounds left
            rounds_left=inp.config.rounds - inp.round - 1,
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
                "refreshed": plan.refresh,
                "winners": plan.winners,
                "memory_windows": evidence.memory,
                # which parameters the models read from the pixels instead of the request
                "measured_params": {
                    vid: [p for p, src in source.items() if src == "measured"]
                    for vid, source in evidence.shown_from.items()
                    if "measured" in source.values()
                },
            },
        )
        return LearnOutput(
            incumbents=keep,
            retire=retire,
            posterior_mean=plan.posterior_mean,
            winner=by_id.get(plan.winner) if plan.winner else None,
        )

    def _evidence(
        self,
        campaign_id: str,
        brief: Brief,
        every: list[Variant],
        live: list[Variant],
        now: int,
    ) -> CampaignEvidence:
        """The campaign's evidence after window `now`, from the catalog's observations of
        `every` variant it ran; `live` are the ones running now, with their target."""
        # the models learn the face each image shows (measured where measured)
        shown = shown_faces([*every, *live])
        return campaign_evidence(
            self.catalog.observations(campaign_id),
            shown.faces,
            {v.variant_id: v.segment for v in live},
            segment_shares(brief),
            brief.kpi_goal,
            brief.search_space,
            now,
            requested=shown.requested,
            shown_from=shown.shown_from,
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
        if self.checkpoints is None:
            return
        try:
            self.checkpoints.write_if_moved(self.catalog)
        except FaceloopError as exc:
            # the campaign is over either way: failing it would hide nothing and lose its
            # result. The refusal (a log that no longer extends the last checkpoint, a TSA
            # that is down) goes where an auditor looks, and the next checkpoint tries again.
            activity.logger.error("audit checkpoint not written: %s", exc)
            self.catalog.audit(
                inp.campaign_id,
                "audit.checkpoint_failed",
                inp.campaign_id,
                "workflow",
                {"error": str(exc)},
            )


def _tighter(a: SpendCap | None, b: SpendCap) -> SpendCap:
    """The lower of two caps (same currency: both were checked against the deployment's)."""
    return b if a is None or b.amount < a.amount else a
