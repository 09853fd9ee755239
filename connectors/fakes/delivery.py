"""Delivery arithmetic and the soak interface the FAKE Google Ads and TikTok platforms share.

The fakes test plumbing (mapping, errors, retries, idempotency), not optimisation, so their
audience is trivial and deterministic; the sandbox platform is the one that simulates an
audience (docs/sandbox.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from faceloop.connectors.fakes.faults import FakeLedger, FaultPlan, FaultyTransport

if TYPE_CHECKING:
    from faceloop.connectors.http_base import HttpConnector, VirtualClock
    from faceloop.connectors.soak import SoakRig

# Day 0 of every fake campaign: the fakes run on their own calendar, so reports are
# reproducible whatever today's date is.
EPOCH = dt.date(2026, 1, 5)
# What 1,000 impressions cost on the fakes, in micros of the account currency; the
# connectors' default target CPM is the same, so a budget buys the impressions asked for.
CPM_MICROS = 2_000_000


def spend_micros(impressions: int) -> int:
    """What `impressions` cost on the fakes, in micros of the account currency: every
    delivered impression is billed at CPM_MICROS (a test account that always wins at its
    target CPM), so spend follows delivery exactly."""
    return impressions * CPM_MICROS // 1000


def day_index(date: str) -> int:
    """Days since EPOCH of a YYYY-MM-DD date."""
    return (dt.date.fromisoformat(date) - EPOCH).days


def day_date(index: int) -> str:
    return (EPOCH + dt.timedelta(days=index)).isoformat()


def clicks_and_conversions(key: str, impressions: int) -> tuple[int, int]:
    """Clicks and conversions of `impressions` for one ad and day: a CTR between 1 % and 4 %
    and 10 % of clicks converting, fixed by the key's hash (no randomness to seed)."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
    clicks = min(impressions, round(impressions * (0.01 + (h % 300) / 10_000)))
    return clicks, round(clicks * 0.1)


def split_evenly(total: int, keys: Sequence[str]) -> dict[str, int]:
    """`total` impressions over `keys`, the remainder to the first ones (deterministic):
    how the fakes spread a budget over the ads that may serve."""
    if not keys:
        return {}
    base, rest = divmod(total, len(keys))
    return {k: base + (1 if i < rest else 0) for i, k in enumerate(keys)}


class DailyDelivery(ABC):
    """What the FAKE Google Ads and TikTok platforms share: a campaign named
    `faceloop:<id>` delivers day by day from its budget, a delivered day never changes, and
    the soak bench reads an ad's status and a day's allocation from the fake's own state.

    A subclass holds `delivered` ((campaign id, day) -> {ad copy: impressions}) and `ledger`
    and says how its own objects look (the abstract methods)."""

    delivered: dict[tuple[str, int], dict[str, int]]
    ledger: FakeLedger
    app: Any
    # the platform's words for an ad copy that serves, and one that is gone
    serving_word: ClassVar[str]
    removed_word: ClassVar[str]

    @abstractmethod
    def _campaign_id_by_name(self, name: str) -> str | None:
        """The fake's id of the live campaign named `name`, or None."""

    @abstractmethod
    def _plan_day(self, cid: str) -> dict[str, int]:
        """What a day of campaign `cid` delivers under its current budget and statuses."""

    @abstractmethod
    def _ad_name(self, copy: str) -> str:
        """The name (faceloop's ad id) of an ad copy as `_plan_day` keys it."""

    @abstractmethod
    def _copy_statuses(self, ad_name: str) -> list[str]:
        """The status of every ad group copy of the ad named `ad_name`."""

    @abstractmethod
    def throttle_response(self, request: httpx.Request, rng: random.Random) -> httpx.Response:
        """The platform's own rate-limit answer (FAKE fault injection, faults.FakePlatform)."""

    @abstractmethod
    def server_error_response(self, request: httpx.Request) -> httpx.Response:
        """The platform's own 5xx answer (FAKE fault injection, faults.FakePlatform)."""

    def transport(self, plan: FaultPlan | None = None) -> httpx.AsyncBaseTransport:
        """The fake in process; with a plan, behind FAKE fault injection."""
        inner = httpx.ASGITransport(app=self.app)
        return inner if plan is None else FaultyTransport(inner, self, plan)

    # -- soak interface (faceloop.connectors.soak.SoakFake) --------------------------------

    def ad_status(self, ad_id: str) -> str | None:
        statuses = self._copy_statuses(ad_id)
        if not statuses:
            return None
        if all(s == self.removed_word for s in statuses):
            return "removed"
        return "active" if self.serving_word in statuses else "paused"

    def allocation(self, campaign_id: str, window: int) -> dict[str, int]:
        """Impressions per ad (by name) the fake served in `window` (a day) of the campaign
        named `faceloop:{campaign_id}`, or would serve now if not delivered yet."""
        cid = self._campaign_id_by_name(f"faceloop:{campaign_id}")
        if cid is None:
            return {}
        # a delivered day is history (even an empty one); a later one is what would serve now
        served = (
            self.delivered[(cid, window)]
            if (cid, window) in self.delivered
            else self._plan_day(cid)
        )
        out: dict[str, int] = {}
        for copy, n in served.items():
            name = self._ad_name(copy)
            out[name] = out.get(name, 0) + n
        return out

    def billed(self, campaign_id: str) -> float:
        """What the campaign named `faceloop:{campaign_id}` has been billed so far, in units
        of the account currency: the fake's own total of every delivered day, for tests to
        compare with the spend the connector parsed from the reports."""
        cid = self._campaign_id_by_name(f"faceloop:{campaign_id}")
        micros = sum(
            spend_micros(n)
            for (c, _), served in self.delivered.items()
            if c == cid
            for n in served.values()
        )
        return micros / 1_000_000

    def _deliver(self, cid: str, through: int) -> None:
        """Deliver the days of campaign `cid` not delivered yet, up to `through`."""
        day = 0
        while (cid, day) in self.delivered:
            day += 1
        for d in range(day, through + 1):
            self.delivered[(cid, d)] = self._plan_day(cid)


def two_segment_rig(
    fake: DailyDelivery,
    make: Callable[..., HttpConnector],
    config: Any,
    plan: FaultPlan,
    clock: VirtualClock,
    seed: int,
) -> SoakRig:
    """A connector (`make(config, read_creative, **transport)`) wired to `fake` through
    FAKE fault injection, on a two-segment campaign, for `faceloop bench connectors`. The
    platform splits a budget over the serving ads itself, so allocations are not exact."""
    from faceloop.connectors.soak import SoakRig
    from faceloop.models import AudienceSegment

    conn = make(
        config,
        lambda uri: b"FAKE image " + uri.encode(),
        transport=fake.transport(plan),
        clock=clock,
        rng=random.Random(seed),
    )
    segments = [AudienceSegment(name="young", share=0.5), AudienceSegment(name="old", share=0.5)]
    return SoakRig(conn, fake, clock, segments, exact_allocation=False)


__all__ = [
    "CPM_MICROS",
    "EPOCH",
    "DailyDelivery",
    "clicks_and_conversions",
    "day_date",
    "day_index",
    "spend_micros",
    "split_evenly",
    "two_segment_rig",
]
