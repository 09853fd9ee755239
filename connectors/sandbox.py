"""Connector for the sandbox ad platform (a fake platform with a simulated audience).

It speaks the sandbox's HTTP API like any platform connector speaks its platform's, so the
workflow cannot tell the sandbox from a real platform. See docs/sandbox.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from faceloop.connectors.base import (
    AdConnector,
    AdDeployment,
    AdInsight,
    AdSpec,
    count_api_call,
)
from faceloop.errors import ConnectorError, SpendLimitUnsupportedError
from faceloop.models import AudienceSegment

T = TypeVar("T")

_DEPLOYMENT = TypeAdapter(AdDeployment)
_DEPLOYMENTS = TypeAdapter(list[AdDeployment])
_INSIGHTS = TypeAdapter(list[AdInsight])
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def _detail(response: httpx.Response) -> str:
    """The platform's own words about a failure, from FastAPI's {"detail": ...} body."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:500] or response.reason_phrase
    if isinstance(detail, list):
        # request validation errors: one entry per field
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg', e)}" for e in detail
        )
    return str(detail)


class SandboxConnector(AdConnector):
    """AdConnector over the sandbox platform's HTTP API at `base_url`.

    `transport` replaces the network (e.g. httpx.ASGITransport(app) in tests).
    """

    name = "sandbox"
    segment_targeting = True

    def __init__(
        self,
        base_url: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport
        )

    @staticmethod
    def _campaign_path(campaign_id: str) -> str:
        if "/" in campaign_id or not campaign_id:
            raise ConnectorError(
                f"sandbox: campaign id {campaign_id!r} is not usable in a URL; "
                "use a non-empty id without '/'"
            )
        return f"/campaigns/{quote(campaign_id, safe='')}"

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        endpoint = f"{method} {path}"
        count_api_call()
        try:
            response = await self._client.request(method, path, json=json)
        except httpx.TimeoutException as err:
            raise ConnectorError(
                f"sandbox {endpoint} timed out at {self.base_url} ({type(err).__name__}); "
                "the platform is overloaded or hung: retry, or restart it"
            ) from err
        except httpx.HTTPError as err:
            raise ConnectorError(
                f"sandbox {endpoint}: cannot reach {self.base_url} ({err}); start it with "
                "`python -m faceloop.connectors.sandbox_platform --scenario FILE --port PORT` "
                "or set FACELOOP_SANDBOX_URL to where it runs"
            ) from err
        if response.is_error:
            raise ConnectorError(
                f"sandbox {endpoint} returned {response.status_code}: {_detail(response)}",
                status=response.status_code,
            )
        try:
            return response.json()
        except ValueError as err:
            raise ConnectorError(
                f"sandbox {endpoint} returned {response.status_code} with a body that is not "
                f"JSON; is {self.base_url} really the sandbox platform?"
            ) from err

    def _parse(self, endpoint: str, adapter: TypeAdapter[T], data: Any) -> T:
        try:
            return adapter.validate_python(data)
        except ValidationError as err:
            raise ConnectorError(
                f"sandbox {endpoint} answered with an unexpected shape ({err.error_count()} "
                f"problem(s), first: {err.errors()[0]['msg']}); client and platform versions "
                "differ"
            ) from err

    async def health(self) -> dict[str, Any]:
        """The platform's /health answer; raises ConnectorError when it is not up."""
        data: dict[str, Any] = await self._call("GET", "/health")
        return data

    async def set_spend_limit(self, campaign_id: str, amount: float, currency: str) -> str:
        raise SpendLimitUnsupportedError(
            "the sandbox delivers only the windows faceloop allocates, one at a time, so "
            "nothing is spent while no worker runs; it has no spend limit to set"
        )

    async def ensure_campaign(self, campaign_id: str, segments: list[AudienceSegment]) -> None:
        # names and shares are all the platform uses; a segment's description is the
        # marketer's free text, which erasure could not reach once it left (docs/privacy.md)
        body = {"segments": [{"name": s.name, "share": s.share} for s in segments]}
        await self._call("PUT", self._campaign_path(campaign_id), body)

    async def deploy(self, spec: AdSpec) -> AdDeployment:
        path = f"{self._campaign_path(spec.campaign_id)}/ads"
        data = await self._call("POST", path, spec.model_dump(mode="json"))
        return self._parse(f"POST {path}", _DEPLOYMENT, data)

    async def set_allocation(
        self, campaign_id: str, window: int, impressions: dict[str, int]
    ) -> None:
        path = f"{self._campaign_path(campaign_id)}/windows/{int(window)}/allocation"
        await self._call("PUT", path, {"impressions": impressions})

    async def set_segment_allocation(
        self, campaign_id: str, window: int, impressions: Mapping[str, Mapping[str, int]]
    ) -> None:
        path = f"{self._campaign_path(campaign_id)}/windows/{int(window)}/allocation"
        body = {seg: dict(by_ad) for seg, by_ad in impressions.items()}
        await self._call("PUT", path, {"segments": body})

    async def insights(self, campaign_id: str, window: int) -> list[AdInsight]:
        path = f"{self._campaign_path(campaign_id)}/windows/{int(window)}/insights"
        data = await self._call("GET", path)
        rows = data.get("insights") if isinstance(data, dict) else None
        return self._parse(f"GET {path}", _INSIGHTS, rows)

    async def pause(self, campaign_id: str, ad_id: str) -> AdDeployment:
        path = f"{self._campaign_path(campaign_id)}/ads/{quote(ad_id, safe='')}/pause"
        data = await self._call("POST", path)
        return self._parse(f"POST {path}", _DEPLOYMENT, data)

    async def list_ads(self, campaign_id: str) -> list[AdDeployment]:
        path = f"{self._campaign_path(campaign_id)}/ads"
        data = await self._call("GET", path)
        return self._parse(f"GET {path}", _DEPLOYMENTS, data)

    async def remove(self, campaign_id: str, ad_id: str) -> AdDeployment:
        path = f"{self._campaign_path(campaign_id)}/ads/{quote(ad_id, safe='')}"
        data = await self._call("DELETE", path)
        return self._parse(f"DELETE {path}", _DEPLOYMENT, data)

    async def aclose(self) -> None:
        await self._client.aclose()


__all__ = ["SandboxConnector"]
