"""What a campaign costs: measured use, per 1,000 variants, in money (docs/cost.md).

The activities measure where the work happens and write it to the catalog
(faceloop/storage/costs.py), so the figures survive worker restarts and continue-as-new:

- gpu_seconds: the generate activity's time on the gpu queue. On a GPU the wall time the
  batch held it; on a host without one, the generator's process CPU time (the report says
  which);
- cpu_seconds: process CPU time of guard, sign, export and recheck;
- storage_bytes: the bytes of every asset the campaign stored (images, signed files,
  placement exports), once per content hash;
- api_calls: requests the connectors sent to the ad platform, retries included;
- review_minutes: how long each escalation waited from opening to its decision;
- ad_spend: what the ad platform reports it billed (cumulative), where it reports it.

`campaign_cost` reads those totals and prices them with the settings' prices.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from pydantic import Field, ValidationError

from faceloop.errors import InputError
from faceloop.models import Model, SpendCap

if TYPE_CHECKING:
    from faceloop.settings import Settings

__all__ = [
    "CampaignCost",
    "CostLine",
    "Prices",
    "Stopwatch",
    "attempt_key",
    "campaign_cost",
    "cap_reason",
    "check_cap_currency",
    "measure",
    "parse_spend_cap",
    "spend_cap_reached",
]


class UsageSource(Protocol):
    """What campaign_cost reads: the catalog (faceloop.storage.catalog.Catalog)."""

    def usage_totals(self, campaign_id: str) -> dict[str, float]: ...

    def usage_details(self, campaign_id: str, resource: str) -> list[str]: ...

    def count_variants(self, campaign_id: str) -> int: ...


class Stopwatch:
    """Wall and process CPU seconds since the block began; read inside the block (say, in a
    `finally` that records them) they are the time so far, after it the block's time."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self._stopped: tuple[float, float] | None = None

    def stop(self) -> None:
        self._stopped = (self.wall_s, self.cpu_s)

    @property
    def wall_s(self) -> float:
        return self._stopped[0] if self._stopped else time.perf_counter() - self._wall

    @property
    def cpu_s(self) -> float:
        return self._stopped[1] if self._stopped else time.process_time() - self._cpu


@contextmanager
def measure() -> Iterator[Stopwatch]:
    """Time a block. CPU time is the whole process's (time.process_time), because torch and
    onnxruntime compute in threads of their own; a worker running several activities at
    once charges each with what ran beside it, so the figure is an upper bound there."""
    watch = Stopwatch()
    try:
        yield watch
    finally:
        watch.stop()


def attempt_key() -> str:
    """The running activity attempt, as a usage key: a retry is a new attempt and what it
    used is counted too; the same attempt writing twice replaces its row."""
    from temporalio import activity

    info = activity.info()
    return f"{info.workflow_run_id}:{info.activity_id}:{info.attempt}"


class Prices(Model):
    """Prices per unit, in one currency (the settings' cost_currency)."""

    currency: str = "USD"
    gpu_hour: float = 2.50
    cpu_hour: float = 0.05
    gb_month: float = 0.023
    per_1k_api_calls: float = 0.0
    reviewer_hour: float = 40.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Prices:
        return cls(
            currency=settings.cost_currency,
            gpu_hour=settings.price_gpu_hour,
            cpu_hour=settings.price_cpu_hour,
            gb_month=settings.price_gb_month,
            per_1k_api_calls=settings.price_per_1k_api_calls,
            reviewer_hour=settings.price_reviewer_hour,
        )


class CostLine(Model):
    resource: str
    unit: str
    quantity: float = Field(description="measured total for the campaign")
    per_1k_variants: float | None = Field(description="quantity per 1,000 variants made")
    price: float = Field(description="price of one `price_unit`")
    price_unit: str
    money: float = Field(description="quantity priced")
    money_per_1k_variants: float | None
    measured_as: list[str] = Field(
        default_factory=list, description="how it was measured (e.g. GPU wall time)"
    )


class CampaignCost(Model):
    campaign_id: str
    currency: str
    variants: int = Field(description="variants generated (with an image)")
    lines: list[CostLine]
    compute_money: float = Field(description="every line priced, summed")
    compute_money_per_1k_variants: float | None
    ad_spend: float | None = Field(
        description="what the ad platform reports it billed; None: it reports no spend"
    )
    total_money: float = Field(description="compute_money + ad_spend")
    spend_cap: SpendCap | None = None
    capped_spend: float | None = Field(
        default=None, description="what the cap is checked against (with or without compute)"
    )
    cap_reached: bool = False


# resource -> (unit, price attribute, price unit, units of the price per measured unit)
_LINES: dict[str, tuple[str, str, str, float]] = {
    "gpu_seconds": ("s", "gpu_hour", "GPU hour", 1 / 3600),
    "cpu_seconds": ("s", "cpu_hour", "CPU hour", 1 / 3600),
    "storage_bytes": ("B", "gb_month", "GB-month", 1 / 1e9),
    "api_calls": ("calls", "per_1k_api_calls", "1,000 calls", 1 / 1000),
    "review_minutes": ("min", "reviewer_hour", "reviewer hour", 1 / 60),
}


def campaign_cost(
    source: UsageSource, campaign_id: str, prices: Prices, cap: SpendCap | None = None
) -> CampaignCost:
    """The campaign's measured use, per 1,000 variants and in money. Storage is priced
    as one month of keeping what the campaign stored."""
    totals = source.usage_totals(campaign_id)
    n = source.count_variants(campaign_id)
    lines = []
    for resource, (unit, attr, price_unit, scale) in _LINES.items():
        quantity = totals.get(resource, 0.0)
        price = float(getattr(prices, attr))
        money = quantity * scale * price
        lines.append(
            CostLine(
                resource=resource,
                unit=unit,
                quantity=quantity,
                per_1k_variants=quantity * 1000 / n if n else None,
                price=price,
                price_unit=price_unit,
                money=money,
                money_per_1k_variants=money * 1000 / n if n else None,
                measured_as=source.usage_details(campaign_id, resource),
            )
        )
    compute = sum(line.money for line in lines)
    spend = totals.get("ad_spend")
    cost = CampaignCost(
        campaign_id=campaign_id,
        currency=prices.currency,
        variants=n,
        lines=lines,
        compute_money=compute,
        compute_money_per_1k_variants=compute * 1000 / n if n else None,
        ad_spend=spend,
        total_money=compute + (spend or 0.0),
        spend_cap=cap,
    )
    if cap is not None:
        capped = (spend or 0.0) + (compute if cap.include_compute else 0.0)
        cost.capped_spend = capped
        cost.cap_reached = spend_cap_reached(capped, cap)
    return cost


def spend_cap_reached(spent: float, cap: SpendCap) -> bool:
    return spent >= cap.amount


def cap_reason(cost: CampaignCost) -> str:
    """The reason a capped campaign or schedule records, in the words a person reads."""
    cap = cost.spend_cap
    assert cap is not None and cost.capped_spend is not None
    what = "ad spend + compute" if cap.include_compute else "ad spend"
    return (
        f"spend cap reached: {what} {cost.capped_spend:.2f} {cost.currency} >= cap "
        f"{cap.amount:.2f} {cap.currency}"
    )


def parse_spend_cap(text: str, source: str) -> SpendCap:
    """'500 USD' (or 'USD 500', '500USD') -> SpendCap; InputError names `source`."""
    m = re.fullmatch(
        r"\s*(?:(?P<a>\d+(?:\.\d+)?)\s*(?P<c>[A-Za-z]{3})|(?P<c2>[A-Za-z]{3})\s*(?P<a2>\d+(?:\.\d+)?))\s*",
        text,
    )
    if m is None:
        raise InputError(source, [f"{text!r} is not an amount and currency: use e.g. '500 USD'"])
    amount, currency = m["a"] or m["a2"], (m["c"] or m["c2"]).upper()
    try:
        return SpendCap(amount=float(amount), currency=currency)
    except ValidationError as err:
        raise InputError.from_validation(source, err) from None


def check_cap_currency(cap: SpendCap | None, currency: str, source: str, field: str) -> None:
    """A cap in another currency than the deployment's cannot be compared without a rate;
    refuse it up front, naming the field (e.g. source "brief", field "spend_cap.currency")."""
    if cap is not None and cap.currency != currency:
        raise InputError(
            source,
            [
                f"{field}: {cap.currency} is not this deployment's currency {currency} "
                "(FACELOOP_COST_CURRENCY): give the cap in it, or change the setting"
            ],
        )
