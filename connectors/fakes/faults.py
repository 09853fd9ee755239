"""FAKE fault injection between a connector and a fake platform, and the fake's ledger.

`FaultyTransport` wraps the httpx transport to a fake (an ASGI app in process) and, for a
share of requests drawn from a seeded generator, answers instead of the platform:

- `timeout_after_commit`: the request reaches the fake and commits, then the client gets
  `httpx.ReadTimeout` (the answer was lost): the case that makes naive retries duplicate;
- `server_error`: a 5xx in the platform's own error shape, half of them after the fake
  committed the request (a platform that did the work and failed to say so);
- `throttle`: the platform's throttle answer (its codes, its headers), nothing committed.

`FakeLedger` is what a fake counts on its side: every create by the external id it
carries, so a duplicate is two committed creates with one id.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

FaultKind = Literal["timeout_after_commit", "server_error", "throttle"]
FAULT_KINDS: tuple[FaultKind, ...] = ("timeout_after_commit", "server_error", "throttle")
DEFAULT_MIX: dict[FaultKind, float] = {
    "timeout_after_commit": 0.4,
    "server_error": 0.3,
    "throttle": 0.3,
}


class FaultPlan(BaseModel):
    """Which share of requests fail, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(default=0.0, ge=0.0, lt=1.0, description="share of requests that fail")
    # relative weights of the fault kinds
    mix: dict[FaultKind, float] = Field(default_factory=lambda: dict(DEFAULT_MIX))
    seed: int = 0

    @model_validator(mode="after")
    def _weights(self) -> FaultPlan:
        if any(w < 0 for w in self.mix.values()) or (self.rate and sum(self.mix.values()) <= 0):
            raise ValueError("mix: weights must be >= 0 with a positive sum; e.g. {throttle: 1}")
        return self


class FakePlatform(Protocol):
    """What FaultyTransport needs from a fake: its ASGI app and its own failure answers."""

    ledger: FakeLedger

    def throttle_response(self, request: httpx.Request, rng: random.Random) -> httpx.Response: ...

    def server_error_response(self, request: httpx.Request) -> httpx.Response: ...


@dataclass
class FakeLedger:
    """Server-side counts of one fake platform."""

    # (kind, external id) -> committed creates
    creates: Counter[tuple[str, str]] = field(default_factory=Counter)
    requests: int = 0
    writes: int = 0
    injected: Counter[str] = field(default_factory=Counter)

    def created(self, kind: str, external_id: str) -> None:
        self.creates[(kind, external_id)] += 1

    def duplicates(self) -> int:
        """Creates beyond the first per (kind, external id)."""
        return sum(n - 1 for n in self.creates.values() if n > 1)


class FaultyTransport(httpx.AsyncBaseTransport):
    """FAKE network: forwards to `inner` (the fake's transport) and injects faults."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, fake: FakePlatform, plan: FaultPlan
    ) -> None:
        self.inner = inner
        self.fake = fake
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self._kinds = [k for k in FAULT_KINDS if plan.mix.get(k, 0) > 0]
        self._weights = [plan.mix[k] for k in self._kinds]

    def draw(self) -> FaultKind | None:
        if self.plan.rate <= 0 or self.rng.random() >= self.plan.rate:
            return None
        return self.rng.choices(self._kinds, self._weights)[0]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.draw()
        if fault is not None:
            self.fake.ledger.injected[fault] += 1
        if fault == "throttle":
            return self.fake.throttle_response(request, self.rng)
        if fault == "server_error" and self.rng.random() < 0.5:
            return self.fake.server_error_response(request)
        response = await self.inner.handle_async_request(request)
        if fault == "timeout_after_commit":
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("FAKE: answer lost after the server committed", request=request)
        if fault == "server_error":
            await response.aread()
            await response.aclose()
            return self.fake.server_error_response(request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


__all__ = ["FAULT_KINDS", "FakeLedger", "FakePlatform", "FaultKind", "FaultPlan", "FaultyTransport"]
