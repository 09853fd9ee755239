"""Google Ads connector over the Google Ads API's REST interface (plain httpx).

Why REST and not the `google-ads` SDK: the SDK speaks gRPC with protobuf messages; its
retry, logging and credential handling would sit beside `HttpConnector`'s (one framework
for pacing, backoff and reconcile across Meta, Google and TikTok), it pulls grpcio and
protobuf into every worker, and a gRPC service is much harder to fake in-process than JSON
over HTTP. The REST interface carries the same resources, `partialFailure`,
`validateOnly` and GAQL (`googleAds:searchStream`), with JSON field names in camelCase.

How faceloop maps onto Google Ads (docs/connectors.md):

- campaign `faceloop:<campaign id>`, a Display campaign with its own daily budget;
- one ad group per audience segment, named `<segment> share=<share>`: the marketer sets the
  segment's targeting on the ad group (faceloop does not map segment descriptions to Google
  audiences);
- an ad (faceloop's `ad_id` = `fl-<asset id>`, the name every platform object of it
  carries) = its image assets + a responsive display ad of that name in every segment's ad
  group, created in one `adGroupAds:mutate` with `partialFailure`. The marketing image is
  the 1.91:1 placement export (asset `fl-<asset id> 1.91:1`), the square marketing image
  the 1:1 export (`fl-<asset id> 1:1`), each as the deploy gate admitted it; where an
  export is missing the creative itself (asset `fl-<asset id>`) stands in;
- a KPI window = `window_days` reporting days from the campaign's start date; insights are a
  GAQL report over [start, end of window], so they are cumulative by construction; spend is
  `metrics.cost_micros` (micros of the customer's `customer.currency_code`, which must be
  the deployment's FACELOOP_COST_CURRENCY: another is refused, not converted);
- an allocation = the campaign's daily budget (impressions x target CPM) plus which ads
  serve in which segment (ENABLED / PAUSED). Google Ads has no per-ad budget, so how the
  budget splits between the serving ads is Google's decision (`exact_delivery` is False).

The AI-content disclosure: the image asset carries `syntheticContentInfo.advertiserAttestation`
(`source: ADVERTISER_ATTESTED`, `status: IS_SYNTHETIC`; Asset.synthetic_content_info, API
v22+), and the visible label per market (`AdSpec.disclosure`) is the ad's description.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from faceloop.connectors.base import AdDeployment, AdInsight, AdReview, AdSpec, ReviewStatus
from faceloop.connectors.http_base import Failure, PlatformRefused, Uncertain
from faceloop.connectors.segmented import (
    SegmentedConnector,
    asset_of,
    asset_reader,
    segment_name,
    segment_of,
    worst_reviews,
)
from faceloop.errors import ConnectorError
from faceloop.models import AudienceSegment, Placement
from faceloop.settings import GoogleAdsSettings, Settings

_RETRY_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")
# RESOURCE_EXHAUSTED and friends: retried after the delay Google names
_THROTTLE_STATUSES = {"RESOURCE_EXHAUSTED"}
_TRANSIENT_STATUSES = {"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED"}
# Google's limits for a responsive display ad
HEADLINE_MAX, LONG_HEADLINE_MAX, DESCRIPTION_MAX = 30, 90, 90
# a responsive display ad's marketing image (landscape) and square marketing image
PLACEMENTS: tuple[Placement, Placement] = ("1.91:1", "1:1")


def _quote(text: str) -> str:
    """A GAQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _short_headline(text: str) -> str:
    """A headline within Google's 30 characters: the message, cut at a word if it must be."""
    if len(text) <= HEADLINE_MAX:
        return text
    cut = text[: HEADLINE_MAX - 1].rsplit(" ", 1)[0].rstrip(" ,.;:-")
    return f"{cut or text[: HEADLINE_MAX - 1]}…"


def _failure_text(errors: list[dict[str, Any]]) -> str:
    """Google's errors, each with its error code and field path, for a person to read."""
    parts = []
    for e in errors[:5]:
        code = "/".join(f"{k}={v}" for k, v in (e.get("errorCode") or {}).items())
        path = ".".join(
            p.get("fieldName", "") + (f"[{p['index']}]" if "index" in p else "")
            for p in (e.get("location") or {}).get("fieldPathElements", [])
        )
        parts.append(f"{path or 'request'}: {e.get('message', '')} ({code})")
    return "; ".join(parts)


def _google_errors(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d in details:
        if str(d.get("@type", "")).endswith("GoogleAdsFailure"):
            out.extend(d.get("errors") or [])
    return out


class GoogleAdsConnector(SegmentedConnector):
    """AdConnector for Google Ads (see the module docstring for the mapping)."""

    name = "google_ads"
    platform_label = "Google Ads"
    daily_budgets = "the campaign's average daily budget"
    env_prefix = "FACELOOP_GOOGLE_ADS__"
    serving_word, paused_word, removed_word = "ENABLED", "PAUSED", "REMOVED"
    credentials_hint = (
        "check FACELOOP_GOOGLE_ADS__DEVELOPER_TOKEN (approved for this account), "
        "__ACCESS_TOKEN (not expired) and __CUSTOMER_ID"
    )

    def __init__(
        self,
        config: GoogleAdsSettings,
        read_creative: Callable[[str], bytes],
        **kw: Any,
    ) -> None:
        self.require(config, ("customer_id", "developer_token", "access_token"))
        assert config.developer_token and config.access_token and config.customer_id
        token, dev = (
            config.access_token.get_secret_value(),
            config.developer_token.get_secret_value(),
        )
        headers = {"authorization": f"Bearer {token}", "developer-token": dev}
        if config.login_customer_id:
            headers["login-customer-id"] = config.login_customer_id
        super().__init__(config.base_url, headers=headers, secrets=[token, dev], **kw)
        self.config = config
        self.read_creative = read_creative
        self.account = f"customer {config.customer_id}"
        self._prefix = f"/{config.api_version}/customers/{config.customer_id}"

    # -- platform facts -------------------------------------------------------------------

    def classify(self, response: httpx.Response) -> Failure | None:
        if response.is_success:
            return None
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        status = str(error.get("status") or response.reason_phrase)
        errors = _google_errors(error.get("details") or [])
        text = _failure_text(errors) or str(error.get("message") or response.text[:300])
        request_id = next(
            (d.get("requestId") for d in error.get("details") or [] if d.get("requestId")), None
        )
        if status in _THROTTLE_STATUSES or response.status_code == 429:
            delay = None
            for e in errors:
                raw = ((e.get("details") or {}).get("quotaErrorDetails") or {}).get("retryDelay")
                m = _RETRY_DELAY.match(str(raw or ""))
                if m:
                    delay = float(m[1])
            return Failure("throttle", text, code=status, retry_after_s=delay, trace_id=request_id)
        if status in _TRANSIENT_STATUSES or response.status_code >= 500:
            return Failure("transient", text, code=status, trace_id=request_id)
        if response.status_code == 404:
            return Failure("not_found", text, code=status, trace_id=request_id)
        return Failure("terminal", text, code=status, trace_id=request_id)

    def refusal_hint(self, failure: Failure) -> str:
        if failure.code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return self.credentials_hint
        return "fix the field named above (docs/connectors.md has the mapping)"

    # -- requests -------------------------------------------------------------------------

    async def search(self, query: str) -> list[dict[str, Any]]:
        """Every row of a GAQL query (googleAds:searchStream: one request, all batches)."""
        batches = await self.call(
            "POST", f"{self._prefix}/googleAds:searchStream", json={"query": query}
        )
        return [row for batch in batches or [] for row in batch.get("results") or []]

    async def mutate(
        self,
        collection: str,
        operations: list[dict[str, Any]],
        *,
        partial_failure: bool = False,
        creates: bool = False,
    ) -> list[str | None]:
        """Resource names of the operations' results (None for an operation that failed in
        partial-failure mode, reported by `PlatformRefused` after the rest went through).

        Creates are not retried blind (`creates`): a lost answer surfaces as `Uncertain`
        for the caller to reconcile by name. With `validate_only` set, Google only checks."""
        body: dict[str, Any] = {"operations": operations}
        if partial_failure:
            body["partialFailure"] = True
        if self.config.validate_only:
            body["validateOnly"] = True
        data = await self.call(
            "POST", f"{self._prefix}/{collection}:mutate", json=body, retry_timeouts=not creates
        )
        results = (data or {}).get("results") or []
        names: list[str | None] = [r.get("resourceName") for r in results]
        failure = (data or {}).get("partialFailureError")
        if failure:
            raise PlatformRefused(
                self.redact(
                    f"google_ads {collection}:mutate: {sum(n is None for n in names)} of "
                    f"{len(operations)} operations refused: "
                    f"{_failure_text(_google_errors(failure.get('details') or []))}; fix the "
                    "field named above (the other operations went through)"
                ),
                status=400,
            )
        return names

    # -- lookups --------------------------------------------------------------------------

    async def _campaign(self, campaign_id: str) -> dict[str, Any] | None:
        rows = await self.search(
            "SELECT campaign.id, campaign.name, campaign.status, campaign.start_date, "
            "campaign.campaign_budget FROM campaign WHERE campaign.name = "
            f"{_quote('faceloop:' + campaign_id)} AND campaign.status != 'REMOVED'"
        )
        return rows[0]["campaign"] if rows else None

    async def _ad_groups(self, campaign: dict[str, Any]) -> dict[str, str]:
        """Segment name -> ad group resource name."""
        rows = await self.search(
            "SELECT ad_group.name, ad_group.status FROM ad_group WHERE campaign.id = "
            f"{campaign['id']} AND ad_group.status != 'REMOVED'"
        )
        return {segment_of(r["adGroup"]["name"]): r["adGroup"]["resourceName"] for r in rows}

    async def _ads(self, campaign: dict[str, Any], name: str | None = None) -> list[dict[str, Any]]:
        where = f" AND ad_group_ad.ad.name = {_quote(name)}" if name else ""
        rows = await self.search(
            "SELECT ad_group_ad.ad.name, ad_group_ad.status, ad_group.name FROM ad_group_ad "
            f"WHERE campaign.id = {campaign['id']}{where}"
        )
        return [
            {
                "resourceName": r["adGroupAd"]["resourceName"],
                "name": r["adGroupAd"]["ad"]["name"],
                "status": r["adGroupAd"]["status"],
                "segment": segment_of(r["adGroup"]["name"]),
            }
            for r in rows
        ]

    async def _copies(
        self, campaign: dict[str, Any], name: str | None
    ) -> list[tuple[str, str, str]]:
        return [
            (a["name"], a["resourceName"], a["status"]) for a in await self._ads(campaign, name)
        ]

    async def _set_copies(self, handles: list[str], remove: bool) -> None:
        if remove:
            ops: list[dict[str, Any]] = [{"remove": rn} for rn in handles]
        else:
            ops = [
                {"update": {"resourceName": rn, "status": "PAUSED"}, "updateMask": "status"}
                for rn in handles
            ]
        await self.mutate("adGroupAds", ops)

    async def _create_named(
        self, what: str, collection: str, lookup: str, create: dict[str, Any]
    ) -> str:
        """The resource `lookup` (a GAQL query) finds, else the one created, at most once."""

        if self.config.validate_only:
            # checked by Google, nothing created: later operations that need this one as a
            # parent cannot be validated (docs/connectors.md)
            await self.mutate(collection, [{"create": create}])
            return f"{collection}/validate-only"

        async def find() -> str | None:
            rows = await self.search(lookup)
            return next(iter(rows[0].values()))["resourceName"] if rows else None

        async def make() -> str:
            names = await self.mutate(collection, [{"create": create}], creates=True)
            if names and names[0]:
                return names[0]
            raise Uncertain(f"google_ads {collection}:mutate returned no resource name")

        return await self.create_once(what, find, make)

    # -- the contract ---------------------------------------------------------------------

    async def ensure_campaign(self, campaign_id: str, segments: list[AudienceSegment]) -> None:
        name = self.check_campaign_id(campaign_id)
        camp = await self._campaign(campaign_id)
        if camp is None:
            budget = await self._create_named(
                f"budget of {name}",
                "campaignBudgets",
                "SELECT campaign_budget.id FROM campaign_budget WHERE campaign_budget.name = "
                f"{_quote(name)}",
                # a budget of its own (not shared): the allocation sets it per window
                {
                    "name": name,
                    "amountMicros": "0",
                    "deliveryMethod": "STANDARD",
                    "explicitlyShared": False,
                },
            )
            if self.config.validate_only:
                return
            await self._create_named(
                name,
                "campaigns",
                f"SELECT campaign.id FROM campaign WHERE campaign.name = {_quote(name)} "
                "AND campaign.status != 'REMOVED'",
                {
                    "name": name,
                    "status": "ENABLED",
                    "advertisingChannelType": "DISPLAY",
                    "campaignBudget": budget,
                    "manualCpm": {},
                    "containsEuPoliticalAdvertising": "DOES_NOT_CONTAIN_EU_POLITICAL_ADVERTISING",
                },
            )
            camp = await self._need_campaign(campaign_id)
        existing = await self.search(
            "SELECT ad_group.name FROM ad_group WHERE campaign.id = "
            f"{camp['id']} AND ad_group.status != 'REMOVED'"
        )
        self.check_segments(name, {r["adGroup"]["name"] for r in existing}, segments)
        for seg in segments:
            ag = segment_name(seg)
            await self._create_named(
                f"ad group {ag!r} of {name}",
                "adGroups",
                f"SELECT ad_group.id FROM ad_group WHERE campaign.id = {camp['id']} AND "
                f"ad_group.name = {_quote(ag)} AND ad_group.status != 'REMOVED'",
                {
                    "name": ag,
                    "campaign": camp["resourceName"],
                    "status": "ENABLED",
                    "type": "DISPLAY_STANDARD",
                },
            )

    def _ad(self, spec: AdSpec, ad_name: str, images: tuple[str, str]) -> dict[str, Any]:
        if len(spec.disclosure) > DESCRIPTION_MAX:
            raise ConnectorError(
                f"google_ads: the disclosure of {spec.variant_id} has {len(spec.disclosure)} "
                f"characters; Google's ad description holds {DESCRIPTION_MAX}: shorten the "
                "playbook's disclosure texts for these markets"
            )
        if len(spec.headline) > LONG_HEADLINE_MAX:
            raise ConnectorError(
                f"google_ads: the headline of {spec.variant_id} has {len(spec.headline)} "
                f"characters; Google's long headline holds {LONG_HEADLINE_MAX}: shorten the "
                "brief's message"
            )
        return {
            "name": ad_name,
            "finalUrls": [self.config.final_url],
            "responsiveDisplayAd": {
                # the 1.91:1 and the 1:1 placement exports (the creative where none)
                "marketingImages": [{"asset": images[0]}],
                "squareMarketingImages": [{"asset": images[1]}],
                "headlines": [{"text": _short_headline(spec.headline)}],
                "longHeadline": {"text": spec.headline},
                # the visible AI label of every market the ad runs in
                "descriptions": [{"text": spec.disclosure or spec.headline[:DESCRIPTION_MAX]}],
                "businessName": self.config.business_name,
            },
        }

    async def deploy(self, spec: AdSpec) -> AdDeployment:
        ad_name = self.external_id(spec.asset_id)
        if self.config.validate_only:
            # the copy against Google's limits here, the image asset by Google
            self._ad(spec, ad_name, ("validate-only", "validate-only"))
            await self._images(spec, ad_name)
            return AdDeployment(
                ad_id=ad_name,
                asset_id=spec.asset_id,
                campaign_id=spec.campaign_id,
                platform=self.name,
                status="paused",
            )
        camp = await self._need_campaign(spec.campaign_id)
        groups = await self._ad_groups(camp)

        async def complete() -> list[dict[str, Any]] | None:
            ads = await self._ads(camp, ad_name)
            return ads if groups and {a["segment"] for a in ads} >= set(groups) else None

        async def create() -> list[dict[str, Any]]:
            ads = await self._ads(camp, ad_name)
            missing = [s for s in groups if s not in {a["segment"] for a in ads}]
            ad = self._ad(spec, ad_name, await self._images(spec, ad_name))
            ops = [
                {"create": {"adGroup": groups[s], "status": "ENABLED", "ad": ad}} for s in missing
            ]
            # one request for all segments: an ad group that refuses (policy, limits) does
            # not stop the others, and the refusal names its operation and field
            await self.mutate("adGroupAds", ops, partial_failure=True, creates=True)
            return await self._ads(camp, ad_name)

        ads = await self.create_once(f"ad {ad_name}", complete, create)
        dep = self._deployment(spec.campaign_id, ad_name, [a["status"] for a in ads])
        sent = [e for e in (spec.export_for(p) for p in PLACEMENTS) if e is not None]
        return dep.model_copy(
            update={"placements": [f"{e.placement} {e.media_type}" for e in sent]}
        )

    async def _images(self, spec: AdSpec, ad_name: str) -> tuple[str, str]:
        """The landscape (1.91:1) and square (1:1) image assets of the ad: the placement
        exports the deploy gate admitted, the creative itself for a missing one."""
        made: dict[str, str] = {}  # name -> asset: the creative is uploaded once
        for placement in PLACEMENTS:
            export = spec.export_for(placement)
            name, uri = (
                (ad_name, spec.creative_uri)
                if export is None
                else (f"{ad_name} {placement}", export.uri)
            )
            if name not in made:
                made[name] = await self._image(name, uri)
            made[placement] = made[name]
        return made[PLACEMENTS[0]], made[PLACEMENTS[1]]

    async def _image(self, name: str, uri: str) -> str:
        data = self.read_creative(uri)
        return await self._create_named(
            f"image asset {name}",
            "assets",
            f"SELECT asset.id FROM asset WHERE asset.name = {_quote(name)}",
            {
                "name": name,
                "type": "IMAGE",
                "imageAsset": {"data": base64.b64encode(data).decode()},
                # Google's AI-content attestation (Asset.synthetic_content_info, v22+)
                "syntheticContentInfo": {
                    "advertiserAttestation": {
                        "source": "ADVERTISER_ATTESTED",
                        "status": "IS_SYNTHETIC",
                    }
                },
            },
        )

    async def set_allocation(
        self, campaign_id: str, window: int, impressions: dict[str, int]
    ) -> None:
        camp = await self._need_campaign(campaign_id)
        segments = await self._ad_groups(camp)
        await self._allocate(
            camp, campaign_id, window, {s: impressions for s in segments}, sum(impressions.values())
        )

    async def set_segment_allocation(
        self, campaign_id: str, window: int, impressions: Mapping[str, Mapping[str, int]]
    ) -> None:
        camp = await self._need_campaign(campaign_id)
        total = sum(n for by_ad in impressions.values() for n in by_ad.values())
        await self._allocate(camp, campaign_id, window, impressions, total)

    async def _allocate(
        self,
        camp: dict[str, Any],
        campaign_id: str,
        window: int,
        by_segment: Mapping[str, Mapping[str, int]],
        total: int,
    ) -> None:
        """The campaign budget buys `total`; the ads a segment names serve there."""
        self.check_not_delivered(campaign_id, window)
        ads = await self._ads(camp)
        ops = []
        for ad in ads:
            if ad["status"] == "REMOVED":
                continue
            serve = (by_segment.get(ad["segment"]) or {}).get(ad["name"], 0) > 0
            status = "ENABLED" if serve else "PAUSED"
            if ad["status"] != status:
                ops.append(
                    {
                        "update": {"resourceName": ad["resourceName"], "status": status},
                        "updateMask": "status",
                    }
                )
        per_day = total * self.config.target_cpm_micros // 1000 // self.config.window_days
        budget = {"resourceName": camp["campaignBudget"], "amountMicros": str(per_day)}
        await self.mutate("campaignBudgets", [{"update": budget, "updateMask": "amountMicros"}])
        if ops:
            await self.mutate("adGroupAds", ops)

    def _window_dates(self, camp: dict[str, Any], window: int) -> tuple[str, str]:
        start = dt.date.fromisoformat(str(camp.get("startDate", ""))[:10])
        end = start + dt.timedelta(days=(window + 1) * self.config.window_days - 1)
        return start.isoformat(), end.isoformat()

    async def insights(self, campaign_id: str, window: int) -> list[AdInsight]:
        camp = await self._need_campaign(campaign_id)
        start, end = self._window_dates(camp, window)
        rows = await self.search(
            "SELECT ad_group.name, ad_group_ad.ad.name, metrics.impressions, metrics.clicks, "
            "metrics.conversions, metrics.cost_micros, customer.currency_code FROM "
            f"ad_group_ad WHERE campaign.id = {camp['id']} AND "
            f"segments.date BETWEEN '{start}' AND '{end}'"
        )
        self._delivered.add((campaign_id, window))
        out = []
        for r in rows:
            name = r["adGroupAd"]["ad"]["name"]
            m = r.get("metrics") or {}
            # cost_micros: int64 (a string in JSON) in micros of the customer's currency
            spend = self.spend(
                int(m.get("costMicros", 0)) / 1_000_000,
                (r.get("customer") or {}).get("currencyCode"),
                self.account,
            )
            out.append(
                AdInsight(
                    ad_id=name,
                    asset_id=asset_of(name),
                    segment=segment_of(r["adGroup"]["name"]),
                    impressions=int(m.get("impressions", 0)),
                    clicks=int(m.get("clicks", 0)),
                    # Google reports conversions as a double (fractional attribution)
                    conversions=round(float(m.get("conversions", 0))),
                    spend=spend,
                )
            )
        return sorted(out, key=lambda i: (i.ad_id, i.segment))

    async def reviews(self, campaign_id: str) -> list[AdReview]:
        """Google's policy review of each ad (`ad_group_ad.policy_summary`), the worst of
        its ad groups: DISAPPROVED anywhere -> disapproved; APPROVED_LIMITED or
        AREA_OF_INTEREST_ONLY -> with_issues; under review or appeal -> pending."""
        camp = await self._need_campaign(campaign_id)
        rows = await self.search(
            "SELECT ad_group_ad.ad.name, ad_group_ad.status, "
            "ad_group_ad.policy_summary.approval_status, "
            "ad_group_ad.policy_summary.review_status, "
            "ad_group_ad.policy_summary.policy_topic_entries FROM ad_group_ad "
            f"WHERE campaign.id = {camp['id']} AND ad_group_ad.status != 'REMOVED'"
        )
        reviews = []
        for r in rows:
            ad = r["adGroupAd"]
            policy = ad.get("policySummary") or {}
            approval = str(policy.get("approvalStatus", "UNKNOWN"))
            review = str(policy.get("reviewStatus", ""))
            status: ReviewStatus
            if approval == "DISAPPROVED":
                status = "disapproved"
            elif approval in ("APPROVED_LIMITED", "AREA_OF_INTEREST_ONLY"):
                status = "with_issues"
            elif review in ("REVIEW_IN_PROGRESS", "UNDER_APPEAL") or approval == "UNKNOWN":
                status = "pending"
            else:
                status = "approved"
            name = ad["ad"]["name"]
            reviews.append(
                AdReview(
                    ad_id=name,
                    asset_id=asset_of(name),
                    status=status,
                    platform_status=approval,
                    reasons=[
                        f"{e.get('type', '')}: {e.get('topic', '')}"
                        for e in policy.get("policyTopicEntries") or []
                    ],
                )
            )
        return worst_reviews(reviews)


def google_ads_from_settings(settings: Settings) -> GoogleAdsConnector:
    """The google_ads connector with the settings' account; creatives read from the asset store."""
    return GoogleAdsConnector(
        settings.google_ads, asset_reader(settings), cost_currency=settings.cost_currency
    )


__all__ = ["GoogleAdsConnector", "google_ads_from_settings"]
