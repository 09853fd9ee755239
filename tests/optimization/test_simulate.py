from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna.trial import TrialState

from faceloop.connectors.sandbox_platform.scenario import (
    Effects,
    best_params,
    load_scenario,
    true_rates,
    worst_params,
)
from faceloop.examples import example_path
from faceloop.models import CampaignConfig, FaceParams
from faceloop.optimization.evidence import ALL
from faceloop.optimization.facemodel import campaign_evidence
from faceloop.optimization.simulate import (
    STRATEGIES,
    Audience,
    BenchConfig,
    SimArm,
    Tally,
    _ci95,
    _kpi,
    bench,
    campaign_segments,
    for_scenario,
    known_face_models,
    run_ab_test,
    run_best_fixed,
    run_optuna_loop,
    run_oracle,
    run_seed,
)
from faceloop.optimization.study import Optimizer

SCENARIOS = example_path("scenarios")  # shipped in the wheel
SMALL = BenchConfig(rounds=4, impressions_per_round=3_000, ab_test_rounds=1)


def test_every_shipped_scenario_loads_and_carries_its_split() -> None:
    """Issue 17: at least 8 scenarios, each in the tuning or the held-out set (both sets
    used), and a `flat` one where no parameter moves the KPI (the do-no-harm check)."""
    names = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    assert {"smooth", "segments", "multimodal", "drift_fatigue", "flat"} <= set(names)
    assert len(names) >= 8
    splits: dict[str, str] = {}
    for name in names:
        sc = load_scenario(SCENARIOS / f"{name}.yaml")
        assert sc.name == name
        assert sc.bench is not None, f"{name}.yaml has no bench section (split)"
        splits[name] = sc.bench.split
    assert set(splits.values()) == {"tuning", "heldout"}
    flat = load_scenario(SCENARIOS / "flat.yaml")
    assert flat.effects == Effects() and not flat.segments and not flat.drift
    _, best = best_params(flat)
    _, worst = worst_params(flat)
    assert best == pytest.approx(worst)  # no face is better than another


def test_audience_draws_match_the_scenarios_true_rates() -> None:
    sc = load_scenario(SCENARIOS / "smooth.yaml")
    audience = Audience(sc, 0, {"all": 1.0})
    params = FaceParams(expression="smile", background="warm")
    arm = SimArm("v", params, "asset-v")
    tally = Tally()
    audience.deliver(arm, 0, {"all": 200_000}, tally, "ctr")
    # fatigue at the middle of the window, per-ad noise of this asset: as the sandbox
    ctr, cvr = true_rates(sc, params, "all", 100_000, 0, asset_id="asset-v")
    # what the observe activity stores: one row per ad, segment and window
    (row,) = audience.observe(0, [arm])
    assert (row.variant_id, row.ad_id, row.round, row.segment) == ("v", "asset-v", 0, "all")
    clicks = row.clicks
    assert clicks == tally.clicks and row.impressions == 200_000
    assert clicks / 200_000 == pytest.approx(ctr, abs=4 * np.sqrt(ctr / 200_000))
    assert tally.conversions / clicks == pytest.approx(cvr, abs=4 * np.sqrt(cvr / clicks))
    # conversions are reported over later windows (rows without impressions): mean delay
    # 0.5 -> 2/3 in the click window
    for w in range(1, 30):
        audience.observe(w, [arm])
    assert sum(o.conversions for o in audience.observations) == tally.conversions
    assert row.conversions / tally.conversions == pytest.approx(2 / 3, abs=0.08)
    assert all(o.impressions == 0 for o in audience.observations[1:])


def test_conversions_of_a_retired_ad_are_not_stored() -> None:
    """As the observe activity reads only the live ads, conversions that arrive after an ad
    was retired never reach the campaign's evidence."""
    sc = load_scenario(SCENARIOS / "smooth.yaml")
    audience = Audience(sc, 0, {"all": 1.0})
    arm = SimArm("v", FaceParams(), "asset-v")
    tally = Tally()
    audience.deliver(arm, 0, {"all": 200_000}, tally, "ctr")
    (row,) = audience.observe(0, [arm])
    assert 0 < row.conversions < tally.conversions
    assert audience.observe(1, []) == [] and audience.observations == [row]


def test_strategies_get_the_same_budget() -> None:
    sc = load_scenario(SCENARIOS / "segments.yaml")
    runs = run_seed(sc, SMALL, seed=3)
    budget = SMALL.rounds * SMALL.impressions_per_round
    assert set(runs) == set(STRATEGIES)
    assert {name: t.impressions for name, t in runs.items()} == dict.fromkeys(runs, budget)
    assert all(len(t.clicks_by_round) == SMALL.rounds for t in runs.values())


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
def test_no_strategy_beats_the_oracle_in_expectation(name: str) -> None:
    """The oracle sees every creative the strategies ran (same ads, same per-ad noise) and
    splits each window by true rate, so its true expected KPI bounds every strategy's."""
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    cfg = BenchConfig(rounds=5, impressions_per_round=3_000, ab_test_rounds=1)
    for seed in range(3):
        runs = run_seed(sc, cfg, seed)
        oracle = runs["oracle"].expected
        assert oracle > 0
        assert all(t.expected <= oracle for t in runs.values()), {
            k: t.expected for k, t in runs.items()
        }


def test_the_oracle_serves_the_truly_best_live_creative() -> None:
    """Of two creatives a strategy ran, the oracle (fatigue off, so no reason to split)
    gives the window to the one whose true rate, per-ad noise included, is higher, even
    over its own creatives with the best parameters when that one's noise is luckier."""
    sc = load_scenario(SCENARIOS / "smooth.yaml").model_copy(
        update={
            "fatigue": load_scenario(SCENARIOS / "smooth.yaml").fatigue.model_copy(
                update={"half_life_impressions": None}
            )
        }
    )
    cfg = BenchConfig(
        rounds=1,
        impressions_per_round=2_000,
        campaign=CampaignConfig(variants_per_round=3, incumbents=2),
    )
    best, _ = Audience(sc, 0, {"all": 1.0}).best("all", 0, "ctr")
    # a hundred draws of the best face by a strategy, three by the oracle: their per-ad
    # noise differs; the luckiest of all 103 wins
    seen = {f"other-{i}": (0, best) for i in range(100)}
    ids = [*seen, *(f"oracle-0-r0-{i}" for i in range(3))]
    rate = {aid: true_rates(sc, best, "all", 0, 0, asset_id=aid)[0] for aid in ids}
    top = max(rate, key=rate.__getitem__)
    assert top.startswith("other-")  # a strategy's creative: the oracle must see it
    tally = run_oracle(sc, cfg, 0, seen, launches=[3])
    assert list(tally.creatives) == [top]
    assert tally.expected == pytest.approx(2_000 * rate[top])


def test_the_oracle_launches_as_many_creatives_as_faceloop_each_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 17: "same number of new creatives per round as faceloop". faceloop's launches
    per round are the creatives it first served in that round; the oracle puts exactly as
    many of its own best-parameter creatives live in that round, fewer than the places
    free where faceloop's learn rule launched fewer."""
    sc = load_scenario(SCENARIOS / "segments.yaml")
    cfg = BenchConfig(rounds=6, impressions_per_round=3_000, ab_test_rounds=1)
    launched: dict[int, set[str]] = {}
    look = Audience.look

    def spy(self: Audience, arm: SimArm) -> SimArm:
        if arm.asset_id.startswith("oracle-2-r"):  # the oracle's own: oracle-<seed>-r<round>-<i>
            rnd = int(arm.asset_id.split("-")[2][1:])
            launched.setdefault(rnd, set()).add(arm.asset_id)
        return look(self, arm)

    monkeypatch.setattr(Audience, "look", spy)
    runs = run_seed(sc, cfg, 2)
    faceloop = runs["faceloop"]
    first = [w for w, _ in faceloop.creatives.values()]
    assert faceloop.new_by_round == [first.count(r) for r in range(cfg.rounds)]
    oracle = [len(launched.get(r, ())) for r in range(cfg.rounds)]
    assert oracle == faceloop.new_by_round == runs["oracle"].new_by_round
    places = cfg.campaign.variants_per_round - cfg.campaign.incumbents
    assert oracle[0] == cfg.campaign.variants_per_round and min(oracle[1:]) < places


def test_best_fixed_serves_the_creative_with_the_best_true_total() -> None:
    sc = load_scenario(SCENARIOS / "drift_fatigue.yaml")
    cfg = BenchConfig(rounds=4, impressions_per_round=2_000)
    runs = run_seed(sc, cfg, 1)
    pool = runs["faceloop"].creatives
    fixed = runs["best_fixed"]
    (chosen,) = fixed.creatives  # one creative, every impression
    assert chosen in pool and fixed.impressions == 4 * 2_000
    # no other creative of the run would have done better shown the whole campaign
    for aid, (_, params) in pool.items():
        other = run_best_fixed(sc, cfg, 1, {aid: (0, params)})
        assert other.expected <= fixed.expected + 1e-9


def test_faceloop_runs_the_real_optuna_study(tmp_path: Path) -> None:
    """The bench's loop writes its trials to an Optuna RDB study, as the workflow does: 12
    trials in round 0 (the default variants per round), then one per place a retired
    variant leaves free (at least one: the keep rule keeps at most 11), each targeted at a
    segment, half for each of two equal segments."""
    sc = load_scenario(SCENARIOS / "segments.yaml")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg = BenchConfig(rounds=4, impressions_per_round=5_000, campaign=CampaignConfig())
    run_optuna_loop(sc, cfg, 7, "thompson", url, "faceloop")
    trials = Optimizer(url).trials("faceloop-7")
    rounds = [t.user_attrs["round"] for t in trials]
    assert rounds[:12] == [0] * 12
    assert all(1 <= rounds.count(r) <= 12 for r in range(1, 4))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    segments = [t.user_attrs["segment"] for t in trials if t.user_attrs["round"] == 0]
    assert segments.count("gen_z") == segments.count("professionals") == 6
    # each value is a posterior mean CTR relative to its segment's pooled rate
    assert all(0.3 < t.value < 3.0 for t in trials if t.value is not None)


def test_rdb_and_in_memory_studies_make_the_same_decisions() -> None:
    """The bench keeps its studies in Optuna's in-memory storage for speed; the workflow's
    RDB storage gives the same proposals, allocations and clicks."""
    sc = load_scenario(SCENARIOS / "drift_fatigue.yaml")
    cfg = BenchConfig(rounds=5, impressions_per_round=4_000)
    memory = run_optuna_loop(sc, cfg, 2, "thompson", None, "faceloop")
    rdb = run_optuna_loop(sc, cfg, 2, "thompson", "sqlite:///:memory:", "faceloop")
    assert memory.clicks_by_round == rdb.clicks_by_round and memory.clicks > 0


def test_each_arm_is_delivered_to_its_target_segment_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Per-segment delivery: an arm proposed for one segment gets impressions there only,
    and every round each segment gets exactly its share of the budget."""
    sc = load_scenario(SCENARIOS / "segments.yaml")
    seen: list[tuple[str | None, int, dict[str, int]]] = []
    deliver = Audience.deliver

    def spy(
        self: Audience, arm: SimArm, window: int, by_segment: dict[str, int], *a: object
    ) -> int:
        seen.append((arm.target, window, dict(by_segment)))
        return deliver(self, arm, window, by_segment, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(Audience, "deliver", spy)
    cfg = BenchConfig(rounds=3, impressions_per_round=9_001)
    run_optuna_loop(sc, cfg, 1, "thompson", None, "faceloop")
    assert {t for t, _, _ in seen} == {"gen_z", "professionals"}
    for target, _, by_segment in seen:
        assert all(n == 0 for s, n in by_segment.items() if s != target)
    for w in range(3):
        per_segment = {
            s: sum(b.get(s, 0) for _, win, b in seen if win == w)
            for s in ("gen_z", "professionals")
        }
        assert sorted(per_segment.values()) == [4_500, 4_501]


def test_bench_is_reproducible_and_has_the_documented_shape() -> None:
    sc = load_scenario(SCENARIOS / "smooth.yaml")
    a = bench(sc, SMALL, seeds=2)
    b = bench(sc, SMALL, seeds=2, jobs=2)  # worker processes change nothing
    assert a["strategies"] == b["strategies"]
    assert set(a) >= {"scenario", "seeds", "strategies", "lift_vs_ab"}
    assert set(a["strategies"]) == set(STRATEGIES)
    for s in a["strategies"].values():
        assert set(s) >= {
            "clicks_mean",
            "clicks_ci95",
            "conversions_mean",
            "oracle_fraction",
            "expected_fraction",
            "best_share",
        }
        assert s["expected_fraction"] <= 1.0
        lo, hi = s["clicks_ci95"]
        assert lo <= s["clicks_mean"] <= hi
        assert len(s["regret_curve"]) == SMALL.rounds
    assert a["strategies"]["oracle"]["oracle_fraction"] == 1.0
    assert a["lift_vs_ab"] == pytest.approx(
        a["strategies"]["faceloop"]["clicks_mean"] / a["strategies"]["ab_test"]["clicks_mean"] - 1
    )


@pytest.mark.parametrize("name", ["smooth", "late_conversions"])
def test_regret_is_counted_in_the_goals_kpi(name: str) -> None:
    """The regret curve ends at the oracle's KPI less the strategy's, in the goal's KPI:
    clicks for a CTR goal, conversions for a conversions goal (it was clicks for both, so a
    conversions scenario's plot ranked the strategies by the wrong KPI)."""
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    cfg = for_scenario(SMALL, sc)
    out = bench(sc, cfg, seeds=2)
    oracle = out["strategies"]["oracle"]["kpi_mean"]
    for s in out["strategies"].values():
        assert s["regret_curve"][-1] == pytest.approx(oracle - s["kpi_mean"], abs=0.1)
    unit = "clicks_mean" if cfg.goal.value == "ctr" else "conversions_mean"
    assert all(s["kpi_mean"] == s[unit] for s in out["strategies"].values())


def _random_faces(values: dict[str, list[Any]], n: int, seed: int) -> list[FaceParams]:
    """n faces drawn uniformly from a model's values (`FaceModel.values`)."""
    rng = np.random.default_rng(seed)
    return [
        FaceParams(**{f: vals[int(rng.integers(len(vals)))] for f, vals in values.items()})
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    ("name", "tolerance"),
    [("smooth", 1e-9), ("segment_drift", 1e-9), ("late_conversions", 0.01)],
)
def test_faces_known_is_told_the_true_face_effects(name: str, tolerance: float) -> None:
    """The `faces_known` reference's models predict each face's true fresh rate, per
    segment and after a drift: exactly for clicks (the sandbox's effects add up on the
    logit), within 1% for conversions (additive on logit(CTR x CVR) only approximately)."""
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    cfg = for_scenario(BenchConfig(), sc)
    segments = campaign_segments(sc)
    fitted = campaign_evidence((), {}, {}, segments, cfg.goal, cfg.space, -1).models
    kpi = _kpi(cfg.goal)
    conversions = kpi == "conversions"
    for window in (0, cfg.rounds - 1):
        told = known_face_models(sc, fitted, window, kpi)
        assert set(told) == set(segments)
        for segment, model in told.items():
            assert not model.is_null and model.face_probability() == 1.0
            for face in _random_faces(model.values, 20, window):
                ctr, cvr = true_rates(sc, face, segment, 0, window)
                rate = ctr * (cvr if conversions else 1.0)
                assert model.rate(face) == pytest.approx(rate, rel=tolerance)
            # no doubt about the faces: a proposal is a truly best face (values that
            # do not matter tie)
            _, best = best_params(sc, {segment: 1.0}, kpi, window)
            ctr, cvr = true_rates(sc, model.propose(np.random.default_rng(0)), segment, 0, window)
            assert ctr * (cvr if conversions else 1.0) == pytest.approx(best, rel=tolerance)


def test_faces_known_tells_a_flat_campaign_that_no_face_matters() -> None:
    sc = load_scenario(SCENARIOS / "flat_noisy.yaml")
    cfg = for_scenario(BenchConfig(), sc)
    fitted = campaign_evidence((), {}, {}, {ALL: 1.0}, cfg.goal, cfg.space, -1).models
    (model,) = known_face_models(sc, fitted, 0, "ctr").values()
    assert model.face_probability() == 0.0 and model.selected().is_null
    assert model.creative_var == pytest.approx(sc.noise.ad_sd**2)


def test_faces_known_launches_the_true_best_face_first() -> None:
    """In its first window the reference already launches a truly best face, and it stays
    within the budget."""
    sc = load_scenario(SCENARIOS / "smooth.yaml")
    tally = run_optuna_loop(sc, SMALL, 0, "thompson", None, "faces_known", faces_known=True)
    _, best = best_params(sc)
    first = [face for window, face in tally.creatives.values() if window == 0]
    assert max(true_rates(sc, face, "all", 0, 0)[0] for face in first) == pytest.approx(best)
    assert tally.impressions == SMALL.rounds * SMALL.impressions_per_round


def test_campaign_segments_come_from_the_scenario() -> None:
    assert campaign_segments(load_scenario(SCENARIOS / "smooth.yaml")) == {"all": 1.0}
    assert campaign_segments(load_scenario(SCENARIOS / "segments.yaml")) == {
        "gen_z": 0.5,
        "professionals": 0.5,
    }


@pytest.mark.slow
def test_faceloop_beats_random_and_ab_on_the_smooth_scenario() -> None:
    # the full table (20 seeds, 28 rounds) is docs/benchmarks.md; this is a short check
    sc = load_scenario(SCENARIOS / "smooth.yaml")
    out = bench(sc, BenchConfig(), seeds=4, jobs=2)
    s = out["strategies"]
    assert (
        s["faceloop"]["clicks_mean"]
        > s["random"]["clicks_mean"]
        > s["ab_test"]["clicks_mean"] * 0.95
    )
    assert out["lift_vs_ab"] > 0.1
    # against the upper-bound oracle (issue 17): 0.832 at 20 seeds, docs/benchmarks.md
    assert s["faceloop"]["oracle_fraction"] > 0.8
    assert s["faceloop"]["clicks_mean"] > s["best_fixed"]["clicks_mean"]


def test_do_no_harm_on_the_flat_scenario_short() -> None:
    """Issue 17, "do no harm": where no parameter moves the KPI, faceloop's clicks are not
    below the A/B test's. A short campaign on two seeds: the faceloop mean must reach the
    A/B test's 95% interval (the slow test below runs the full campaign on 20 seeds)."""
    sc = load_scenario(SCENARIOS / "flat.yaml")
    cfg = BenchConfig(rounds=10, impressions_per_round=8_000, ab_test_rounds=3)
    mine = [run_optuna_loop(sc, cfg, s, "thompson", None, "faceloop").clicks for s in (0, 1)]
    ab = [run_ab_test(sc, cfg, s, None).clicks for s in (0, 1)]
    lo, _ = _ci95(np.array(ab, dtype=float))
    assert np.mean(mine) >= lo, (mine, ab)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["flat", "flat_noisy"])
def test_do_no_harm_on_the_flat_scenario(name: str) -> None:
    """The full bench campaign on 20 seeds: the lift over the A/B test's clicks is not
    significantly negative (its 95% interval reaches 0 or above) and faceloop's mean is
    within the A/B test's 95% interval or above it. Session 11, `flat`: 9,731 against
    9,707-10,039, lift -1.4% (95% CI -3.1% to +0.07%), a narrow margin. Session 12,
    `flat_noisy` (held-out, per-ad sd 0.1, issue 17's own example): 10,423 against
    10,052-10,628, lift +0.8% (95% CI -2.2% to +3.9%) (docs/benchmarks.md)."""
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    out = bench(sc, BenchConfig(), seeds=20, jobs=2)
    assert out["lift_vs_ab_ci95"][1] >= 0.0, out["lift_vs_ab_ci95"]
    assert (
        out["strategies"]["faceloop"]["clicks_mean"]
        >= out["strategies"]["ab_test"]["clicks_ci95"][0]
    )
