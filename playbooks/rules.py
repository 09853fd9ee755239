"""Rule evaluation: a playbook, a variant's guardrail report and its campaign -> a Ruling.

Pure and deterministic (no I/O, no clock), so the decide activity, a test or a person at the
command line get the same answer for the same input. Precedence: block > escalate > deploy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from faceloop.models import (
    Brief,
    CampaignConfig,
    Channel,
    Decision,
    FaceParams,
    GuardrailReport,
    MarketCode,
    Model,
    Verdict,
)
from faceloop.playbooks.schema import Condition, Escalation, Rule

if TYPE_CHECKING:
    from faceloop.playbooks.schema import Playbook

__all__ = ["ConsentRequirement", "RuleContext", "Ruling", "evaluate", "matches"]


class RuleContext(Model):
    """What a rule may read about the campaign a variant belongs to."""

    campaign_id: str = ""
    markets: list[MarketCode] = Field(default_factory=list, description="the brief's markets")
    channels: list[Channel] = Field(default_factory=list, description="the brief's channels")
    connector: str = Field(default="", description="the connector the ads go through")
    params: FaceParams | None = Field(default=None, description="the variant's face parameters")
    persona_id: str | None = Field(default=None, description="the brief's consented persona")
    spend: float = Field(
        default=0.0,
        ge=0,
        description="the campaign's budget; briefs have no money field, so this is "
        "Brief.budget_impressions (impressions)",
    )

    @classmethod
    def for_variant(
        cls,
        campaign_id: str,
        brief: Brief,
        config: CampaignConfig | None = None,
        params: FaceParams | None = None,
    ) -> RuleContext:
        return cls(
            campaign_id=campaign_id,
            markets=list(brief.markets),
            channels=list(brief.channels),
            connector=config.connector if config is not None else "",
            params=params,
            persona_id=brief.persona.persona_id if brief.persona is not None else None,
            spend=float(brief.budget_impressions),
        )


class ConsentRequirement(Model):
    """The consent record the persona's person must have given before anything ships."""

    persona_id: str
    scope: str = Field(description="purpose the record must name")
    markets: list[str] = Field(description="markets the record must cover (empty: any)")
    rules: list[str] = Field(description="the rules that require it")


class Ruling(Model):
    """What the playbook says about one variant, with the reasons a person can read."""

    decision: Decision
    reasons: list[str] = Field(
        description="one per guardrail verdict other than pass and per matched rule"
    )
    matched_rules: list[str] = Field(default_factory=list)
    escalation: Escalation | None = Field(
        default=None, description="who decides, by when, how many, and what expiry does"
    )
    approvers: int = Field(default=0, ge=0, description="distinct approvers needed (0: none)")
    disclosures: dict[str, str] = Field(
        default_factory=dict, description="market -> disclosure text, in the campaign's order"
    )
    requires_consent: bool = False
    consent: ConsentRequirement | None = None

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def disclosure_text(self) -> str:
        """One line for the ad: each distinct text once, in market order (the planner's form)."""
        seen: list[str] = []
        for joined in self.disclosures.values():
            for text in joined.split(" / "):
                if text not in seen:
                    seen.append(text)
        return " / ".join(seen)


def matches(when: Condition, report: GuardrailReport, ctx: RuleContext) -> bool:
    """Every matcher given holds (absent ones match anything)."""
    if not all(g.matches(report) for g in when.guardrail):
        return False
    if when.markets_any is not None and not set(ctx.markets) & set(when.markets_any):
        return False
    if when.channels_any is not None:
        # the brief's channels and the connector the ads really go through both count
        used = {c.value for c in ctx.channels} | {ctx.connector}
        if not used & {c.value for c in when.channels_any}:
            return False
    if when.params is not None:
        if ctx.params is None:
            return False
        for name, m in when.params.items():
            if not m.matches(getattr(ctx.params, name)):
                return False
    if when.persona is not None and when.persona != (ctx.persona_id is not None):
        return False
    return when.spend_gte is None or ctx.spend >= when.spend_gte


def _ending_in_block(level: Escalation) -> Escalation:
    if level.then is None:
        return level.model_copy(update={"on_expiry": Decision.block})
    return level.model_copy(update={"then": _ending_in_block(level.then)})


def _why(evidence: dict[str, object], score: float) -> str:
    return str(evidence.get("reason", f"score {score:.2f}"))


def evaluate(playbook: Playbook, report: GuardrailReport, ctx: RuleContext | None) -> Ruling:
    """The ruling for one variant; ctx None judges the guardrail verdicts only."""
    reasons: list[str] = []
    blocked = escalated = False
    for c in report.checks:
        if c.verdict == Verdict.block:
            blocked = True
            reasons.append(f"{c.name} blocked: {_why(c.evidence, c.score)}")
        elif c.verdict == Verdict.escalate:
            reasons.append(f"{c.name} flagged: {_why(c.evidence, c.score)}")
            if playbook.on_escalate == Decision.block:
                blocked = True
            elif playbook.on_escalate == Decision.escalate:
                escalated = True
    guard_ok = not reasons

    matched: list[Rule] = (
        [r for r in playbook.rules if matches(r.when, report, ctx)] if ctx is not None else []
    )
    chain: Escalation | None = None  # the first matching rule that names a chain sets it
    approvers = 0
    disclosures: dict[str, list[str]] = {}
    consent: ConsentRequirement | None = None
    for rule in matched:
        assert ctx is not None
        act = rule.then
        effects: list[str] = []
        if act.block is not None:
            blocked = True
            effects.append(f"block: {act.block.reason}")
        if act.escalate is not None:
            escalated = True
            chain = chain or act.escalate
            effects.append(f"escalate to {act.escalate.role}")
        if act.require_approvers is not None:
            escalated = True  # an approval is a person's decision: nothing ships by itself
            effects.append(f"{act.require_approvers} approver(s)")
        approvers = max(approvers, act.approvers())
        if act.require_consent is not None and ctx.persona_id is not None:
            rc = act.require_consent
            markets = list(ctx.markets) if rc.cover_markets else []
            if consent is None:
                consent = ConsentRequirement(
                    persona_id=ctx.persona_id, scope=rc.scope, markets=markets, rules=[rule.id]
                )
            else:
                consent.rules.append(rule.id)
                consent.markets = list(dict.fromkeys([*consent.markets, *markets]))
            effects.append(
                f"consent of persona {ctx.persona_id} for {rc.scope}"
                + (f" covering {', '.join(markets)}" if markets else "")
            )
        if act.require_disclosure is not None:
            shown = []
            for m in ctx.markets:
                text = act.require_disclosure.for_market(m)
                if text is not None:
                    if text not in disclosures.setdefault(m, []):
                        disclosures[m].append(text)
                    shown.append(m)
            if shown:
                effects.append(f"disclose in {', '.join(shown)}")
        detail = f" ({'; '.join(effects)})" if effects else ""
        reasons.append(f"rule {rule.id}: {rule.description}{detail}")

    if blocked:
        decision = Decision.block
    elif escalated:
        decision = Decision.escalate
    else:
        decision = Decision.deploy
    if guard_ok:
        reasons.insert(0, "all checks passed")

    escalation: Escalation | None = None
    if decision == Decision.escalate:
        escalation = (chain or playbook.escalation).with_min_approvers(approvers)
        approvers = escalation.approvers
        if approvers > 1 and escalation.final_expiry() == Decision.deploy:
            # Validation refuses such a chain in one rule; two rules can still combine into
            # one (a deploy-on-expiry chain from one, four eyes from another).
            escalation = _ending_in_block(escalation)
            reasons.append(
                f"{approvers} approvers required: an expired SLA blocks instead of deploying"
            )
    else:
        approvers = 0
    return Ruling(
        decision=decision,
        reasons=reasons,
        matched_rules=[r.id for r in matched],
        escalation=escalation,
        approvers=approvers,
        disclosures={m: " / ".join(texts) for m, texts in disclosures.items()},
        requires_consent=consent is not None,
        consent=consent,
    )
