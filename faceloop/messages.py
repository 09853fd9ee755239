"""Activity inputs and outputs: one pydantic model in, one out, for every activity."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from faceloop.generation import GenerationConfig
from faceloop.models import (
    Brief,
    CampaignConfig,
    CampaignState,
    Decision,
    ExportConfig,
    GuardrailReport,
    KpiObservation,
    Line,
    Model,
    Persona,
    PromptPlan,
    RollbackRecord,
    SpendCap,
    Text,
    Variant,
)
from faceloop.playbooks.schema import Escalation, FidelitySettings, Playbook


class CampaignInput(CampaignState):
    """CampaignWorkflow's argument: the state carried from the previous run, the playbook,
    and where generation and guardrail activities run."""

    playbook: Playbook
    gpu_task_queue: str = "faceloop-gpu"
    cpu_task_queue: str = "faceloop-cpu"
    approved_plan_findings: list[str] = Field(
        default_factory=list,
        description="prompt filter findings (rule:field) reviewers approved in earlier rounds: "
        "a brief approved once is not escalated again every round",
    )


# CampaignInput's own fields: CampaignWorkflow drops them to get the CampaignState
CAMPAIGN_INPUT_ONLY = frozenset(
    {"playbook", "gpu_task_queue", "cpu_task_queue", "approved_plan_findings"}
)


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


class ExportInput(Model):
    """Signed variants to export per ad placement (guardrails/export.py)."""

    campaign_id: str
    round: int
    variants: list[Variant]
    export: ExportConfig = Field(default_factory=ExportConfig)
    channels: list[str] = Field(
        default_factory=list, description="the brief's channels: they pick default placements"
    )


class PlanInput(Model):
    campaign_id: str
    brief: Brief
    variants: list[Variant]
    # None only in histories recorded before the campaign's playbook travelled with the plan
    playbook: Playbook | None = Field(
        default=None, description="the campaign's playbook: its prompt filter rules apply"
    )
    approved: list[str] = Field(
        default_factory=list,
        description="escalate findings (rule:field) a reviewer approved: they no longer stop "
        "the plan; a block still blocks, and a finding nobody approved still escalates",
    )


class PlanOutput(Model):
    plan: PromptPlan
    escalated: list[str] = Field(
        default_factory=list,
        description="the escalate findings (rule:field) that stopped the plan: what a "
        "reviewer approves",
    )


class ProposeAndPlanInput(Model):
    """Propose and plan as one activity (`propose-and-plan-in-one`)."""

    propose: ProposeInput
    plan: PlanInput = Field(description="its `variants` are the proposed ones, filled in there")


class ProposeAndPlanOutput(Model):
    proposed: VariantsPayload
    planned: PlanOutput


class GenerateInput(Model):
    campaign_id: str
    round: int
    size: int
    variants: list[Variant]
    # histories recorded before fidelity was measured carry none: the defaults apply
    fidelity: FidelitySettings = Field(
        default_factory=FidelitySettings,
        description="the playbook's fidelity section: tolerance, re-seeds, enforce or not",
    )
    # None in histories recorded before the production path travelled with the input: the
    # GPU worker's default generator makes them, as it did then
    generation: GenerationConfig | None = Field(
        default=None, description="the campaign's resolved production path"
    )
    persona: Persona | None = Field(
        default=None, description="a consented persona whose adapter the batch loads"
    )
    markets: list[str] = Field(
        default_factory=list, description="the brief's markets: the consent must cover them"
    )


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
    # what the playbook's rules read (markets, channels, spend, persona); None: guardrail
    # verdicts only
    brief: Brief | None = None
    config: CampaignConfig | None = None


class DecideOutput(VariantsPayload):
    """Decided variants and, for each escalated one, the review it waits for."""

    escalations: dict[str, Escalation] = Field(
        default_factory=dict,
        description="variant id -> who must approve, how many, by when, and what expiry does",
    )


class GuardShipInput(Model):
    """Guard, decide, then sign and export what the playbook deploys, as one activity
    (`guard-decide-and-ship-in-one`)."""

    decide: DecideInput
    export: ExportInput = Field(
        description="its `variants` are the ones decided deploy, filled in there"
    )


class GuardShipOutput(Model):
    decided: DecideOutput = Field(
        description="every variant as decided (escalated ones wait for reviewers)"
    )
    shipped: VariantsPayload = Field(
        description="the variants decided deploy, signed and exported; escalated ones a "
        "reviewer approves are signed after the review"
    )


class ReviewDecision(Model):
    """What a reviewer's approve/reject did to a waiting variant, for the audit log."""

    campaign_id: Line = Field(max_length=1000)  # a workflow id: Temporal's own limit
    variant_id: Line = Field(max_length=1100)  # the campaign id, round and trial
    decision: Decision
    reviewer: Line = Field(min_length=1, max_length=128)
    reason: Text = Field(max_length=2000)


class VoteSignature(Model):
    """The console's proof of who cast a vote (faceloop/votes.py): Ed25519 over the vote's
    fields, the time and a nonce."""

    key_id: str = Field(max_length=64, description="sha256 of the public key, 16 hex digits")
    issued_at: AwareDatetime
    nonce: str = Field(max_length=64)
    signature: str = Field(max_length=200, description="base64 Ed25519 signature")


class ReviewInput(ReviewDecision):
    """A compliance reviewer's vote on an escalated variant (the `review` update)."""

    # optional only so votes recorded before roles were required still decode and replay
    role: Line | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the role the reviewer votes as: the one the level waits for (required)",
    )
    # required by the worker once console users exist; None: a single operator's vote
    signature: VoteSignature | None = None


class VoteCheck(Model):
    """What the worker found checking who cast a vote (ReviewActivities.verify_vote)."""

    ok: bool
    identity: Literal["signed", "unverified"] = "unverified"
    reason: str = ""


class Vote(Model):
    reviewer: str
    role: str | None
    decision: Decision
    reason: str
    level: int = Field(description="escalation level the vote was cast at (0: first)")
    at: datetime


class PendingEscalation(Model):
    """One escalated variant as reviewers see it (`faceloop escalations`)."""

    campaign_id: str
    workflow_id: str = ""
    variant_id: str
    round: int
    asset_id: str | None
    flagged: str = Field(description="why the playbook escalated it")
    submitted_by: str
    role: str = Field(description="who must decide at the current level")
    level: int
    approvers_required: int
    approvals: list[str] = Field(description="reviewers who approved at this level")
    votes: list[Vote]
    deadline: datetime
    on_expiry: str = Field(description="what happens at the deadline: block, deploy, escalate")
    outcome: Decision | None = None


class ReviewRecord(Model):
    """One event of a review for the catalog and the audit log: a vote, the final outcome,
    or an SLA expiry that escalated further or decided."""

    event: Literal["vote", "decided", "escalated"]
    campaign_id: str
    variant_id: str
    decision: Decision | None = None
    actor: str
    reason: str
    role: str | None = None
    level: int = 0
    approvals: list[str] = Field(default_factory=list)
    # a vote's: "signed" (the console proved who cast it) or "unverified" (no console users)
    identity: str | None = None
    waited_seconds: float | None = Field(
        default=None, description="decided: how long it waited from opening (workflow time)"
    )
    round: int = 0


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
    refused: dict[str, str] = Field(
        default_factory=dict,
        description="variant id -> why the deploy gate refused its creative (do-not-serve): "
        "never shipped, told to the optimizer as failed",
    )


class ObserveInput(Model):
    campaign_id: str
    round: int
    live: list[Variant]
    connector: str
    # who hears of an ad the platform's review disapproved (the playbook's escalation role)
    notify_role: str = "compliance"


class ObserveOutput(Model):
    observations: list[KpiObservation]
    disapproved: list[RollbackRecord] = Field(
        default_factory=list,
        description="live ads the platform's review disapproved this window, now paused",
    )


class RetireInput(Model):
    campaign_id: str
    round: int
    connector: str
    variants: list[Variant]
    reason: str = "retired: not among the round's best"
    actor: str = "optimizer"


class LearnInput(Model):
    campaign_id: str
    round: int
    brief: Brief
    config: CampaignConfig
    round_variants: list[Variant] = Field(description="every variant of this round, any decision")
    live: list[Variant]
    paused: list[str] = Field(
        default_factory=list,
        description="variant ids a rollback paused this round: never kept, never the winner",
    )
    failed: list[str] = Field(
        default_factory=list,
        description="variant ids the ad platform's review or the deploy gate refused: told FAIL",
    )


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
    spend_cap: SpendCap | None = Field(
        default=None,
        description="the schedule's own cap on the campaign's spend: reached, the round stops "
        "the campaign (ads paused) and the schedule is paused (docs/cost.md)",
    )
    schedule_id: str | None = Field(default=None, description="the schedule to pause at the cap")


class SpendCheckInput(Model):
    campaign_id: str
    round: int
    cap: SpendCap
    planned_impressions: int | None = Field(
        default=None,
        ge=1,
        description="the round's impressions before the cap; with it the check also says how "
        "many the rest of the cap buys (older histories: None, no sizing)",
    )


class SpendCheckOutput(Model):
    reached: bool
    spent: float = Field(description="what the cap was compared with, in the cap's currency")
    reason: str = ""
    impressions_left: int | None = Field(
        default=None,
        ge=1,
        description="the impressions the rest of the cap buys at the campaign's price so far "
        "(its ad spend per impression delivered), where that is fewer than planned: the round "
        "deploys these instead; None: the planned round fits, or no price is known yet",
    )


class RecheckInput(Model):
    campaign_id: str
    round: int
    playbook: Playbook
    live: list[Variant] = Field(description="the ads that ran this window (signed assets)")
    persona: Persona | None = None


class RecheckOutput(Model):
    flags: dict[str, list[str]] = Field(
        default_factory=dict,
        description="live variant id -> why a check blocks its creative now (empty: passes)",
    )


class RollbackInput(Model):
    campaign_id: str
    round: int
    playbook: Playbook
    live: list[Variant] = Field(description="the ads that ran this window")
    safety_flags: dict[str, int] | None = Field(
        default=None,
        description="blocking findings per live variant from the post-deployment re-check; "
        "None: no re-check ran (histories from before it existed)",
    )


class RollbackOutput(Model):
    paused: list[RollbackRecord] = Field(
        description="one per ad to pause, with every criterion that fired for it"
    )


class RollbackLearnInput(Model):
    """The rollback check and the learn step as one activity (`rollback-and-learn-in-one`)."""

    rollback: RollbackInput
    learn: LearnInput = Field(
        description="its `paused` is filled in from the rollback check's result"
    )


class RollbackLearnOutput(Model):
    rolled: RollbackOutput
    learned: LearnOutput
