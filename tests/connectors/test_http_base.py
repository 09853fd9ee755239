"""HttpConnector: pacing from usage, bounded jittered retries, terminal refusals, and
reconcile-before-create, against httpx.MockTransport answers (no platform involved)."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from faceloop.connectors.base import AdDeployment, AdInsight, AdSpec
from faceloop.connectors.http_base import (
    Failure,
    HttpConnector,
    PlatformRefused,
    RetryPolicy,
    Uncertain,
    Usage,
    VirtualClock,
    redact,
)
from faceloop.errors import ConnectorError
from faceloop.models import AudienceSegment


class Toy(HttpConnector):
    """A minimal platform: {"error": {"kind": ...}} bodies, a "usage" header in percent."""

    name = "toy"

    def classify(self, response: httpx.Response) -> Failure | None:
        if response.is_success:
            return None
        err = response.json()["error"]
        return Failure(
            err["kind"],
            err.get("message", "no"),
            code=err.get("code"),
            retry_after_s=err.get("wait"),
        )

    def observe_usage(self, response: httpx.Response) -> Usage | None:
        raw = response.headers.get("usage")
        return None if raw is None else Usage(float(raw), float(response.headers.get("regain", 0)))

    async def ensure_campaign(self, campaign_id: str, segments: list[AudienceSegment]) -> None:
        raise NotImplementedError

    async def deploy(self, spec: AdSpec) -> AdDeployment:
        raise NotImplementedError

    async def set_allocation(
        self, campaign_id: str, window: int, impressions: dict[str, int]
    ) -> None:
        raise NotImplementedError

    async def insights(self, campaign_id: str, window: int) -> list[AdInsight]:
        raise NotImplementedError

    async def pause(self, campaign_id: str, ad_id: str) -> AdDeployment:
        raise NotImplementedError

    async def list_ads(self, campaign_id: str) -> list[AdDeployment]:
        raise NotImplementedError


def toy(answers: list[Any], clock: VirtualClock, **kw: Any) -> tuple[Toy, list[httpx.Request]]:
    """A Toy whose requests get `answers` in order (an exception is raised instead)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    conn = Toy(
        "http://toy.test",
        headers={"Authorization": "Bearer SECRET-TOKEN"},
        secrets=["SECRET-TOKEN"],
        transport=httpx.MockTransport(handler),
        clock=clock,
        rng=random.Random(1),
        **kw,
    )
    return conn, seen


def err(status: int, kind: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": {"kind": kind, **extra}})


async def test_throttles_are_retried_after_the_platform_wait() -> None:
    clock = VirtualClock()
    conn, seen = toy(
        [err(400, "throttle", code=17, wait=120), httpx.Response(200, json={"ok": 1})], clock
    )
    assert await conn.call("GET", "/x") == {"ok": 1}
    assert len(seen) == 2 and conn.stats.throttled == 1
    assert clock.slept >= 120  # the platform's regain time, not just the backoff


async def test_retries_are_bounded_with_jittered_backoff() -> None:
    clock = VirtualClock()
    policy = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=8.0)
    conn, seen = toy([err(503, "transient", code=2)] * 4, clock, policy=policy)
    with pytest.raises(PlatformRefused, match="after 4 attempts") as info:
        await conn.call("GET", "/x")
    assert len(seen) == 4 and info.value.attempts == 4
    assert not info.value.final  # outages may pass: Temporal may retry the activity
    # full jitter: each wait within [0, base * 2**n], so never more than 1 + 2 + 4
    assert 0 < clock.slept <= 7


async def test_a_terminal_refusal_is_raised_at_once_without_the_token() -> None:
    clock = VirtualClock()
    answer = err(400, "terminal", code=190, message="bad token SECRET-TOKEN access_token=abc")
    conn, seen = toy([answer], clock)
    with pytest.raises(PlatformRefused) as info:
        await conn.call("GET", "/x")
    assert len(seen) == 1 and info.value.status == 400
    assert info.value.final
    text = str(info.value)
    assert "SECRET-TOKEN" not in text and "abc" not in text and "190" in text
    assert "toy GET /x" in text


async def test_not_found_is_a_404_connector_error() -> None:
    conn, _ = toy([err(404, "not_found")], VirtualClock())
    with pytest.raises(ConnectorError) as info:
        await conn.call("GET", "/x")
    assert info.value.status == 404 and not isinstance(info.value, PlatformRefused)


async def test_pacing_waits_when_usage_is_high() -> None:
    clock = VirtualClock()
    ok_hot = httpx.Response(200, json={}, headers={"usage": "95"})
    ok_cut = httpx.Response(200, json={}, headers={"usage": "100", "regain": "300"})
    conn, _ = toy(
        [
            httpx.Response(200, json={}, headers={"usage": "10"}),
            ok_hot,
            ok_cut,
            httpx.Response(200, json={}),
        ],
        clock,
    )
    await conn.call("GET", "/a")
    await conn.call("GET", "/b")
    assert clock.slept == 0  # low usage: no waiting
    await conn.call("GET", "/c")
    hot_wait = clock.slept
    assert 0 < hot_wait <= conn.pacer.max_pause_s
    await conn.call("GET", "/d")
    assert clock.slept - hot_wait >= 300  # cut off: waits the platform's regain time


async def test_timeouts_of_a_create_reconcile_instead_of_resending() -> None:
    clock = VirtualClock()
    committed: list[str] = []

    async def lookup() -> str | None:
        return committed[0] if committed else None

    attempts = 0

    async def create() -> str:
        nonlocal attempts
        attempts += 1
        committed.append("ad-1")  # the platform committed ...
        raise Uncertain("... and the answer was lost")

    conn, _ = toy([], clock)
    assert await conn.create_once("ad", lookup, create) == "ad-1"
    assert attempts == 1 and committed == ["ad-1"]


async def test_a_create_that_never_lands_fails_by_name() -> None:
    async def lookup() -> None:
        return None

    async def create() -> str:
        raise Uncertain("timeout")

    conn, _ = toy([], VirtualClock(), policy=RetryPolicy(max_attempts=3))
    with pytest.raises(PlatformRefused, match="creating ad asset-1 kept timing out"):
        await conn.create_once("ad asset-1", lookup, create)


async def test_timeouts_of_non_idempotent_calls_are_uncertain() -> None:
    conn, seen = toy([httpx.ReadTimeout("lost")], VirtualClock())
    with pytest.raises(Uncertain):
        await conn.call("POST", "/create", retry_timeouts=False)
    assert len(seen) == 1


def test_redact_hides_token_shapes() -> None:
    text = 'GET /x?access_token=EAAB123&limit=1 {"Authorization": "Bearer xyz"} s3cr3t'
    out = redact(text, ["s3cr3t"])
    assert "EAAB123" not in out and "xyz" not in out and "s3cr3t" not in out
    assert "limit=1" in out


async def test_an_uncertain_write_does_not_echo_the_token() -> None:
    # a 5xx on a create whose body echoes the request (and its token) back
    answer = err(500, "transient", message="upstream said: access_token=SECRET-TOKEN")
    conn, _ = toy([answer], VirtualClock())
    with pytest.raises(Uncertain) as info:
        await conn.call("POST", "/create", retry_timeouts=False)
    assert "SECRET-TOKEN" not in str(info.value) and "toy POST /create" in str(info.value)
