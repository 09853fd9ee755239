"""What every HTTP ad-platform connector shares: pacing, retries, reconcile-before-create.

A platform connector (Meta, Google Ads, TikTok) subclasses `HttpConnector` and supplies two
platform facts, nothing else about failure handling:

- `classify(response)`: a `Failure` for an error answer (throttle, transient, not found,
  terminal) with the platform's own code and words; None for success.
- `observe_usage(response)`: how close the platform says this client is to its limit
  (Meta's X-Business-Use-Case-Usage, TikTok's and Google's quota answers) as a `Usage`.

`HttpConnector.call` then paces (waits before a request when the last usage reading was
high or the platform named a time to regain access), retries throttles, 5xx and timeouts
with full-jitter exponential backoff up to `RetryPolicy.max_attempts`, and raises
`PlatformRefused` (a ConnectorError) at once when the platform refuses for good (bad token,
bad field, policy) or when the attempts are spent, naming the call, the platform's code and
the fix.

Writes that are not idempotent on the platform (a POST that creates) never go through a
blind retry: `HttpConnector.create_once(lookup, create)` looks the object up by its
deterministic external id before every attempt, so a retry after a timeout in which the
platform did commit finds that object instead of making a second one.

Credentials go in headers only (never in a URL, which httpx logs at INFO), and messages are
passed through `redact` so a token echoed back by a platform never reaches a log or a
Temporal payload.

Time comes from a `Clock`, so tests and the soak bench (`faceloop.connectors.soak`) run the
backoff on a virtual clock and report the waiting they would have done.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from faceloop.connectors.base import AdConnector, count_api_call
from faceloop.errors import ConnectorError

T = TypeVar("T")

FailureKind = Literal["throttle", "transient", "not_found", "terminal"]


class Clock(Protocol):
    """Monotonic seconds and a sleep: the real one, or a virtual one in tests and the bench."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class VirtualClock:
    """A clock whose sleep returns at once and moves time on; `slept` is the total waited.

    Shared by a connector and a fake platform, so the fake's usage windows see the pauses
    the connector would have taken."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.now += seconds
        self.slept += seconds
        # yield like a real sleep, so concurrent tasks interleave as they would
        await asyncio.sleep(0)


class RetryPolicy(BaseModel):
    """Bounded retries with full-jitter exponential backoff (AWS architecture blog,
    "Exponential Backoff and Jitter"): attempt n waits uniform(0, min(cap, base * 2**n))."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=6, ge=1, le=20, description="tries per call, first included")
    base_delay_s: float = Field(default=1.0, gt=0, description="backoff of the first retry")
    max_delay_s: float = Field(default=60.0, gt=0, description="cap of one backoff")
    # throttles wait at least this long even when the platform names no time: Meta's
    # documented advice for codes 4/17 is to wait before retrying, not to hammer
    throttle_floor_s: float = Field(default=5.0, ge=0, description="least wait after a throttle")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (0 = the first retry)."""
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


@dataclass(frozen=True)
class Failure:
    """An error answer as a platform means it."""

    kind: FailureKind
    message: str
    code: int | str | None = None
    subcode: int | str | None = None
    # seconds the platform says to wait (Retry-After, estimated_time_to_regain_access)
    retry_after_s: float | None = None
    trace_id: str | None = None

    def describe(self) -> str:
        code = "" if self.code is None else f" code {self.code}"
        if self.subcode is not None:
            code += f"/{self.subcode}"
        trace = f" (trace {self.trace_id})" if self.trace_id else ""
        return f"{self.message}{code and f' [{code.strip()}]'}{trace}"


@dataclass(frozen=True)
class Usage:
    """The platform's reading of this client's consumption: the highest of its meters in
    percent of the limit, and the seconds until access comes back when it is cut off."""

    percent: float
    regain_s: float = 0.0


class PlatformRefused(ConnectorError):
    """A platform refused a call for good, or kept failing past the retry budget.

    Non-transient by construction: the activity that sees it should not be retried until a
    person fixes what the message names."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        failure: Failure | None = None,
        attempts: int = 1,
    ) -> None:
        # final only when the platform said no for good; a retry budget spent on throttles
        # or outages is not final: a later attempt may get past it
        final = failure is not None and failure.kind == "terminal"
        super().__init__(message, status=status, final=final)
        self.failure = failure
        self.attempts = attempts


class Pacer:
    """Spaces requests by the last usage reading: nothing below `soft_percent`, a wait that
    grows quadratically to `max_pause_s` between it and 100 %, and the platform's own
    regain time when it has cut the client off."""

    def __init__(self, clock: Clock, *, soft_percent: float = 75.0, max_pause_s: float = 30.0):
        self.clock = clock
        self.soft_percent = soft_percent
        self.max_pause_s = max_pause_s
        self._not_before = 0.0
        self.paced_s = 0.0  # total waited because of usage, for the bench and the logs
        self.last: Usage | None = None

    def update(self, usage: Usage | None) -> None:
        if usage is None:
            return
        self.last = usage
        now = self.clock.monotonic()
        wait = usage.regain_s
        if usage.percent >= self.soft_percent:
            over = min(1.0, (usage.percent - self.soft_percent) / (100.0 - self.soft_percent))
            wait = max(wait, self.max_pause_s * over * over)
        self._not_before = max(self._not_before, now + wait)

    def hold_until(self, seconds: float) -> None:
        """No request before `seconds` from now (a throttle answer's wait)."""
        self._not_before = max(self._not_before, self.clock.monotonic() + seconds)

    async def wait(self) -> None:
        delay = self._not_before - self.clock.monotonic()
        if delay > 0:
            self.paced_s += delay
            await self.clock.sleep(delay)


_SECRET_PARAM = re.compile(
    r"(?i)(access_token|client_secret|developer[-_]token|refresh_token|authorization|"
    r"api[-_]key|appsecret_proof)([\"']?\s*[=:]\s*[\"']?)(?:bearer\s+)?[^\s&\"',}]+"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secret values and without anything that looks like a token
    parameter (access_token=..., "Authorization": "Bearer ..."), for messages and logs."""
    text = _SECRET_PARAM.sub(r"\1\2***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass
class CallStats:
    """What a connector's calls cost, for the soak bench and tests."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    timeouts: int = 0
    server_errors: int = 0
    backoff_s: float = 0.0
    by_code: dict[str, int] = field(default_factory=dict)


class HttpConnector(AdConnector):
    """AdConnector base for platforms spoken to over HTTP+JSON (see the module docstring).

    `transport` replaces the network (an ASGI fake, a fault-injecting wrapper); `clock`
    and `rng` make pacing and jitter reproducible in tests.
    """

    name: str
    # what a person should do about an authentication/permission failure, per platform
    credentials_hint: str = "check the platform credentials in the settings"

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        policy: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        cost_currency: str = "USD",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # the deployment's currency (FACELOOP_COST_CURRENCY): spend is reported only in it
        self.cost_currency = cost_currency
        self.policy = policy or RetryPolicy()
        self.clock: Clock = clock or RealClock()
        self.rng = rng or random.Random()
        self.pacer = Pacer(self.clock)
        self.stats = CallStats()
        self._secrets = [s for s in secrets if s]
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=dict(headers or {}),
            timeout=timeout,
            transport=transport,
        )
        self._closed = False

    # -- platform facts -------------------------------------------------------------------

    @abstractmethod
    def classify(self, response: httpx.Response) -> Failure | None:
        """None for a successful answer, else what kind of failure it is."""

    def observe_usage(self, response: httpx.Response) -> Usage | None:
        """The usage reading a response carries; None when it carries none."""
        return None

    def spend(self, amount: Any, currency: Any, where: str) -> float:
        """A spend figure the platform reported (`amount` units of `currency`), as a float
        in the deployment's currency. Refused for good (ConnectorError, final) when the
        reply names another currency or none: faceloop converts nothing, and adding money
        of two currencies into one spend cap would be wrong (docs/cost.md)."""
        if currency != self.cost_currency:
            got = f"in {currency}" if currency else "without naming its currency"
            raise ConnectorError(
                f"{self.name}: {where} reports spend {got}, but this deployment's costs and "
                f"spend caps are in {self.cost_currency} (FACELOOP_COST_CURRENCY); faceloop "
                f"converts no currency: use an ad account billed in {self.cost_currency}, or "
                "run this campaign on a deployment whose FACELOOP_COST_CURRENCY (and prices "
                "and caps) is the account's currency",
                final=True,
            )
        value = float(amount)
        if not value >= 0:  # also refuses NaN
            raise ConnectorError(
                f"{self.name}: {where} reports spend {amount!r}, not an amount >= 0",
                final=True,
            )
        return value

    # -- calls -------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        retry_timeouts: bool = True,
    ) -> Any:
        """Send one request, paced and retried, and return its JSON body.

        `files` makes it a multipart upload with `data` as the form fields (TikTok's image
        upload: {"image_file": (name, bytes, content type)}).

        `retry_timeouts=False` is for writes the platform does not dedupe: a timeout or 5xx
        there may have committed, so it is raised as `Uncertain` for `create_once` to
        reconcile instead of being sent again blind. Throttles are retried either way (a
        throttled request was not executed)."""
        endpoint = f"{self.name} {method} {path}"
        failure: Failure | None = None
        status: int | None = None
        for attempt in range(self.policy.max_attempts):
            if attempt:
                self.stats.retries += 1
                wait = self.policy.backoff(attempt - 1, self.rng)
                if failure is not None and failure.kind == "throttle":
                    wait = max(wait, failure.retry_after_s or 0.0, self.policy.throttle_floor_s)
                elif failure is not None and failure.retry_after_s:
                    wait = max(wait, failure.retry_after_s)
                self.stats.backoff_s += wait
                await self.clock.sleep(wait)
            await self.pacer.wait()
            self.stats.requests += 1
            count_api_call()
            try:
                response = await self._client.request(
                    method, path, params=params, json=json, data=data, files=files
                )
            except httpx.TimeoutException as err:
                self.stats.timeouts += 1
                failure = Failure("transient", f"timed out ({type(err).__name__})")
                status = None
                if not retry_timeouts:
                    raise Uncertain(
                        f"{endpoint} timed out; the platform may have committed it"
                    ) from err
                continue
            except httpx.TransportError as err:
                # connection refused/reset before a request was sent: nothing committed
                failure = Failure("transient", f"cannot reach {self.base_url} ({err})")
                status = None
                continue
            self.pacer.update(self.observe_usage(response))
            failure = self.classify(response)
            status = response.status_code
            if failure is None:
                try:
                    return response.json()
                except ValueError as err:
                    raise PlatformRefused(
                        f"{endpoint} answered {status} with a body that is not JSON; is "
                        f"{self.base_url} really the platform's API?",
                        status=status,
                    ) from err
            self.stats.by_code[str(failure.code)] = self.stats.by_code.get(str(failure.code), 0) + 1
            if failure.kind == "throttle":
                self.stats.throttled += 1
                if failure.retry_after_s:
                    self.pacer.hold_until(failure.retry_after_s)
                continue
            if failure.kind == "transient":
                self.stats.server_errors += 1
                if not retry_timeouts:
                    raise Uncertain(
                        self.redact(f"{endpoint} failed with {status}: {failure.describe()}")
                    )
                continue
            if failure.kind == "not_found":
                raise ConnectorError(
                    self.redact(f"{endpoint}: not found: {failure.describe()}"), status=404
                )
            raise PlatformRefused(
                self.redact(
                    f"{endpoint} was refused ({status}): {failure.describe()}; "
                    f"{self.refusal_hint(failure)}"
                ),
                status=status,
                failure=failure,
                attempts=attempt + 1,
            )
        last = failure.describe() if failure else "no answer"
        raise PlatformRefused(
            self.redact(
                f"{endpoint} still failing after {self.policy.max_attempts} attempts "
                f"(last: {last}); the platform is throttling or down: retry later, or lower "
                "the request rate"
            ),
            status=status,
            failure=failure,
            attempts=self.policy.max_attempts,
        )

    def refusal_hint(self, failure: Failure) -> str:
        """What a person does about a terminal refusal; platforms refine it by code."""
        return f"fix the request or {self.credentials_hint}"

    async def create_once(
        self,
        what: str,
        lookup: Callable[[], Awaitable[T | None]],
        create: Callable[[], Awaitable[T]],
    ) -> T:
        """The object `lookup` finds, else the one `create` makes, made at most once.

        `lookup` searches by the deterministic external id the create writes. It runs before
        every attempt, so when a create timed out after the platform committed it, the next
        attempt finds that object instead of making a duplicate."""
        for attempt in range(self.policy.max_attempts):
            found = await lookup()
            if found is not None:
                return found
            try:
                return await create()
            except Uncertain:
                if attempt + 1 == self.policy.max_attempts:
                    break
                wait = self.policy.backoff(attempt, self.rng)
                self.stats.retries += 1
                self.stats.backoff_s += wait
                await self.clock.sleep(wait)
        found = await lookup()
        if found is not None:
            return found
        raise PlatformRefused(
            f"{self.name}: creating {what} kept timing out or failing after "
            f"{self.policy.max_attempts} attempts and it does not exist; retry later",
            attempts=self.policy.max_attempts,
        )

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()


class Uncertain(ConnectorError):
    """A write timed out or failed with 5xx: the platform may or may not have committed it.
    Raised only for calls made with retry_timeouts=False; `create_once` reconciles."""


__all__ = [
    "CallStats",
    "Clock",
    "Failure",
    "FailureKind",
    "HttpConnector",
    "Pacer",
    "PlatformRefused",
    "RealClock",
    "RetryPolicy",
    "Uncertain",
    "Usage",
    "VirtualClock",
    "redact",
]
