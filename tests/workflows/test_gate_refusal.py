"""A variant whose creative the deploy gate refuses (do-not-serve) is told to the optimizer
as failed, like one the platform's review disapproves.

The real CampaignWorkflow in Temporal's time-skipping server; the real start, propose and
learn activities (catalog and Optuna study on SQLite), so the Optuna trial state is the
optimizer's own record. The other round activities are the history-bounds test's FAKE
activities (no images, no platform), with a FAKE deploy whose gate refuses the first
variant, as ConnectorActivities.deploy reports a refusal (`DeployOutput.refused`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

from optuna.trial import TrialState
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from test_history_bounds import FakeRoundActivities, one_queue_input, time_skipping_server

from faceloop.briefs import load_brief_and_config
from faceloop.messages import (
    DeployInput,
    DeployOutput,
    LearnInput,
    LearnOutput,
    ProposeInput,
    VariantsPayload,
)
from faceloop.models import CampaignConfig, Decision
from faceloop.optimization import Optimizer
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign import CampaignWorkflow
from faceloop.workflows.campaign_activities import CampaignActivities

ROOT = Path(__file__).resolve().parents[2]
REASON = "variant v: creative c refused at the deploy boundary: no C2PA manifest"


class GateRefusesFirst(FakeRoundActivities):
    """FAKE round activities whose deploy gate refuses the round's first new variant."""

    def __init__(self, real: CampaignActivities) -> None:
        self.real = real
        self.learned: list[LearnInput] = []

    @activity.defn
    async def propose(self, inp: ProposeInput) -> VariantsPayload:
        # the real proposals (the fake propose_and_plan plans what this returns)
        return await self.real.propose(inp)

    @activity.defn
    async def deploy(self, inp: DeployInput) -> DeployOutput:
        new = [v for v in inp.live if v.ad_id is None]
        bad = new[0].variant_id
        live = [
            v.model_copy(update={"ad_id": f"ad-{v.variant_id}", "live": True})
            for v in inp.live
            if v.variant_id != bad
        ]
        return DeployOutput(
            live=live,
            allocation={v.variant_id: 100 for v in live},
            refused={bad: REASON},
        )

    @activity.defn
    async def learn(self, inp: LearnInput) -> LearnOutput:
        self.learned.append(inp)
        return await self.real.learn(inp)


async def test_a_variant_the_gate_refuses_is_told_failed(tmp_path: Path) -> None:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    brief = brief.model_copy(update={"persona": None})
    config = CampaignConfig.model_validate(
        dict(rounds=1, variants_per_round=3, incumbents=1, kpi_window_seconds=3600.0)
    )
    queue = wid = f"gate-{uuid.uuid4().hex[:8]}"
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    optimizer = Optimizer(f"sqlite:///{tmp_path / 'optuna.db'}")
    real = CampaignActivities(catalog, optimizer)
    fake = GateRefusesFirst(real)
    names = [n for n in dir(FakeRoundActivities) if not n.startswith("_")]
    activities = [getattr(fake, n) for n in names if callable(getattr(fake, n))]
    # the real one, under the same activity name
    activities = [a for a in activities if a.__name__ != "start_campaign"] + [real.start_campaign]
    try:
        async with (
            await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=time_skipping_server(),
                data_converter=pydantic_data_converter,
            ) as env,
            Worker(
                env.client, task_queue=queue, workflows=[CampaignWorkflow], activities=activities
            ),
        ):
            handle = await env.client.start_workflow(
                CampaignWorkflow.run,
                one_queue_input(wid, queue, brief, config),
                id=wid,
                task_queue=queue,
            )
            state = await asyncio.wait_for(handle.result(), timeout=120)
        assert state.stage == "done"

        (learned,) = fake.learned
        (bad,) = [v for v in learned.round_variants if v.decision == Decision.block]
        assert bad.decision_reason == REASON and not bad.live
        assert bad.variant_id in learned.failed
        assert bad.variant_id not in {v.variant_id for v in learned.live}
        # the round's summary shows it blocked, not silently gone
        (summary,) = state.history
        assert {v.variant_id: v.decision for v in summary.variants}[bad.variant_id] == (
            Decision.block
        )

        # the optimizer's own record: the refused trial failed; the deployed ones did not,
        # and none is left running
        trials = {t.number: t for t in optimizer.trials(wid)}
        assert bad.trial_number is not None
        assert trials[bad.trial_number].state == TrialState.FAIL
        shipped = [v.trial_number for v in learned.live if v.trial_number is not None]
        assert len(shipped) == 2
        assert all(trials[n].state != TrialState.FAIL for n in shipped)
        assert Counter(t.state for t in trials.values())[TrialState.RUNNING] == 0
    finally:
        catalog.close()
