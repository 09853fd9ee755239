"""A fake of the console's Temporal side for tests of the HTTP layer."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from faceloop.console.backend import ScheduleInfo, VoteRefused
from faceloop.erasure import ErasureInput
from faceloop.messages import PendingEscalation, ReviewInput
from faceloop.models import Brief, CampaignConfig, CampaignState, Decision, FaceParams, Variant
from faceloop.playbooks.schema import Escalation, Playbook
from faceloop.storage.catalog import Catalog
from faceloop.workflows.review import ReviewBoard


class FakeBackend:
    """A fake Temporal side: submissions go to the catalog, escalations to a real board."""

    def __init__(self, catalog_url: str) -> None:
        self.catalog_url = catalog_url
        self.boards: dict[str, ReviewBoard] = {}
        self.votes: list[ReviewInput] = []
        self.erasures: list[ErasureInput] = []
        self._ids = itertools.count(1)

    async def submit(self, brief: Brief, config: CampaignConfig, playbook: Playbook | None) -> str:
        cid = f"cmp-{next(self._ids)}"
        with Catalog(self.catalog_url) as catalog:
            catalog.upsert_campaign(cid, brief, config, "running")
        self.boards[cid] = ReviewBoard(brief.submitted_by)
        return cid

    def escalate(self, campaign_id: str, approvers: int = 2, role: str = "compliance") -> str:
        variant = Variant(
            variant_id=f"{campaign_id}-r0-t0",
            campaign_id=campaign_id,
            round=0,
            params=FaceParams(),
            seed=1,
            decision=Decision.escalate,
            decision_reason="identity: looks like a known person",
        )
        chain = Escalation(role=role, sla_seconds=3600, approvers=approvers)
        self.boards[campaign_id].open(variant, chain, datetime.now(UTC))
        return variant.variant_id

    async def state(self, campaign_id: str) -> CampaignState | None:
        return None

    async def escalations(self, campaign_id: str | None = None) -> list[PendingEscalation]:
        return [p for cid, b in self.boards.items() for p in b.pending(cid)]

    async def review(self, vote: ReviewInput) -> str:
        board = self.boards[vote.campaign_id]
        try:
            records = board.cast(vote, datetime.now(UTC))
        except ValueError as exc:
            raise VoteRefused(str(exc)) from exc
        self.votes.append(vote)
        return "; ".join(f"{r.event} {r.decision}" for r in records)

    async def schedules(self) -> list[ScheduleInfo]:
        return []

    async def erase(self, inp: ErasureInput) -> str:
        self.erasures.append(inp)
        return f"erase-{inp.kind}-{inp.target}"
