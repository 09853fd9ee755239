"""The review board: escalated variants waiting for people, as a deterministic state machine.

What waits is an escalated variant (its image made and checked) or a round's prompt plan
that the planner's prompt filter escalated (no image yet: a person decides whether the brief
may be planned at all). Both are voted on by id through the same `review` update.

CampaignWorkflow holds one board per round. The workflow feeds it votes (from the `review`
update) and the time (workflow.now()); the board says what is still open, when the next
deadline falls, and which events to record. Nothing here does I/O or reads the clock, so it
runs unchanged inside the workflow and is tested on its own.

Rules a compliance team expects:
- a rejection by any eligible reviewer blocks at once; approval needs `approvers` distinct
  reviewers at the current level (four eyes: 2);
- the brief's submitter never votes on their own campaign, nobody votes twice on the same
  variant, and nobody votes on a variant that is already decided; names are compared in
  their canonical form (`canonical`: Unicode NFKC, case-folded, whitespace trimmed), so
  ` Maria.Schmidt` is the submitter `maria.schmidt` and `rita` + `Rita` is one reviewer;
  names are stored and shown as typed;
- a vote says which role it is cast as, and it must be the role the current level names;
- a vote that arrives after the current level's deadline does not count, even when the
  worker was down at the deadline: the deadline is state here, checked against the time the
  workflow reads when the vote arrives, not only a timer that may not have fired yet;
- at the deadline the level's `on_expiry` applies: block, deploy, or escalate to the next
  level (`then`), whose own role, approvers and SLA start from that moment. Approvals from an
  earlier level do not count at the next: a different role decides there. A plan nobody
  approved never goes ahead: for a plan, an expiry that would deploy blocks.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import MetricMeter

from faceloop.messages import PendingEscalation, ReviewInput, ReviewRecord, Vote
from faceloop.models import Decision, Variant
from faceloop.playbooks.schema import Escalation

__all__ = ["ReviewBoard", "Waiting", "canonical", "plan_subject"]


def plan_subject(campaign_id: str, round_: int) -> str:
    """The id reviewers vote on for a round's escalated prompt plan."""
    return f"{campaign_id}-r{round_}-plan"


def _never_deploy_on_expiry(chain: Escalation) -> Escalation:
    # nothing was generated or checked yet: silence must not let the plan through
    then = _never_deploy_on_expiry(chain.then) if chain.then is not None else None
    expiry = Decision.block if chain.on_expiry == Decision.deploy else chain.on_expiry
    return chain.model_copy(update={"on_expiry": expiry, "then": then})


def _meter() -> MetricMeter | None:
    # the workflow's meter records nothing during replay, so a replayed history never
    # counts a breach twice; outside a workflow (unit tests of the board) nothing is recorded
    return workflow.metric_meter() if workflow.in_workflow() else None


def canonical(name: str) -> str:
    """The form two names are compared in: compatibility forms folded (fullwidth letters,
    ligatures), case folded, runs of whitespace one space, no whitespace at the ends."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def _expiry(level: Escalation) -> str:
    return str(getattr(level.on_expiry, "value", level.on_expiry))


@dataclass
class Waiting:
    """One thing waiting for reviewers: a variant, or a round's plan (`variant` None: no
    image exists yet). `subject_id` is what reviewers vote on; `flagged` says why it waits."""

    subject_id: str
    campaign_id: str
    round: int
    flagged: str
    variant: Variant | None
    level: Escalation
    level_no: int
    deadline: datetime
    votes: list[Vote] = field(default_factory=list)
    outcome: Decision | None = None
    outcome_reason: str = ""
    # when it started waiting: decided, the wait is the review time of the campaign's cost
    opened_at: datetime | None = None

    @property
    def approvals(self) -> list[str]:
        return [
            v.reviewer
            for v in self.votes
            if v.level == self.level_no and v.decision == Decision.deploy
        ]


class ReviewBoard:
    """`legacy_rules` is how boards checked votes before names were canonical, roles
    required and deadlines checked on each vote: campaigns recorded under those rules replay
    with them (CampaignWorkflow sets it from a `workflow.patched` marker)."""

    def __init__(self, submitted_by: str, legacy_rules: bool = False) -> None:
        self.submitted_by = submitted_by
        self.legacy_rules = legacy_rules
        self.items: dict[str, Waiting] = {}

    def _same(self, a: str, b: str) -> bool:
        return a == b if self.legacy_rules else canonical(a) == canonical(b)

    # ------------------------------------------------------------------ opening

    def open(self, variant: Variant, chain: Escalation, now: datetime) -> None:
        self.items[variant.variant_id] = Waiting(
            subject_id=variant.variant_id,
            campaign_id=variant.campaign_id,
            round=variant.round,
            flagged=variant.decision_reason or "",
            variant=variant,
            level=chain,
            level_no=0,
            deadline=now + timedelta(seconds=chain.sla_seconds),
            opened_at=now,
        )
        self._report_waiting()

    def open_plan(
        self, campaign_id: str, round_: int, reason: str, chain: Escalation, now: datetime
    ) -> str:
        """A round's escalated prompt plan waits under `chain`; returns the id voted on."""
        subject = plan_subject(campaign_id, round_)
        self.items[subject] = Waiting(
            subject_id=subject,
            campaign_id=campaign_id,
            round=round_,
            flagged=reason,
            variant=None,
            level=_never_deploy_on_expiry(chain),
            level_no=0,
            deadline=now + timedelta(seconds=chain.sla_seconds),
            opened_at=now,
        )
        self._report_waiting()
        return subject

    # ------------------------------------------------------------------ votes

    def validate(self, vote: ReviewInput, now: datetime) -> None:
        """Refuse a vote that must not count at `now`; the message is what the reviewer reads."""
        item = self.items.get(vote.variant_id)
        if item is None:
            raise ValueError(
                f"variant {vote.variant_id} is not waiting for a review in this round; "
                "`faceloop escalations` lists what waits"
            )
        if item.outcome is not None:
            raise ValueError(
                f"variant {vote.variant_id} is already decided ({item.outcome.value}: "
                f"{item.outcome_reason}); a decision taken is not voted on again"
            )
        if vote.decision not in (Decision.deploy, Decision.block):
            raise ValueError("a review approves (deploy) or rejects (block)")
        if not self.legacy_rules and now >= item.deadline:
            raise ValueError(
                f"the review deadline for variant {vote.variant_id} passed at "
                f"{item.deadline:%Y-%m-%d %H:%M:%S %Z} (role {item.level.role!r}, level "
                f"{item.level_no}); a late vote does not count: on_expiry "
                f"({_expiry(item.level)}) applies"
            )
        if self._same(vote.reviewer, self.submitted_by):
            raise ValueError(
                f"{vote.reviewer} submitted this campaign's brief (as {self.submitted_by}) "
                "and cannot review it"
            )
        earlier = [v.reviewer for v in item.votes if self._same(v.reviewer, vote.reviewer)]
        if earlier:
            raise ValueError(
                f"{vote.reviewer} has already voted on variant {vote.variant_id} (as "
                f"{earlier[0]}); four-eyes rules need a different reviewer"
            )
        if vote.role is None and not self.legacy_rules:
            raise ValueError(
                f"variant {vote.variant_id} waits for role {item.level.role!r}: say which role "
                f"you vote as (--role {item.level.role})"
            )
        if vote.role is not None and not self._same(vote.role, item.level.role):
            raise ValueError(
                f"variant {vote.variant_id} waits for role {item.level.role!r}, not {vote.role!r}"
            )
        if not vote.reason.strip():
            raise ValueError("a review needs a reason (--reason)")

    def cast(
        self, vote: ReviewInput, now: datetime, identity: str | None = None
    ) -> list[ReviewRecord]:
        """Apply a validated vote; returns the events to record (the vote, maybe the outcome).
        `identity` is what the worker's check found (signed, unverified) for the audit log."""
        self.validate(vote, now)
        item = self.items[vote.variant_id]
        item.votes.append(
            Vote(
                reviewer=vote.reviewer,
                role=vote.role,
                decision=vote.decision,
                reason=vote.reason,
                level=item.level_no,
                at=now,
            )
        )
        records = [
            ReviewRecord(
                event="vote",
                campaign_id=item.campaign_id,
                variant_id=vote.variant_id,
                decision=vote.decision,
                actor=vote.reviewer,
                reason=vote.reason,
                role=vote.role or item.level.role,
                level=item.level_no,
                approvals=item.approvals,
                identity=identity,
            )
        ]
        if vote.decision == Decision.block:
            records.append(self._decide(item, Decision.block, vote.reviewer, vote.reason, now))
        elif len(item.approvals) >= item.level.approvers:
            reason = f"approved by {', '.join(item.approvals)}: {vote.reason}"
            records.append(self._decide(item, Decision.deploy, vote.reviewer, reason, now))
        self._report_waiting()
        return records

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> datetime | None:
        open_ = [i.deadline for i in self.items.values() if i.outcome is None]
        return min(open_) if open_ else None

    def expire(self, now: datetime) -> list[ReviewRecord]:
        """Apply on_expiry to every open item whose deadline has passed."""
        records: list[ReviewRecord] = []
        for item in self.items.values():
            if item.outcome is not None or now < item.deadline:
                continue
            level = item.level
            why = (
                f"no decision by {level.role} within {level.sla_seconds:.0f}s "
                f"({len(item.approvals)}/{level.approvers} approvals)"
            )
            action = _expiry(level)
            self._report_breach(level.role, action)
            if action == "escalate" and level.then is not None:
                item.level = level.then
                item.level_no += 1
                item.deadline = now + timedelta(seconds=level.then.sla_seconds)
                records.append(
                    ReviewRecord(
                        event="escalated",
                        campaign_id=item.campaign_id,
                        variant_id=item.subject_id,
                        actor="sla-timer",
                        reason=f"{why}; escalated to {level.then.role}",
                        role=level.then.role,
                        level=item.level_no,
                    )
                )
                continue
            decision = Decision.deploy if action == "deploy" else Decision.block
            records.append(self._decide(item, decision, "sla-timer", why, now))
        if records:
            self._report_waiting()
        return records

    # ------------------------------------------------------------------ metrics

    def _report_waiting(self) -> None:
        meter = _meter()
        if meter is None:
            return
        gauge = meter.create_gauge(
            "faceloop_escalations_waiting", "escalated items waiting for a reviewer"
        )
        waiting: dict[str, int] = {}
        for i in self.items.values():
            waiting[i.campaign_id] = waiting.get(i.campaign_id, 0) + (i.outcome is None)
        for campaign_id, n in waiting.items():
            gauge.set(n, {"campaign_id": campaign_id})

    def _report_breach(self, role: str, on_expiry: str) -> None:
        meter = _meter()
        if meter is not None:
            meter.create_counter(
                "faceloop_sla_breaches_total", "review deadlines passed without a decision"
            ).add(1, {"role": role, "on_expiry": on_expiry})

    # ------------------------------------------------------------------ reading

    @property
    def done(self) -> bool:
        return all(i.outcome is not None for i in self.items.values())

    def pending(self, workflow_id: str = "") -> list[PendingEscalation]:
        return [
            PendingEscalation(
                campaign_id=i.campaign_id,
                workflow_id=workflow_id,
                variant_id=vid,
                round=i.round,
                asset_id=i.variant.asset.asset_id if i.variant and i.variant.asset else None,
                flagged=i.flagged,
                submitted_by=self.submitted_by,
                role=i.level.role,
                level=i.level_no,
                approvers_required=i.level.approvers,
                approvals=i.approvals,
                votes=list(i.votes),
                deadline=i.deadline,
                on_expiry=_expiry(i.level),
                outcome=i.outcome,
            )
            for vid, i in self.items.items()
            if i.outcome is None
        ]

    def resolved(self, variant: Variant) -> Variant:
        """The variant with its review outcome applied (unchanged if it never waited)."""
        item = self.items.get(variant.variant_id)
        if item is None or item.outcome is None:
            return variant
        return variant.model_copy(
            update={"decision": item.outcome, "decision_reason": item.outcome_reason}
        )

    def _decide(
        self, item: Waiting, decision: Decision, actor: str, reason: str, now: datetime
    ) -> ReviewRecord:
        item.outcome, item.outcome_reason = decision, reason
        waited = (now - item.opened_at).total_seconds() if item.opened_at is not None else None
        return ReviewRecord(
            event="decided",
            campaign_id=item.campaign_id,
            variant_id=item.subject_id,
            decision=decision,
            actor=actor,
            reason=reason,
            role=item.level.role,
            level=item.level_no,
            approvals=item.approvals,
            waited_seconds=waited,
            round=item.round,
        )
