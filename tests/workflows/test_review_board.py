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
    kw.setdefault("role", "compliance")
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
        board.validate(vote("v1", "rita"), T0)

    second = board.cast(
        vote("v1", "omar", reason="checked the likeness"), T0 + timedelta(minutes=2)
    )
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
        ("rita", {"role": "legal"}, "waits for role 'compliance', not 'legal'"),
        ("rita", {"role": None}, r"say which role you vote as \(--role compliance\)"),
        # the submitter under another spelling is still the submitter
        ("Maria", {}, "submitted this campaign"),
        (" maria ", {}, "submitted this campaign"),
        ("\uff4d\uff41\uff52\uff49\uff41", {}, "submitted this campaign"),  # fullwidth
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
        board.validate(vote("v9", "rita"), T0)
    with pytest.raises(ValueError, match=r"approves \(deploy\) or rejects"):
        board.validate(vote("v1", "omar", Decision.escalate), T0)
    board.cast(vote("v1", "rita"), T0)
    with pytest.raises(ValueError, match="already decided"):
        board.validate(vote("v1", "omar", Decision.block), T0)


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


def test_names_compare_canonically_and_show_as_typed() -> None:
    board = ReviewBoard(submitted_by="maria.schmidt")
    board.open(variant("v1"), FOUR_EYES, T0)
    for spelling in ("Maria.Schmidt", " maria.schmidt", "MARIA.SCHMIDT\t"):
        with pytest.raises(ValueError, match="cannot review it"):
            board.validate(vote("v1", spelling), T0)

    board.cast(vote("v1", "Rita"), T0)
    # rita + Rita is one reviewer: four eyes needs a second canonical name
    for spelling in ("rita", " RITA ", "\uff52\uff49\uff54\uff41"):
        with pytest.raises(ValueError, match=r"already voted on variant v1 \(as Rita\)"):
            board.validate(vote("v1", spelling), T0)
    assert not board.done

    # the role is compared the same way; the name is kept as typed
    records = board.cast(vote("v1", "Omar ", role="Compliance"), T0)
    assert records[-1].decision == Decision.deploy
    assert records[-1].approvals == ["Rita", "Omar "]


def test_a_vote_after_the_deadline_is_refused_before_the_timer_ran() -> None:
    board = ReviewBoard(submitted_by="maria")
    board.open(variant("v1"), FOUR_EYES, T0)
    board.cast(vote("v1", "rita"), T0 + timedelta(minutes=59))
    # the worker was down at the deadline: expire() has not run, the item is still open
    late = T0 + timedelta(hours=3)
    with pytest.raises(ValueError, match="deadline for variant v1 passed at 2026-01-05 10:00"):
        board.cast(vote("v1", "omar"), late)
    assert len(board.items["v1"].votes) == 1 and not board.done
    # what the playbook says for an expired SLA applies instead
    assert board.expire(late)[-1].decision == Decision.block


def test_legacy_rules_keep_recorded_votes_valid() -> None:
    """Boards of campaigns recorded before these rules replay with the old checks."""
    board = ReviewBoard(submitted_by="maria", legacy_rules=True)
    board.open(variant("v1"), FOUR_EYES, T0)
    board.cast(vote("v1", "Maria", role=None), T0 + timedelta(hours=2))
    board.cast(vote("v1", "maria ", role=None), T0 + timedelta(hours=2))
    assert board.done


def test_a_decision_records_how_long_the_escalation_waited() -> None:
    # the campaign's review minutes (docs/cost.md): opening to decision, in workflow time
    board = ReviewBoard("marketer")
    board.open(variant("v1"), FOUR_EYES, T0)
    board.cast(vote("v1", "ana"), T0 + timedelta(minutes=5))
    records = board.cast(vote("v1", "ben"), T0 + timedelta(minutes=12))
    assert [r.event for r in records] == ["vote", "decided"]
    assert records[0].waited_seconds is None and records[1].waited_seconds == 12 * 60
    board.open(variant("v2"), Escalation(approvers=1, sla_seconds=90), T0)
    expired = board.expire(T0 + timedelta(seconds=91))
    assert [(r.event, r.waited_seconds) for r in expired] == [("decided", 91.0)]
