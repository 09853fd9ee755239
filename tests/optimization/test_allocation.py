"""Traffic allocation (`faceloop.optimization.allocation`): the posterior around the pooled
rate, Thompson shares with a floor, per-segment budgets."""

from __future__ import annotations

import numpy as np
import pytest

from faceloop.connectors.base import per_variant
from faceloop.models import FaceParams, SearchSpace
from faceloop.optimization.allocation import (
    MEASURED_IMPRESSIONS,
    allocate,
    p_best,
    posterior_mean,
    posterior_params,
    split_impressions,
    thompson_allocation,
)
from faceloop.optimization.evidence import ArmStats
from faceloop.optimization.facemodel import segment_models


def _truth(p: FaceParams) -> float:
    """A small additive truth: smile and warm are best."""
    x = -3.9 + {"smile": 0.3, "serious": -0.3}.get(p.expression, 0.0)
    x += {"warm": 0.2, "grey": -0.2}.get(p.background, 0.0)
    return 1 / (1 + np.exp(-x))


def test_posterior_mean_ranks_by_rate_with_shrinkage() -> None:
    arms = [ArmStats("a", 10000, 300), ArmStats("b", 10000, 150), ArmStats("new", 0, 0)]
    m = posterior_mean(arms)
    assert m["a"] > m["new"] > m["b"]
    # an unmeasured arm sits at the pooled rate, not at 0.5
    assert m["new"] == pytest.approx(451 / 20100, rel=0.05)


def test_thompson_sends_most_traffic_to_the_clear_winner_and_the_floor_only_to_new_arms() -> None:
    arms = [
        ArmStats("good", 20000, 600),
        ArmStats("bad", 20000, 200),
        ArmStats("meh", 20000, 380),
        ArmStats("new", 500, 10),
    ]
    shares = thompson_allocation(arms, floor=0.05, seed=1)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["good"] > 0.85
    # a measured loser gets its P(best), no floor; an arm not yet measured keeps the floor
    assert shares["bad"] < 0.01
    assert MEASURED_IMPRESSIONS > 500 and shares["new"] >= 0.05 - 1e-9
    # reproducible for the same seed
    assert shares == thompson_allocation(arms, floor=0.05, seed=1)


def test_a_settled_segment_gives_its_new_arm_the_floor_alone() -> None:
    # five equally good measured creatives and a new one: Thompson sampling hands the new
    # one's wide prior a large share; where no new creative is worth its test it gets the
    # floor, and the measured ones share the rest
    arms = [ArmStats(str(i), 20_000, 340) for i in range(5)] + [ArmStats("new", 0, 0)]
    open_ = thompson_allocation(arms, floor=0.02, seed=4)
    settled = thompson_allocation(arms, floor=0.02, seed=4, settled=True)
    assert open_["new"] > 0.05
    assert settled["new"] == pytest.approx(0.02)
    assert sum(settled.values()) == pytest.approx(1.0)
    # with no measured arm there is nothing to exploit: the shares are Thompson's
    fresh = [ArmStats("a", 0, 0), ArmStats("b", 0, 0)]
    assert thompson_allocation(fresh, 0.02, 1, settled=True) == thompson_allocation(fresh, 0.02, 1)


def test_thompson_is_even_without_data() -> None:
    arms = [ArmStats(str(i), 0, 0) for i in range(4)]
    shares = thompson_allocation(arms, floor=0.05, seed=3)
    assert np.allclose(list(shares.values()), 0.25, atol=0.05)


def test_split_impressions_sums_exactly() -> None:
    out = split_impressions({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 1000)
    assert sum(out.values()) == 1000 and max(out.values()) - min(out.values()) <= 1


def test_posterior_update_is_beta_binomial_around_the_pooled_rate() -> None:
    arms = [ArmStats("a", 10_000, 200), ArmStats("b", 0, 0)]
    ab = posterior_params(arms, prior_cv=0.2)
    pooled = 201 / 10_100
    strength = (1 - pooled) / (pooled * 0.04) - 1
    # the unmeasured arm is exactly the prior; the measured one adds its counts
    assert ab[1] == pytest.approx([pooled * strength, (1 - pooled) * strength])
    assert ab[0] == pytest.approx([pooled * strength + 200, (1 - pooled) * strength + 9_800])
    # prior sd is cv * mean
    a, b = ab[1]
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert sd / (a / (a + b)) == pytest.approx(0.2, rel=1e-6)
    # more data moves the mean toward the observed rate
    m_small = posterior_mean([ArmStats("x", 1_000, 40), ArmStats("y", 1_000, 20)])
    m_big = posterior_mean([ArmStats("x", 100_000, 4_000), ArmStats("y", 100_000, 2_000)])
    assert m_small["x"] < m_big["x"] == pytest.approx(0.04, rel=0.01)


def test_p_best_sums_to_one_and_favours_the_better_arm() -> None:
    arms = [ArmStats("a", 5_000, 150), ArmStats("b", 5_000, 100), ArmStats("c", 5_000, 100)]
    pb = p_best(arms, seed=0)
    assert sum(pb.values()) == pytest.approx(1.0)
    assert pb["a"] > 0.9 and pb["b"] == pytest.approx(pb["c"], abs=0.03)


def test_new_arm_gets_little_more_than_the_floor_next_to_a_proven_winner() -> None:
    # the new arm's prior is centred on the pooled rate (2.3%) with a 20% cv: P(it beats
    # 3%) is about 8%, where a prior of 200 pseudo-impressions would say about 30%
    arms = [
        ArmStats("win", 50_000, 1_500),
        ArmStats("b", 50_000, 1_000),
        ArmStats("c", 50_000, 1_000),
        ArmStats("new", 0, 0),
    ]
    shares = thompson_allocation(arms, floor=0.05, seed=2)
    assert 0.05 <= shares["new"] < 0.15 and shares["win"] > 0.75


def test_allocate_per_segment_follows_each_segments_best() -> None:
    by_seg = {
        "gen_z": [ArmStats("laugh", 10_000, 400), ArmStats("smile", 10_000, 200)],
        "pros": [ArmStats("laugh", 10_000, 150), ArmStats("smile", 10_000, 300)],
    }
    alloc = allocate(by_seg, {"gen_z": 0.3, "pros": 0.7}, floor=0.05, seed=1, impressions=10_000)
    assert sum(alloc["gen_z"].values()) == 3_000 and sum(alloc["pros"].values()) == 7_000
    assert alloc["gen_z"]["laugh"] > 2_700 and alloc["pros"]["smile"] > 6_300
    assert sum(per_variant(alloc).values()) == 10_000


def test_allocate_with_models_sums_to_each_segments_budget_and_keeps_targets() -> None:
    space = SearchSpace(expression=["smile", "neutral", "serious"], background=["warm", "grey"])
    smile = FaceParams(expression="smile", background="warm")
    serious = FaceParams(expression="serious", background="grey")
    history = {
        "young": [
            ArmStats("a", 30_000, 30_000 * _truth(smile), smile),
            ArmStats("b", 30_000, 30_000 * _truth(serious), serious),
        ],
        "old": [
            ArmStats("c", 30_000, 30_000 * _truth(serious) * 2.0, serious),
            ArmStats("d", 30_000, 30_000 * _truth(smile) * 0.6, smile),
        ],
    }
    models = segment_models(space, history)
    live = {
        # a and b run for young only, c and d for old only (their targets)
        "young": [
            ArmStats("a", 30_000, 30_000 * _truth(smile), smile),
            ArmStats("b", 30_000, 30_000 * _truth(serious), serious),
            ArmStats("new", 0, 0, FaceParams(expression="neutral", background="warm")),
        ],
        "old": [
            ArmStats("c", 30_000, 30_000 * _truth(serious) * 2.0, serious),
            ArmStats("d", 30_000, 30_000 * _truth(smile) * 0.6, smile),
        ],
    }
    alloc = allocate(live, {"young": 0.6, "old": 0.4}, 0.02, 1, 10_001, models)
    assert sum(alloc["young"].values()) == 6_001 and sum(alloc["old"].values()) == 4_000
    assert set(alloc["young"]) == {"a", "b", "new"} and set(alloc["old"]) == {"c", "d"}
    # each segment's winner takes most of its budget; the measured loser gets its P(best)
    # and no floor
    assert alloc["young"]["a"] > 0.8 * 6_001 and alloc["old"]["c"] > 0.8 * 4_000
    assert alloc["old"]["d"] < 0.02 * 4_000
    # the never-shown arm starts from its face's prediction, not from the average
    assert 0.02 * 6_001 <= alloc["young"]["new"] < alloc["young"]["a"]


def test_a_segment_without_its_own_arms_still_spends_its_budget() -> None:
    arms = {"young": [ArmStats("a", 1000.0, 30.0, None), ArmStats("b", 1000.0, 10.0, None)]}
    out = allocate(arms, {"young": 0.6, "old": 0.4}, 0.05, seed=1, impressions=10_000)
    assert sum(out["young"].values()) == 6000
    # "old" has no targeted arm left: every live arm is shown there, nothing is lost
    assert sum(out["old"].values()) == 4000 and set(out["old"]) == {"a", "b"}


def test_under_the_null_model_the_measured_leader_gets_more_than_its_p_best() -> None:
    """Where the face does not matter (the null model decides), the split is P(best) to
    NULL_SHARE_POWER, renormalised: the posterior leader's share grows, the others' shrink,
    the total stays; the face model's split is plain P(best)."""
    from faceloop.optimization.allocation import NULL_SHARE_POWER
    from faceloop.optimization.facemodel import Evidence, FaceModel

    space = SearchSpace(expression=["smile", "neutral", "serious"], background=["warm", "white"])
    rng = np.random.default_rng(11)
    arms, evidence = [], []
    for i in range(40):
        p = FaceParams(expression=space.expression[i % 3], background=space.background[i % 2])
        clicks = float(rng.binomial(20_000, 0.02 * np.exp(rng.normal(0.0, 0.05))))
        evidence.append(Evidence(p, 20_000, clicks))
        arms.append(ArmStats(f"v{i}", 20_000, clicks, p))
    face = FaceModel(space, evidence)
    null = face.null_model()
    assert null.is_null and not face.is_null
    live = arms[:8]
    plain = p_best(live, 3, model=null)
    shares = thompson_allocation(live, 0.02, 3, model=null)
    leader = max(plain, key=lambda v: plain[v])
    assert shares[leader] > plain[leader]
    raised = {v: p**NULL_SHARE_POWER for v, p in plain.items()}
    assert shares == pytest.approx({v: r / sum(raised.values()) for v, r in raised.items()})
    # the face model keeps plain Thompson
    assert thompson_allocation(live, 0.02, 3, model=face) == pytest.approx(
        p_best(live, 3, model=face)
    )
