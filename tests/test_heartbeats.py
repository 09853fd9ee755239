"""run_with_heartbeats: a thread-bound activity heartbeats on each progress report and every
few seconds in between, so a slow item never looks like a dead worker."""

from __future__ import annotations

import time
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from faceloop.heartbeats import Progress, run_with_heartbeats


def _env(beats: list[Any]) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details[0])
    return env


async def test_ticks_between_progress_reports() -> None:
    def work(progress: Progress) -> str:
        progress(1, 2)
        time.sleep(0.4)  # one slow item: no progress report for a while
        progress(2, 2)
        return "made"

    async def act() -> str:
        return await run_with_heartbeats(work, every=0.05)

    beats: list[Any] = []
    assert await _env(beats).run(act) == "made"
    first = {"done": 1, "total": 2}
    # the progress heartbeat, then ticks repeating the latest progress while the item ran
    assert beats[0] == first
    assert beats.count(first) >= 4, beats
    assert {"done": 2, "total": 2} in beats


async def test_no_progress_yet_still_ticks_and_errors_propagate() -> None:
    def work(progress: Progress) -> None:
        time.sleep(0.2)
        raise ValueError("bad batch")

    async def act() -> None:
        await run_with_heartbeats(work, every=0.05)

    beats: list[Any] = []
    with pytest.raises(ValueError, match="bad batch"):
        await _env(beats).run(act)
    assert beats and all(b == {"done": 0, "total": 0} for b in beats)
