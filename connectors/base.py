"""The contract every ad-platform connector keeps, and the models that cross it.

A connector is the only place that talks to an ad platform. The campaign workflow calls it
through activities that Temporal may retry, so every write here is idempotent: `deploy` is
keyed by asset id, `set_allocation` replaces, `insights` is memoized per window, `pause`
of a paused ad is a no-op. Errors are `faceloop.errors.ConnectorError` with a message that
says which call failed, why, and what to do.

A connector never judges provenance: every `AdSpec` it gets has passed the deploy gate
(`faceloop.connectors.activities.ProvenanceGate`), which faceloop runs before `deploy` and
which refuses a creative whose C2PA manifest does not verify or whose watermark does not
decode. `creative_uri` is that verified file; a connector uploads it unchanged. `exports`
holds the per-placement files (JPEG/WebP with an sRGB profile, each a C2PA transform of
`creative_uri`), each verified by the same gate: a connector uploads the one a placement
needs (`AdSpec.export_for`) unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from pydantic import Field

from faceloop.errors import ConnectorError, SpendLimitUnsupportedError
from faceloop.models import AudienceSegment, FaceParams, Model, Placement, PlacementExport

AdStatus = Literal["active", "paused", "removed"]


class AdSpec(Model):
    """What to put live: one face creative, its copy and its AI disclosure."""

    campaign_id: str = Field(min_length=1, max_length=256)
    variant_id: str = Field(min_length=1, max_length=256)
    asset_id: str = Field(
        min_length=1, max_length=256, description="content hash of the image; the idempotency key"
    )
    creative_uri: str = Field(min_length=1, max_length=4096)
    params: FaceParams
    # Limits no tighter than the brief's: the headline is the brief's message (<= 1000 chars).
    headline: str = Field(max_length=2000)
    disclosure: str = Field(
        max_length=2000, description="AI-generated-content label shown with the ad"
    )
    # the brief's markets (ISO 3166-1 alpha-2): where the ad may run, and what the
    # disclosure label was chosen for; empty from callers that predate it
    markets: list[str] = Field(default_factory=list, max_length=300)
    exports: list[PlacementExport] = Field(
        default_factory=list,
        description="per-placement files (1:1, 4:5, 9:16, 1.91:1), each verified by the deploy "
        "gate like creative_uri; empty: the campaign made none (creative_uri serves all)",
    )

    def export_for(
        self, placement: Placement, media_type: str | None = None
    ) -> PlacementExport | None:
        """The export for a placement (of that media type, if given), or None."""
        return next(
            (
                e
                for e in self.exports
                if e.placement == placement and media_type in (None, e.media_type)
            ),
            None,
        )


class AdDeployment(Model):
    """An ad as the platform knows it."""

    ad_id: str
    asset_id: str
    campaign_id: str
    platform: str
    status: AdStatus
    placements: list[str] = Field(
        default_factory=list,
        description="placement exports the platform received, as 'placement media_type'",
    )


class AdInsight(Model):
    """Cumulative delivery of one ad to one audience segment, up to and including a window.

    Conversions are counted in the window the platform reports them, which may be later
    than the click (delayed conversions), so conversions of a window can still grow after
    it; impressions and clicks of past windows do not change.
    """

    ad_id: str
    asset_id: str
    segment: str
    impressions: int = Field(ge=0)
    clicks: int = Field(ge=0)
    conversions: int = Field(ge=0)
    # Signals a playbook's rollback criteria read (complaint_rate, negative_feedback_rate);
    # None where the platform does not report them, so a criterion on them cannot fire
    # rather than firing on a made-up zero.
    negative_feedback: int | None = Field(
        default=None, ge=0, description="hides / 'not interested'; None: not reported"
    )
    complaints: int | None = Field(
        default=None, ge=0, description="user reports of the ad; None: not reported"
    )
    # what the platform billed, cumulative like the counts, in the account's currency; the
    # campaign's spend cap reads it (docs/cost.md). None: not reported, never a made-up 0.
    spend: float | None = Field(
        default=None, ge=0, description="cumulative spend in account currency; None: not reported"
    )


ReviewStatus = Literal["pending", "approved", "disapproved", "with_issues"]


class AdReview(Model):
    """Where an ad stands in the platform's ad review.

    `disapproved`: the platform will not serve it (faceloop records it, pauses it, tells the
    optimizer it failed and raises it to compliance); `with_issues`: it serves with a
    problem a person should look at; `pending`: not reviewed yet."""

    ad_id: str
    asset_id: str
    status: ReviewStatus
    platform_status: str = Field(description="the platform's own word, e.g. DISAPPROVED")
    reasons: list[str] = Field(default_factory=list, description="the platform's reasons")


@dataclass
class ApiCalls:
    """Requests a connector sent to its platform while `counting_api_calls` was active."""

    count: int = 0


_API_CALLS: ContextVar[ApiCalls | None] = ContextVar("faceloop_api_calls", default=None)


@contextmanager
def counting_api_calls() -> Iterator[ApiCalls]:
    """Count the platform requests made inside the block (in this task and the tasks it
    starts): a connector is shared by every campaign a worker runs, so a counter on the
    connector could not say which campaign made a call; the context can."""
    calls = ApiCalls()
    token = _API_CALLS.set(calls)
    try:
        yield calls
    finally:
        _API_CALLS.reset(token)


def count_api_call() -> None:
    """Called by a connector once per request it sends to its platform (each retry too:
    a retried request is a call the platform received). A no-op outside counting_api_calls."""
    calls = _API_CALLS.get()
    if calls is not None:
        calls.count += 1


def per_variant(allocation: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Total impressions per ad (or variant) over all segments of a {segment: {id: n}}
    allocation (for platforms that take one number per ad)."""
    total: dict[str, int] = {}
    for by_id in allocation.values():
        for key, n in by_id.items():
            total[key] = total.get(key, 0) + n
    return total


class AdConnector(ABC):
    """Base of every ad-platform connector (sandbox, Meta, Google Ads, TikTok, plugins).

    Windows are the platform's delivery periods, numbered from 0 (the workflow uses one per
    round). All methods are safe to retry.
    """

    name: str

    @abstractmethod
    async def ensure_campaign(self, campaign_id: str, segments: list[AudienceSegment]) -> None:
        """Create the campaign with these audience segments, or do nothing if it exists
        with the same segments. Raises ConnectorError if it exists with other segments."""

    @abstractmethod
    async def deploy(self, spec: AdSpec) -> AdDeployment:
        """Put a creative live. Idempotent on (campaign_id, asset_id): deploying an asset
        that is already deployed returns that ad unchanged and never creates a second."""

    @abstractmethod
    async def set_allocation(
        self, campaign_id: str, window: int, impressions: dict[str, int]
    ) -> None:
        """Set the impressions each ad (by ad_id) gets in `window`. Setting it again before
        the window is delivered replaces it; after delivery it raises ConnectorError."""

    # Whether the platform serves per-segment impressions as given (set_segment_allocation);
    # if not, each ad's total is sent and the platform splits it over segments itself.
    segment_targeting: bool = False

    async def set_segment_allocation(
        self, campaign_id: str, window: int, impressions: Mapping[str, Mapping[str, int]]
    ) -> None:
        """Set the impressions of each ad in each audience segment in `window`:
        {segment: {ad_id: n}}. An ad left out of a segment is not shown there. Replaces the
        window's allocation like set_allocation.

        Not abstract: a platform without per-segment delivery (`segment_targeting` False)
        gets each ad's total through set_allocation and splits it by its own rules, so
        the campaign's per-segment decision becomes a per-ad budget there."""
        await self.set_allocation(campaign_id, window, per_variant(impressions))

    async def set_spend_limit(self, campaign_id: str, amount: float, currency: str) -> str:
        """Have the platform itself stop the campaign's ad spend at `amount` (in `currency`,
        the deployment's cost currency, which the account bills in): a backstop for the
        brief's spend cap that holds while no faceloop worker runs, when budgets set per
        window would go on spending every day. Idempotent: a limit already at `amount` is
        left alone. Returns what the platform now holds, in words.

        Not abstract: a platform without a lifetime limit, or a connector that does not set
        one, raises SpendLimitUnsupportedError saying why, and the cap is held by faceloop's
        check before each round alone (docs/cost.md). A platform that refuses the amount
        (e.g. below its minimum) raises a final ConnectorError."""
        raise SpendLimitUnsupportedError(
            f"connector {self.name!r} sets no spend limit on its platform"
        )

    @abstractmethod
    async def insights(self, campaign_id: str, window: int) -> list[AdInsight]:
        """Deliver `window` if it was not delivered yet (once: later calls return the same
        numbers) and return cumulative per-ad, per-segment totals through that window."""

    async def reviews(self, campaign_id: str) -> list[AdReview]:
        """The review state of every ad of the campaign that the platform reviews.

        Not abstract: a platform without ad review (the sandbox) reports none, and every ad
        counts as approved."""
        return []

    @abstractmethod
    async def pause(self, campaign_id: str, ad_id: str) -> AdDeployment:
        """Stop an ad's delivery. Pausing a paused ad is a no-op."""

    @abstractmethod
    async def list_ads(self, campaign_id: str) -> list[AdDeployment]:
        """Every ad of the campaign, whatever its status."""

    async def remove(self, campaign_id: str, ad_id: str) -> AdDeployment:
        """Take an ad down for good and delete its creative and copy from the platform
        (GDPR erasure); the ad's id and delivered counts may stay. Removing a removed ad is
        a no-op. A removed ad never delivers again and cannot be re-activated.

        Not abstract, so connectors written before erasure existed keep working: they raise
        here, and the erasure workflow pauses their ads and reports the removal as
        incomplete, naming the platform where the creative must be deleted by hand.
        """
        raise ConnectorError(
            f"connector {self.name!r} cannot remove ads; delete ad {ad_id!r} of campaign "
            f"{campaign_id!r} on the platform by hand, or implement {type(self).__name__}.remove"
        )

    @property
    def can_remove(self) -> bool:
        """Whether this connector implements `remove` (else erasure can only pause)."""
        return type(self).remove is not AdConnector.remove

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections. The connector is unusable afterwards; a second call is a
        no-op (the worker and the contract suite may both close it)."""

    async def __aenter__(self) -> AdConnector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = [
    "AdConnector",
    "AdDeployment",
    "AdInsight",
    "AdReview",
    "AdSpec",
    "AdStatus",
    "ApiCalls",
    "ReviewStatus",
    "count_api_call",
    "counting_api_calls",
]
