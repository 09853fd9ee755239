"""Activity inputs and outputs: one pydantic model in, one out, for every activity."""

from __future__ import annotations

from pydantic import Field

from faceloop.models import (
    Brief,
    CampaignConfig,
    CampaignState,
    Decision,
    GuardrailReport,
    KpiObservation,
    Model,
    Persona,
    PromptPlan,
    Variant,
)
from faceloop.playbooks.schema import Playbook


class CampaignInput(CampaignState):
    """CampaignWorkflow's argument: the state carried from the previous run, the playbook,
    and where generation and guardrail activities run."""

    playbook: Playbook
    gpu_task_queue: str = "faceloop-gpu"
    cpu_task_queue: str = "faceloop-cpu"


class StartCampaignInput(Model):
    campaign_id: str
    brief: Brief
    config: CampaignConfig
    playbook: Playbook


class ProposeInput(Model):
    campaign_id: str
    round: int
    n: int
    brief: Brief


class VariantsPayload(Model):
    """A batch of variants moving between stages (generate, guard, deploy ...)."""

    campaign_id: str
    round: int
    variants: list[Variant]


class PlanInput(Model):
    campaign_id: str
    brief: Brief
    variants: list[Variant]


class PlanOutput(Model):
    plan: PromptPlan


class GenerateInput(Model):
    campaign_id: str
    round: int
    size: int
    variants: list[Variant]


class GuardInput(Model):
    campaign_id: str
    round: int
    playbook: Playbook
    variants: list[Variant]
    persona: Persona | None = Field(
        default=None, description="a consented persona every variant must stay close to"
    )


class GuardOutput(Model):
    reports: list[GuardrailReport]


class DecideInput(Model):
    campaign_id: str
    round: int
    playbook: Playbook
    variants: list[Variant]


class ReviewDecision(Model):
    """What a reviewer's approve/reject did to a waiting variant, for the audit log."""

    campaign_id: str
    variant_id: str
    decision: Decision
    reviewer: str
    reason: str


class ReviewInput(ReviewDecision):
    """A compliance reviewer's vote on an escalated variant (the `review` update)."""


class DeployInput(Model):
    campaign_id: str
    round: int
    brief: Brief
    config: CampaignConfig
    live: list[Variant] = Field(description="every variant that should run this round")
    retire: list[Variant] = Field(default_factory=list, description="ads to pause")
    impressions: int


class DeployOutput(Model):
    live: list[Variant]
    allocation: dict[str, int]


class ObserveInput(Model):
    campaign_id: str
    round: int
    live: list[Variant]
    connector: str


class ObserveOutput(Model):
    observations: list[KpiObservation]


class RetireInput(Model):
    campaign_id: str
    round: int
    connector: str
    variants: list[Variant]


class LearnInput(Model):
    campaign_id: str
    round: int
    brief: Brief
    config: CampaignConfig
    round_variants: list[Variant] = Field(description="every variant of this round, any decision")
    live: list[Variant]


class LearnOutput(Model):
    incumbents: list[Variant]
    retire: list[Variant]
    posterior_mean: dict[str, float]
    winner: Variant | None


class FinishInput(Model):
    campaign_id: str
    status: str
    round: int
    winner: Variant | None = None
    reason: str = ""


class ScheduledRoundInput(Model):
    """What a schedule's action carries: which live campaign to optimise one more round."""

    campaign_id: str
    gpu_task_queue: str = "faceloop-gpu"
    cpu_task_queue: str = "faceloop-cpu"
