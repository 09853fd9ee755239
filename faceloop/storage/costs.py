"""The catalog's record of what each campaign used (faceloop/cost.py turns it into money).

Rows are keyed so that a write that Temporal retries replaces itself rather than counting
twice: an activity attempt (a failed attempt used its resources too, so each attempt is its
own key), an asset's content hash (the same bytes stored twice occupy them once), a review
subject, a KPI window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import func, select

from faceloop.storage.schema import CatalogBase, cost_usage, variants

Resource = Literal[
    "gpu_seconds", "cpu_seconds", "storage_bytes", "api_calls", "review_minutes", "ad_spend"
]
RESOURCES: tuple[Resource, ...] = (
    "gpu_seconds",
    "cpu_seconds",
    "storage_bytes",
    "api_calls",
    "review_minutes",
    "ad_spend",
)


class CostRecords(CatalogBase):
    def record_usage(
        self,
        campaign_id: str,
        resource: Resource,
        amount: float,
        key: str,
        *,
        round: int = 0,
        detail: str = "",
    ) -> None:
        """Record one measurement; a second write with the same key replaces the first."""
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}; one of {RESOURCES}")
        row = {
            "campaign_id": campaign_id,
            "key": key,
            "resource": resource,
            "round": round,
            "amount": float(amount),
            "detail": detail,
            "recorded_at": datetime.now(UTC),
        }
        with self._write() as conn:
            self._upsert(conn, cost_usage, [row], keys=("campaign_id", "key", "resource"))

    def usage_totals(self, campaign_id: str) -> dict[str, float]:
        """Each resource's total for the campaign; `ad_spend` is the platform's cumulative
        figure of the latest window that reported one. A resource never recorded is absent
        (for ad_spend: the platform reports no spend)."""
        c = cost_usage.c
        with self._read() as conn:
            summed = conn.execute(
                select(c.resource, func.sum(c.amount))
                .where(c.campaign_id == campaign_id, c.resource != "ad_spend")
                .group_by(c.resource)
            ).all()
            latest = conn.execute(
                select(c.amount)
                .where(c.campaign_id == campaign_id, c.resource == "ad_spend")
                .order_by(c.round.desc())
                .limit(1)
            ).first()
        out = {str(r): float(a) for r, a in summed}
        if latest is not None:
            out["ad_spend"] = float(latest[0])
        return out

    def count_variants(self, campaign_id: str) -> int:
        """Variants of the campaign that were generated (have an image): what costs are
        per 1,000 of."""
        c = variants.c
        with self._read() as conn:
            n = conn.execute(
                select(func.count())
                .select_from(variants)
                .where(c.campaign_id == campaign_id, c.asset_id.is_not(None))
            ).scalar_one()
        return int(n)

    def usage_details(self, campaign_id: str, resource: str) -> list[str]:
        """The distinct ways a resource was measured (e.g. GPU wall time vs generator CPU
        time), for the report to say what a figure is."""
        c = cost_usage.c
        with self._read() as conn:
            rows = conn.execute(
                select(c.detail)
                .where(c.campaign_id == campaign_id, c.resource == resource, c.detail != "")
                .distinct()
                .order_by(c.detail)
            ).all()
        return [str(r[0]) for r in rows]
