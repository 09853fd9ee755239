"""A fake of the console's Temporal side for tests of the HTTP layer."""

from __future__ import annotations

import datetime as dt
import itertools
from datetime import UTC, datetime, timedelta

from faceloop.consent import ConsentRecord
from faceloop.console.backend import NoSchedule, ScheduleInfo, VoteRefused
from faceloop.erasure import ErasureInput
from faceloop.messages import PendingEscalation, ReviewInput
from faceloop.models import (
    Brief,
    CampaignConfig,
    CampaignState,
    Decision,
    FaceParams,
    SpendCap,
    Variant,
)
from faceloop.playbooks.schema import Escalation, Playbook
from faceloop.storage.catalog import Catalog
from faceloop.workflows.review import ReviewBoard


def small_brief(submitted_by: str = "mara") -> Brief:
    """The smallest valid brief, submitted by a console user."""
    return Brief(
        product="Lumen",
        message="m",
        audience=[{"name": "all", "share": 1.0}],
        markets=["DE"],
        budget_impressions=1000,
        submitted_by=submitted_by,
    )


def anna_consent() -> ConsentRecord:
    """A consented persona's record, valid until 2030."""
    return ConsentRecord(
        consent_id="c-1",
        persona_id="anna",
        subject_name="Anna Example",
        scope=["ads"],
        markets=["DE"],
        expires=dt.date(2030, 1, 1),
        evidence_sha256="a" * 64,
    )


class FakeBackend:
    """A fake Temporal side: submissions go to the catalog, escalations to a real board."""

    def __init__(self, catalog_url: str) -> None:
        self.catalog_url = catalog_url
        self.boards: dict[str, ReviewBoard] = {}
        self.votes: list[ReviewInput] = []
        self.erasures: list[ErasureInput] = []
        # campaign id -> (interval, cap, paused), as Temporal's schedules would hold them
        self.schedule_table: dict[str, tuple[timedelta, SpendCap | None, bool]] = {}
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
        return [
            ScheduleInfo(
                campaign_id=cid,
                schedule_id=f"optimise-{cid}",
                paused=paused,
                every=str(every),
                actions=0,
                next_run="",
            )
            for cid, (every, _cap, paused) in self.schedule_table.items()
        ]

    async def set_schedule(
        self, campaign_id: str, every: timedelta, spend_cap: SpendCap | None
    ) -> str:
        old = self.schedule_table.get(campaign_id)
        self.schedule_table[campaign_id] = (every, spend_cap, old[2] if old else False)
        return f"optimise-{campaign_id}"

    async def pause_schedule(self, campaign_id: str, paused: bool, note: str) -> None:
        if campaign_id not in self.schedule_table:
            raise NoSchedule(f"no schedule for campaign {campaign_id!r}")
        every, cap, _ = self.schedule_table[campaign_id]
        self.schedule_table[campaign_id] = (every, cap, paused)

    async def delete_schedule(self, campaign_id: str) -> None:
        if self.schedule_table.pop(campaign_id, None) is None:
            raise NoSchedule(f"no schedule for campaign {campaign_id!r}")

    async def erase(self, inp: ErasureInput) -> str:
        self.erasures.append(inp)
        return f"erase-{inp.kind}-{inp.target}"
