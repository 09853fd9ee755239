"""What the campaign page shows about learning, read from the catalog: CTR per round and per
face-parameter value, the current leader with a credible interval, and what the learn step
recorded (chance of being best, winners per segment).

The interval is the leader's own Beta posterior (uniform prior, its clicks and
impressions), by a fixed-seed Monte Carlo; the chance of being best and the segment winners
are the learn step's, as its `round.learned` audit entry recorded them (they may use the
KPI model's pooling, so they need not match a per-variant Beta).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from faceloop.models import Variant
from faceloop.storage.audit import AuditEntry

__all__ = ["Bar", "CampaignInsight", "Leader", "campaign_insight"]

_CI_DRAWS = 20_000
_CI_SEED = 15


class Bar(BaseModel):
    label: str
    impressions: int
    clicks: int
    ctr: float | None = Field(description="clicks / impressions; None before any impression")
    variants: int = 0


class Leader(BaseModel):
    variant_id: str
    round: int
    impressions: int
    clicks: int
    ctr: float
    ci_low: float = Field(description="2.5% quantile of Beta(1 + clicks, 1 + non-clicks)")
    ci_high: float = Field(description="97.5% quantile of the same posterior")
    p_best: float | None = Field(
        default=None, description="P(best) the learn step recorded for it in its last round"
    )
    recorded: bool = Field(
        description="true: the campaign's recorded winner; false: the best posterior mean so far"
    )


class CampaignInsight(BaseModel):
    rounds: list[Bar]
    by_parameter: dict[str, list[Bar]]
    leader: Leader | None
    p_best: dict[str, float] = Field(description="the last learn step's P(best) per variant")
    segment_winners: dict[str, str] = Field(description="segment -> best variant, last round")
    learned_round: int | None = None


def _bar(label: str, vs: list[Variant]) -> Bar:
    imp, clk = sum(v.impressions for v in vs), sum(v.clicks for v in vs)
    return Bar(
        label=label, impressions=imp, clicks=clk, ctr=clk / imp if imp else None, variants=len(vs)
    )


def credible_interval(clicks: int, impressions: int) -> tuple[float, float]:
    rng = np.random.default_rng(_CI_SEED)
    draws = rng.beta(1 + clicks, 1 + max(impressions - clicks, 0), size=_CI_DRAWS)
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


def campaign_insight(variants: list[Variant], audit: list[AuditEntry]) -> CampaignInsight:
    by_round: dict[int, list[Variant]] = {}
    for v in variants:
        by_round.setdefault(v.round, []).append(v)
    rounds = [_bar(f"round {k + 1}", vs) for k, vs in sorted(by_round.items())]

    by_parameter: dict[str, list[Bar]] = {}
    shown = [v for v in variants if v.impressions > 0]
    for name in sorted({k for v in shown for k in v.params.model_dump()}):
        groups: dict[str, list[Variant]] = {}
        for v in shown:
            groups.setdefault(str(v.params.model_dump().get(name)), []).append(v)
        if len(groups) > 1:  # a parameter every variant shared says nothing
            by_parameter[name] = [_bar(value, vs) for value, vs in sorted(groups.items())]

    learned = [e for e in audit if e.kind == "round.learned"]
    last = learned[-1] if learned else None
    p_best = (
        {str(k): float(v) for k, v in (last.payload.get("p_best") or {}).items()} if last else {}
    )
    winners = (
        {str(k): str(v) for k, v in (last.payload.get("winners") or {}).items()} if last else {}
    )
    learned_round = None
    if last is not None and last.subject.startswith("round-"):
        tail = last.subject.removeprefix("round-")
        learned_round = int(tail) if tail.isdigit() else None

    # the winner the campaign recorded when it ended, as the report reads it
    recorded = [
        str(e.payload["winner"])
        for e in audit
        if e.kind.startswith("campaign.") and e.payload.get("winner")
    ]
    by_id = {v.variant_id: v for v in shown}
    leader = None
    if shown:
        best = by_id.get(recorded[-1]) if recorded else None
        is_recorded = best is not None
        if best is None:
            best = max(shown, key=lambda v: ((v.clicks + 1) / (v.impressions + 2), v.impressions))
        low, high = credible_interval(best.clicks, best.impressions)
        leader = Leader(
            variant_id=best.variant_id,
            round=best.round,
            impressions=best.impressions,
            clicks=best.clicks,
            ctr=best.clicks / best.impressions,
            ci_low=low,
            ci_high=high,
            p_best=p_best.get(best.variant_id),
            recorded=is_recorded,
        )
    return CampaignInsight(
        rounds=rounds,
        by_parameter=by_parameter,
        leader=leader,
        p_best=p_best,
        segment_winners=winners,
        learned_round=learned_round,
    )
