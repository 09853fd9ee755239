"""Reviewers' side of escalation: find what waits across running campaigns and vote on it.

Campaigns hold their escalations in workflow state (CampaignWorkflow's `escalations` query
and `review` update), so this asks Temporal, not the catalog: the workflow is the one place
that decides, and its update validator is the one place that refuses a vote.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from faceloop.errors import FaceloopError
from faceloop.messages import PendingEscalation, ReviewInput
from faceloop.workflows.campaign import CampaignWorkflow

__all__ = ["ReviewRefused", "cast_review", "list_escalations"]

# scheduled rounds run CampaignWorkflow as a child with its own id, so list by type
RUNNING_CAMPAIGNS = 'WorkflowType = "CampaignWorkflow" AND ExecutionStatus = "Running"'


class ReviewRefused(FaceloopError):
    """The campaign refused the vote (self-approval, second vote, already decided ...)."""


async def list_escalations(
    client: Client, campaign_id: str | None = None
) -> list[PendingEscalation]:
    """Every escalated variant waiting for a reviewer, oldest deadline first."""
    out: list[PendingEscalation] = []
    async for wf in client.list_workflows(RUNNING_CAMPAIGNS):
        if campaign_id is not None and not (
            wf.id == campaign_id or wf.id.startswith(f"{campaign_id}-round-")
        ):
            continue
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        try:
            out.extend(await handle.query(CampaignWorkflow.escalations))
        except RPCError:
            # the run ended (continue-as-new, finished) between listing and querying
            continue
    return sorted(out, key=lambda p: (p.deadline, p.variant_id))


async def cast_review(client: Client, vote: ReviewInput) -> str:
    """Send a vote to the campaign that waits for it; the campaign's answer comes back."""
    waiting = [p for p in await list_escalations(client) if p.variant_id == vote.variant_id]
    if not waiting:
        raise ReviewRefused(
            f"variant {vote.variant_id} is not waiting for a review in any running campaign; "
            "`faceloop escalations` lists what waits"
        )
    target = waiting[0]
    vote = vote.model_copy(update={"campaign_id": target.campaign_id})
    handle = client.get_workflow_handle(target.workflow_id)
    try:
        return await handle.execute_update(CampaignWorkflow.review, vote)
    except WorkflowUpdateFailedError as exc:
        reason = str(exc.cause) if exc.cause is not None else str(exc)
        raise ReviewRefused(f"vote on {vote.variant_id} refused: {reason}") from exc
