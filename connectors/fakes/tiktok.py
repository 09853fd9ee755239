"""FAKE TikTok API for Business (Marketing API v1.3), the subset the tiktok connector uses.

Not TikTok: an in-process stand-in so the connector is tested without network. Every
answer is TikTok's envelope `{"code", "message", "request_id", "data"}` with HTTP 200, the
code saying what happened (0: OK). Endpoints under `/open_api/{version}/`:

- `campaign/get/`, `campaign/create/`; `adgroup/get/`, `adgroup/create/`,
  `adgroup/budget/update/`; `file/image/ad/upload/` (multipart, `image_file` +
  `image_signature` MD5), `file/image/ad/search/`; `ad/create/` (`creatives[]` with
  `aigc_disclosure_type`), `ad/get/`, `ad/status/update/` (ENABLE / DISABLE / DELETE);
  `report/integrated/get/` (BASIC, AUCTION_AD, dimension ad_id, metrics over
  start_date..end_date, filtering by campaign_ids; `spend` a decimal string, every
  delivered impression billed at CPM_MICROS, and `currency` the fake's `currency`);
- `filtering` and list parameters are JSON strings in the query, as TikTok takes them;
- codes: 40100 (too many requests: throttle), 40105 (access token invalid), 40001 (no
  permission for the advertiser), 40002 (invalid parameter), 50000 (system error). Only
  40100 was checked against a source here; the others follow TikTok's return-code
  appendix as remembered, so docs/connectors.md marks them unverified.

Time and delivery as in the FAKE Google Ads: campaigns start on EPOCH; a report delivers
the days up to its end_date once; an ad group's daily budget buys budget / CPM x 1000
impressions, spread evenly over its enabled ads. The ledger counts every committed create
by the name it carries.
"""

from __future__ import annotations

import email.policy
import hashlib
import json
import random
import threading
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from fastapi import FastAPI, Request

from faceloop.connectors.fakes.delivery import (
    CPM_MICROS,
    EPOCH,
    DailyDelivery,
    clicks_and_conversions,
    day_index,
    spend_micros,
    split_evenly,
    two_segment_rig,
)
from faceloop.connectors.fakes.faults import FakeLedger, FaultPlan

if TYPE_CHECKING:
    from faceloop.connectors.http_base import VirtualClock
    from faceloop.connectors.soak import SoakRig
    from faceloop.settings import TikTokSettings

THROTTLE, TOKEN_INVALID, NO_PERMISSION, BAD_PARAM, SYSTEM_ERROR = 40100, 40105, 40001, 40002, 50000
AD_TEXT_MAX = 100
AIGC_VALUES = ("SELF_DISCLOSURE", "NOT_DECLARED")


class TikTokError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def envelope(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": uuid.uuid4().hex, "data": data or {}}


@dataclass
class TikTokFake(DailyDelivery):
    """State of one FAKE TikTok advertiser account, its ASGI app and its ledger."""

    serving_word: ClassVar[str] = "ENABLE"
    removed_word: ClassVar[str] = "DELETE"

    version: str = "v1.3"
    advertiser_id: str = "7000000000000000001"
    access_token: str = "fake-tiktok-token"
    ledger: FakeLedger = field(default_factory=FakeLedger)
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    adgroups: dict[str, dict[str, Any]] = field(default_factory=dict)
    ads: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (campaign id, day) -> {ad id: impressions}
    delivered: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    # the advertiser's currency (ISO 4217): what its spend is in
    currency: str = "USD"

    def __post_init__(self) -> None:
        self._ids = 1_700_000_000_000_000
        self._lock = threading.Lock()
        self.app = self._build_app()

    def settings(self, **overrides: Any) -> TikTokSettings:
        """The tiktok connector's settings for this FAKE advertiser (`overrides` win)."""
        from faceloop.settings import TikTokSettings

        return TikTokSettings.model_validate(
            {
                "base_url": "http://tiktok.fake",
                "advertiser_id": self.advertiser_id,
                "access_token": self.access_token,
                "api_version": self.version,
                **overrides,
            }
        )

    def throttle_response(self, request: httpx.Request, rng: random.Random) -> httpx.Response:
        return httpx.Response(
            200, json=envelope(THROTTLE, "Too many requests. Please retry in some time.")
        )

    def server_error_response(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=envelope(SYSTEM_ERROR, "System error, please retry."))

    # -- plumbing ---------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._ids += 1
        return str(self._ids)

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="FAKE TikTok API for Business", docs_url=None, redoc_url=None)

        @app.api_route("/open_api/{version}/{path:path}", methods=["GET", "POST"])
        async def endpoint(version: str, path: str, request: Request) -> Any:
            self.ledger.requests += 1
            try:
                if request.headers.get("access-token") != self.access_token:
                    raise TikTokError(TOKEN_INVALID, "Access token is invalid or expired.")
                if version != self.version:
                    raise TikTokError(BAD_PARAM, f"FAKE: API version {version} is not served")
                args = await self._args(request)
                if str(args.get("advertiser_id")) != self.advertiser_id:
                    raise TikTokError(
                        NO_PERMISSION,
                        f"No permission to operate advertiser {args.get('advertiser_id')}.",
                    )
                handler = getattr(self, "_" + path.strip("/").replace("/", "_"), None)
                if handler is None:
                    raise TikTokError(BAD_PARAM, f"FAKE: no endpoint /{path} in this subset")
                with self._lock:
                    return envelope(0, "OK", handler(args))
            except TikTokError as err:
                return envelope(err.code, err.message)

        return app

    async def _args(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            args: dict[str, Any] = dict(request.query_params)
            for key in ("filtering", "dimensions", "metrics", "image_ids", "ad_ids"):
                if key in args:
                    try:
                        args[key] = json.loads(args[key])
                    except ValueError as err:
                        raise TikTokError(BAD_PARAM, f"{key}: not valid JSON") from err
            return args
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            return _multipart(content_type, await request.body())
        body = await request.json()
        return body if isinstance(body, dict) else {}

    @staticmethod
    def _page(rows: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        page, size = int(args.get("page", 1)), int(args.get("page_size", 10))
        if size > 1000:
            raise TikTokError(BAD_PARAM, "page_size: at most 1000")
        total = len(rows)
        return {
            "list": rows[(page - 1) * size : page * size],
            "page_info": {
                "page": page,
                "page_size": size,
                "total_number": total,
                "total_page": (total + size - 1) // size,
            },
        }

    @staticmethod
    def _need(args: dict[str, Any], *keys: str) -> None:
        for key in keys:
            if args.get(key) in (None, "", []):
                raise TikTokError(BAD_PARAM, f"{key}: Missing data for required field.")

    # -- campaigns, ad groups -------------------------------------------------------------

    def _campaign_get(self, args: dict[str, Any]) -> dict[str, Any]:
        f = args.get("filtering") or {}
        rows = [
            c
            for c in self.campaigns.values()
            if ("campaign_name" not in f or f["campaign_name"] in c["campaign_name"])
            and ("campaign_ids" not in f or c["campaign_id"] in f["campaign_ids"])
        ]
        return self._page(rows, args)

    def _campaign_create(self, args: dict[str, Any]) -> dict[str, Any]:
        self._need(args, "campaign_name", "objective_type", "budget_mode")
        cid = self._new_id()
        self.campaigns[cid] = {
            "campaign_id": cid,
            "campaign_name": args["campaign_name"],
            "objective_type": args["objective_type"],
            "budget_mode": args["budget_mode"],
            "operation_status": "ENABLE",
            "create_time": f"{EPOCH.isoformat()} 00:00:00",
        }
        self.ledger.created("campaign", f"|{args['campaign_name']}")
        self.ledger.writes += 1
        return {"campaign_id": cid}

    def _adgroup_get(self, args: dict[str, Any]) -> dict[str, Any]:
        ids = (args.get("filtering") or {}).get("campaign_ids")
        rows = [g for g in self.adgroups.values() if ids is None or g["campaign_id"] in ids]
        return self._page(rows, args)

    def _adgroup_create(self, args: dict[str, Any]) -> dict[str, Any]:
        self._need(args, "campaign_id", "adgroup_name", "budget_mode")
        if args["campaign_id"] not in self.campaigns:
            raise TikTokError(BAD_PARAM, f"campaign_id: campaign {args['campaign_id']} not found")
        gid = self._new_id()
        self.adgroups[gid] = {
            "adgroup_id": gid,
            "adgroup_name": args["adgroup_name"],
            "campaign_id": args["campaign_id"],
            "budget_mode": args["budget_mode"],
            "budget": float(args.get("budget") or 0),
            "operation_status": "ENABLE",
        }
        self.ledger.created("adgroup", f"{args['campaign_id']}|{args['adgroup_name']}")
        self.ledger.writes += 1
        return {"adgroup_id": gid}

    def _adgroup_budget_update(self, args: dict[str, Any]) -> dict[str, Any]:
        self._need(args, "budget")
        for item in args["budget"]:
            gid = str(item.get("adgroup_id"))
            if gid not in self.adgroups:
                raise TikTokError(BAD_PARAM, f"budget.adgroup_id: ad group {gid} not found")
            self.adgroups[gid]["budget"] = float(item.get("budget", 0))
        self.ledger.writes += 1
        return {}

    # -- images, ads --------------------------------------------------------------------------

    def _file_image_ad_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        self._need(args, "image_file", "image_signature")
        data = args["image_file"]
        if hashlib.md5(data).hexdigest() != args["image_signature"]:
            raise TikTokError(BAD_PARAM, "image_signature: does not match the file's MD5")
        image_id = f"ad-site-i18n-sg/{self._new_id()}"
        name = str(args.get("file_name") or image_id)
        self.images[image_id] = {
            "image_id": image_id,
            "file_name": name,
            "signature": args["image_signature"],
            "size": len(data),
            "format": "png",
        }
        self.ledger.created("image", f"|{name}")
        self.ledger.writes += 1
        return dict(self.images[image_id])

    def _file_image_ad_search(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._page(list(self.images.values()), args)

    def _ad_create(self, args: dict[str, Any]) -> dict[str, Any]:
        self._need(args, "adgroup_id", "creatives")
        gid = str(args["adgroup_id"])
        if gid not in self.adgroups:
            raise TikTokError(BAD_PARAM, f"adgroup_id: ad group {gid} not found")
        made = []
        for i, c in enumerate(args["creatives"]):
            for key in ("ad_name", "ad_format", "image_ids", "ad_text", "landing_page_url"):
                if not c.get(key):
                    raise TikTokError(
                        BAD_PARAM, f"creatives[{i}].{key}: Missing data for required field."
                    )
            if len(c["ad_text"]) > AD_TEXT_MAX:
                raise TikTokError(
                    BAD_PARAM,
                    f"creatives[{i}].ad_text: Length must be between 1 and {AD_TEXT_MAX}.",
                )
            if c.get("aigc_disclosure_type", "NOT_DECLARED") not in AIGC_VALUES:
                raise TikTokError(BAD_PARAM, f"creatives[{i}].aigc_disclosure_type: invalid enum")
            for image in c["image_ids"]:
                if image not in self.images:
                    raise TikTokError(BAD_PARAM, f"creatives[{i}].image_ids: {image} not found")
        for c in args["creatives"]:
            ad_id = self._new_id()
            self.ads[ad_id] = {
                **c,
                "ad_id": ad_id,
                "adgroup_id": gid,
                "adgroup_name": self.adgroups[gid]["adgroup_name"],
                "campaign_id": self.adgroups[gid]["campaign_id"],
                "operation_status": "ENABLE",
                # the FAKE reviews at once and approves; `disapprove` plays the reviewer
                "review": {"review_status": "ALL_AVAILABLE", "reject_info": []},
            }
            self.ledger.created("ad", f"{gid}|{c['ad_name']}")
            made.append(ad_id)
        self.ledger.writes += 1
        return {"ad_ids": made}

    def _ad_get(self, args: dict[str, Any]) -> dict[str, Any]:
        f = args.get("filtering") or {}
        rows = [
            a
            for a in self.ads.values()
            if ("campaign_ids" not in f or a["campaign_id"] in f["campaign_ids"])
            and ("ad_ids" not in f or a["ad_id"] in f["ad_ids"])
        ]
        return self._page(rows, args)

    def _ad_review_info(self, args: dict[str, Any]) -> dict[str, Any]:
        self._need(args, "ad_ids")
        if len(args["ad_ids"]) > 100:
            raise TikTokError(BAD_PARAM, "ad_ids: at most 100")
        return {
            "ad_review_map": {
                str(i): self.ads[str(i)]["review"] for i in args["ad_ids"] if str(i) in self.ads
            }
        }

    def disapprove(self, ad_name: str, reason: str = "Misleading content") -> None:
        """FAKE-only: TikTok's review rejects every ad named `ad_name`."""
        for ad in self.ads.values():
            if ad["ad_name"] == ad_name:
                ad["review"] = {
                    "review_status": "UNAVAILABLE",
                    "reject_info": [{"reasons": [reason], "suggestion": "Edit the ad text"}],
                }

    def _ad_status_update(self, args: dict[str, Any]) -> dict[str, Any]:
        self._need(args, "ad_ids", "operation_status")
        status = args["operation_status"]
        if status not in ("ENABLE", "DISABLE", "DELETE"):
            raise TikTokError(BAD_PARAM, "operation_status: must be ENABLE, DISABLE or DELETE")
        for ad_id in args["ad_ids"]:
            ad = self.ads.get(str(ad_id))
            if ad is None:
                raise TikTokError(BAD_PARAM, f"ad_ids: ad {ad_id} not found")
            if ad["operation_status"] == "DELETE" and status != "DELETE":
                raise TikTokError(BAD_PARAM, f"ad_ids: ad {ad_id} is deleted")
        for ad_id in args["ad_ids"]:
            self.ads[str(ad_id)]["operation_status"] = status
        self.ledger.writes += 1
        return {"ad_ids": args["ad_ids"], "status": status}

    # -- reports ----------------------------------------------------------------------------

    def _report_integrated_get(self, args: dict[str, Any]) -> dict[str, Any]:
        self._need(args, "report_type", "data_level", "dimensions", "metrics")
        if args["dimensions"] != ["ad_id"] or args["data_level"] != "AUCTION_AD":
            raise TikTokError(BAD_PARAM, "FAKE: only data_level AUCTION_AD by dimension ad_id")
        self._need(args, "start_date", "end_date")
        first, last = day_index(args["start_date"]), day_index(args["end_date"])
        campaign_ids: list[str] | None = None
        for f in args.get("filtering") or []:
            if f.get("field_name") == "campaign_ids":
                campaign_ids = json.loads(f["filter_value"])
        scope = [c for c in self.campaigns if campaign_ids is None or c in campaign_ids]
        for cid in scope:
            self._deliver(cid, last)
        rows = []
        for ad in self.ads.values():
            if ad["campaign_id"] not in scope:
                continue
            impressions = clicks = conversions = cost = 0
            for day in range(first, last + 1):
                n = self.delivered.get((ad["campaign_id"], day), {}).get(ad["ad_id"], 0)
                c, v = clicks_and_conversions(f"{ad['ad_id']}@{day}", n)
                impressions, clicks, conversions = impressions + n, clicks + c, conversions + v
                cost += spend_micros(n)
            values = {
                "impressions": str(impressions),
                "clicks": str(clicks),
                "conversion": str(conversions),
                # TikTok's money metrics are decimal strings; exact here, from the micros
                "spend": str(Decimal(cost) / 1_000_000),
                "currency": self.currency,
                "ad_name": ad["ad_name"],
                "adgroup_name": ad["adgroup_name"],
            }
            rows.append(
                {
                    "dimensions": {"ad_id": ad["ad_id"]},
                    "metrics": {k: values[k] for k in args["metrics"] if k in values},
                }
            )
        return self._page(rows, args)

    def _plan_day(self, cid: str) -> dict[str, int]:
        if self.campaigns[cid]["operation_status"] != "ENABLE":
            return {}
        out: dict[str, int] = {}
        for gid, group in self.adgroups.items():
            if group["campaign_id"] != cid or group["operation_status"] != "ENABLE":
                continue
            total = round(group["budget"] * 1_000_000_000 / CPM_MICROS)
            serving = sorted(
                a["ad_id"]
                for a in self.ads.values()
                if a["adgroup_id"] == gid and a["operation_status"] == "ENABLE"
            )
            out.update(split_evenly(total, serving))
        return out

    # -- DailyDelivery ----------------------------------------------------------------------

    def _campaign_id_by_name(self, name: str) -> str | None:
        return next((k for k, c in self.campaigns.items() if c["campaign_name"] == name), None)

    def _ad_name(self, copy: str) -> str:
        return str(self.ads[copy]["ad_name"])

    def _copy_statuses(self, ad_name: str) -> list[str]:
        return [a["operation_status"] for a in self.ads.values() if a["ad_name"] == ad_name]


def _multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Form fields of a multipart/form-data body (files as bytes), with the standard
    library's MIME parser: the fake needs no multipart package."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        out[str(name)] = data if part.get_filename() else data.decode()
    return out


def soak_rig(plan: FaultPlan, clock: VirtualClock, seed: int) -> SoakRig:
    """The tiktok connector wired to a fresh FAKE through fault injection, for
    `faceloop bench connectors` (faceloop.connectors.soak)."""
    from faceloop.connectors.tiktok import TikTokConnector

    fake = TikTokFake()
    return two_segment_rig(fake, TikTokConnector, fake.settings(), plan, clock, seed)


__all__ = ["AD_TEXT_MAX", "THROTTLE", "TikTokFake", "envelope", "soak_rig"]
