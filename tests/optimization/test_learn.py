"""The learn step (`faceloop.optimization.learn`): keep, retire, stop and refresh, the values
told to the study, and `learn_round`, which the learn activity and the bench both run."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from faceloop.errors import FaceloopError
from faceloop.models import FaceParams, KpiGoal, KpiObservation, SearchSpace
from faceloop.optimization.allocation import posterior_mean, thompson_allocation
from faceloop.optimization.evidence import ALL, ArmStats
from faceloop.optimization.facemodel import (
    EFFECT_SD,
    FaceModel,
    campaign_evidence,
    segment_models,
)
from faceloop.optimization.learn import (
    fatigued,
    learn_round,
    new_creatives_worth,
    objective_values,
    plan_learn,
    settled_segments,
    trial_value,
)
from faceloop.optimization.study import Optimizer


def test_plan_learn_keeps_the_best_and_stops_clear_losers() -> None:
    arms = [
        ArmStats("best", 20_000, 600),
        ArmStats("loser", 20_000, 300),  # clearly worse after many impressions
        ArmStats("young", 500, 12),  # too little data to stop
        ArmStats("ok", 20_000, 560),
    ]
    plan = plan_learn({ALL: arms}, {ALL: 1.0}, incumbents=3, seed=0)
    assert plan.winner == "best" and plan.keep[0] == "best"
    assert "loser" in plan.stopped and "loser" in plan.retire
    assert "young" not in plan.stopped
    assert plan.keep == ["best", "ok", "young"]
    assert set(plan.keep) | set(plan.retire) == {"best", "loser", "young", "ok"}


def test_plan_learn_keeps_each_segments_winner() -> None:
    by_seg = {
        "gen_z": [
            ArmStats("laugh", 10_000, 400),
            ArmStats("smile", 10_000, 200),
            ArmStats("x", 10_000, 380),
        ],
        "pros": [
            ArmStats("laugh", 10_000, 150),
            ArmStats("smile", 10_000, 300),
            ArmStats("x", 10_000, 160),
        ],
    }
    plan = plan_learn(by_seg, {"gen_z": 0.5, "pros": 0.5}, incumbents=2, seed=0)
    assert set(plan.keep) == {"laugh", "smile"}  # not the two best of the pooled ranking
    assert plan.winners == {"gen_z": "laugh", "pros": "smile"}
    # a face that wins one segment is told as much as one that wins the other
    v_laugh, v_smile = trial_value("laugh", by_seg), trial_value("smile", by_seg)
    assert v_laugh > 1.2 and v_smile > 1.2
    assert trial_value("x", {ALL: by_seg["gen_z"]}) == pytest.approx(
        posterior_mean(by_seg["gen_z"])["x"]
    )


def test_fatigue_is_a_significant_drop_against_the_first_windows() -> None:
    # 3% CTR for two windows, then 2.4%: a 20% drop on 10,000 impressions is ~7 sd
    worn = {0: (10_000, 300), 1: (10_000, 300), 2: (10_000, 240)}
    assert fatigued(worn)
    assert not fatigued({0: (10_000, 300), 1: (10_000, 300)})  # needs three windows
    assert not fatigued({0: (10_000, 300), 1: (10_000, 300), 2: (10_000, 285)})  # 5%: too little
    # the same 20% drop on 800 impressions per window is not significant (and too few)
    assert not fatigued({0: (800, 24), 1: (800, 24), 2: (800, 19)})
    # with 5,000 impressions on each side: z = (0.03 - 0.024) / se ~ 1.87 < 2
    assert not fatigued({0: (2_500, 75), 1: (2_500, 75), 2: (5_000, 120)})


def test_plan_learn_refreshes_a_worn_out_incumbent() -> None:
    face = FaceParams(expression="smile")
    arms = [
        ArmStats("worn", 30_000, 840, face),
        ArmStats("fresh", 20_000, 500, FaceParams(expression="neutral")),
        ArmStats("bad", 20_000, 300, FaceParams(expression="serious")),
    ]
    models = segment_models(SearchSpace(), {ALL: arms})
    windows = {"worn": {0: (10_000, 300), 1: (10_000, 300), 2: (10_000, 240)}}
    plan = plan_learn({ALL: arms}, {ALL: 1.0}, 2, 0, models=models, windows=windows)
    assert plan.refresh == ["worn"]
    assert "worn" in plan.retire and "worn" not in plan.keep and "fresh" in plan.keep
    # without windows (refresh_creatives off) it stays
    assert "worn" in plan_learn({ALL: arms}, {ALL: 1.0}, 2, 0, models=models).keep


def test_objective_values_and_a_campaigns_own_objectives() -> None:
    clicks = {ALL: [ArmStats("a", 10_000, 300), ArmStats("b", 10_000, 200)]}
    convs = {ALL: [ArmStats("a", 10_000, 20), ArmStats("b", 10_000, 30)]}
    ctr, cpa = objective_values("a", clicks, convs, ["ctr", "cpa"])
    assert ctr == pytest.approx(posterior_mean(clicks[ALL])["a"])
    assert cpa == pytest.approx(1 / posterior_mean(convs[ALL])["a"])
    assert 400 < cpa < 600  # about 10,000 / 20
    # the optimizer's default is one KPI, a campaign asks for two: its study has two
    opt = Optimizer(InMemoryStorage(), "thompson")
    p = opt.ask("mo", 0, 1, SearchSpace(), objectives=["ctr", "cpa"])[0]
    assert opt.objectives_of("mo") == ("ctr", "cpa")
    assert opt.tell("mo", p.trial_number, [ctr, cpa])
    assert [pt.values for pt in opt.pareto_front("mo")] == [{"ctr": ctr, "cpa": cpa}]
    with pytest.raises(FaceloopError, match="two or more"):
        Optimizer(InMemoryStorage(), objectives=("ctr",))


def test_trial_value_ignores_segments_the_variant_never_ran_in() -> None:
    by_seg = {
        "x": [ArmStats("a", 10_000, 200), ArmStats("b", 10_000, 300)],
        "y": [ArmStats("a", 0, 0), ArmStats("c", 10_000, 100)],
    }
    # a ran only in x, below that segment's pooled rate: told < 1, not y's prior (~1)
    assert trial_value("a", by_seg) < 0.9
    assert trial_value("b", by_seg) > 1.1


def _window(vid: str, window: int, clicks: int, conversions: int = 0) -> KpiObservation:
    return KpiObservation(
        campaign_id="c",
        variant_id=vid,
        ad_id=f"ad-{vid}",
        round=window,
        impressions=10_000,
        clicks=clicks,
        conversions=conversions,
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


FACES = {
    "a": FaceParams(expression="smile"),
    "b": FaceParams(expression="neutral"),
    "c": FaceParams(expression="serious"),
}
# a wears out in window 2 (300 -> 200 clicks); b and c hold steady
ROWS = [
    _window(vid, w, clicks, clicks // 10)
    for w in range(3)
    for vid, clicks in (("a", 200 if w == 2 else 300), ("b", 280), ("c", 250))
]


def test_learn_round_tells_plans_drops_paused_ads_and_queues_refreshes() -> None:
    opt = Optimizer(InMemoryStorage(), "thompson")
    trials = [p.trial_number for p in opt.ask("c", 2, 4, SearchSpace())]
    evidence = campaign_evidence(
        ROWS, FACES, dict.fromkeys(FACES, "all"), {ALL: 1.0}, KpiGoal.ctr, SearchSpace(), 2
    )
    told = {trials[0]: "a", trials[1]: "b", trials[2]: "c", trials[3]: None}  # the last blocked
    plan = learn_round(opt, "c", 2, evidence, told, incumbents=2, paused={"b"})
    states = {t.number: t for t in opt.trials("c")}
    assert states[trials[3]].state == TrialState.FAIL
    for number, vid in list(told.items())[:3]:
        assert vid is not None
        assert states[number].value == pytest.approx(trial_value(vid, evidence.arms))
    # the rule itself, then the rolled-back ad taken out of it
    rule = plan_learn(evidence.arms, {ALL: 1.0}, 2, 0, models=evidence.models)
    assert "b" in rule.keep and "b" not in plan.keep + plan.retire and plan.winner != "b"
    # a was kept, wore out: retired, and a fresh copy of its face waits in the study
    assert plan.refresh == ["a"] and "a" in plan.retire
    (queued,) = [t for t in opt.trials("c") if t.state == TrialState.WAITING]
    assert queued.user_attrs == {"refresh_of": "a", "segment": "all"}
    assert FaceParams(**queued.params) == FACES["a"]
    # refresh_creatives off: nothing is refreshed or queued
    opt2 = Optimizer(InMemoryStorage(), "thompson")
    opt2.ask("c", 2, 1, SearchSpace())
    assert learn_round(opt2, "c", 2, evidence, {}, 2, refresh=False).refresh == []
    assert not [t for t in opt2.trials("c") if t.state == TrialState.WAITING]


def test_learn_round_tells_each_objective_of_a_multi_objective_campaign() -> None:
    opt = Optimizer(InMemoryStorage(), "thompson", objectives=("ctr", "cpa"))
    (p,) = opt.ask("c", 2, 1, SearchSpace())
    evidence = campaign_evidence(
        ROWS, FACES, dict.fromkeys(FACES), {ALL: 1.0}, KpiGoal.ctr, SearchSpace(), 2
    )
    learn_round(opt, "c", 2, evidence, {p.trial_number: "b"}, 2, objectives=("ctr", "cpa"))
    expected = objective_values(
        "b",
        evidence.arms_for(KpiGoal.ctr),
        evidence.arms_for(KpiGoal.conversions),
        ("ctr", "cpa"),
    )
    assert opt.trials("c")[0].values == pytest.approx(expected)


def test_a_creative_that_beats_its_faces_prediction_gets_traffic_and_is_kept() -> None:
    """Issue 17: the per-creative effect, shrunk toward the face's prediction, is what
    allocation and the keep rule read. Three live images of the same face: `lucky` has
    clicked at 1.4x what the face's ten earlier images did, `plain` at the face's rate,
    `dud` at 0.7x. Thompson allocation gives `lucky` the most traffic; with no incumbents
    guaranteed, the keep rule keeps `lucky` (it beats a new image of the best face) and
    replaces `dud` (a new image is expected to do better)."""
    face = FaceParams(expression="smile", background="warm", skin_tone=5)
    other = FaceParams(expression="serious", background="white", skin_tone=5)
    earlier = [ArmStats(f"old{i}", 20_000, 400, face) for i in range(10)]
    earlier += [ArmStats(f"bad{i}", 20_000, 260, other) for i in range(10)]
    live = [
        ArmStats("lucky", 30_000, 840, face),
        ArmStats("plain", 30_000, 600, face),
        ArmStats("dud", 30_000, 420, face),
    ]
    space = SearchSpace()
    models = segment_models(space, {ALL: earlier + live})
    model = models[ALL]
    new = model.new_creative_rate()
    means = posterior_mean(live, model)
    # shrunk toward the face's prediction (0.02), but not all the way
    assert new < means["lucky"] < 0.028 and means["dud"] < new
    shares = thompson_allocation(live, 0.02, seed=1, model=model)
    assert shares["lucky"] > 0.8 and shares["lucky"] > 10 * shares["plain"]
    plan = plan_learn({ALL: live}, {ALL: 1.0}, incumbents=0, seed=0, models=models, places=12)
    assert "lucky" in plan.keep and "dud" in plan.retire
    # without `places` the fixed quota of the old rule: exactly `incumbents` kept
    quota = plan_learn({ALL: live}, {ALL: 1.0}, incumbents=1, seed=0, models=models)
    assert quota.keep == ["lucky"]


def test_new_creatives_are_made_only_where_they_can_repay_their_test() -> None:
    """Issue 17, "do no harm": the number of new creatives follows their expected value.
    Sixty creatives of random faces all clicking at 2% (no parameter matters, creatives
    alike) and one lucky image: the fitted spreads are small, and a new creative cannot
    repay the impressions its test costs against the lucky one; with nothing measured yet
    (the prior's spreads) and a long campaign, new ones are worth it; with no round left,
    none is."""
    space = SearchSpace()
    rng = np.random.default_rng(0)
    faces = [
        FaceParams(
            **{
                f: (
                    int(rng.integers(space.skin_tone.low, space.skin_tone.high + 1))
                    if f == "skin_tone"
                    else str(rng.choice(getattr(space, f)))
                )
                for f in FaceParams.model_fields
            }
        )
        for _ in range(60)
    ]
    flat = [ArmStats(f"c{i}", 40_000, 800, face) for i, face in enumerate(faces)]
    # one image was lucky: 6% above the rest over 200,000 impressions
    flat.append(ArmStats("lucky", 200_000, 4240, faces[0]))
    model = segment_models(space, {ALL: flat})[ALL]
    assert model.effect_var < (0.75 * EFFECT_SD) ** 2 and model.creative_var < 0.05**2
    best = posterior_mean(flat, model)["lucky"]
    assert best > 0.0205
    assert new_creatives_worth(model, best, 20_000, 20, 9, seed=0) == 0
    prior = segment_models(space, {ALL: []}).get(ALL) or FaceModel(space)
    assert new_creatives_worth(prior, 0.02, 20_000, 20, 9, seed=0) >= 3
    assert new_creatives_worth(prior, 0.02, 20_000, 0, 9, seed=0) == 0
    # plan_learn then keeps every live creative that is not a clear loser (up to places - 1)
    live = flat[-8:]
    plan = plan_learn(
        {ALL: live},
        {ALL: 1.0},
        incumbents=2,
        seed=0,
        models={ALL: model},
        places=12,
        rounds_left=20,
        window_impressions={ALL: 20_000.0},
    )
    assert set(plan.keep) | set(plan.stopped) == {a.variant_id for a in live}
    assert set(plan.retire) == set(plan.stopped) and "lucky" in plan.keep
    # the P(best) rule alone (no horizon) retires more of them for new creatives
    pbest = plan_learn(
        {ALL: live}, {ALL: 1.0}, incumbents=2, seed=0, models={ALL: model}, places=12
    )
    assert len(pbest.keep) < len(plan.keep)


def _flat_rows(
    variants: int, windows: int, impressions: int
) -> tuple[list[KpiObservation], dict[str, FaceParams]]:
    """A campaign where every face has the same 1.7% CTR: `variants` random faces, each
    with `impressions` a window for `windows` windows."""
    space = SearchSpace()
    rng = np.random.default_rng(3)
    faces = {
        f"v{i}": FaceParams(
            **{
                f: (
                    int(rng.integers(space.skin_tone.low, space.skin_tone.high + 1))
                    if f == "skin_tone"
                    else str(rng.choice(getattr(space, f)))
                )
                for f in FaceParams.model_fields
            }
        )
        for i in range(variants)
    }
    rows = [
        KpiObservation(
            campaign_id="c",
            variant_id=vid,
            ad_id=vid,
            round=w,
            segment=ALL,
            impressions=impressions,
            clicks=int(rng.binomial(impressions, 0.017)),
            conversions=0,
            observed_at=datetime(2026, 1, 1 + w, tzinfo=UTC),
        )
        for w in range(windows)
        for vid in faces
    ]
    return rows, faces


def test_settled_segments_follow_the_value_of_new_creatives() -> None:
    """A segment is settled (its new creative gets the floor alone) where no new creative
    is worth its test: after a long flat campaign with one round left, not at the start of
    a long one, and never without a last window to price a test by."""
    rows, faces = _flat_rows(60, 10, 2_000)
    late = campaign_evidence(
        rows, faces, dict.fromkeys(faces), {ALL: 1.0}, KpiGoal.ctr, SearchSpace(), 9
    )
    assert settled_segments(late, 1, 12, 2, seed=0) == {ALL}
    few, few_faces = _flat_rows(4, 1, 1_000)
    early = campaign_evidence(
        few, few_faces, dict.fromkeys(few_faces), {ALL: 1.0}, KpiGoal.ctr, SearchSpace(), 0
    )
    assert settled_segments(early, 27, 12, 2, seed=0) == set()
    fresh = campaign_evidence((), {}, {}, {ALL: 1.0}, KpiGoal.ctr, SearchSpace(), -1)
    assert settled_segments(fresh, 28, 12, 2, seed=0) == set()
