"""OptimizationRoundWorkflow: one more round on a live campaign, started by a Temporal
Schedule (`faceloop schedule CAMPAIGN --every 6h`).

It loads the campaign's current state (brief, config, live incumbents) in an activity and
runs CampaignWorkflow for exactly that round as a child, so a scheduled round is the same
code as any other round.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from faceloop.messages import ScheduledRoundInput
    from faceloop.models import CampaignState
    from faceloop.workflows.campaign import CampaignWorkflow
    from faceloop.workflows.campaign_activities import CampaignActivities


@workflow.defn
class OptimizationRoundWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledRoundInput) -> CampaignState:
        round_input = await workflow.execute_activity_method(
            CampaignActivities.next_round_input,
            inp,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
        # the child's id names the round, so a schedule that fires twice for the same round
        # (e.g. a manual trigger racing the timer) cannot run it twice
        return await workflow.execute_child_workflow(
            CampaignWorkflow.run,
            round_input,
            id=f"{inp.campaign_id}-round-{round_input.round}",
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
