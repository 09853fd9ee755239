"""Connector for Meta (Facebook/Instagram) ads through the Marketing API, over plain httpx.

How faceloop's contract maps onto Graph API objects (docs/connectors.md has the table):

- a faceloop campaign is a Meta campaign named `faceloop:<campaign_id>`; its audience
  segments ride along as ad labels `faceloop-segment:<name>` so `ensure_campaign` can tell
  "same campaign" from "other segments";
- a deployed creative is its ad images (content-addressed by Meta: uploading the same bytes
  again returns the same hash), an ad creative, an ad set and an ad, the last three named
  `faceloop:<campaign_id>:<asset_id>`. That name is the deterministic external id: before
  every create the connector looks it up (`HttpConnector.create_once`), so a retry after a
  timeout finds what the platform already made;
- the images are the placement exports the deploy gate admitted, one ad image each, put
  together by placement asset customization (`asset_feed_spec` with labelled images and
  `asset_customization_rules`): the 4:5 export (else the 1:1) in the Facebook and
  Instagram feeds, the 9:16 in stories and reels, the 1.91:1 in the right column and
  search results, and the 1:1 (else the creative itself) everywhere else (the default
  rule). A spec without JPEG exports gets the creative as one image (`link_data`), as
  before;
- one ad set per ad, because Meta budgets live on ad sets: an allocation of n impressions
  becomes a daily budget of n * CPM / 1000 (`meta_cpm_minor`), zero pauses the ad set;
- window w is day w of the campaign (its start_time's date + w days, in the account's
  days); insights are ad-level, cumulative from the start through that day, broken down
  by age and summed per audience segment (`meta_segment_ages`); spend is the insights'
  `spend` in the ad account's `account_currency`, which must be FACELOOP_COST_CURRENCY;
- a brief's spend cap becomes the campaign's `spend_cap` (minor units of the account
  currency, rounded down), so Meta stops the campaign there even while no faceloop worker
  runs and the ad sets' daily budgets would go on spending (`set_spend_limit`);
- review: `effective_status` and `ad_review_feedback` give PENDING_REVIEW / ACTIVE /
  DISAPPROVED / WITH_ISSUES and the reasons (`reviews`).

The AI disclosure is the visible label, written into the ad's primary text next to the
headline. The Marketing API documents no general "AI-generated" flag on ad creatives that
this connector could set (docs/connectors.md says what was checked), so none is invented.

The facebook-business SDK was not used: it adds typed objects but no retry, pacing or
reconcile logic, and it logs through its own session; plain httpx keeps one HTTP stack
with the other connectors (faceloop.connectors.http_base).
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx

from faceloop.connectors.base import (
    AdDeployment,
    AdInsight,
    AdReview,
    AdSpec,
    AdStatus,
    ReviewStatus,
)
from faceloop.connectors.http_base import (
    Clock,
    Failure,
    FailureKind,
    HttpConnector,
    RetryPolicy,
    Usage,
)
from faceloop.errors import ConnectorError, FaceloopError
from faceloop.models import AudienceSegment, Placement, PlacementExport
from faceloop.settings import Settings

PREFIX = "faceloop"
SEGMENT_LABEL = "faceloop-segment:"
AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")

# Graph API error codes (developers.facebook.com/docs/graph-api/guides/error-handling and
# /docs/marketing-api/error-reference): throttles are retried after the platform's wait
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2})
AUTH_CODES = frozenset({10, 102, 190, *range(200, 300)})
REMOVED_STATUSES = frozenset({"DELETED", "ARCHIVED"})
ALL_STATUSES = [
    "ACTIVE",
    "PAUSED",
    "DELETED",
    "PENDING_REVIEW",
    "DISAPPROVED",
    "PREAPPROVED",
    "PENDING_BILLING_INFO",
    "CAMPAIGN_PAUSED",
    "ARCHIVED",
    "ADSET_PAUSED",
    "IN_PROCESS",
    "WITH_ISSUES",
]
# Placement asset customization (Marketing API, "Placement Asset Customization"): which
# positions each export serves, after the placement groups Ads Manager asks images for
# (feeds; stories and reels; right column and search results). Positions no rule names
# (marketplace, explore, Audience Network ...) take the default rule's image.
PLACEMENT_POSITIONS: tuple[tuple[tuple[Placement, ...], dict[str, list[str]]], ...] = (
    (
        ("4:5", "1:1"),  # Meta recommends 4:5 in feeds; 1:1 where there is no 4:5
        {
            "publisher_platforms": ["facebook", "instagram"],
            "facebook_positions": ["feed"],
            "instagram_positions": ["stream"],
        },
    ),
    (
        ("9:16",),
        {
            "publisher_platforms": ["facebook", "instagram"],
            "facebook_positions": ["story", "facebook_reels"],
            "instagram_positions": ["story", "reels"],
        },
    ),
    (
        ("1.91:1",),
        {
            "publisher_platforms": ["facebook"],
            "facebook_positions": ["right_hand_column", "search"],
        },
    ),
)
# the default rule (an empty customization_spec, lowest priority) shows the square export
DEFAULT_PLACEMENT: Placement = "1:1"
# Meta's image ad specs name JPG and PNG: a WebP export is not sent
EXPORT_TYPE = "image/jpeg"
CREATIVE_LABEL = "faceloop_creative"


def image_label(placement: Placement | None) -> str:
    """The ad label of a placement's image in the creative's asset feed (None: the creative
    itself); deterministic, so a retried deploy sends the same creative."""
    if placement is None:
        return CREATIVE_LABEL
    return "faceloop_" + placement.replace(".", "").replace(":", "x")


def placement_rules(
    spec: AdSpec,
) -> list[tuple[dict[str, list[str]], PlacementExport | None]]:
    """(customization_spec, the export it shows; None: the creative) of every asset
    customization rule of `spec`'s ad, in priority order, the default rule last; empty when
    no rule would name a placement (the ad is then the creative as one image)."""
    rules: list[tuple[dict[str, list[str]], PlacementExport | None]] = []
    for placements, positions in PLACEMENT_POSITIONS:
        export = next(
            (e for p in placements if (e := spec.export_for(p, EXPORT_TYPE)) is not None), None
        )
        if export is not None:
            rules.append((positions, export))
    if not rules:
        return []
    rules.append(({}, spec.export_for(DEFAULT_PLACEMENT, EXPORT_TYPE)))
    return rules


REVIEW: dict[str, ReviewStatus] = {
    "PENDING_REVIEW": "pending",
    "IN_PROCESS": "pending",
    "DISAPPROVED": "disapproved",
    "WITH_ISSUES": "with_issues",
}


def _status(ad: Mapping[str, Any]) -> AdStatus:
    """faceloop's status of an ad: removed when deleted/archived; paused when faceloop
    paused it (its own `status`) or review refused it; else active. A paused ad set is not
    a paused ad: it is an allocation of zero, which the next allocation lifts."""
    own, effective = str(ad.get("status", "ACTIVE")), str(ad.get("effective_status", "ACTIVE"))
    if own in REMOVED_STATUSES or effective in REMOVED_STATUSES:
        return "removed"
    if own == "PAUSED" or effective == "DISAPPROVED":
        return "paused"
    return "active"


class MetaConnector(HttpConnector):
    """AdConnector over the Graph API at `base_url`/`api_version` for one ad account."""

    name = "meta"
    segment_targeting = False
    credentials_hint = (
        "check FACELOOP_META_ACCESS_TOKEN (a system-user token with ads_management on the "
        "ad account) and FACELOOP_META_AD_ACCOUNT_ID"
    )

    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        ad_account_id: str,
        page_id: str,
        access_token: str,
        link_url: str,
        read_creative: Callable[[str], bytes],
        countries: list[str] | None = None,
        segment_ages: Mapping[str, list[str]] | None = None,
        cpm_minor: int = 1000,
        conversion_action: str = "offsite_conversion.fb_pixel_purchase",
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
        rng: random.Random | None = None,
        cost_currency: str = "USD",
    ) -> None:
        if not re.fullmatch(r"v\d+\.\d+", api_version):
            raise ConnectorError(
                f"meta: api version {api_version!r} is not a Graph API version; set "
                "FACELOOP_META_API_VERSION to e.g. v23.0"
            )
        account = ad_account_id.removeprefix("act_")
        if not account.isdigit():
            raise ConnectorError(
                f"meta: ad account id {ad_account_id!r} is not numeric; set "
                "FACELOOP_META_AD_ACCOUNT_ID to the digits of act_<id>"
            )
        super().__init__(
            f"{base_url.rstrip('/')}/{api_version}",
            headers={"Authorization": f"Bearer {access_token}"},
            secrets=[access_token],
            policy=policy,
            transport=transport,
            clock=clock,
            timeout=timeout,
            rng=rng,
            cost_currency=cost_currency,
        )
        self.account = f"act_{account}"
        self.page_id = page_id
        self.link_url = link_url
        self.read_creative = read_creative
        self.countries = countries or ["US"]
        self.segment_ages = dict(segment_ages or {})
        self.cpm_minor = cpm_minor
        self.conversion_action = conversion_action

    # -- platform facts ---------------------------------------------------------------------

    def classify(self, response: httpx.Response) -> Failure | None:
        if response.is_success:
            return None
        try:
            err = response.json()["error"]
            code, sub = int(err.get("code")), err.get("error_subcode")
            message, trace = str(err.get("message", "")), err.get("fbtrace_id")
        except (ValueError, KeyError, TypeError, AttributeError):
            kind: FailureKind = "transient" if response.status_code >= 500 else "terminal"
            return Failure(kind, response.text[:300] or response.reason_phrase)
        usage = self.observe_usage(response)
        wait = usage.regain_s if usage else None
        if code in THROTTLE_CODES:
            return Failure("throttle", message, code, sub, wait or None, trace)
        if code in TRANSIENT_CODES or response.status_code >= 500 or err.get("is_transient"):
            return Failure("transient", message, code, sub, None, trace)
        # 100/33: "Object with ID ... does not exist"; 803: alias does not exist
        if response.status_code == 404 or (code == 100 and sub == 33) or code == 803:
            return Failure("not_found", message, code, sub, None, trace)
        return Failure("terminal", message, code, sub, None, trace)

    def refusal_hint(self, failure: Failure) -> str:
        if failure.code in AUTH_CODES:
            return self.credentials_hint
        if failure.code == 100:
            return "a parameter is invalid: the message names it; check the meta settings"
        if failure.code == 368:
            return "Meta blocked the action as a policy violation: see Account Quality"
        return "see the Marketing API error reference for this code"

    def observe_usage(self, response: httpx.Response) -> Usage | None:
        """X-Business-Use-Case-Usage: {business_id: [{type, call_count, total_cputime,
        total_time, estimated_time_to_regain_access (minutes)}]} (Graph API rate limiting)."""
        raw = response.headers.get("x-business-use-case-usage")
        if not raw:
            return None
        try:
            parsed = json.loads(raw)
            entries = [e for rows in parsed.values() for e in rows]
            percent = max(
                float(e.get(k, 0))
                for e in entries
                for k in ("call_count", "total_cputime", "total_time")
            )
            regain = max(float(e.get("estimated_time_to_regain_access", 0)) for e in entries)
        except (ValueError, AttributeError, TypeError):
            return None  # a header we cannot read is no reason to fail the call
        return Usage(percent, regain * 60.0)

    # -- lookups ------------------------------------------------------------------------------

    def _name(self, campaign_id: str, asset_id: str | None = None) -> str:
        if not campaign_id or ":" in campaign_id:
            raise ConnectorError(
                f"meta: campaign id {campaign_id!r} cannot name a Meta object; use a "
                "non-empty id without ':'"
            )
        return (
            f"{PREFIX}:{campaign_id}" if asset_id is None else f"{PREFIX}:{campaign_id}:{asset_id}"
        )

    async def _find(self, edge: str, name: str, fields: str) -> dict[str, Any] | None:
        """The object of `edge` (campaigns, adsets, adcreatives, ads) named `name`."""
        params: dict[str, Any] = {
            "fields": fields,
            "filtering": json.dumps([{"field": "name", "operator": "EQUAL", "value": name}]),
            "limit": 5,
        }
        if edge != "adcreatives":
            # deleted and archived objects are hidden unless asked for by status
            params["effective_status"] = json.dumps(ALL_STATUSES)
        data = await self.call("GET", f"/{self.account}/{edge}", params=params)
        rows = [r for r in data.get("data", []) if r.get("name") == name]
        return rows[0] if rows else None

    async def _campaign(self, campaign_id: str) -> dict[str, Any]:
        found = await self._find(
            "campaigns",
            self._name(campaign_id),
            "id,name,adlabels,start_time,created_time,spend_cap",
        )
        if found is None:
            raise ConnectorError(
                f"meta: campaign {campaign_id!r} does not exist in {self.account}; "
                "ensure_campaign creates it",
                status=404,
            )
        return found

    async def _create(self, edge: str, fields: Mapping[str, Any]) -> str:
        body = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        data = await self.call("POST", f"/{self.account}/{edge}", data=body, retry_timeouts=False)
        return str(data["id"])

    async def _ensure(self, edge: str, name: str, fields: Mapping[str, Any]) -> str:
        async def lookup() -> str | None:
            found = await self._find(edge, name, "id,name")
            return None if found is None else str(found["id"])

        async def create() -> str:
            return await self._create(edge, {"name": name, **fields})

        return await self.create_once(f"{edge[:-1]} {name}", lookup, create)

    # -- the contract --------------------------------------------------------------------------

    async def ensure_campaign(self, campaign_id: str, segments: list[AudienceSegment]) -> None:
        unmapped = [s.name for s in segments if s.name not in self.segment_ages]
        if unmapped:
            raise ConnectorError(
                f"meta: audience segment(s) {', '.join(unmapped)} have no Meta age buckets; "
                'add them to FACELOOP_META_SEGMENT_AGES, e.g. {"young": ["18-24", "25-34"]}'
            )
        labels = sorted(f"{SEGMENT_LABEL}{s.name}" for s in segments)
        name = self._name(campaign_id)
        await self._ensure(
            "campaigns",
            name,
            {
                "objective": "OUTCOME_AWARENESS",
                "status": "ACTIVE",
                "special_ad_categories": [],
                "adlabels": [{"name": label} for label in labels],
            },
        )
        have = await self._campaign(campaign_id)
        held = sorted(
            str(lab.get("name"))
            for lab in (have.get("adlabels") or {}).get("data", [])
            if str(lab.get("name", "")).startswith(SEGMENT_LABEL)
        )
        if held != labels:
            raise ConnectorError(
                f"meta: campaign {campaign_id!r} exists with segments "
                f"{[h.removeprefix(SEGMENT_LABEL) for h in held]}, not "
                f"{[s.name for s in segments]}; use a new campaign id"
            )

    async def set_spend_limit(self, campaign_id: str, amount: float, currency: str) -> str:
        # minor units (1/100, as the budgets), rounded down: the limit never exceeds the cap;
        # the epsilon keeps 150.0 * 100 from flooring to 14999
        cap = math.floor(amount * 100 + 1e-6)
        campaign = await self._campaign(campaign_id)  # its lookup reads spend_cap too
        if str(campaign.get("spend_cap", "")) != str(cap):
            await self.call("POST", f"/{campaign['id']}", data={"spend_cap": str(cap)})
        return f"campaign spend_cap {cap} ({cap / 100:.2f} {currency})"

    def _deployment(self, campaign_id: str, ad: Mapping[str, Any]) -> AdDeployment:
        return AdDeployment(
            ad_id=str(ad["id"]),
            asset_id=str(ad["name"]).removeprefix(self._name(campaign_id) + ":"),
            campaign_id=campaign_id,
            platform=self.name,
            status=_status(ad),
        )

    async def deploy(self, spec: AdSpec) -> AdDeployment:
        name = self._name(spec.campaign_id, spec.asset_id)
        rules = placement_rules(spec)
        shown = {(e.placement, e.media_type) for _, e in rules if e is not None}
        # the exports the ad shows, as 'placement media_type', in the spec's order
        placements = [
            f"{e.placement} {e.media_type}"
            for e in spec.exports
            if (e.placement, e.media_type) in shown
        ]
        found = await self._find("ads", name, "id,name,status,effective_status")
        if found is not None:
            dep = self._deployment(spec.campaign_id, found)
            return dep.model_copy(update={"placements": placements})
        campaign = await self._campaign(spec.campaign_id)
        # the visible AI label goes with the copy wherever the ad shows
        message = f"{spec.headline}\n\n{spec.disclosure}".strip()
        if rules:
            creative = await self._customized(spec, rules, message)
        else:
            image_hash = await self._upload(spec, spec.creative_uri, f"{spec.asset_id}.png")
            creative = {
                "object_story_spec": {
                    "page_id": self.page_id,
                    "link_data": {
                        "image_hash": image_hash,
                        "link": self.link_url,
                        "message": message,
                    },
                },
            }
        creative_id = await self._ensure("adcreatives", name, creative)
        adset_id = await self._ensure(
            "adsets",
            name,
            {
                "campaign_id": campaign["id"],
                # paused until an allocation gives it a budget
                "status": "PAUSED",
                "daily_budget": str(self.cpm_minor),
                "billing_event": "IMPRESSIONS",
                "optimization_goal": "REACH",
                # the brief's markets, which the disclosure label was chosen for; the
                # setting only where a caller gives none
                "targeting": {"geo_locations": {"countries": spec.markets or self.countries}},
            },
        )
        ad_id = await self._ensure(
            "ads",
            name,
            {"adset_id": adset_id, "creative": {"creative_id": creative_id}, "status": "ACTIVE"},
        )
        ad = await self.call(
            "GET", f"/{ad_id}", params={"fields": "id,name,status,effective_status"}
        )
        return self._deployment(spec.campaign_id, ad).model_copy(update={"placements": placements})

    async def _customized(
        self,
        spec: AdSpec,
        rules: list[tuple[dict[str, list[str]], PlacementExport | None]],
        message: str,
    ) -> dict[str, Any]:
        """The ad creative of placement asset customization: one ad image per export the
        rules show (the creative for a default rule without a 1:1 export), labelled, and a
        rule per placement group naming its image's label."""
        hashes: dict[str, str] = {}  # label -> image hash, each image uploaded once
        for _, export in rules:
            label = image_label(export.placement if export else None)
            if label in hashes:
                continue
            if export is None:
                uri, filename = spec.creative_uri, f"{spec.asset_id}.png"
            else:
                uri, filename = export.uri, f"{spec.asset_id}-{label.removeprefix('faceloop_')}.jpg"
            hashes[label] = await self._upload(spec, uri, filename)
        return {
            # an asset feed creative's story spec carries the Page only: the link, copy and
            # images are the feed's
            "object_story_spec": {"page_id": self.page_id},
            "asset_feed_spec": {
                "ad_formats": ["SINGLE_IMAGE"],
                "optimization_type": "PLACEMENT",
                "images": [{"hash": h, "adlabels": [{"name": lab}]} for lab, h in hashes.items()],
                "bodies": [{"text": message}],
                "link_urls": [{"website_url": self.link_url}],
                "call_to_action_types": ["LEARN_MORE"],
                "asset_customization_rules": [
                    {
                        "customization_spec": positions,
                        "image_label": {"name": image_label(e.placement if e else None)},
                        # 1 first; the default rule (empty spec) must be the lowest
                        "priority": i,
                    }
                    for i, (positions, e) in enumerate(rules, start=1)
                ],
            },
        }

    async def _upload(self, spec: AdSpec, uri: str, filename: str) -> str:
        """Upload one image's bytes; Meta keys images by content, so this is idempotent."""
        try:
            data = self.read_creative(uri)
        except (OSError, ValueError, FaceloopError) as err:
            raise ConnectorError(
                f"meta: cannot read {uri} of asset {spec.asset_id} ({err}); is "
                "FACELOOP_ASSET_ROOT the store the workers write?"
            ) from err
        body = {"bytes": base64.b64encode(data).decode(), "name": filename}
        out = await self.call("POST", f"/{self.account}/adimages", data=body)
        images = out.get("images", {})
        entry = images.get(filename) or next(iter(images.values()), None)
        if not entry or "hash" not in entry:
            raise ConnectorError(
                f"meta POST /{self.account}/adimages answered without an image hash; the "
                "API version may have changed its shape: check FACELOOP_META_API_VERSION"
            )
        return str(entry["hash"])

    async def _ads(self, campaign_id: str, fields: str) -> list[dict[str, Any]]:
        campaign = await self._campaign(campaign_id)
        rows: list[dict[str, Any]] = []
        params: dict[str, Any] | None = {
            "fields": fields,
            "effective_status": json.dumps(ALL_STATUSES),
            "limit": 200,
        }
        path = f"/{campaign['id']}/ads"
        after: str | None = None
        while True:
            assert params is not None
            if after:
                params["after"] = after
            data = await self.call("GET", path, params=params)
            rows.extend(data.get("data", []))
            after = ((data.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (data.get("paging") or {}).get("next"):
                return rows

    async def list_ads(self, campaign_id: str) -> list[AdDeployment]:
        ads = await self._ads(campaign_id, "id,name,status,effective_status")
        return [self._deployment(campaign_id, a) for a in ads]

    def _day(self, campaign: Mapping[str, Any], window: int) -> str:
        start = str(campaign.get("start_time") or campaign.get("created_time") or "")
        try:
            first = datetime.fromisoformat(start.replace("+0000", "+00:00")).date()
        except ValueError as err:
            raise ConnectorError(
                f"meta: campaign {campaign.get('name')!r} has no readable start_time "
                f"({start!r}); windows are days from it"
            ) from err
        return (first + timedelta(days=int(window))).isoformat()

    async def set_allocation(
        self, campaign_id: str, window: int, impressions: dict[str, int]
    ) -> None:
        campaign = await self._campaign(campaign_id)
        day = self._day(campaign, window)
        delivered = await self.call(
            "GET",
            f"/{campaign['id']}/insights",
            params={
                "level": "campaign",
                "fields": "impressions",
                "time_range": json.dumps({"since": day, "until": day}),
            },
        )
        if any(int(r.get("impressions", 0)) for r in delivered.get("data", [])):
            raise ConnectorError(
                f"meta: window {window} ({day}) of campaign {campaign_id!r} has delivered; "
                "its allocation is history and cannot be changed"
            )
        ads = await self._ads(campaign_id, "id,name,status,adset_id,effective_status")
        unknown = set(impressions) - {str(a["id"]) for a in ads}
        if unknown:
            raise ConnectorError(
                f"meta: allocation names ads {sorted(unknown)} that campaign {campaign_id!r} "
                "does not have"
            )
        for ad in ads:
            if _status(ad) == "removed":
                continue
            n = int(impressions.get(str(ad["id"]), 0))
            fields: dict[str, str] = {"status": "ACTIVE" if n > 0 else "PAUSED"}
            if n > 0:
                # ceil: the budget buys at least the allocated impressions at the planning CPM
                fields["daily_budget"] = str(-(-n * self.cpm_minor // 1000))
            await self.call("POST", f"/{ad['adset_id']}", data=fields)

    async def insights(self, campaign_id: str, window: int) -> list[AdInsight]:
        campaign = await self._campaign(campaign_id)
        first, day = self._day(campaign, 0), self._day(campaign, window)
        segment_of = {
            age: seg
            for seg, ages in self.segment_ages.items()
            for age in ages
            if f"{SEGMENT_LABEL}{seg}"
            in {str(x.get("name")) for x in (campaign.get("adlabels") or {}).get("data", [])}
        }
        params: dict[str, Any] = {
            "level": "ad",
            "fields": "ad_id,ad_name,impressions,inline_link_clicks,actions,spend,account_currency",
            "breakdowns": "age",
            "time_range": json.dumps({"since": first, "until": day}),
            "limit": 500,
        }
        totals: dict[tuple[str, str], AdInsight] = {}
        prefix = self._name(campaign_id) + ":"
        path = f"/{campaign['id']}/insights"
        while True:
            data = await self.call("GET", path, params=params)
            for row in data.get("data", []):
                segment = segment_of.get(str(row.get("age")))
                if segment is None:
                    continue  # an age outside every segment: not this campaign's audience
                ad_id = str(row["ad_id"])
                conversions = sum(
                    int(float(a.get("value", 0)))
                    for a in row.get("actions") or []
                    if a.get("action_type") == self.conversion_action
                )
                old = totals.get((ad_id, segment))
                imp, clk = int(row.get("impressions", 0)), int(row.get("inline_link_clicks", 0))
                # spend: a decimal string in the ad account's currency (`account_currency`)
                spend = self.spend(row.get("spend") or 0, row.get("account_currency"), self.account)
                totals[(ad_id, segment)] = AdInsight(
                    ad_id=ad_id,
                    asset_id=str(row.get("ad_name", "")).removeprefix(prefix),
                    segment=segment,
                    impressions=imp + (old.impressions if old else 0),
                    clicks=clk + (old.clicks if old else 0),
                    conversions=conversions + (old.conversions if old else 0),
                    spend=spend + ((old.spend or 0.0) if old else 0.0),
                )
            after = ((data.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (data.get("paging") or {}).get("next"):
                break
            params["after"] = after
        return sorted(totals.values(), key=lambda i: (i.ad_id, i.segment))

    async def reviews(self, campaign_id: str) -> list[AdReview]:
        ads = await self._ads(campaign_id, "id,name,status,effective_status,ad_review_feedback")
        prefix = self._name(campaign_id) + ":"
        out = []
        for ad in ads:
            status = str(ad.get("effective_status"))
            if status in REMOVED_STATUSES:
                continue
            feedback = ad.get("ad_review_feedback") or {}
            reasons = [f"{k}: {v}" for k, v in (feedback.get("global") or {}).items()]
            for placement, found in (feedback.get("placement_specific") or {}).items():
                reasons += [f"{placement} {k}: {v}" for k, v in (found or {}).items()]
            out.append(
                AdReview(
                    ad_id=str(ad["id"]),
                    asset_id=str(ad["name"]).removeprefix(prefix),
                    status=REVIEW.get(status, "approved"),
                    platform_status=status,
                    reasons=reasons,
                )
            )
        return out

    async def _ad(self, campaign_id: str, ad_id: str) -> dict[str, Any]:
        ad: dict[str, Any] = await self.call(
            "GET", f"/{ad_id}", params={"fields": "id,name,status,effective_status,creative"}
        )
        if not str(ad.get("name", "")).startswith(self._name(campaign_id) + ":"):
            raise ConnectorError(
                f"meta: ad {ad_id!r} is not an ad of campaign {campaign_id!r}", status=404
            )
        return ad

    async def pause(self, campaign_id: str, ad_id: str) -> AdDeployment:
        ad = await self._ad(campaign_id, ad_id)
        # by its own status: a disapproved ad is paused too, so a later approval on appeal
        # does not put it back on air behind faceloop's back
        if str(ad.get("status")) not in {"PAUSED", *REMOVED_STATUSES}:
            await self.call("POST", f"/{ad_id}", data={"status": "PAUSED"})
            ad = await self._ad(campaign_id, ad_id)
        return self._deployment(campaign_id, ad)

    async def remove(self, campaign_id: str, ad_id: str) -> AdDeployment:
        ad = await self._ad(campaign_id, ad_id)
        if _status(ad) != "removed":
            await self.call("POST", f"/{ad_id}", data={"status": "DELETED"})
        creative = (ad.get("creative") or {}).get("id")
        if creative:
            # the creative holds the image and the copy: erasure deletes it, not just the ad
            try:
                await self.call("DELETE", f"/{creative}")
            except ConnectorError as err:
                if err.status != 404:
                    raise
        return self._deployment(campaign_id, await self._ad(campaign_id, ad_id))


def meta_from_settings(settings: Settings) -> MetaConnector:
    """The Meta connector configured by FACELOOP_META_* (faceloop.settings.Settings)."""
    from faceloop.connectors.segmented import asset_reader

    account, page = settings.meta_ad_account_id, settings.meta_page_id
    token, link = settings.meta_access_token, settings.meta_link_url
    if account is None or page is None or token is None or link is None:
        missing = [
            f"FACELOOP_META_{name.upper()}"
            for name, value in (
                ("ad_account_id", account),
                ("page_id", page),
                ("access_token", token),
                ("link_url", link),
            )
            if value is None
        ]
        raise ConnectorError(
            f"meta connector is not configured: set {', '.join(missing)} (docs/connectors.md)"
        )
    return MetaConnector(
        base_url=settings.meta_base_url,
        api_version=settings.meta_api_version,
        ad_account_id=account,
        page_id=page,
        access_token=token.get_secret_value(),
        link_url=link,
        read_creative=asset_reader(settings),
        countries=settings.meta_countries,
        segment_ages=settings.meta_segment_ages,
        cpm_minor=settings.meta_cpm_minor,
        conversion_action=settings.meta_conversion_action,
        cost_currency=settings.cost_currency,
    )


__all__ = [
    "AGE_BUCKETS",
    "MetaConnector",
    "image_label",
    "meta_from_settings",
    "placement_rules",
]
