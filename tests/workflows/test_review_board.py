"""The review board on its own: four eyes, refusals, SLA expiry and escalation chains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from faceloop.messages import ReviewInput
from faceloop.models import Decision, FaceParams, Variant
from faceloop.playbooks.schema import Escalation
from faceloop.workflows.review import ReviewBoard

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def variant(vid: str) -> Variant:
    return Variant(
        variant_id=vid,
        campaign_id="cmp",
        round=0,
        params=FaceParams(),
        seed=1,
        decision=Decision.escalate,
        decision_reason="identity flagged: score 0.45",
    )


def vote(vid: str, who: str, decision: Decision = Decision.deploy, **kw: object) -> ReviewInput:
    return ReviewInput(
        campaign_id="cmp",
        variant_id=vid,
        decision=decision,
        reviewer=who,
        reason=str(kw.pop("reason", "fine")),
        **kw,  # type: ignore[arg-type]
    )


FOUR_EYES = Escalation(role="compliance", sla_seconds=3600, approvers=2)


def test_four_eyes_needs_two_distinct_approvers() -> None:
    board = ReviewBoard(submitted_by="maria")
    board.open(variant("v1"), FOUR_EYES, T0)

    first = board.cast(vote("v1", "rita"), T0 + timedelta(minutes=1))
    assert [r.event for r in first] == ["vote"]
    assert board.pending()[0].approvals == ["rita"] and not board.done
    with pytest.raises(ValueError, match="already voted"):
        board.validate(vote("v1", "rita"))

    second = board.cast(vote("v1", "omar", reason="checked the likeness"), T0 + timedelta(2))
    assert [r.event for r in second] == ["vote", "decided"]
    assert second[-1].decision == Decision.deploy and second[-1].approvals == ["rita", "omar"]
    assert board.done and board.pending() == []
    resolved = board.resolved(variant("v1"))
    assert resolved.decision == Decision.deploy
    assert "approved by rita, omar" in resolved.decision_reason


def test_one_rejection_blocks_at_once() -> None:
    board = ReviewBoard(submitted_by="maria")
    board.open(variant("v1"), FOUR_EYES, T0)
    board.cast(vote("v1", "rita"), T0)
    records = board.cast(vote("v1", "omar", Decision.block, reason="off-brand"), T0)
    assert records[-1].event == "decided" and records[-1].decision == Decision.block
    assert board.resolved(variant("v1")).decision_reason == "off-brand"


@pytest.mark.parametrize(
    ("who", "kw", "message"),
    [
        ("maria", {}, "submitted this campaign"),
        ("rita", {"reason": "  "}, "needs a reason"),
        ("rita", {"role": "legal"}, "waits for role 'compliance'"),
    ],
)
def test_refused_votes_change_nothing(who: str, kw: dict[str, object], message: str) -> None:
    board = ReviewBoard(submitted_by="maria")
    board.open(variant("v1"), FOUR_EYES, T0)
    with pytest.raises(ValueError, match=message):
        board.cast(vote("v1", who, **kw), T0)
    assert board.items["v1"].votes == [] and not board.done


def test_votes_on_unknown_or_decided_variants_are_refused() -> None:
    board = ReviewBoard(submitted_by="maria")
    board.open(variant("v1"), Escalation(approvers=1), T0)
    with pytest.raises(ValueError, match="not waiting"):
        board.validate(vote("v9", "rita"))
    with pytest.raises(ValueError, match=r"approves \(deploy\) or rejects"):
        board.validate(vote("v1", "omar", Decision.escalate))
    board.cast(vote("v1", "rita"), T0)
    with pytest.raises(ValueError, match="already decided"):
        board.validate(vote("v1", "omar", Decision.block))


def test_expiry_escalates_along_the_chain_then_blocks() -> None:
    chain = Escalation(
        role="compliance",
        sla_seconds=60,
        approvers=2,
        on_expiry=Decision.escalate,
        then=Escalation(role="legal", sla_seconds=120, approvers=1, on_expiry=Decision.block),
    )
    board = ReviewBoard(submitted_by="maria")
    board.open(variant("v1"), chain, T0)
    board.cast(vote("v1", "rita"), T0 + timedelta(seconds=10))
    assert board.next_deadline() == T0 + timedelta(seconds=60)
    assert board.expire(T0 + timedelta(seconds=59)) == []

    escalated = board.expire(T0 + timedelta(seconds=60))
    assert [r.event for r in escalated] == ["escalated"]
    assert "(1/2 approvals)" in escalated[0].reason and escalated[0].role == "legal"
    pending = board.pending()[0]
    assert (pending.role, pending.level, pending.approvers_required) == ("legal", 1, 1)
    # rita's approval was for compliance; legal decides afresh, and rita cannot vote again
    assert pending.approvals == []
    assert board.next_deadline() == T0 + timedelta(seconds=180)

    final = board.expire(T0 + timedelta(seconds=180))
    assert final[0].event == "decided" and final[0].decision == Decision.block
    assert final[0].actor == "sla-timer" and "no decision by legal within 120s" in final[0].reason
    assert board.done


def test_expiry_may_deploy_when_the_playbook_says_so() -> None:
    board = ReviewBoard(submitted_by="maria")
    board.open(variant("v1"), Escalation(sla_seconds=5, on_expiry=Decision.deploy), T0)
    board.open(variant("v2"), Escalation(sla_seconds=50), T0)
    records = board.expire(T0 + timedelta(seconds=5))
    assert [(r.variant_id, r.decision) for r in records] == [("v1", Decision.deploy)]
    assert [p.variant_id for p in board.pending()] == ["v2"]


def test_a_chain_that_escalates_needs_a_next_level() -> None:
    with pytest.raises(ValueError, match="needs `then`"):
        Escalation(on_expiry=Decision.escalate)
