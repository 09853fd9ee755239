"""Rollback: which live ads a playbook's criteria pause, given what each ad delivered.

Input is one aggregate per ad (RollbackKpis), built from KpiObservation rows. Every
platform reports impressions, clicks and conversions; hides (negative_feedback) and
complaints are optional, None where a platform does not report them (the sandbox reports
them when its scenario has a `feedback` section), and a criterion over a signal nobody
reported does not fire. Safety flags come from faceloop itself: after each KPI window the
campaign re-checks its live creatives (safety and identity, `GuardrailActivities.recheck`)
when a criterion reads `safety_flag`, and a check that blocks a creative now is a flag.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from faceloop.models import KpiObservation, Model
from faceloop.playbooks.schema import RollbackCriterion, RollbackMetric

__all__ = ["RollbackHit", "RollbackKpis", "rollback_hits"]

# The count each unreported metric would need from a connector (none at present; the
# check in `faceloop playbook check` stays for metrics added before their source).
MISSING_SIGNALS: dict[str, str] = {}


class RollbackKpis(Model):
    """What one live ad delivered over the judged period (a window or the campaign so far)."""

    campaign_id: str
    variant_id: str
    ad_id: str = ""
    impressions: int = Field(ge=0)
    clicks: int = Field(ge=0)
    conversions: int = Field(ge=0)
    complaints: int | None = Field(default=None, ge=0, description="None: not reported")
    negative_feedback: int | None = Field(default=None, ge=0, description="None: not reported")
    safety_flags: int | None = Field(default=None, ge=0, description="None: not reported")

    @classmethod
    def from_observations(cls, rows: Iterable[KpiObservation]) -> list[RollbackKpis]:
        """One aggregate per (campaign, variant, ad), summed over segments and rounds, in
        first-seen order."""
        out: dict[tuple[str, str, str], RollbackKpis] = {}
        for r in rows:
            key = (r.campaign_id, r.variant_id, r.ad_id)
            agg = out.setdefault(
                key,
                cls(
                    campaign_id=r.campaign_id,
                    variant_id=r.variant_id,
                    ad_id=r.ad_id,
                    impressions=0,
                    clicks=0,
                    conversions=0,
                ),
            )
            agg.impressions += r.impressions
            agg.clicks += r.clicks
            agg.conversions += r.conversions
            agg.negative_feedback = _add(agg.negative_feedback, r.negative_feedback)
            agg.complaints = _add(agg.complaints, r.complaints)
        return list(out.values())

    def value(self, metric: RollbackMetric) -> float | None:
        """The metric, or None where it is undefined (no impressions / clicks) or unreported."""
        if metric == "ctr":
            return self.clicks / self.impressions if self.impressions else None
        if metric == "cvr":
            return self.conversions / self.clicks if self.clicks else None
        if metric == "safety_flag":
            return None if self.safety_flags is None else float(self.safety_flags)
        count = self.complaints if metric == "complaint_rate" else self.negative_feedback
        if count is None or not self.impressions:
            return None
        return count / self.impressions


class RollbackHit(Model):
    """A criterion that fired for one ad: pause it, tell the role, record why."""

    criterion: str
    campaign_id: str
    variant_id: str
    ad_id: str
    metric: RollbackMetric
    op: str
    threshold: float
    value: float
    impressions: int
    action: str = "pause"
    notify_role: str
    reason: str


_OPS = {"lt": ("<", float.__lt__), "gt": (">", float.__gt__)}


def rollback_hits(
    criteria: list[RollbackCriterion], kpis: Iterable[RollbackKpis]
) -> list[RollbackHit]:
    hits = []
    for k in kpis:
        for c in criteria:
            if k.impressions < c.min_impressions:
                continue
            value = k.value(c.metric)
            if value is None:
                continue
            sign, fires = _OPS[c.op]
            if not fires(float(value), float(c.threshold)):
                continue
            hits.append(
                RollbackHit(
                    criterion=c.id,
                    campaign_id=k.campaign_id,
                    variant_id=k.variant_id,
                    ad_id=k.ad_id,
                    metric=c.metric,
                    op=c.op,
                    threshold=c.threshold,
                    value=value,
                    impressions=k.impressions,
                    action=c.action,
                    notify_role=c.notify_role,
                    reason=f"{c.id}: {c.metric} {value:.4g} {sign} {c.threshold:g} after "
                    f"{k.impressions:,} impressions"
                    + (f" ({c.description})" if c.description else ""),
                )
            )
    return hits


def _add(a: int | None, b: int | None) -> int | None:
    """Sum of two counts where None means "not reported": reported by either counts."""
    if a is None and b is None:
        return None
    return (a or 0) + (b or 0)
