"""The check of who cast a review vote, run before the review board sees the vote.

An activity, not workflow code: it reads the console's users and the vote-signing public key
(faceloop/votes.py), and the time, none of which a workflow may touch.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from temporalio import activity

from faceloop.console.users import UserStore
from faceloop.messages import ReviewInput, VoteCheck
from faceloop.votes import VoteVerifier

__all__ = ["ReviewActivities"]


class ReviewActivities:
    """`verify_vote` on the main task queue: refuses a vote that does not prove who cast it
    once console users exist, and writes each refusal to the audit log."""

    def __init__(self, users: UserStore, verifier: VoteVerifier) -> None:
        self.users = users
        self.verifier = verifier

    @activity.defn
    async def verify_vote(self, vote: ReviewInput) -> VoteCheck:
        info = activity.info()
        return await asyncio.to_thread(
            self._verify, vote, f"vote-check:{info.workflow_run_id}:{info.activity_id}"
        )

    def _verify(self, vote: ReviewInput, audit_key: str) -> VoteCheck:
        check = self._check(vote, dt.datetime.now(dt.UTC))
        if not check.ok:
            # who the vote claims to be, never taken as who sent it: the entry says "claimed"
            self.users.audit(
                vote.campaign_id,
                "review.vote.refused",
                vote.variant_id,
                "vote-check",
                {
                    "claimed_reviewer": vote.reviewer,
                    "role": vote.role,
                    "decision": vote.decision.value,
                    "signed": vote.signature is not None,
                    "why": check.reason,
                },
                key=audit_key,
            )
        return check

    def _check(self, vote: ReviewInput, now: dt.datetime) -> VoteCheck:
        if vote.signature is None and not self.users.users():
            # one operator, no logins: nothing to prove a name against (docs/console.md)
            return VoteCheck(ok=True, identity="unverified")
        problem = self.verifier.problem(vote, now)
        if problem is not None:
            return VoteCheck(ok=False, reason=problem)
        user = self.users.by_name(vote.reviewer)
        if user is None or user.disabled:
            return VoteCheck(
                ok=False, reason=f"{vote.reviewer} is not an active console user any more"
            )
        if vote.role is None or not user.may_review_as(vote.role):
            return VoteCheck(
                ok=False,
                reason=f"{user.username} does not vote as role {vote.role!r} "
                f"(votes as {user.review_roles})",
            )
        return VoteCheck(ok=True, identity="signed")
