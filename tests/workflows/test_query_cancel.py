"""Ctrl-C cancels a command's task: following a campaign must pass that on."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.service import RPCError, RPCStatusCode

from faceloop.workflows.client import query_status


class CancelledQuery:
    async def query(self, *_: object) -> None:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            # what an RPC layer that wraps the cancellation raises instead
            raise RPCError("cancelled", RPCStatusCode.CANCELLED, b"") from None


class UnreachableQuery:
    async def query(self, *_: object) -> None:
        raise RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")


async def test_a_cancelled_status_query_is_not_read_as_no_state_yet() -> None:
    """Otherwise the interrupt reads as "no state yet" and the command keeps following."""
    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(query_status(CancelledQuery()))  # type: ignore[arg-type]
    # an unreachable server without an interrupt is still "no state yet"
    assert await asyncio.create_task(query_status(UnreachableQuery())) is None  # type: ignore[arg-type]
