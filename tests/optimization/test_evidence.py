"""Observations as counts (`faceloop.optimization.evidence`): delay adjustment, memory
weights, segments, targets and the fatigue windows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from faceloop.models import FaceParams, KpiGoal, KpiObservation
from faceloop.optimization.evidence import (
    arms_from_observations,
    delay_cdf,
    delayed_exposure,
    window_clicks,
)


def test_delayed_conversions_are_credited_to_their_click_window() -> None:
    # mean delay 1 window: p = 1/2, half of a window's conversions are reported in it
    assert delay_cdf(0, 1.0) == pytest.approx(0.5)
    assert delay_cdf(2, 1.0) == pytest.approx(0.875)
    assert delay_cdf(-1, 1.0) == 0.0
    # 10k impressions in window 0 and 10k in window 2, read in window 2
    assert delayed_exposure({0: 10_000, 2: 10_000}, 2, 1.0) == pytest.approx(8_750 + 5_000)
    # two arms with the same true rate, one launched later, look the same after adjustment:
    # old: 20k impressions in windows 0-1, new: 10k in window 1; rate 1% per impression
    old_conv = 10_000 * 0.01 * delay_cdf(1, 1.0) + 10_000 * 0.01 * delay_cdf(0, 1.0)
    new_conv = 10_000 * 0.01 * delay_cdf(0, 1.0)
    old_rate = old_conv / delayed_exposure({0: 10_000, 1: 10_000}, 1, 1.0)
    new_rate = new_conv / delayed_exposure({1: 10_000}, 1, 1.0)
    assert old_rate == pytest.approx(0.01) and new_rate == pytest.approx(0.01)
    assert new_conv / 10_000 < old_conv / 20_000  # unadjusted, the newer arm looks worse


def test_arms_from_observations_weights_windows_and_segments() -> None:
    def ob(vid: str, rnd: int, seg: str, n: int, c: int, k: int) -> KpiObservation:
        return KpiObservation(
            campaign_id="c",
            variant_id=vid,
            ad_id=f"ad-{vid}",
            round=rnd,
            segment=seg,
            impressions=n,
            clicks=c,
            conversions=k,
            observed_at=datetime.now(UTC),
        )

    obs = [
        ob("a", 0, "x", 1000, 30, 2),
        ob("a", 1, "x", 1000, 10, 4),
        ob("a", 1, "y", 500, 5, 0),
        ob("gone", 1, "x", 900, 90, 9),
    ]
    stats = arms_from_observations(
        obs, ["a", "new"], ["x", "y"], KpiGoal.ctr, 1, memory_windows=1.0
    )
    a_x, new_x = stats["x"]
    # window 0 counts half (one window old at a half-life of one window)
    assert a_x.impressions == pytest.approx(1500) and a_x.successes == pytest.approx(25)
    assert new_x.impressions == 0 and stats["y"][0].impressions == 500
    conv = arms_from_observations(obs, ["a"], ["x"], KpiGoal.conversions, 1, 1.0, None)
    assert conv["x"][0].successes == 6
    assert conv["x"][0].impressions == pytest.approx(1000 * 0.75 + 1000 * 0.5)


def test_arms_from_observations_attaches_faces_and_targets() -> None:
    def ob(vid: str, rnd: int, seg: str, n: int, c: int) -> KpiObservation:
        return KpiObservation(
            campaign_id="c",
            variant_id=vid,
            ad_id=f"ad-{vid}",
            round=rnd,
            segment=seg,
            impressions=n,
            clicks=c,
            conversions=0,
            observed_at=datetime.now(UTC),
        )

    obs = [ob("a", 0, "x", 1000, 30), ob("b", 0, "y", 500, 5), ob("a", 1, "x", 1000, 20)]
    face = FaceParams(expression="laugh")
    stats = arms_from_observations(
        obs, ["a", "b"], ["x", "y"], KpiGoal.ctr, 1, params={"a": face}, targets={"a": "x"}
    )
    assert [s.variant_id for s in stats["x"]] == ["a", "b"]
    assert [s.variant_id for s in stats["y"]] == ["b"]  # a runs in x only
    assert stats["x"][0].params == face and stats["x"][0].impressions == 2000
    # the fatigue check reads clicks per window over all segments
    assert window_clicks(obs, {"a", "b"}) == {
        "a": {0: (1000, 30), 1: (1000, 20)},
        "b": {0: (500, 5)},
    }
