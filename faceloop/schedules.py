"""Temporal Schedules that run optimisation rounds on live campaigns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError

from faceloop.errors import FaceloopError, InputError
from faceloop.messages import ScheduledRoundInput
from faceloop.settings import Settings
from faceloop.workflows.scheduled import OptimizationRoundWorkflow

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# a schedule firing faster than this would overlap its own KPI windows
MIN_EVERY = timedelta(seconds=1)


def parse_every(text: str) -> timedelta:
    """'6h', '30m', '1d', '90s', '1h30m' -> timedelta."""
    parts = re.findall(r"(\d+)\s*([smhd])", text.strip().lower())
    if not parts or re.sub(r"\s|\d+[smhd]", "", text.strip().lower()):
        raise InputError("--every", [f"{text!r} is not a duration: use e.g. 6h, 30m, 1d, 1h30m"])
    every = timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    if every < MIN_EVERY:
        raise InputError("--every", [f"{text!r} is shorter than {MIN_EVERY}"])
    return every


def schedule_id(campaign_id: str) -> str:
    return f"optimise-{campaign_id}"


async def create_or_update(
    client: Client, settings: Settings, campaign_id: str, every: timedelta
) -> str:
    """Create the campaign's schedule, or change its interval if it exists."""
    sid = schedule_id(campaign_id)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            OptimizationRoundWorkflow.run,
            ScheduledRoundInput(
                campaign_id=campaign_id,
                gpu_task_queue=settings.gpu_task_queue,
                cpu_task_queue=settings.cpu_task_queue,
            ),
            id=f"{campaign_id}-scheduled",
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # a round still running when the next one is due: skip, never stack rounds
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"optimisation rounds for {campaign_id} every {every}"),
    )
    try:
        await client.create_schedule(sid, schedule)
    except ScheduleAlreadyRunningError:

        async def change(inp: ScheduleUpdateInput) -> ScheduleUpdate:
            current = inp.description.schedule
            current.spec = schedule.spec
            current.action = schedule.action
            return ScheduleUpdate(schedule=current)

        await client.get_schedule_handle(sid).update(change)
    return sid


@dataclass
class ScheduleRow:
    campaign_id: str
    schedule_id: str
    paused: bool
    every: str
    actions: int
    next_run: str


async def list_schedules(client: Client) -> list[ScheduleRow]:
    rows = []
    async for item in await client.list_schedules():
        if not item.id.startswith("optimise-"):
            continue
        desc = await client.get_schedule_handle(item.id).describe()
        spec = desc.schedule.spec
        every = str(spec.intervals[0].every) if spec.intervals else "?"
        nxt = desc.info.next_action_times[0].isoformat() if desc.info.next_action_times else ""
        rows.append(
            ScheduleRow(
                campaign_id=item.id.removeprefix("optimise-"),
                schedule_id=item.id,
                paused=desc.schedule.state.paused,
                every=every,
                actions=desc.info.num_actions,
                next_run=nxt,
            )
        )
    return rows


async def set_paused(client: Client, campaign_id: str, paused: bool, note: str) -> None:
    handle = client.get_schedule_handle(schedule_id(campaign_id))
    try:
        if paused:
            await handle.pause(note=note)
        else:
            await handle.unpause(note=note)
    except RPCError as exc:
        raise FaceloopError(
            f"no schedule for campaign {campaign_id!r} ({exc.message}): create it with "
            f"`faceloop schedule {campaign_id} --every 6h`"
        ) from exc


async def delete(client: Client, campaign_id: str) -> None:
    try:
        await client.get_schedule_handle(schedule_id(campaign_id)).delete()
    except RPCError as exc:
        raise FaceloopError(f"no schedule for campaign {campaign_id!r} ({exc.message})") from exc
