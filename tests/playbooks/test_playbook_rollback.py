"""Rollback criteria over per-ad aggregates built from KpiObservation rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from faceloop.models import KpiObservation
from faceloop.playbooks import Playbook, RollbackKpis

T = datetime(2026, 1, 1, tzinfo=UTC)


def obs(variant: str, ad: str, rnd: int, seg: str, n: int, c: int, v: int) -> KpiObservation:
    return KpiObservation(
        campaign_id="c",
        variant_id=variant,
        ad_id=ad,
        round=rnd,
        segment=seg,
        impressions=n,
        clicks=c,
        conversions=v,
        observed_at=T,
    )


def criteria(*items: dict[str, Any]) -> Playbook:
    return Playbook.model_validate({"name": "r", "rollback": list(items)})


def test_aggregates_sum_segments_and_rounds_per_ad() -> None:
    rows = [
        obs("v1", "ad1", 0, "young", 600, 12, 1),
        obs("v2", "ad2", 0, "all", 1000, 5, 0),
        obs("v1", "ad1", 0, "old", 400, 4, 1),
        obs("v1", "ad1", 1, "young", 1000, 14, 0),
    ]
    aggs = RollbackKpis.from_observations(rows)
    assert [(a.variant_id, a.impressions, a.clicks, a.conversions) for a in aggs] == [
        ("v1", 2000, 30, 2),
        ("v2", 1000, 5, 0),
    ]
    v1 = aggs[0]
    assert v1.value("ctr") == pytest.approx(0.015)
    assert v1.value("cvr") == pytest.approx(2 / 30)
    # signals no connector reports are None, not 0: a criterion on them cannot fire
    assert v1.value("complaint_rate") is None and v1.value("safety_flag") is None


def test_hides_and_complaints_add_up_over_windows_where_reported() -> None:
    t = datetime(2026, 11, 26, tzinfo=UTC)

    def row(rnd: int, hides: int | None, complaints: int | None) -> KpiObservation:
        return KpiObservation(
            campaign_id="c",
            variant_id="v1",
            ad_id="ad-1",
            round=rnd,
            impressions=1000,
            clicks=10,
            conversions=1,
            observed_at=t,
            negative_feedback=hides,
            complaints=complaints,
        )

    # window 0 from before the platform reported them, windows 1 and 2 with counts
    (agg,) = RollbackKpis.from_observations([row(0, None, None), row(1, 4, 1), row(2, 8, 2)])
    assert (agg.negative_feedback, agg.complaints) == (12, 3)
    assert agg.value("negative_feedback_rate") == pytest.approx(12 / 3000)
    assert agg.value("complaint_rate") == pytest.approx(3 / 3000)
    (none,) = RollbackKpis.from_observations([row(0, None, None), row(1, None, None)])
    assert none.value("negative_feedback_rate") is None


def test_lt_gt_thresholds_and_min_impressions() -> None:
    pb = criteria(
        {"id": "low-ctr", "metric": "ctr", "op": "lt", "threshold": 0.01, "min_impressions": 1000},
        {"id": "low-cvr", "metric": "cvr", "op": "lt", "threshold": 0.05, "min_impressions": 0},
        {"id": "flags", "metric": "safety_flag", "op": "gt", "threshold": 0, "min_impressions": 0},
        {
            "id": "hides",
            "metric": "negative_feedback_rate",
            "op": "gt",
            "threshold": 0.01,
            "notify_role": "brand",
        },
    )
    k = {"campaign_id": "c", "variant_id": "v", "ad_id": "a"}
    cases = [
        (RollbackKpis(**k, impressions=999, clicks=1, conversions=0), ["low-cvr"]),
        (RollbackKpis(**k, impressions=1000, clicks=9, conversions=1), ["low-ctr"]),
        (RollbackKpis(**k, impressions=1000, clicks=10, conversions=1), []),  # 0.01 is not < 0.01
        (RollbackKpis(**k, impressions=0, clicks=0, conversions=0, safety_flags=1), ["flags"]),
        (RollbackKpis(**k, impressions=0, clicks=0, conversions=0, safety_flags=0), []),
        (
            RollbackKpis(**k, impressions=2000, clicks=40, conversions=4, negative_feedback=21),
            ["hides"],
        ),
        (
            RollbackKpis(**k, impressions=2000, clicks=40, conversions=4, negative_feedback=20),
            [],
        ),
    ]
    for kpis, expected in cases:
        assert [h.criterion for h in pb.rollback_hits([kpis])] == expected, kpis
    (hit,) = pb.rollback_hits(
        [RollbackKpis(**k, impressions=2000, clicks=40, conversions=4, negative_feedback=30)]
    )
    assert hit.notify_role == "brand" and hit.value == pytest.approx(0.015)
    assert hit.reason == "hides: negative_feedback_rate 0.015 > 0.01 after 2,000 impressions"
