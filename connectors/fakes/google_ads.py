"""FAKE Google Ads API (REST interface), the documented subset the google_ads connector uses.

Not Google: an in-process stand-in so the connector is tested without network. It speaks
the REST shapes of https://developers.google.com/google-ads/api/rest/overview:

- `POST /{version}/customers/{id}/{campaignBudgets|campaigns|adGroups|assets|adGroupAds}:mutate`
  with `operations` (create / update + updateMask / remove), `partialFailure` (failed
  operations get an empty result and a `partialFailureError` with a `GoogleAdsFailure`
  naming each operation's field path) and `validateOnly` (checked, nothing executed);
- `POST /{version}/customers/{id}/googleAds:search` and `googleAds:searchStream` with a GAQL
  query: `SELECT a.b, ... FROM resource [WHERE cond AND ...]` with =, !=, IN (...),
  BETWEEN ... AND ..., over campaign, ad_group, asset and ad_group_ad; metrics of
  ad_group_ad over a `segments.date` range, summed over the range (`metrics.cost_micros`
  too: every delivered impression billed at CPM_MICROS); `customer.currency_code` (the
  fake's `currency_code`) on every row;
- errors as Google sends them: `{"error": {"code", "message", "status", "details":
  [GoogleAdsFailure]}}`: UNAUTHENTICATED (401), PERMISSION_DENIED (403, developer token),
  INVALID_ARGUMENT (400, field errors), RESOURCE_EXHAUSTED (429, with
  `quotaErrorDetails.retryDelay`), INTERNAL / UNAVAILABLE (500 / 503).

Time on the fake: every campaign starts on EPOCH; a report over a date range delivers the
days of that range not delivered yet (the caller waited for the range to end), spreading
each day's campaign budget (amountMicros per CPM_MICROS) evenly over the campaign's enabled
ads in enabled ad groups. Delivered days never change.

The ledger counts every committed create by the name it carries (the connector's
deterministic external id), so duplicates are counted here, on the server's side.
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from faceloop.connectors.fakes.delivery import (
    CPM_MICROS,
    EPOCH,
    DailyDelivery,
    clicks_and_conversions,
    day_date,
    day_index,
    spend_micros,
    split_evenly,
    two_segment_rig,
)
from faceloop.connectors.fakes.faults import FakeLedger, FaultPlan

if TYPE_CHECKING:
    from faceloop.connectors.http_base import VirtualClock
    from faceloop.connectors.soak import SoakRig
    from faceloop.settings import GoogleAdsSettings

COLLECTIONS = {
    "campaignBudgets": "campaign_budget",
    "campaigns": "campaign",
    "adGroups": "ad_group",
    "assets": "asset",
    "adGroupAds": "ad_group_ad",
}
# Google's documented limits for a responsive display ad (the fake checks them like Google)
LIMITS = {"headlines": 30, "longHeadline": 90, "descriptions": 90, "businessName": 25}
STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
}


class GoogleAdsFault(Exception):
    """An error answer, with Google's error shape."""

    def __init__(self, status: str, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


@dataclass
class GoogleAdsFake(DailyDelivery):
    """State of one FAKE Google Ads customer, its ASGI app and its ledger."""

    serving_word: ClassVar[str] = "ENABLED"
    removed_word: ClassVar[str] = "REMOVED"

    version: str = "v26"
    customer_id: str = "1234567890"
    developer_token: str = "fake-dev-token"
    access_token: str = "fake-access-token"
    ledger: FakeLedger = field(default_factory=FakeLedger)
    # resource name -> resource (camelCase JSON, as the REST API returns it)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (campaign id, day) -> {ad group ad resource name: impressions}
    delivered: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    validate_only_calls: int = 0
    # the account's currency (ISO 4217): what its cost_micros are micros of
    currency_code: str = "USD"

    def __post_init__(self) -> None:
        self._ids = 1000
        self._lock = threading.Lock()
        self.app = self._build_app()

    def settings(self, **overrides: Any) -> GoogleAdsSettings:
        """The google_ads connector's settings for this FAKE customer (`overrides` win)."""
        from faceloop.settings import GoogleAdsSettings

        return GoogleAdsSettings.model_validate(
            {
                "base_url": "http://googleads.fake",
                "customer_id": self.customer_id,
                "developer_token": self.developer_token,
                "access_token": self.access_token,
                "api_version": self.version,
                **overrides,
            }
        )

    def disapprove(self, ad_name: str, topic: str = "MISLEADING_CONTENT") -> None:
        """FAKE-only: Google's review disapproves every ad named `ad_name` for `topic`."""
        for rn, obj in self.objects.items():
            if "/adGroupAds/" in rn and obj["ad"].get("name") == ad_name:
                obj["policySummary"] = {
                    "approvalStatus": "DISAPPROVED",
                    "reviewStatus": "REVIEWED",
                    "policyTopicEntries": [{"topic": topic, "type": "PROHIBITED"}],
                }

    def throttle_response(self, request: httpx.Request, rng: random.Random) -> httpx.Response:
        delay = rng.choice([1, 2, 5])
        return self._error_response(
            GoogleAdsFault(
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                [
                    {
                        "errorCode": {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"},
                        "message": "Too many requests in a short amount of time.",
                        "details": {
                            "quotaErrorDetails": {
                                "rateScope": "DEVELOPER",
                                "rateName": "Requests per developer token",
                                "retryDelay": f"{delay}s",
                            }
                        },
                    }
                ],
            )
        )

    def server_error_response(self, request: httpx.Request) -> httpx.Response:
        return self._error_response(
            GoogleAdsFault("UNAVAILABLE", "The service is currently unavailable.", [])
        )

    # -- plumbing -------------------------------------------------------------------------

    def _error_body(self, fault: GoogleAdsFault) -> dict[str, Any]:
        details = []
        if fault.errors:
            details.append(
                {
                    "@type": f"type.googleapis.com/google.ads.googleads.{self.version}"
                    ".errors.GoogleAdsFailure",
                    "errors": fault.errors,
                    "requestId": uuid.uuid4().hex[:22],
                }
            )
        return {
            "error": {
                "code": STATUS_CODES[fault.status],
                "message": fault.message,
                "status": fault.status,
                "details": details,
            }
        }

    def _error_response(self, fault: GoogleAdsFault) -> httpx.Response:
        return httpx.Response(STATUS_CODES[fault.status], json=self._error_body(fault))

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="FAKE Google Ads API", docs_url=None, redoc_url=None)

        @app.post("/{version}/customers/{customer_id}/{action}")
        async def endpoint(version: str, customer_id: str, action: str, request: Request) -> Any:
            self.ledger.requests += 1
            try:
                self._authorize(version, customer_id, request)
                body = await request.json()
                with self._lock:
                    if action in ("googleAds:search", "googleAds:searchStream"):
                        rows = self._search(str(body.get("query", "")))
                        if action == "googleAds:search":
                            return {"results": rows}
                        return [{"results": rows, "requestId": uuid.uuid4().hex[:22]}]
                    collection, _, verb = action.partition(":")
                    if verb != "mutate" or collection not in COLLECTIONS:
                        raise GoogleAdsFault(
                            "NOT_FOUND", f"FAKE: no method {action!r} in this subset", []
                        )
                    return self._mutate(collection, body)
            except GoogleAdsFault as fault:
                return JSONResponse(self._error_body(fault), STATUS_CODES[fault.status])

        return app

    def _authorize(self, version: str, customer_id: str, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            raise GoogleAdsFault(
                "UNAUTHENTICATED",
                "Request is missing required authentication credential.",
                [
                    {
                        "errorCode": {"authenticationError": "NOT_ADS_USER"},
                        "message": "The OAuth access token is missing or invalid.",
                    }
                ],
            )
        if request.headers.get("developer-token") != self.developer_token:
            raise GoogleAdsFault(
                "PERMISSION_DENIED",
                "The caller does not have permission",
                [
                    {
                        "errorCode": {"authorizationError": "DEVELOPER_TOKEN_NOT_APPROVED"},
                        "message": "The developer token is not approved.",
                    }
                ],
            )
        if version != self.version:
            raise GoogleAdsFault("NOT_FOUND", f"FAKE: API version {version} is not served", [])
        if customer_id != self.customer_id:
            raise GoogleAdsFault(
                "PERMISSION_DENIED",
                "The caller does not have permission",
                [
                    {
                        "errorCode": {"authorizationError": "USER_PERMISSION_DENIED"},
                        "message": f"User doesn't have permission to access customer "
                        f"{customer_id}.",
                    }
                ],
            )

    # -- mutate ---------------------------------------------------------------------------

    def _mutate(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        ops = body.get("operations") or []
        partial = bool(body.get("partialFailure"))
        validate_only = bool(body.get("validateOnly"))
        if validate_only:
            self.validate_only_calls += 1
        errors: list[dict[str, Any]] = []
        for i, op in enumerate(ops):
            for err in self._check(collection, op):
                err["location"]["fieldPathElements"].insert(
                    0, {"fieldName": "operations", "index": i}
                )
                errors.append(err)
        failed = {e["location"]["fieldPathElements"][0]["index"] for e in errors}
        if errors and (not partial or validate_only):
            raise GoogleAdsFault(
                "INVALID_ARGUMENT", "Request contains an invalid argument.", errors
            )
        if validate_only:
            return {}
        results: list[dict[str, Any]] = []
        for i, op in enumerate(ops):
            if i in failed:
                results.append({})
                continue
            results.append({"resourceName": self._apply(collection, op)})
        self.ledger.writes += 1
        out: dict[str, Any] = {"results": results}
        if errors:
            out["partialFailureError"] = {
                "code": 3,
                "message": f"Multiple errors in 'details'. First error: {errors[0]['message']}",
                "details": self._error_body(GoogleAdsFault("INVALID_ARGUMENT", "", errors))[
                    "error"
                ]["details"],
            }
        return out

    def _check(self, collection: str, op: dict[str, Any]) -> list[dict[str, Any]]:
        """Field errors of one operation, as GoogleAdsError dicts with a relative path."""

        def error(code: dict[str, str], message: str, *path: str) -> dict[str, Any]:
            return {
                "errorCode": code,
                "message": message,
                "location": {"fieldPathElements": [{"fieldName": p} for p in path]},
            }

        if "create" in op:
            res = op["create"]
            refs = {
                "campaign": ("campaignBudget",),
                "ad_group": ("campaign",),
                "ad_group_ad": ("adGroup",),
            }.get(COLLECTIONS[collection], ())
            for ref in refs:
                if res.get(ref) not in self.objects:
                    return [
                        error(
                            {"mutateError": "RESOURCE_NOT_FOUND"},
                            "The requested resource was not found.",
                            "create",
                            ref,
                        )
                    ]
            if collection == "adGroupAds":
                return self._check_ad(res.get("ad") or {}, error)
            if not res.get("name"):
                return [
                    error({"fieldError": "REQUIRED"}, "The field is required.", "create", "name")
                ]
            return []
        target = op.get("update", {}).get("resourceName") or op.get("remove")
        if target not in self.objects:
            path = "update" if "update" in op else "remove"
            return [
                error(
                    {"mutateError": "RESOURCE_NOT_FOUND"},
                    "The requested resource was not found.",
                    path,
                )
            ]
        if "update" in op and self.objects[target].get("status") == "REMOVED":
            return [
                error(
                    {"mutateError": "OPERATION_NOT_PERMITTED_FOR_REMOVED_RESOURCE"},
                    "The operation is not permitted for removed resources.",
                    "update",
                    "status",
                )
            ]
        return []

    def _check_ad(self, ad: dict[str, Any], error: Any) -> list[dict[str, Any]]:
        rda = ad.get("responsiveDisplayAd")
        if not isinstance(rda, dict):
            return [
                error(
                    {"fieldError": "REQUIRED"},
                    "FAKE: only responsive display ads are served.",
                    "create",
                    "ad",
                    "responsiveDisplayAd",
                )
            ]
        out = []
        if not ad.get("finalUrls"):
            out.append(
                error(
                    {"fieldError": "REQUIRED"},
                    "The field is required.",
                    "create",
                    "ad",
                    "finalUrls",
                )
            )
        for key, limit in LIMITS.items():
            value = rda.get(key)
            texts = (
                [v.get("text", "") for v in value]
                if isinstance(value, list)
                else [value.get("text", "") if isinstance(value, dict) else value or ""]
            )
            for text in texts:
                if len(text) > limit:
                    out.append(
                        error(
                            {"stringLengthError": "TOO_LONG"},
                            f"Too long. {key} is at most {limit} characters.",
                            "create",
                            "ad",
                            "responsive_display_ad",
                            _snake(key),
                        )
                    )
        for field_name in ("marketingImages", "squareMarketingImages"):
            for img in rda.get(field_name) or [{}]:
                if img.get("asset") not in self.objects:
                    out.append(
                        error(
                            {"mutateError": "RESOURCE_NOT_FOUND"},
                            "The requested resource was not found.",
                            "create",
                            "ad",
                            "responsive_display_ad",
                            _snake(field_name),
                        )
                    )
        return out

    def _apply(self, collection: str, op: dict[str, Any]) -> str:
        if "remove" in op:
            rn = str(op["remove"])
            self.objects[rn]["status"] = "REMOVED"
            return rn
        if "update" in op:
            upd = op["update"]
            rn = str(upd["resourceName"])
            for path in str(op.get("updateMask", "")).split(","):
                if path:
                    self.objects[rn][path] = upd.get(path)
            return rn
        res = dict(op["create"])
        self._ids += 1
        new_id = str(self._ids)
        kind = COLLECTIONS[collection]
        if collection == "adGroupAds":
            ad_group_id = str(res["adGroup"]).rsplit("/", 1)[1]
            res["ad"] = {**res["ad"], "id": new_id}
            # the FAKE approves at once; `disapprove` plays a policy reviewer
            res["policySummary"] = {"approvalStatus": "APPROVED", "reviewStatus": "REVIEWED"}
            rn = f"customers/{self.customer_id}/adGroupAds/{ad_group_id}~{new_id}"
            name = f"{res['adGroup']}|{res['ad'].get('name', '')}"
        else:
            res["id"] = new_id
            rn = f"customers/{self.customer_id}/{collection}/{new_id}"
            parent = res.get("campaign", "")
            name = f"{parent}|{res.get('name', '')}"
        res["resourceName"] = rn
        res.setdefault("status", "ENABLED")
        if collection == "campaigns":
            res.setdefault("startDate", EPOCH.isoformat())
        self.objects[rn] = res
        self.ledger.created(kind, name)
        return rn

    # -- search (GAQL subset) -------------------------------------------------------------

    def _search(self, query: str) -> list[dict[str, Any]]:
        m = re.fullmatch(
            r"\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<res>\w+)"
            r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER BY\s+.+?)?(?:\s+LIMIT\s+\d+)?\s*",
            query,
            re.S | re.I,
        )
        if not m:
            raise GoogleAdsFault(
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                [
                    {
                        "errorCode": {"queryError": "UNEXPECTED_END_OF_QUERY"},
                        "message": f"FAKE: cannot parse {query!r} (SELECT ... FROM r WHERE ...)",
                    }
                ],
            )
        fields = [f.strip() for f in m["fields"].split(",")]
        conds = _conditions(m["where"] or "")
        resource = m["res"]
        dates = [c for c in conds if c[0] == "segments.date"]
        other = [c for c in conds if c[0] != "segments.date"]
        rows = []
        for context in self._contexts(resource):
            if all(_holds(_get(context, f), op, v) for f, op, v in other):
                rows.append(context)
        metrics = any(f.startswith("metrics.") for f in fields)
        if metrics:
            if resource != "ad_group_ad" or not dates:
                raise GoogleAdsFault(
                    "INVALID_ARGUMENT",
                    "Request contains an invalid argument.",
                    [
                        {
                            "errorCode": {"queryError": "EXPECTED_FILTERS_ON_DATE_RANGE"},
                            "message": "FAKE: metrics need FROM ad_group_ad and a "
                            "segments.date BETWEEN range",
                        }
                    ],
                )
            first, last = _date_range(dates)
            for cid in {r["campaign"]["id"] for r in rows}:
                self._deliver(cid, last)
            for r in rows:
                impressions = clicks = conversions = cost = 0
                for day in range(first, last + 1):
                    n = self.delivered.get((r["campaign"]["id"], day), {}).get(
                        r["adGroupAd"]["resourceName"], 0
                    )
                    c, v = clicks_and_conversions(f"{r['adGroupAd']['resourceName']}@{day}", n)
                    impressions, clicks, conversions = impressions + n, clicks + c, conversions + v
                    cost += spend_micros(n)
                # int64 travels as a string in Google's JSON; conversions is a double
                r["metrics"] = {
                    "impressions": str(impressions),
                    "clicks": str(clicks),
                    "conversions": float(conversions),
                    "costMicros": str(cost),
                }
        return [_select(r, fields) for r in rows]

    def _contexts(self, resource: str) -> list[dict[str, Any]]:
        """Each row of `resource` with the resources it belongs to, keyed like REST rows."""
        out = []
        for rn, obj in self.objects.items():
            kind = rn.split("/")[2]
            if COLLECTIONS.get(kind) != resource:
                continue
            row: dict[str, Any] = {
                _camel(resource): obj,
                "customer": {
                    "resourceName": f"customers/{self.customer_id}",
                    "currencyCode": self.currency_code,
                },
            }
            ad_group = obj.get("adGroup")
            if ad_group:
                row["adGroup"] = self.objects[ad_group]
            campaign = obj.get("campaign") or (row.get("adGroup") or {}).get("campaign")
            if campaign:
                row["campaign"] = self.objects[campaign]
            out.append(row)
        return out

    def _campaign_id_by_name(self, name: str) -> str | None:
        for rn, obj in self.objects.items():
            if "/campaigns/" in rn and obj.get("name") == name and obj["status"] != "REMOVED":
                return str(obj["id"])
        return None

    def _ad_name(self, copy: str) -> str:
        return str(self.objects[copy]["ad"].get("name", ""))

    def _copy_statuses(self, ad_name: str) -> list[str]:
        return [
            o["status"]
            for rn, o in self.objects.items()
            if "/adGroupAds/" in rn and o["ad"].get("name") == ad_name
        ]

    def _plan_day(self, cid: str) -> dict[str, int]:
        rn = f"customers/{self.customer_id}/campaigns/{cid}"
        camp = self.objects[rn]
        if camp["status"] != "ENABLED":
            return {}
        budget = self.objects.get(camp["campaignBudget"], {})
        total = int(budget.get("amountMicros", 0)) * 1000 // CPM_MICROS
        serving = sorted(
            ad_rn
            for ad_rn, obj in self.objects.items()
            if "/adGroupAds/" in ad_rn
            and obj["status"] == "ENABLED"
            and self.objects[obj["adGroup"]]["status"] == "ENABLED"
            and self.objects[obj["adGroup"]]["campaign"] == rn
        )
        return split_evenly(total, serving)


_COND = re.compile(
    r"(?P<f>[\w.]+)\s*(?:(?P<op>=|!=|>=|<=|>|<)\s*(?P<v>'(?:[^'\\]|\\.)*'|[\w.-]+)"
    r"|(?P<in>IN)\s*\((?P<vs>[^)]*)\)"
    r"|BETWEEN\s+(?P<a>'[^']*'|[\w-]+)\s+AND\s+(?P<b>'[^']*'|[\w-]+))",
    re.I,
)


def _literal(text: str) -> str:
    text = text.strip()
    if text.startswith("'") and text.endswith("'"):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _conditions(where: str) -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    rest = where.strip()
    while rest:
        m = _COND.match(rest)
        if not m:
            raise GoogleAdsFault(
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                [
                    {
                        "errorCode": {"queryError": "INVALID_WHERE_CLAUSE"},
                        "message": f"FAKE: cannot parse the condition at {rest[:60]!r}",
                    }
                ],
            )
        if m["op"]:
            out.append((m["f"], m["op"], _literal(m["v"])))
        elif m["in"]:
            out.append((m["f"], "IN", [_literal(v) for v in m["vs"].split(",") if v.strip()]))
        else:
            out.append((m["f"], "BETWEEN", (_literal(m["a"]), _literal(m["b"]))))
        rest = rest[m.end() :].strip()
        if rest[:3].upper() == "AND":
            rest = rest[3:].strip()
    return out


def _date_range(conds: list[tuple[str, str, Any]]) -> tuple[int, int]:
    for _, op, value in conds:
        if op == "BETWEEN":
            return day_index(value[0]), day_index(value[1])
        if op == "=":
            return day_index(value), day_index(value)
    raise GoogleAdsFault(
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.",
        [
            {
                "errorCode": {"queryError": "EXPECTED_FILTERS_ON_DATE_RANGE"},
                "message": "FAKE: segments.date needs = or BETWEEN",
            }
        ],
    )


def _get(row: dict[str, Any], path: str) -> Any:
    resource, *rest = path.split(".")
    node: Any = row.get(_camel(resource))
    for part in rest:
        if not isinstance(node, dict):
            return None
        node = node.get(_camel(part))
    return node


def _holds(value: Any, op: str, expected: Any) -> bool:
    text = None if value is None else str(value)
    if op == "=":
        return text == expected
    if op == "!=":
        return text != expected
    if op == "IN":
        return text in expected
    if op == "BETWEEN":
        return text is not None and expected[0] <= text <= expected[1]
    try:
        a, b = float(text or 0), float(expected)
    except ValueError:
        return False
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def _select(row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Only the selected fields (and each resource's resourceName), as the API answers."""
    out: dict[str, Any] = {}
    for path in fields:
        resource, *rest = path.split(".")
        value = _get(row, path)
        if value is None:
            continue
        node = out.setdefault(_camel(resource), {})
        if resource != "metrics" and "resourceName" in (row.get(_camel(resource)) or {}):
            node["resourceName"] = row[_camel(resource)]["resourceName"]
        for part in rest[:-1]:
            node = node.setdefault(_camel(part), {})
        node[_camel(rest[-1])] = value
    return out


def day_of(date: str) -> int:
    """Window index of a date on the fake's calendar (for tests)."""
    return day_index(date)


def soak_rig(plan: FaultPlan, clock: VirtualClock, seed: int) -> SoakRig:
    """The google_ads connector wired to a fresh FAKE through fault injection, for
    `faceloop bench connectors` (faceloop.connectors.soak)."""
    from faceloop.connectors.google_ads import GoogleAdsConnector

    fake = GoogleAdsFake()
    return two_segment_rig(fake, GoogleAdsConnector, fake.settings(), plan, clock, seed)


__all__ = ["EPOCH", "GoogleAdsFake", "day_date", "day_of", "soak_rig"]
