"""Models of the agents: what the planner and the analyst return and record.

They depend only on faceloop.models, so the lead can move any of them into it unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from faceloop.guardrails.prompt_filter import FilterHit
from faceloop.models import AnalystSummary as AnalystSummary
from faceloop.models import KpiGoal, Model, PromptPlan, VariantPrompt
from faceloop.models import VariantKpi as VariantKpi


class BriefFacts(Model):
    """What the planner extracted from a brief; every text is quoted data, never instructions."""

    product: str = Field(max_length=200)
    audience: list[str] = Field(default_factory=list, max_length=20)
    markets: list[str] = Field(default_factory=list)
    tone: str = Field(default="", max_length=200)
    constraints: list[str] = Field(default_factory=list, max_length=50)


class PlanFallback(Model):
    """An LLM node whose output stayed invalid: the deterministic node wrote this part instead."""

    node: Literal["extract", "write_prompt"]
    variant_id: str | None = None
    attempts: int
    reason: str


class PlanResult(Model):
    """The planner's full answer: the prompt plan plus how it came about."""

    status: Literal["planned", "blocked", "escalated"] = "planned"
    reason: str = ""
    variants: list[VariantPrompt] = Field(default_factory=list)
    fallbacks: list[PlanFallback] = Field(default_factory=list)
    facts: BriefFacts | None = None
    hits: list[FilterHit] = Field(default_factory=list)
    llm_model: str | None = Field(default=None, description="None: no LLM was configured")

    def prompt_plan(self) -> PromptPlan:
        return PromptPlan(status=self.status, reason=self.reason, variants=self.variants)


# --------------------------------------------------------------------------- analyst


class AnalyzeInput(Model):
    campaign_id: str
    round: int = Field(ge=0)
    kpi_goal: KpiGoal = KpiGoal.ctr
