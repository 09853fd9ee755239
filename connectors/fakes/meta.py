"""FAKE: a local stand-in for the Graph API (Marketing API subset), for tests and the soak
bench. It never talks to Meta; it answers the calls `faceloop.connectors.meta` makes the
way the Marketing API documents them, with the same error bodies and usage header:

- POST /act_{id}/adimages (base64 `bytes`; images keyed by content hash), POST and GET
  (with `filtering` on name, `effective_status`) of /act_{id}/campaigns, /adsets,
  /adcreatives, /ads; an ad creative is a single image (`object_story_spec.link_data`) or
  placement asset customization (`asset_feed_spec`: SINGLE_IMAGE images with `adlabels`,
  `asset_customization_rules` of `customization_spec` + `image_label` + `priority`, checked
  as `_check_asset_feed` lists); GET /{campaign}/ads; GET, POST (status, daily_budget) and DELETE of
  /{object id}; GET /{campaign}/insights at level=ad with breakdowns=age or level=campaign,
  over a `time_range`;
- errors as {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}: 190
  for a wrong token, 100 for a bad or missing parameter, 100/33 for an unknown object,
  80004 when the ad account's call budget is spent; throttles 4, 17, 613, 80004 and 5xx
  (codes 1, 2) are injected by `faults.FaultyTransport` through `throttle_response` and
  `server_error_response`;
- X-Business-Use-Case-Usage on every answer: call_count, total_cputime, total_time in
  percent of a rolling call budget (`call_limit` per `window_s` on the fake's clock) and
  estimated_time_to_regain_access in minutes.

Fake-only behaviour, because a fake has no clock of days and no reviewers:
- a day is delivered the first time ad-level insights ask for a range that includes it,
  spending each active ad set's daily budget at `cpm_minor` (all of it: a test account
  that always wins its auctions), split over age buckets by fixed weights; insights'
  `spend` (a decimal string in the account currency, as Meta sends it) bills every
  delivered impression at `cpm_minor`, and `account_currency` is the fake's `currency`;
- an ad is reviewed when it is first read or delivered: `disapprove(asset, reason)` makes
  a rule, every other ad is approved;
- a campaign's `spend_cap` (minor units, at least 10,000 in every currency: Meta's 100 USD
  minimum, not converted) ends delivery where the next impression would pass it: a day
  that would spend more is cut, in proportion, to what the cap has left.

`ledger` counts committed creates by name (the connector's external id), so duplicates
are counted here, on the server's side.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections import deque
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from faceloop.connectors.fakes.faults import FakeLedger, FaultPlan, FaultyTransport
from faceloop.connectors.http_base import Clock, RealClock, RetryPolicy, VirtualClock
from faceloop.models import AudienceSegment

if TYPE_CHECKING:
    from faceloop.connectors.meta import MetaConnector
    from faceloop.connectors.soak import SoakRig

AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_WEIGHTS = (0.22, 0.26, 0.2, 0.14, 0.1, 0.08)
JSON_FIELDS = {
    "adlabels",
    "asset_feed_spec",
    "creative",
    "object_story_spec",
    "special_ad_categories",
    "targeting",
    "filtering",
    "effective_status",
    "time_range",
}
REQUIRED = {
    "campaigns": ("name", "objective", "special_ad_categories"),
    "adsets": ("name", "campaign_id", "daily_budget", "billing_event", "targeting"),
    "adcreatives": ("name", "object_story_spec"),
    "ads": ("name", "adset_id", "creative"),
}
HIDDEN = {"DELETED", "ARCHIVED"}
# customization_spec keys and the positions the Marketing API documents for them
# (placement targeting; Placement Asset Customization, "customization_spec")
POSITIONS = {
    "facebook_positions": (
        "facebook",
        {
            "feed",
            "right_hand_column",
            "marketplace",
            "video_feeds",
            "search",
            "story",
            "facebook_reels",
            "facebook_reels_overlay",
            "profile_feed",
            "instream_video",
            "notification",
        },
    ),
    "instagram_positions": (
        "instagram",
        {
            "stream",
            "story",
            "explore",
            "explore_home",
            "reels",
            "profile_feed",
            "ig_search",
            "profile_reels",
        },
    ),
    "messenger_positions": ("messenger", {"messenger_home", "sponsored_messages", "story"}),
    "audience_network_positions": ("audience_network", {"classic", "rewarded_video"}),
    "threads_positions": ("threads", {"threads_stream"}),
}
PLATFORMS = {"facebook", "instagram", "messenger", "audience_network", "threads"}
THROTTLES = (
    (4, None, "Application request limit reached"),
    (17, 2446079, "User request limit reached"),
    (613, 1487742, "Calls to this api have exceeded the rate limit."),
    (
        80004,
        2446079,
        "There have been too many calls to this ad-account. Wait a bit and try again.",
    ),
)
# Segments of the soak and contract tests, mapped onto the fake's age buckets
TEST_SEGMENT_AGES = {"young": ["18-24", "25-34", "35-44"], "old": ["45-54", "55-64", "65+"]}
TOKEN = "FAKE-META-TOKEN"
ACCOUNT = "1234567890"
PAGE = "111222333"


class FakeMetaError(Exception):
    def __init__(self, status: int, code: int, message: str, subcode: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.subcode = status, code, message, subcode


def _split(n: int) -> list[int]:
    """n over the age buckets by AGE_WEIGHTS, exactly (largest remainder)."""
    raw = [n * w for w in AGE_WEIGHTS]
    out = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[: n - sum(out)]:
        out[i] += 1
    return out


class MetaFake:
    """FAKE Graph API for one ad account; `app` is its ASGI app."""

    def __init__(
        self,
        *,
        account: str = ACCOUNT,
        token: str = TOKEN,
        clock: Clock | None = None,
        call_limit: int = 100_000,
        window_s: float = 3600.0,
        cpm_minor: int = 1000,
        start: date = date(2026, 1, 5),
        currency: str = "USD",
    ) -> None:
        self.account = f"act_{account}"
        # the ad account's currency (ISO 4217): insights' `account_currency`, what spend is in
        self.currency = currency
        self.token = token
        self.clock: Clock = clock or RealClock()
        self.call_limit = call_limit
        self.window_s = window_s
        self.cpm_minor = cpm_minor
        self.start = start
        self.ledger = FakeLedger()
        self.objects: dict[str, dict[str, Any]] = {}
        self.images: dict[str, str] = {}
        self.calls: deque[float] = deque()
        self.delivered: dict[str, int] = {}  # Meta campaign id -> days delivered
        # (ad id, day, age) -> (impressions, clicks, conversions)
        self.rows: dict[tuple[str, int, str], tuple[int, int, int]] = {}
        self.served: dict[tuple[str, int], dict[str, int]] = {}  # (campaign, day) -> ad: n
        self.rules: list[tuple[str, str]] = []
        self._ids = itertools.count(120_200_000_000_001)
        self.app = Starlette(
            routes=[
                Route("/{version}/{path:path}", self._handle, methods=["GET", "POST", "DELETE"])
            ]
        )

    # -- test hooks ----------------------------------------------------------------------

    def disapprove(self, asset_id: str, reason: str = "Ads may not use misleading imagery") -> None:
        """Ads whose name ends with `asset_id` fail review with `reason` (when reviewed)."""
        self.rules.append((asset_id, reason))

    def disapprove_next(
        self, count: int = 1, reason: str = "Ads may not use misleading imagery"
    ) -> None:
        """The next `count` ads reviewed fail review with `reason`."""
        self.rules.extend([("", reason)] * count)

    def set_review(self, ad_id: str, status: str, reasons: dict[str, str] | None = None) -> None:
        """Put an ad in a review state now (PENDING_REVIEW, ACTIVE, DISAPPROVED, WITH_ISSUES)."""
        ad = self.objects[ad_id]
        ad["review"] = status
        ad["ad_review_feedback"] = {"global": reasons} if reasons else {}

    def ad_status(self, ad_id: str) -> str | None:
        ad = self.objects.get(ad_id)
        if ad is None or ad["kind"] != "ads":
            return None
        if ad["status"] in HIDDEN:
            return "removed"
        return "paused" if ad["status"] == "PAUSED" or ad["review"] == "DISAPPROVED" else "active"

    def allocation(self, campaign_id: str, window: int) -> dict[str, int]:
        campaign = self._by_name("campaigns", f"faceloop:{campaign_id}")
        if campaign is None:
            return {}
        if (campaign["id"], window) in self.served:
            return dict(self.served[(campaign["id"], window)])
        return self._budgets(campaign["id"])

    def throttle_response(self, request: httpx.Request, rng: random.Random) -> httpx.Response:
        code, sub, message = rng.choice(THROTTLES)
        regain = rng.randint(1, 3) if code == 80004 else 0
        body = self._error_body(code, message, sub)
        headers = {"x-business-use-case-usage": self._usage_header(100.0, regain)}
        return httpx.Response(400, json=body, headers=headers)

    def server_error_response(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" or len(request.url.path) % 2:
            body = self._error_body(2, "Service temporarily unavailable")
            return httpx.Response(503, json=body)
        body = self._error_body(1, "An unknown error occurred")
        body["error"]["is_transient"] = True
        return httpx.Response(500, json=body)

    # -- plumbing --------------------------------------------------------------------------

    def _new_id(self) -> str:
        return str(next(self._ids))

    def _error_body(self, code: int, message: str, sub: int | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": hashlib.sha1(f"{message}{len(self.calls)}".encode()).hexdigest()[:11],
        }
        if sub is not None:
            err["error_subcode"] = sub
        return {"error": err}

    def _usage_header(self, percent: float, regain_min: int) -> str:
        entry = {
            "type": "ads_management",
            "call_count": int(percent),
            "total_cputime": int(percent * 0.6),
            "total_time": int(percent * 0.8),
            "estimated_time_to_regain_access": regain_min,
        }
        return json.dumps({self.account.removeprefix("act_"): [entry]})

    def _usage(self) -> tuple[float, int]:
        now = self.clock.monotonic()
        while self.calls and self.calls[0] <= now - self.window_s:
            self.calls.popleft()
        percent = 100.0 * len(self.calls) / self.call_limit
        regain = 0
        if len(self.calls) >= self.call_limit:
            regain = max(1, int((self.calls[0] + self.window_s - now) // 60) + 1)
        return percent, regain

    async def _handle(self, request: Request) -> JSONResponse:
        self.ledger.requests += 1
        percent, regain = self._usage()
        headers = {"x-business-use-case-usage": self._usage_header(percent, regain)}
        if request.headers.get("authorization") != f"Bearer {self.token}":
            body = self._error_body(190, "Invalid OAuth 2.0 Access Token", 463)
            return JSONResponse(body, status_code=400, headers=headers)
        if regain:
            body = self._error_body(80004, THROTTLES[3][2], 2446079)
            return JSONResponse(body, status_code=400, headers=headers)
        self.calls.append(self.clock.monotonic())
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(parse_qsl((await request.body()).decode()))
        for key in JSON_FIELDS & params.keys():
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                body = self._error_body(100, f"(#100) Param {key} must be a JSON value")
                return JSONResponse(body, status_code=400, headers=headers)
        try:
            result = self._route(request.method, request.path_params["path"], params)
        except FakeMetaError as err:
            body = self._error_body(err.code, err.message, err.subcode)
            return JSONResponse(body, status_code=err.status, headers=headers)
        return JSONResponse(result, headers=headers)

    def _route(self, method: str, path: str, p: dict[str, Any]) -> Any:
        parts = path.strip("/").split("/")
        if parts[0].startswith("act_"):
            if parts[0] != self.account:
                raise FakeMetaError(400, 100, f"(#100) Ad account {parts[0]} does not exist", 33)
            if len(parts) != 2:
                raise FakeMetaError(400, 100, f"Unknown path {path}")
            edge = parts[1]
            if edge == "adimages" and method == "POST":
                return self._upload(p)
            if edge in REQUIRED and method == "POST":
                return self._create(edge, p)
            if edge in REQUIRED and method == "GET":
                rows = [o for o in self.objects.values() if o["kind"] == edge]
                return self._page(self._filter(rows, p), p)
            raise FakeMetaError(400, 100, f"Unsupported {method} request on {edge}")
        obj = self._get(parts[0])
        if len(parts) == 2 and parts[1] == "ads" and method == "GET":
            rows = [
                o
                for o in self.objects.values()
                if o["kind"] == "ads" and self.objects[o["adset_id"]]["campaign_id"] == obj["id"]
            ]
            return self._page(self._filter(rows, p), p)
        if len(parts) == 2 and parts[1] == "insights" and method == "GET":
            return self._insights(obj, p)
        if len(parts) == 1 and method == "GET":
            return self._fields(obj, p)
        if len(parts) == 1 and method == "POST":
            return self._update(obj, p)
        if len(parts) == 1 and method == "DELETE":
            obj["status"] = "DELETED"
            if obj["kind"] == "adcreatives":
                del self.objects[obj["id"]]
            self.ledger.writes += 1
            return {"success": True}
        raise FakeMetaError(400, 100, f"Unsupported {method} request on {path}")

    def _get(self, object_id: str) -> dict[str, Any]:
        obj = self.objects.get(object_id)
        if obj is None:
            raise FakeMetaError(
                400,
                100,
                f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot "
                "be loaded due to missing permissions, or does not support this operation.",
                33,
            )
        if obj["kind"] == "ads":
            self._review(obj)
        return obj

    def _by_name(self, kind: str, name: str) -> dict[str, Any] | None:
        for o in self.objects.values():
            if o["kind"] == kind and o["name"] == name:
                return o
        return None

    def _upload(self, p: dict[str, Any]) -> dict[str, Any]:
        import base64
        import binascii

        try:
            data = base64.b64decode(p["bytes"], validate=True)
        except (KeyError, binascii.Error) as err:
            raise FakeMetaError(400, 100, "(#100) Param bytes must be base64 image data") from err
        digest = hashlib.md5(data).hexdigest()  # Meta's image hashes look like md5 hex
        self.images[digest] = p.get("name", digest)
        name = p.get("name", digest)
        return {"images": {name: {"hash": digest, "url": f"https://fake.invalid/{digest}"}}}

    def _create(self, kind: str, p: dict[str, Any]) -> dict[str, Any]:
        missing = [f for f in REQUIRED[kind] if f not in p]
        if missing:
            raise FakeMetaError(400, 100, f"(#100) The parameter {missing[0]} is required", 1487079)
        obj: dict[str, Any] = {"id": self._new_id(), "kind": kind, **p}
        obj.setdefault("status", "ACTIVE")
        if kind == "campaigns":
            if "spend_cap" in p:
                obj["spend_cap"] = str(self._spend_cap(p["spend_cap"]))
            obj["start_time"] = f"{self.start.isoformat()}T00:00:00+0000"
            obj["adlabels"] = {
                "data": [{"id": self._new_id(), "name": x["name"]} for x in p.get("adlabels", [])]
            }
        elif kind == "adsets":
            self._get(p["campaign_id"])
            self._budget(p["daily_budget"])
        elif kind == "ads":
            adset = self._get(p["adset_id"])
            obj["campaign_id"] = adset["campaign_id"]
            obj["creative"] = {"id": str(p["creative"].get("creative_id"))}
            self._get(obj["creative"]["id"])
            obj["review"] = "PENDING_REVIEW"
            obj["ad_review_feedback"] = {}
        elif kind == "adcreatives":
            if "asset_feed_spec" in p:
                if "link_data" in p["object_story_spec"]:
                    raise FakeMetaError(
                        400,
                        100,
                        "(#100) FAKE: object_story_spec.link_data and asset_feed_spec both "
                        "give the ad's image and link; an asset feed creative's story spec "
                        "names the Page only",
                    )
                self._check_asset_feed(p["asset_feed_spec"])
            else:
                link = p["object_story_spec"].get("link_data", {})
                if link.get("image_hash") not in self.images:
                    raise FakeMetaError(400, 100, "(#100) Invalid image hash", 1487242)
        self.objects[obj["id"]] = obj
        self.ledger.created(kind, str(p["name"]))
        self.ledger.writes += 1
        return {"id": obj["id"]}

    def _check_asset_feed(self, feed: Any) -> None:
        """The subset of asset_feed_spec faceloop sends (Placement Asset Customization):
        SINGLE_IMAGE, images of this account's library each with one label, a link URL, at
        most one description, at least two rules, each naming a label of the feed and
        documented placements; the default rule (empty spec) has the lowest priority."""

        def bad(message: str) -> FakeMetaError:
            return FakeMetaError(400, 100, f"(#100) asset_feed_spec: {message}")

        if not isinstance(feed, dict):
            raise bad("must be a JSON object")
        if feed.get("ad_formats") != ["SINGLE_IMAGE"]:
            raise bad('FAKE: only ad_formats ["SINGLE_IMAGE"] is implemented')
        if not feed.get("link_urls") or not all(
            isinstance(u, dict) and u.get("website_url") for u in feed["link_urls"]
        ):
            raise bad('link_urls is required: [{"website_url": ...}]')
        if len(feed.get("descriptions") or []) > 1:
            raise bad("only one link description: it cannot be customized per placement")
        images = feed.get("images")
        if not isinstance(images, list) or not images:
            raise bad("images is required for the SINGLE_IMAGE format")
        labels: set[str] = set()
        for i, image in enumerate(images):
            if not isinstance(image, dict) or image.get("hash") not in self.images:
                raise FakeMetaError(
                    400, 100, f"(#100) asset_feed_spec: images[{i}]: Invalid image hash", 1487242
                )
            names = [a.get("name") for a in image.get("adlabels") or [] if isinstance(a, dict)]
            if len(names) != 1 or not isinstance(names[0], str) or not names[0]:
                raise bad(f'images[{i}].adlabels must be one label {{"name": ...}}')
            if names[0] in labels:
                raise bad(f"images[{i}]: label {names[0]!r} is on another image too")
            labels.add(names[0])
        rules = feed.get("asset_customization_rules")
        if not isinstance(rules, list) or len(rules) < 2:
            raise bad("placement asset customization needs more than one customization rule")
        priorities: list[int] = []
        default: int | None = None
        for i, rule in enumerate(rules):
            where = f"asset_customization_rules[{i}]"
            if not isinstance(rule, dict) or not isinstance(rule.get("customization_spec"), dict):
                raise bad(f"{where}.customization_spec is required")
            label = (rule.get("image_label") or {}).get("name")
            if label is None:
                raise bad(f"{where}.image_label is required for the SINGLE_IMAGE format")
            if label not in labels:
                raise bad(f"{where}.image_label {label!r} is not a label of the feed's images")
            priority = rule.get("priority", i + 1)
            if not isinstance(priority, int) or priority < 1 or priority in priorities:
                raise bad(f"{where}.priority must be a positive integer no other rule has")
            priorities.append(priority)
            spec = rule["customization_spec"]
            if not spec:
                default = priority
                continue
            self._check_customization(spec, where)
        if default is not None and default != max(priorities):
            raise bad("the default rule (empty customization_spec) must have the lowest priority")

    @staticmethod
    def _check_customization(spec: dict[str, Any], where: str) -> None:
        def bad(message: str) -> FakeMetaError:
            return FakeMetaError(400, 100, f"(#100) asset_feed_spec: {where}.{message}")

        unknown = set(spec) - {"publisher_platforms", "device_platforms", *POSITIONS}
        if unknown:
            raise bad(f"customization_spec has unsupported fields {sorted(unknown)}")
        platforms = spec.get("publisher_platforms")
        if not isinstance(platforms, list) or not platforms or set(platforms) - PLATFORMS:
            raise bad(f"publisher_platforms must be a non-empty list of {sorted(PLATFORMS)}")
        for key, (platform, allowed) in POSITIONS.items():
            positions = spec.get(key)
            if positions is None:
                if platform in platforms and platform in {"facebook", "instagram"}:
                    raise bad(f"{key} is required when {platform} is a publisher platform")
                continue
            if platform not in platforms:
                raise bad(f"{key} given but {platform} is not in publisher_platforms")
            if not isinstance(positions, list) or not positions or set(positions) - allowed:
                raise bad(f"{key} must be a non-empty list of {sorted(allowed)}")

    def _budget(self, value: Any) -> int:
        try:
            budget = int(value)
        except (TypeError, ValueError) as err:
            raise FakeMetaError(400, 100, "(#100) daily_budget must be an integer") from err
        if budget < 100:
            raise FakeMetaError(400, 100, "(#100) Your budget is too low", 1885272)
        return budget

    def _spend_cap(self, value: Any) -> int:
        try:
            cap = int(value)
        except (TypeError, ValueError) as err:
            raise FakeMetaError(400, 100, "(#100) spend_cap must be an integer") from err
        if cap < 10_000:
            raise FakeMetaError(
                400, 100, "(#100) The campaign spend cap must be at least 100.00", 1885650
            )
        return cap

    def _update(self, obj: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        if "status" in p:
            if p["status"] not in {"ACTIVE", "PAUSED", "DELETED", "ARCHIVED"}:
                raise FakeMetaError(400, 100, f"(#100) Invalid status {p['status']}")
            if obj["status"] in HIDDEN and p["status"] not in HIDDEN:
                raise FakeMetaError(400, 100, "(#100) A deleted object cannot be changed", 1487056)
            obj["status"] = p["status"]
        if "daily_budget" in p:
            if obj["kind"] != "adsets":
                raise FakeMetaError(400, 100, "(#100) daily_budget is a field of ad sets")
            obj["daily_budget"] = str(self._budget(p["daily_budget"]))
        if "spend_cap" in p:
            if obj["kind"] != "campaigns":
                raise FakeMetaError(400, 100, "(#100) spend_cap is a field of campaigns")
            obj["spend_cap"] = str(self._spend_cap(p["spend_cap"]))
        self.ledger.writes += 1
        return {"success": True}

    def _effective(self, obj: dict[str, Any]) -> str:
        if obj["status"] in HIDDEN:
            return str(obj["status"])
        if obj["kind"] == "ads":
            if obj["review"] == "DISAPPROVED":
                return "DISAPPROVED"
            if obj["status"] == "PAUSED":
                return "PAUSED"
            # FAKE ordering: a review state shows before the parent ad set's pause
            if obj["review"] in {"PENDING_REVIEW", "WITH_ISSUES"}:
                return str(obj["review"])
            adset = self.objects[obj["adset_id"]]
            if adset["status"] == "PAUSED":
                return "ADSET_PAUSED"
            return str(obj["review"])
        return str(obj["status"])

    def _fields(self, obj: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        wanted = [f for f in str(p.get("fields", "id,name")).split(",") if f]
        out: dict[str, Any] = {"id": obj["id"]}
        for f in wanted:
            if f == "effective_status":
                out[f] = self._effective(obj)
            elif f in obj and f not in {"kind", "review"}:
                out[f] = obj[f]
        return out

    def _filter(self, rows: list[dict[str, Any]], p: dict[str, Any]) -> list[dict[str, Any]]:
        statuses = set(p.get("effective_status") or [])
        out = []
        for o in rows:
            if o["kind"] == "ads":
                self._review(o)
            eff = self._effective(o)
            if statuses and eff not in statuses:
                continue
            if not statuses and eff in HIDDEN:
                continue
            ok = True
            for f in p.get("filtering") or []:
                if f.get("operator") != "EQUAL":
                    raise FakeMetaError(400, 100, "FAKE: only the EQUAL operator is implemented")
                ok &= str(o.get(f["field"])) == str(f["value"])
            if ok:
                out.append(self._fields(o, p))
        return out

    def _page(self, rows: list[dict[str, Any]], p: dict[str, Any]) -> dict[str, Any]:
        start = int(p.get("after") or 0)
        limit = int(p.get("limit") or 25)
        out: dict[str, Any] = {"data": rows[start : start + limit]}
        if start + limit < len(rows):
            out["paging"] = {
                "cursors": {"before": str(start), "after": str(start + limit)},
                "next": f"https://fake.invalid/next?after={start + limit}",
            }
        return out

    def _review(self, ad: dict[str, Any]) -> None:
        if ad["review"] != "PENDING_REVIEW":
            return
        for i, (asset, reason) in enumerate(self.rules):
            if str(ad["name"]).endswith(asset):
                if not asset:
                    del self.rules[i]  # a disapprove_next rule is used up
                ad["review"] = "DISAPPROVED"
                ad["ad_review_feedback"] = {"global": {"MISLEADING_CLAIMS": reason}}
                return
        ad["review"] = "ACTIVE"

    def _day_index(self, day: str) -> int:
        try:
            return (date.fromisoformat(day) - self.start).days
        except ValueError as err:
            raise FakeMetaError(400, 100, f"(#100) time_range date {day!r} is invalid") from err

    def _budgets(self, campaign_id: str) -> dict[str, int]:
        out = {}
        for ad in self.objects.values():
            if ad["kind"] != "ads" or ad["campaign_id"] != campaign_id:
                continue
            self._review(ad)
            adset = self.objects[ad["adset_id"]]
            if self._effective(ad) in {"ACTIVE", "WITH_ISSUES"} and adset["status"] == "ACTIVE":
                out[ad["id"]] = int(adset["daily_budget"]) * 1000 // self.cpm_minor
        return out

    def _deliver(self, campaign: dict[str, Any], through: int) -> None:
        for day in range(self.delivered.get(campaign["id"], 0), through + 1):
            served = self._capped(campaign, self._budgets(campaign["id"]))
            self.served[(campaign["id"], day)] = served
            for ad_id, n in served.items():
                seed = int(hashlib.sha256(f"{ad_id}:{day}".encode()).hexdigest()[:8], 16)
                ctr = 0.01 + (seed % 300) / 10_000  # 1 % to 4 %, fixed per ad and day
                for age, imp in zip(AGES, _split(n), strict=True):
                    clicks = int(imp * ctr)
                    self.rows[(ad_id, day, age)] = (imp, clicks, clicks // 10)
            self.delivered[campaign["id"]] = day + 1

    def _capped(self, campaign: dict[str, Any], served: dict[str, int]) -> dict[str, int]:
        """A day's impressions per ad, cut in proportion to what the campaign's spend_cap
        has left (all of them without a cap)."""
        if "spend_cap" not in campaign:
            return served
        ads = {o["id"] for o in self.objects.values() if o.get("campaign_id") == campaign["id"]}
        so_far = sum(imp for (a, _, _), (imp, _, _) in self.rows.items() if a in ads)
        # impressions the rest of the cap pays for, in minor units x 1000 to stay exact
        left = max(int(campaign["spend_cap"]) * 1000 - so_far * self.cpm_minor, 0)
        left //= self.cpm_minor
        total = sum(served.values())
        if total <= left:
            return served
        return {ad: n * left // total for ad, n in served.items()}

    def _spend(self, impressions: int) -> Decimal:
        """What `impressions` cost in units of the account currency: `cpm_minor` minor units
        (1/100) per 1,000, exactly."""
        return Decimal(impressions * self.cpm_minor) / 100_000

    def billed(self, campaign_id: str) -> float:
        """What the campaign named `faceloop:{campaign_id}` has been billed so far, in units
        of the account currency: the fake's own total over every delivered row, for tests
        to compare with the spend the connector parsed from the insights."""
        camp = next(
            (
                o
                for o in self.objects.values()
                if o["kind"] == "campaigns" and o.get("name") == f"faceloop:{campaign_id}"
            ),
            None,
        )
        if camp is None:
            return 0.0
        ads = {o["id"] for o in self.objects.values() if o.get("campaign_id") == camp["id"]}
        return float(
            sum(self._spend(imp) for (a, _, _), (imp, _, _) in self.rows.items() if a in ads)
        )

    def _insights(self, obj: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] != "campaigns":
            raise FakeMetaError(400, 100, "FAKE: insights are implemented on campaigns only")
        span = p.get("time_range") or {}
        if not isinstance(span, dict) or "since" not in span or "until" not in span:
            raise FakeMetaError(400, 100, "(#100) time_range must have since and until")
        since, until = self._day_index(span["since"]), self._day_index(span["until"])
        level = p.get("level", "campaign")
        if level == "ad":
            self._deliver(obj, until)  # FAKE: ad-level insights close the days they ask for
        ads = {o["id"]: o for o in self.objects.values() if o.get("campaign_id") == obj["id"]}
        totals: dict[tuple[str, str], list[int]] = {}
        for (ad_id, day, age), (imp, clk, conv) in self.rows.items():
            if ad_id in ads and since <= day <= until:
                key = (ad_id, age) if level == "ad" else (obj["id"], "")
                t = totals.setdefault(key, [0, 0, 0])
                t[0], t[1], t[2] = t[0] + imp, t[1] + clk, t[2] + conv
        wanted = set(str(p.get("fields", "")).split(","))
        rows = []
        for (oid, age), (imp, clk, conv) in sorted(totals.items()):
            if not imp:
                continue  # Meta returns no row for nothing delivered
            row: dict[str, Any] = {
                "impressions": str(imp),
                "inline_link_clicks": str(clk),
                "date_start": span["since"],
                "date_stop": span["until"],
            }
            # only when asked for, as Meta answers: the connector must request them
            if "spend" in wanted:
                row["spend"] = str(self._spend(imp))
            if "account_currency" in wanted:
                row["account_currency"] = self.currency
            if level == "ad":
                row |= {"ad_id": oid, "ad_name": ads[oid]["name"], "age": age}
                if conv:
                    row["actions"] = [
                        {"action_type": "offsite_conversion.fb_pixel_purchase", "value": str(conv)}
                    ]
            else:
                row["campaign_id"] = oid
            rows.append(row)
        return self._page(rows, p)


def connector_for(
    fake: MetaFake,
    transport: httpx.AsyncBaseTransport | None = None,
    **kw: Any,
) -> MetaConnector:
    """A MetaConnector wired to `fake` in process (ASGI, no socket).

    The creative reader returns the URI's bytes: the fake stores no images, it only keys
    them by content, and the contract tests' URIs name no real files."""
    from faceloop.connectors.meta import MetaConnector

    return MetaConnector(
        base_url="http://meta.fake",
        api_version="v23.0",
        ad_account_id=fake.account,
        page_id=PAGE,
        access_token=fake.token,
        link_url="https://example.com/landing",
        read_creative=lambda uri: uri.encode(),
        segment_ages=TEST_SEGMENT_AGES,
        cpm_minor=fake.cpm_minor,
        transport=transport or httpx.ASGITransport(app=fake.app),
        clock=fake.clock,
        **kw,
    )


def soak_rig(plan: FaultPlan, clock: VirtualClock, seed: int) -> SoakRig:
    """The soak bench's Meta setup: the connector through injected faults to this fake,
    with a call budget small enough that pacing and 80004 throttles take part."""
    from faceloop.connectors.soak import SoakRig

    fake = MetaFake(clock=clock, call_limit=2_000, window_s=600.0)
    transport = FaultyTransport(httpx.ASGITransport(app=fake.app), fake, plan)
    conn = connector_for(
        fake,
        transport,
        rng=random.Random(seed),
        policy=RetryPolicy(max_attempts=8, base_delay_s=0.5, max_delay_s=30.0),
    )
    segments = [AudienceSegment(name=s, share=0.5) for s in TEST_SEGMENT_AGES]
    return SoakRig(connector=conn, fake=fake, clock=clock, segments=segments)


__all__ = ["AGES", "PAGE", "TEST_SEGMENT_AGES", "TOKEN", "MetaFake", "connector_for", "soak_rig"]
