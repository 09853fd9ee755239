"""The HTTP API's request and response bodies: what the OpenAPI spec at /api/openapi.json
describes. Domain objects (Variant, PendingEscalation, AuditEntry ...) are returned as the
core defines them, so the spec and the CLI's `--json` output agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from faceloop.console.users import Role
from faceloop.models import Decision, KpiObservation, SpendCap, Variant

__all__ = [
    "AuditVerify",
    "BriefCheck",
    "CampaignSummary",
    "CampaignVariants",
    "ErasureRequest",
    "ErasureStarted",
    "FieldProblem",
    "LoginRequest",
    "LoginResult",
    "NewToken",
    "NewUser",
    "PlaybookCheck",
    "PlaybookInfo",
    "ReviewRequest",
    "ReviewResult",
    "RoundView",
    "ScheduleChanged",
    "ScheduleNote",
    "ScheduleRequest",
    "Submitted",
    "TokenRequest",
    "UserView",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_In):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class UserView(BaseModel):
    user_id: str
    username: str
    role: Role
    review_roles: list[str]
    disabled: bool


class LoginResult(BaseModel):
    user: UserView
    csrf_token: str = Field(description="send it as X-CSRF-Token on every POST of this session")
    expires_at: datetime


class NewUser(_In):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)
    role: Role
    review_roles: list[str] | None = Field(
        default=None, description="playbook roles they vote as; default: compliance for reviewers"
    )


class TokenRequest(_In):
    name: str = Field(min_length=1, max_length=128, description="what the token is for")


class NewToken(BaseModel):
    token_id: str
    name: str
    token: str = Field(description="shown once: only its SHA-256 is stored")


class FieldProblem(BaseModel):
    field: str = Field(description="dotted path of the field, e.g. audience.0.share")
    message: str


class BriefCheck(BaseModel):
    valid: bool
    problems: list[FieldProblem]


class Submitted(BaseModel):
    campaign_id: str
    submitted_by: str


class CampaignSummary(BaseModel):
    campaign_id: str
    product: str
    status: str
    round: int
    rounds: int
    variants: int
    submitted_by: str
    owner: str | None = Field(description="console user who submitted it (None: the CLI)")
    created_at: datetime
    updated_at: datetime


class RoundView(BaseModel):
    round: int
    variants: int
    deployed: int
    blocked: int
    escalated: int
    impressions: int
    clicks: int
    conversions: int


class CampaignVariants(BaseModel):
    campaign_id: str
    variants: list[Variant]


class CampaignKpis(BaseModel):
    campaign_id: str
    observations: list[KpiObservation]


class ReviewRequest(_In):
    reason: str = Field(min_length=1, max_length=2000, description="recorded in the audit log")


class ReviewResult(BaseModel):
    variant_id: str
    decision: Decision
    reviewer: str
    role: str
    answer: str = Field(description="what the campaign said")


class AuditVerify(BaseModel):
    intact: bool
    entries: int
    last_seq: int
    last_hash: str
    problems: list[str]


class ErasureRequest(_In):
    kind: Literal["asset", "persona", "campaign"]
    target: str = Field(min_length=1, max_length=128)
    ticket: str = Field(default="", max_length=128, description="the data-subject request id")


class ErasureStarted(BaseModel):
    workflow_id: str
    requested_by: str


class ScheduleRequest(_In):
    campaign_id: str = Field(min_length=1, max_length=128)
    every: str = Field(
        min_length=1, max_length=32, description="how often a round runs: 6h, 30m, 1d, 1h30m"
    )
    spend_cap: str | None = Field(
        default=None,
        max_length=64,
        description="stop the campaign (ads paused) and pause the schedule at this spend, "
        "e.g. '500 USD', in the deployment's currency",
    )


class ScheduleNote(_In):
    note: str = Field(default="", max_length=500, description="why; kept on the schedule")


class ScheduleChanged(BaseModel):
    campaign_id: str
    schedule_id: str
    action: Literal["set", "paused", "resumed", "deleted"]
    every: str | None = Field(default=None, description="the interval set (action `set`)")
    spend_cap: SpendCap | None = None
    by: str = Field(description="the logged-in user, as the audit entry records it")
    audit_seq: int


class PlaybookInfo(BaseModel):
    name: str
    about: str


class PlaybookCheck(BaseModel):
    valid: bool
    problems: list[FieldProblem]
    summary: dict[str, Any] = Field(default_factory=dict)


class KpiImported(BaseModel):
    campaign_id: str
    sha256: str = Field(description="of the uploaded file, as the audit entry records it")
    mapping: str
    rows: int
    new: int
    replaced: int
    unchanged: int
    dry_run: bool
    written: bool
    audit_seq: int | None


class RevokeRequest(_In):
    reason: str = Field(min_length=1, max_length=2000)
    erase: bool = Field(
        default=True, description="start the persona's erasure when no live consent remains"
    )
    ticket: str = Field(default="", max_length=128)


class Revoked(BaseModel):
    consent_id: str
    persona_id: str
    erasure_workflow_id: str | None
    note: str
