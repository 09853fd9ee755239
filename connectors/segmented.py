"""What the Google Ads and TikTok connectors share: one ad group per audience segment, every
object named by faceloop's ids.

Both platforms are mapped alike (docs/connectors.md): a campaign named
`faceloop:<campaign id>`; one ad group per segment, named `<segment> share=<share>`; an ad
(`ad_id` = `fl-<asset id>`, its reconcile key) = one platform ad of that name in every
segment's ad group; a window's numbers are history once reported. `SegmentedConnector`
holds that mapping and the checks that go with it; each platform supplies its requests and
its words for an ad's status.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from faceloop.connectors.base import AdDeployment, AdReview, AdStatus, ReviewStatus
from faceloop.connectors.http_base import HttpConnector
from faceloop.errors import ConnectorError, SpendLimitUnsupportedError
from faceloop.models import AudienceSegment
from faceloop.settings import Settings

# An id faceloop writes into a platform's name fields (and GAQL literals)
SAFE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
AD_PREFIX = "fl-"
# the worst review of an ad's copies (one per ad group) is the ad's review
_RANK: dict[ReviewStatus, int] = {"approved": 0, "pending": 1, "with_issues": 2, "disapproved": 3}


def asset_reader(settings: Settings) -> Callable[[str], bytes]:
    """Reads a creative by URI from the settings' asset store (what a connector uploads)."""
    from faceloop.storage.assets import open_asset_store

    return open_asset_store(settings).get_bytes


def segment_name(segment: AudienceSegment) -> str:
    """The ad group name of a segment."""
    return f"{segment.name} share={segment.share:g}"


def segment_of(group_name: str) -> str:
    """The segment an ad group (named by `segment_name`) serves."""
    return group_name.split(" share=")[0]


def asset_of(ad_id: str) -> str:
    return ad_id.removeprefix(AD_PREFIX)


def worst_reviews(reviews: Iterable[AdReview]) -> list[AdReview]:
    """One review per ad, the worst of its ad groups' (reasons of all kept), by ad id."""
    found: dict[str, AdReview] = {}
    for r in reviews:
        prev = found.get(r.ad_id)
        if prev is None:
            found[r.ad_id] = r
            continue
        worse = r if _RANK[r.status] > _RANK[prev.status] else prev
        found[r.ad_id] = worse.model_copy(update={"reasons": sorted({*prev.reasons, *r.reasons})})
    return [found[k] for k in sorted(found)]


class SegmentedConnector(HttpConnector):
    """Base of the google_ads and tiktok connectors (see the module docstring)."""

    segment_targeting = True
    # the platform's name for people, and where its settings live
    platform_label: ClassVar[str]
    env_prefix: ClassVar[str]
    # the account faceloop works in, for messages ("customer 123", "advertiser 7")
    account: str
    # the platform's words for an ad copy that serves, one that is paused, one that is gone
    serving_word: ClassVar[str]
    paused_word: ClassVar[str]
    removed_word: ClassVar[str]
    # the budgets an allocation sets, which go on spending while no worker runs
    daily_budgets: ClassVar[str]

    def __init__(self, base_url: str, **kw: Any) -> None:
        super().__init__(base_url, **kw)
        # windows this process has read insights of: re-allocating one is refused (the
        # platform cannot undo delivered days); see docs/connectors.md for the limits
        self._delivered: set[tuple[str, int]] = set()

    @classmethod
    def require(cls, config: BaseModel, names: Sequence[str]) -> None:
        """Refuse a configuration that lacks any of `names`, naming their variables."""
        missing = [f"{cls.env_prefix}{n.upper()}" for n in names if getattr(config, n) is None]
        if missing:
            raise ConnectorError(
                f"{cls.name} is not configured: set {', '.join(missing)} (docs/connectors.md)"
            )

    async def set_spend_limit(self, campaign_id: str, amount: float, currency: str) -> str:
        # both create their campaigns without a total budget, which is set at creation
        # (before the cap reaches the connector), so neither can hold a lifetime limit
        raise SpendLimitUnsupportedError(
            f"{self.name}: this connector sets {self.daily_budgets} per window and creates "
            f"the campaign without a total budget, so while no worker runs "
            f"{self.platform_label} keeps spending the last window's budgets; pause the "
            f"campaign in {self.platform_label} when faceloop will be down"
        )

    # -- names ----------------------------------------------------------------------------

    def external_id(self, asset_id: str) -> str:
        """The name every platform object of one faceloop ad carries: its reconcile key."""
        if not SAFE_ID.match(asset_id):
            raise ConnectorError(
                f"{self.name}: asset id {asset_id!r} cannot name a {self.platform_label} "
                "object; asset ids are content hashes (letters, digits, '_.:-', at most 200 "
                "characters)"
            )
        return f"{AD_PREFIX}{asset_id}"

    def check_campaign_id(self, campaign_id: str) -> str:
        """The platform campaign's name, or ConnectorError for an id it cannot carry."""
        if not SAFE_ID.match(campaign_id):
            raise ConnectorError(
                f"{self.name}: campaign id {campaign_id!r} cannot name a {self.platform_label} "
                "campaign; use letters, digits and '_.:-', at most 200 characters"
            )
        return f"faceloop:{campaign_id}"

    # -- campaign -------------------------------------------------------------------------

    @abstractmethod
    async def _campaign(self, campaign_id: str) -> dict[str, Any] | None:
        """The platform's campaign `faceloop:<campaign_id>`, or None."""

    async def _need_campaign(self, campaign_id: str) -> dict[str, Any]:
        camp = await self._campaign(campaign_id)
        if camp is None:
            raise ConnectorError(
                f"{self.name}: no campaign 'faceloop:{campaign_id}' in {self.account}; deploy "
                "creates it (ensure_campaign)",
                status=404,
            )
        return camp

    def check_segments(self, name: str, have: set[str], segments: list[AudienceSegment]) -> None:
        """Refuse a campaign that exists with other ad groups than these segments'."""
        want = {segment_name(s) for s in segments}
        if have and have != want:
            raise ConnectorError(
                f"{self.name}: campaign {name!r} exists with segments {sorted(have)}, not "
                f"{sorted(want)}; a campaign's audience cannot change: use a new campaign id"
            )

    def check_not_delivered(self, campaign_id: str, window: int) -> None:
        if (campaign_id, window) in self._delivered:
            raise ConnectorError(
                f"{self.name}: window {window} of {campaign_id} was already delivered and "
                "reported; its numbers are history: allocate a later window"
            )

    # -- ads ------------------------------------------------------------------------------

    @abstractmethod
    async def _copies(
        self, campaign: dict[str, Any], name: str | None
    ) -> list[tuple[str, str, str]]:
        """(ad name, platform handle, platform status) of every ad group copy of ad `name`
        (of every ad when None) in the campaign."""

    @abstractmethod
    async def _set_copies(self, handles: list[str], remove: bool) -> None:
        """Pause (or remove) these ad group copies."""

    def _status_of(self, statuses: list[str]) -> AdStatus:
        if all(s == self.removed_word for s in statuses):
            return "removed"
        return "active" if self.serving_word in statuses else "paused"

    def _deployment(self, campaign_id: str, ad_id: str, statuses: list[str]) -> AdDeployment:
        return AdDeployment(
            ad_id=ad_id,
            asset_id=asset_of(ad_id),
            campaign_id=campaign_id,
            platform=self.name,
            status=self._status_of(statuses),
        )

    async def list_ads(self, campaign_id: str) -> list[AdDeployment]:
        camp = await self._need_campaign(campaign_id)
        by_name: dict[str, list[str]] = {}
        for name, _, status in await self._copies(camp, None):
            by_name.setdefault(name, []).append(status)
        return [self._deployment(campaign_id, n, s) for n, s in sorted(by_name.items())]

    async def pause(self, campaign_id: str, ad_id: str) -> AdDeployment:
        return await self._set_status(campaign_id, ad_id, remove=False)

    async def remove(self, campaign_id: str, ad_id: str) -> AdDeployment:
        """Removes the ad from every ad group (its copy and text go with it). The uploaded
        image stays in the account's asset library: docs/connectors.md says where to delete
        it by hand."""
        return await self._set_status(campaign_id, ad_id, remove=True)

    async def _set_status(self, campaign_id: str, ad_id: str, remove: bool) -> AdDeployment:
        camp = await self._need_campaign(campaign_id)
        copies = await self._copies(camp, ad_id)
        if not copies:
            raise ConnectorError(
                f"{self.name}: no ad {ad_id!r} in campaign {campaign_id}", status=404
            )
        target = self.removed_word if remove else self.paused_word
        # a removed copy stays removed; one already in the target state is left alone
        todo = [h for _, h, s in copies if s not in (self.removed_word, target)]
        if todo:
            await self._set_copies(todo, remove)
            copies = await self._copies(camp, ad_id)
        return self._deployment(campaign_id, ad_id, [s for _, _, s in copies])


__all__ = [
    "AD_PREFIX",
    "SAFE_ID",
    "SegmentedConnector",
    "asset_of",
    "asset_reader",
    "segment_name",
    "segment_of",
    "worst_reviews",
]
