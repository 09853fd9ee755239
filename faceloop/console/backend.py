"""What the console asks of Temporal, behind one small interface.

The console reads the catalog itself (campaigns, variants, verdicts, KPIs, audit); what
only the running workflows know or decide (starting a campaign, a campaign's live state,
the escalations waiting, a vote, schedules, an erasure) goes through a `Backend`.
`TemporalBackend` is the real one: it wraps faceloop.workflows.client, imported inside its
methods because the console is part of the core (tests/test_layering.py). Tests of the
HTTP layer alone may pass a fake, named as one there.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from faceloop.settings import Settings

if TYPE_CHECKING:
    from datetime import timedelta

    from temporalio.client import Client

    from faceloop.erasure import ErasureInput
    from faceloop.messages import PendingEscalation, ReviewInput
    from faceloop.models import Brief, CampaignConfig, CampaignState, SpendCap
    from faceloop.playbooks.schema import Playbook

__all__ = ["Backend", "NoSchedule", "ScheduleInfo", "TemporalBackend", "VoteRefused"]


class VoteRefused(Exception):
    """The campaign refused a vote (the workflow's own validator said why)."""


class NoSchedule(Exception):
    """The campaign has no optimisation schedule to pause, resume or delete."""


class ScheduleInfo(BaseModel):
    campaign_id: str
    schedule_id: str
    paused: bool
    every: str
    actions: int
    next_run: str


class Backend(Protocol):
    async def submit(
        self, brief: Brief, config: CampaignConfig, playbook: Playbook | None
    ) -> str: ...

    async def state(self, campaign_id: str) -> CampaignState | None: ...

    async def escalations(self, campaign_id: str | None = None) -> list[PendingEscalation]: ...

    async def review(self, vote: ReviewInput) -> str: ...

    async def schedules(self) -> list[ScheduleInfo]: ...

    async def set_schedule(
        self, campaign_id: str, every: timedelta, spend_cap: SpendCap | None
    ) -> str: ...

    async def pause_schedule(self, campaign_id: str, paused: bool, note: str) -> None: ...

    async def delete_schedule(self, campaign_id: str) -> None: ...

    async def erase(self, inp: ErasureInput) -> str: ...


class TemporalBackend:
    """The console's Temporal client, connected on first use and kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        from faceloop.workflows.client import reachable_client

        async with self._lock:
            if self._client is None:
                self._client = await reachable_client(self.settings)
            return self._client

    async def submit(self, brief: Brief, config: CampaignConfig, playbook: Playbook | None) -> str:
        from faceloop.workflows.client import submit

        handle = await submit(await self.client(), self.settings, brief, config, playbook)
        return handle.id

    async def state(self, campaign_id: str) -> CampaignState | None:
        from faceloop.workflows.client import query_status

        client = await self.client()
        return await query_status(client.get_workflow_handle(campaign_id))

    async def escalations(self, campaign_id: str | None = None) -> list[PendingEscalation]:
        from faceloop.workflows.client import list_escalations

        return await list_escalations(await self.client(), campaign_id)

    async def review(self, vote: ReviewInput) -> str:
        from faceloop.workflows.client import ReviewRefused, cast_review

        try:
            return await cast_review(await self.client(), vote)
        except ReviewRefused as exc:
            raise VoteRefused(str(exc)) from exc

    async def schedules(self) -> list[ScheduleInfo]:
        from faceloop.workflows.client import list_schedules

        rows = await list_schedules(await self.client())
        return [ScheduleInfo(**vars(r)) for r in rows]

    async def set_schedule(
        self, campaign_id: str, every: timedelta, spend_cap: SpendCap | None
    ) -> str:
        from faceloop.workflows.client import create_or_update_schedule

        return await create_or_update_schedule(
            await self.client(), self.settings, campaign_id, every, spend_cap=spend_cap
        )

    async def pause_schedule(self, campaign_id: str, paused: bool, note: str) -> None:
        from faceloop.errors import FaceloopError
        from faceloop.workflows.client import set_schedule_paused

        client = await self.client()  # unreachable: its FaceloopError, a 503
        try:
            await set_schedule_paused(client, campaign_id, paused, note)
        except FaceloopError as exc:  # the server's answer: no such schedule
            raise NoSchedule(str(exc)) from exc

    async def delete_schedule(self, campaign_id: str) -> None:
        from faceloop.errors import FaceloopError
        from faceloop.workflows.client import delete_schedule

        client = await self.client()
        try:
            await delete_schedule(client, campaign_id)
        except FaceloopError as exc:
            raise NoSchedule(str(exc)) from exc

    async def erase(self, inp: ErasureInput) -> str:
        from faceloop.workflows.client import start_erasure

        handle, _attached = await start_erasure(await self.client(), self.settings, inp)
        return handle.id
