"""Heartbeats of long, thread-bound activities (generate, guard, sign, export, recheck).

Their work runs in a thread and reports progress per image; an image can take longer than
the heartbeat timeout on a busy CPU. So besides each progress report, the event loop
heartbeats the latest progress every `HEARTBEAT_EVERY_S` while the thread runs: a live
worker is never timed out between images, and a killed one (no event loop left) is noticed
within the workflow's heartbeat timeout (workflows/campaign.py, `WORK_HEARTBEAT`), which can
then be short. A thread stuck forever keeps heartbeating; start-to-close bounds that."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")
Progress = Callable[[int, int], None]

# several per heartbeat timeout (20 s), so one late tick on a loaded machine is no timeout
HEARTBEAT_EVERY_S = 4.0


async def run_with_heartbeats(work: Callable[[Progress], T], every: float = HEARTBEAT_EVERY_S) -> T:
    """`work(progress)` in a thread; heartbeats {"done", "total"} on each progress call and
    every `every` seconds until it returns. Must be called inside an activity."""
    loop = asyncio.get_running_loop()
    latest = {"done": 0, "total": 0}

    def progress(done: int, total: int) -> None:
        # called from the worker thread; heartbeats must be sent from the event loop
        latest.update(done=done, total=total)
        loop.call_soon_threadsafe(activity.heartbeat, dict(latest))

    task = asyncio.ensure_future(asyncio.to_thread(work, progress))
    while True:
        done, _ = await asyncio.wait({task}, timeout=every)
        if done:
            return task.result()
        activity.heartbeat(dict(latest))
