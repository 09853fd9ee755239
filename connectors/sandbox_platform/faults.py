"""FAKE fault injection of the sandbox platform, for chaos runs (`faceloop bench loop --chaos`).

`FaultInjection` is ASGI middleware in front of the sandbox app. For a share of requests,
drawn from a seeded generator, it answers instead of the platform:

- `timeout_after_commit`: the platform does the work (a deploy is committed), then the answer
  is held for `hold_seconds`, past the connector's read timeout: the client times out and
  does not know the ad exists, the case that makes a naive retry create a second ad;
- `server_error_after_commit`: the work is committed and the answer is a 500;
- `server_error`: a 503 before anything is done.

Off unless a rate is given (`--fault-rate`). The draws are stratified: of every BLOCK (20)
consecutive requests, round(20 x rate) are faulted, at positions drawn from the seeded
generator, so a short run gets its share too (a 10% rate: 2 of every 20) and the faults
still land at random places. `GET /_faults` answers the counts injected so far, so a bench
reads them from the platform's side. /health is never faulted.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["timeout_after_commit", "server_error_after_commit", "server_error"]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "timeout_after_commit",
    "server_error_after_commit",
    "server_error",
)
FAULTS_PATH = "/_faults"
# past the sandbox connector's 30 s read timeout (connectors/sandbox.py DEFAULT_TIMEOUT)
DEFAULT_HOLD_SECONDS = 35.0
_NEVER_FAULTED = ("/health", FAULTS_PATH)
BLOCK = 20


class FaultInjection:
    """ASGI middleware: FAKE faults on `rate` of the requests (each kind equally likely)."""

    def __init__(
        self, app: ASGIApp, rate: float, seed: int = 0, hold_seconds: float = DEFAULT_HOLD_SECONDS
    ) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"fault rate must be in [0, 1), got {rate}")
        self.app = app
        self.rate = rate
        self.hold_seconds = hold_seconds
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self._block: list[bool] = []
        self.requests = 0

    def draw(self) -> FaultKind | None:
        # one event loop serves the middleware, so the generator and the block need no lock
        if not self._block:
            faulted = set(self.rng.sample(range(BLOCK), round(BLOCK * self.rate)))
            self._block = [i in faulted for i in range(BLOCK)]
        if not self._block.pop(0):
            return None
        return self.rng.choice(FAULT_KINDS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == FAULTS_PATH:
            await _answer(send, 200, {"requests": self.requests, "injected": dict(self.injected)})
            return
        if path in _NEVER_FAULTED:
            await self.app(scope, receive, send)
            return
        self.requests += 1
        kind = self.draw()
        if kind is None:
            await self.app(scope, receive, send)
            return
        self.injected[kind] += 1
        detail = f"FAKE fault injected by the sandbox ({kind})"
        if kind == "server_error":
            await _answer(send, 503, {"detail": detail})
            return

        # the platform does the work; its answer is dropped
        async def swallow(_: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        if kind == "timeout_after_commit":
            # the client gave up long before; whatever is sent now goes nowhere useful
            await asyncio.sleep(self.hold_seconds)
            await _answer(send, 504, {"detail": detail})
            return
        await _answer(send, 500, {"detail": detail})


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


__all__ = ["DEFAULT_HOLD_SECONDS", "FAULTS_PATH", "FAULT_KINDS", "FaultInjection", "FaultKind"]
