"""`follow` (the demo's and `faceloop run`'s progress loop) honours Ctrl-C even when a call
it makes swallows the cancellation: the asyncio runner cancels the command's task once,
and a library that catches that CancelledError must not keep the command running to the
campaign's end."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from faceloop.workflows.client import follow


class SwallowingHandle:
    """FAKE workflow handle: the campaign never ends, and its status query swallows a
    cancellation (returns no state instead), as an SDK call can."""

    def __init__(self) -> None:
        self.queries = 0
        self.querying = asyncio.Event()

    async def result(self) -> Any:
        await asyncio.Event().wait()

    async def query(self, _query: Any) -> Any:
        self.queries += 1
        self.querying.set()
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            return None
        finally:
            self.querying.clear()
        return None


async def test_a_swallowed_cancellation_still_stops_follow() -> None:
    handle = SwallowingHandle()
    task = asyncio.create_task(follow(cast(Any, handle), lambda state: None, interval=0.01))
    while handle.queries < 3:
        await asyncio.sleep(0.01)
    # Ctrl-C while the query runs: the query swallows it
    await handle.querying.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), timeout=5)
    assert task.cancelled()
