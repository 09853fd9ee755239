"""Agent activities: the planner and the analyst run here, never in workflow code.

Both classes hold their clients (chat model, catalog, optimizer). Built with no arguments,
PlannerActivities reads the LLM settings from the environment and the prompt filter rules
from the default playbook, so the embedded default needs no setup; a PlanInput that carries
the campaign's playbook (every one the workflow sends) is planned under that playbook's rules.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from temporalio import activity

from faceloop.agents.models import AnalystSummary, AnalyzeInput, PlanResult
from faceloop.guardrails.prompt_filter import FilterHit, PromptFilter
from faceloop.messages import PlanInput, PlanOutput

if TYPE_CHECKING:
    from faceloop.agents.llm import ChatModel
    from faceloop.agents.planner.graph import Planner
    from faceloop.agents.settings import AgentSettings
    from faceloop.optimization import Optimizer
    from faceloop.playbooks.schema import PromptFilterRules
    from faceloop.storage.catalog import Catalog

__all__ = [
    "AnalystActivities",
    "PlannerActivities",
    "ReviewedFilter",
    "build_planner",
    "chat_model",
    "finding",
]

log = logging.getLogger(__name__)


def chat_model(settings: AgentSettings | None = None) -> ChatModel | None:
    """The configured LLM, or None for the deterministic planner."""
    from faceloop.agents.llm import OpenAIChatModel
    from faceloop.agents.settings import get_agent_settings

    s = settings or get_agent_settings()
    return OpenAIChatModel.from_settings(s) if s.llm_enabled else None


def build_planner(
    settings: AgentSettings | None = None, rules: PromptFilterRules | None = None
) -> Planner:
    from faceloop.agents.planner.graph import Planner
    from faceloop.agents.settings import get_agent_settings
    from faceloop.playbooks.schema import load_playbook

    s = settings or get_agent_settings()
    if rules is None:
        rules = load_playbook().prompt_filter
    return Planner(chat_model(s), rules, s.llm_max_attempts, s.llm_plan_budget_s)


def finding(hit: FilterHit) -> str:
    """How a filter hit is named when a reviewer approves it: rule and field, not the text
    matched, so the same brief field found again in a later round is the same finding."""
    return f"{hit.rule}:{hit.field}"


class ReviewedFilter(PromptFilter):
    """The playbook's prompt filter after a review: the escalate findings a reviewer
    approved no longer count. A block is never waived, and an escalate finding nobody
    approved (another rule, another field, a new prompt) still escalates."""

    def __init__(self, rules: PromptFilterRules | None, approved: frozenset[str]) -> None:
        super().__init__(rules)
        self.approved = approved

    def check_text(
        self, text: str, field: str = "text", persona: frozenset[str] = frozenset()
    ) -> list[FilterHit]:
        return [
            h
            for h in super().check_text(text, field, persona)
            if h.action != "escalate" or finding(h) not in self.approved
        ]


def _audit_once(
    catalog: Catalog, campaign_id: str, kind: str, subject: str, payload: dict[str, object]
) -> None:
    # one entry per (campaign, kind, subject), whoever calls: a retried activity, or a
    # caller outside an activity (tests, `faceloop plan`), where the catalog has no
    # activity execution to key on; the key makes the append a lookup, not a scan
    key = f"planner:{campaign_id}:{kind}:{subject}"
    catalog.audit(campaign_id, kind, subject, "agent:planner", payload, key=key)


class PlannerActivities:
    def __init__(self, planner: Planner | None = None, catalog: Catalog | None = None) -> None:
        self._planner = planner
        self.catalog = catalog
        self._by_rules: dict[str, Planner] = {}

    @property
    def planner(self) -> Planner:
        if self._planner is None:
            self._planner = build_planner()
        return self._planner

    def _planner_for(self, inp: PlanInput) -> Planner:
        # the campaign's playbook's filter rules; a PlanInput recorded before it carried the
        # playbook keeps the rules this planner was built with
        rules = inp.playbook.prompt_filter if inp.playbook is not None else None
        if (rules is None or rules == self.planner.filter.rules) and not inp.approved:
            return self.planner
        from faceloop.agents.planner.graph import Planner

        rules = rules if rules is not None else self.planner.filter.rules
        approved = frozenset(inp.approved)
        key = rules.model_dump_json() + "|" + ",".join(sorted(approved))
        if key not in self._by_rules:
            base = self.planner
            planner = Planner(base.chat, rules, base.max_attempts, base.budget_s)
            if approved:
                planner.filter = ReviewedFilter(rules, approved)
            self._by_rules[key] = planner
        return self._by_rules[key]

    def run(self, inp: PlanInput) -> PlanResult:
        """The whole plan, with fallbacks and filter hits (what `faceloop plan` prints)."""
        planner = self._planner_for(inp)
        result = planner.plan(inp.brief, [(v.variant_id, v.params) for v in inp.variants])
        for f in result.fallbacks:
            log.warning(
                "campaign %s: LLM %s fell back to the deterministic %s node for %s after %d "
                "attempt(s): %s",
                inp.campaign_id,
                result.llm_model,
                f.node,
                f.variant_id or "the brief",
                f.attempts,
                f.reason,
            )
        if self.catalog is not None:
            self._record(inp, result)
        return result

    def _record(self, inp: PlanInput, result: PlanResult) -> None:
        assert self.catalog is not None
        cid = inp.campaign_id
        round_ = inp.variants[0].round if inp.variants else 0
        subject = f"{cid}-r{round_}"
        # the text a filter matched is the brief's own words, and an LLM's failure reason
        # may quote its output (which echoes the brief): both are sealed under the campaign's
        # key, which erasure shreds (docs/privacy.md); rules, fields and counts stay clear
        seal = self.catalog.seal_campaign_data
        if result.status != "planned":
            hits = [h.model_dump(exclude={"matched"}) for h in result.hits]
            _audit_once(
                self.catalog,
                cid,
                f"plan.{result.status}",
                subject,
                {
                    "reason": result.reason,
                    "hits": hits,
                    "matched": seal(cid, [h.matched for h in result.hits], "plan.hits"),
                },
            )
        for f in result.fallbacks:
            _audit_once(
                self.catalog,
                cid,
                f"plan.fallback.{f.node}",
                f.variant_id or subject,
                {
                    "model": result.llm_model,
                    **f.model_dump(exclude={"reason"}),
                    "reason": seal(cid, f.reason, "plan.fallback"),
                },
            )

    @activity.defn
    async def plan(self, inp: PlanInput) -> PlanOutput:
        return await asyncio.to_thread(self.plan_output, inp)

    def plan_output(self, inp: PlanInput) -> PlanOutput:
        """The plan activity's result: the prompt plan, and the findings that escalated it."""
        result = self.run(inp)
        escalated = (
            sorted({finding(h) for h in result.hits if h.action == "escalate"})
            if result.status == "escalated"
            else []
        )
        return PlanOutput(plan=result.prompt_plan(), escalated=escalated)


class AnalystActivities:
    def __init__(
        self,
        catalog: Catalog,
        optimizer: Optimizer,
        chat: ChatModel | None = None,
        attempts: int = 2,
        budget_s: float | None = 20.0,
    ) -> None:
        self.catalog = catalog
        self.optimizer = optimizer
        self.chat = chat
        self.attempts = attempts
        self.budget_s = budget_s

    def run(self, inp: AnalyzeInput) -> AnalystSummary:
        from faceloop.agents.analyst import analyze

        summary = analyze(
            inp, self.catalog, self.optimizer, self.chat, self.attempts, self.budget_s
        )
        _audit_once(
            self.catalog,
            inp.campaign_id,
            "analysis.round",
            f"{inp.campaign_id}-r{inp.round}",
            {
                "text": summary.text,
                "written_by": summary.written_by,
                "importances": summary.importances,
            },
        )
        return summary

    @activity.defn
    async def analyze(self, inp: AnalyzeInput) -> AnalystSummary:
        return await asyncio.to_thread(self.run, inp)
