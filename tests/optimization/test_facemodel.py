"""The KPI model behind proposals and allocation (posterior of additive effects on the logit
scale, with numbers), the memory choice, and `campaign_evidence`: what a round reads."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from faceloop.models import AGE_BANDS, FaceParams, KpiGoal, KpiObservation, SearchSpace
from faceloop.optimization.evidence import ALL, ArmStats, Evidence
from faceloop.optimization.facemodel import FaceModel, campaign_evidence, choose_memory

SMALL = SearchSpace(
    expression=["smile", "neutral", "serious"],
    background=["warm", "white"],
    skin_tone={"low": 1, "high": 10},  # type: ignore[arg-type]
)
TRUE = {"smile": 0.3, "neutral": 0.0, "serious": -0.3, "warm": 0.15, "white": -0.15}
BASE = math.log(0.02 / 0.98)


def rate(p: FaceParams) -> float:
    x = BASE + TRUE[p.expression] + TRUE[p.background]
    return 1 / (1 + math.exp(-x))


def faces(n: int, seed: int) -> list[FaceParams]:
    rng = np.random.default_rng(seed)
    return [
        FaceParams(
            expression=SMALL.expression[rng.integers(3)],
            background=SMALL.background[rng.integers(2)],
            skin_tone=int(rng.integers(1, 11)),
        )
        for _ in range(n)
    ]


def test_the_posterior_recovers_additive_effects_from_many_creatives() -> None:
    rng = np.random.default_rng(0)
    evidence = [
        Evidence(p, 20_000, float(rng.binomial(20_000, rate(p)))) for p in faces(60, seed=1)
    ]
    model = FaceModel(SMALL, evidence)
    eff = model.effects()
    # differences between values are identified (the intercept absorbs the level)
    assert eff["expression"]["smile"] - eff["expression"]["serious"] == pytest.approx(0.6, abs=0.12)
    assert eff["background"]["warm"] - eff["background"]["white"] == pytest.approx(0.3, abs=0.1)
    # skin tone has no effect in this truth: its posterior stays near 0 for every tone
    assert max(abs(v) for v in eff["skin_tone"].values()) < 0.08
    # the mean face is the true best on the fields that matter
    best = model.best(model.mean)
    assert (best.expression, best.background) == ("smile", "warm")
    # a fresh creative of the best face is predicted near its true rate
    face = FaceParams(expression="smile", background="warm", skin_tone=5)
    assert model.rate(face) == pytest.approx(rate(face), rel=0.08)


def test_a_creative_is_its_faces_prediction_plus_its_own_deviation() -> None:
    face = FaceParams(expression="smile", background="warm")
    others = [Evidence(p, 10_000, 10_000 * rate(p)) for p in faces(40, seed=2)]
    model = FaceModel(SMALL, others, creative_sd=0.1)
    predicted = model.rate(face)
    # never shown: exactly the face's prediction
    (fresh,) = model.arm_means([(face, 0.0, 0.0)])
    assert fresh == pytest.approx(predicted, rel=1e-9)
    # shown 50,000 times at 1.5x the prediction: pulled toward its own rate by
    # k = creative_var / (creative_var + sampling var)
    n, s = 50_000.0, 50_000 * 1.5 * predicted
    (own,) = model.arm_means([(face, n, s)])
    var = 1 / (n * model.pooled * (1 - model.pooled))
    k = 0.01 / (0.01 + var)
    y = math.log(((s + 1) / (n + 1 / model.pooled)) / (1 - (s + 1) / (n + 1 / model.pooled)))
    mu = math.log(predicted / (1 - predicted))
    assert own == pytest.approx(1 / (1 + math.exp(-(mu + k * (y - mu)))), rel=1e-6)
    assert predicted < own < 1.5 * predicted and k > 0.8
    # Thompson draws of a never-shown creative spread by creative_sd around the prediction
    draws = model.arm_draws([(face, 0.0, 0.0)], np.random.default_rng(0), 20_000)[0]
    face_sd = math.sqrt(model.features(face) @ model.cov @ model.features(face))
    assert draws.mean() == pytest.approx(mu, abs=0.01)
    assert draws.std() == pytest.approx(math.sqrt(face_sd**2 + 0.01), rel=0.03)


def test_ordinal_fields_share_evidence_with_their_neighbours() -> None:
    model = FaceModel(SMALL)
    o = model.offsets["skin_tone"]
    cov = model.cov[o : o + 10, o : o + 10]
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    # squared-exponential prior, 1.5 tones wide: neighbours 0.80, five apart ~0
    assert corr[4, 5] == pytest.approx(math.exp(-0.5 / 1.5**2), abs=0.01)
    assert abs(corr[0, 5]) < 0.01
    # evidence that tone 5 is good lifts tone 6 more than tone 1
    rng = np.random.default_rng(3)
    evidence = []
    for p in faces(30, seed=4):
        r = rate(p) * (1.3 if p.skin_tone == 5 else 1.0)
        evidence.append(Evidence(p, 20_000, float(rng.binomial(20_000, r))))
    eff = FaceModel(SMALL, evidence).effects()["skin_tone"]
    assert eff["5"] > eff["6"] > eff["1"]
    # age bands are ordinal too, by their position on the full scale
    age = FaceModel(SearchSpace(age_band=["18-24", "25-34", "65+"]))
    a = age.offsets["age_band"]
    c = age.cov[a : a + 3, a : a + 3]
    assert c[0, 1] / c[0, 0] == pytest.approx(math.exp(-0.5 / 1.5**2), abs=0.01)
    # 18-24 and 65+ sit five bands apart on the full scale, whatever the space lists
    assert AGE_BANDS.index("65+") - AGE_BANDS.index("18-24") == 5
    assert c[0, 2] / c[0, 0] == pytest.approx(math.exp(-0.5 * (5 / 1.5) ** 2), rel=0.05)


def test_best_avoids_faces_and_penalised_values() -> None:
    model = FaceModel(SMALL, [Evidence(p, 20_000, 20_000 * rate(p)) for p in faces(40, seed=5)])
    top = model.best(model.mean)
    other = model.best(model.mean, avoid={top})
    assert other != top
    # the cheapest single change: exactly one field differs
    assert sum(getattr(top, f) != getattr(other, f) for f in FaceParams.model_fields) == 1
    # a large penalty on smile (e.g. smiles were blocked) moves the proposal off it
    assert model.best(model.mean, penalty={("expression", "smile"): 5.0}).expression != "smile"


def test_log_likelihood_prefers_the_model_of_the_same_audience() -> None:
    rng = np.random.default_rng(6)
    train = [Evidence(p, 20_000, float(rng.binomial(20_000, rate(p)))) for p in faces(40, 7)]
    model = FaceModel(SMALL, train)
    same = [Evidence(p, 5_000, float(rng.binomial(5_000, rate(p)))) for p in faces(10, 8)]
    flipped = [
        Evidence(
            p,
            5_000,
            float(
                rng.binomial(
                    5_000,
                    rate(
                        p.model_copy(
                            update={
                                "expression": {"smile": "serious", "serious": "smile"}.get(
                                    p.expression, p.expression
                                )
                            }
                        )
                    ),
                )
            ),
        )
        for p in faces(10, 8)
    ]
    assert model.log_likelihood(same) > model.log_likelihood(flipped) + 5
    assert model.log_likelihood([]) == 0.0


def test_bad_priors_are_refused() -> None:
    with pytest.raises(ValueError, match="effect_sd"):
        FaceModel(SMALL, effect_sd=0)


def test_tempered_proposals_stay_nearer_the_best_face_and_are_random_without_data() -> None:
    rng = np.random.default_rng(3)
    # little data: smile is ahead, but the posterior is still wide
    evidence = [Evidence(p, 1_500, float(rng.binomial(1_500, rate(p)))) for p in faces(12, seed=4)]
    model = FaceModel(SMALL, evidence)
    best = model.best(model.mean)

    def share_best(scale: float) -> float:
        draws = np.random.default_rng(5)
        picks = [model.propose(draws, scale=scale) for _ in range(400)]
        return sum(p.expression == best.expression for p in picks) / len(picks)

    plain, tempered = share_best(1.0), share_best(0.5)
    assert share_best(0.0) == 1.0  # no spread: always the posterior mean's best face
    assert tempered > plain + 0.05, (plain, tempered)
    assert plain > 1 / 3 + 0.05  # plain Thompson still leans toward the leader

    # without data the prior mean is flat: scaling a draw does not change its argmax, so a
    # first round is random faces whatever the scale
    prior = FaceModel(SMALL)
    picks = [prior.propose(np.random.default_rng(i)) for i in range(600)]
    counts = [sum(p.expression == e for p in picks) for e in SMALL.expression]
    assert all(150 <= c <= 250 for c in counts), counts
    with pytest.raises(ValueError, match="scale"):
        prior.propose(np.random.default_rng(0), scale=-1.0)


def _truth(p: FaceParams) -> float:
    """A small additive truth: smile and warm are best."""
    x = -3.9 + {"smile": 0.3, "serious": -0.3}.get(p.expression, 0.0)
    x += {"warm": 0.2, "grey": -0.2}.get(p.background, 0.0)
    return 1 / (1 + np.exp(-x))


def test_choose_memory_forgets_only_when_the_audience_changed() -> None:
    space = SearchSpace(expression=["smile", "neutral", "serious"], background=["warm", "grey"])
    rng = np.random.default_rng(0)
    faces = [
        FaceParams(expression=e, background=b) for e in space.expression for b in space.background
    ]

    def campaign(drift_at: int | None) -> tuple[dict[int, list[ArmStats]], int]:
        # per window, six fresh creatives; from `drift_at` on, smile and serious swap
        runs: dict[int, list[ArmStats]] = {}
        for w in range(12):
            runs[w] = []
            for i, p in enumerate(faces):
                q = p
                if drift_at is not None and w >= drift_at:
                    swap = {"smile": "serious", "serious": "smile"}
                    q = p.model_copy(update={"expression": swap.get(p.expression, p.expression)})
                runs[w].append(ArmStats(f"w{w}-{i}", 20_000, rng.binomial(20_000, _truth(q)), p))
        return runs, 11

    for drift_at, expected in ((None, None), (8, 4.0)):
        runs, now = campaign(drift_at)

        def history(
            memory: float | None, through: int, runs: dict[int, list[ArmStats]] = runs
        ) -> dict[str, list[ArmStats]]:
            out = []
            for w in range(through + 1):
                weight = 1.0 if memory is None else 0.5 ** ((through - w) / memory)
                out += [
                    ArmStats(a.variant_id, a.impressions * weight, a.successes * weight, a.params)
                    for a in runs[w]
                ]
            return {ALL: out}

        launched = {w: {ALL: runs[w]} for w in range(now - 3, now + 1)}
        assert choose_memory(space, history, launched, now) == expected


def _row(vid: str, window: int, segment: str, n: int, clicks: int) -> KpiObservation:
    return KpiObservation(
        campaign_id="c",
        variant_id=vid,
        ad_id=f"ad-{vid}",
        round=window,
        segment=segment,
        impressions=n,
        clicks=clicks,
        conversions=0,
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


ROWS = [
    _row("old", 0, "x", 1000, 10),  # retired after window 0
    _row("a", 0, "x", 1000, 30),
    _row("a", 1, "x", 1000, 20),
    _row("b", 1, "y", 2000, 40),
    _row("a", 2, "x", 1000, 90),  # after the window the evidence is read for
]
FACES = {
    "old": FaceParams(expression="serious"),
    "a": FaceParams(expression="smile"),
    "b": FaceParams(expression="neutral"),
}


def test_campaign_evidence_reads_what_was_known_after_its_window() -> None:
    ev = campaign_evidence(
        ROWS, FACES, {"a": "x", "b": None}, {"x": 0.5, "y": 0.5}, KpiGoal.ctr, SMALL, 1
    )
    assert ev.memory is None  # one window of launches: nothing to forget yet
    # the live counts through window 1 only; a targets x, b runs everywhere
    assert [(s.variant_id, s.impressions, s.successes) for s in ev.arms["x"]] == [
        ("a", 2000, 50),
        ("b", 0, 0),
    ]
    assert [s.variant_id for s in ev.arms["y"]] == ["b"]
    assert ev.windows == {"a": {0: (1000, 30), 1: (1000, 20)}, "b": {1: (2000, 40)}}
    # the models are fitted on every variant the campaign ran, the retired one too
    with_old = FaceModel(SMALL, [Evidence(FACES["old"], 1000, 10), Evidence(FACES["a"], 2000, 50)])
    assert ev.models["x"].mean == pytest.approx(with_old.mean)
    assert ev.models["y"].mean == pytest.approx(
        FaceModel(SMALL, [Evidence(FACES["b"], 2000, 40)]).mean
    )


def test_evidence_with_other_live_variants_is_the_evidence_read_for_them() -> None:
    shares = {"x": 0.5, "y": 0.5}
    ev = campaign_evidence(ROWS, FACES, {"a": "x", "b": None}, shares, KpiGoal.ctr, SMALL, 1)
    faces = {**FACES, "new": FaceParams(expression="laugh")}
    live = {"a": "x", "new": "y"}  # b retired, a new proposal for y
    again = ev.with_live(live, faces)
    fresh = campaign_evidence(ROWS, faces, live, shares, KpiGoal.ctr, SMALL, 1)
    assert again.arms == fresh.arms and again.windows == fresh.windows
    assert again.memory == fresh.memory and again.live == live
    assert all(again.models[s].mean == pytest.approx(fresh.models[s].mean) for s in shares)
    assert again.arms_for(KpiGoal.conversions) == fresh.arms_for(KpiGoal.conversions)
    # a variant with observations the models were not fitted on needs a new evidence
    partial = campaign_evidence(ROWS, {"a": FACES["a"]}, {"a": "x"}, shares, KpiGoal.ctr, SMALL, 1)
    with pytest.raises(ValueError, match="campaign_evidence"):
        partial.with_live(live, faces)


def test_the_creative_effects_spread_is_estimated_from_the_data() -> None:
    """Empirical Bayes: creatives whose images differ by sd 0.3 beyond their faces give an
    estimate near 0.3; creatives that are exactly their faces' prediction one near 0 (the
    prior, CREATIVE_SD, is worth only a few creatives)."""
    rng = np.random.default_rng(3)
    wide, none = [], []
    for p in faces(120, seed=4):
        u = rng.normal(0.0, 0.3)
        r = 1 / (1 + math.exp(-(math.log(rate(p) / (1 - rate(p))) + u)))
        wide.append(Evidence(p, 40_000, float(rng.binomial(40_000, r))))
        none.append(Evidence(p, 40_000, float(rng.binomial(40_000, rate(p)))))
    assert math.sqrt(FaceModel(SMALL, wide).creative_var) == pytest.approx(0.3, abs=0.06)
    assert math.sqrt(FaceModel(SMALL, none).creative_var) < 0.06
    # a fixed creative_sd is used as given
    assert FaceModel(SMALL, wide, creative_sd=0.1).creative_var == pytest.approx(0.01)
    # without data: the prior's centre
    assert FaceModel(SMALL).creative_var == pytest.approx(0.01)


def test_the_null_model_is_selected_only_where_no_face_moves_the_kpi() -> None:
    """`face_probability`: creatives that differ only by their own effect (sd 0.05, as the
    sandbox's `flat`) favour the model where every face predicts the pooled rate, and the
    campaign's decisions use it (`selected`); with the additive effects above the face
    model is kept (prior odds FACE_PRIOR: 99 to 1 for the face)."""
    rng = np.random.default_rng(5)
    flat, effects = [], []
    for p in faces(80, seed=6):
        u = rng.normal(0.0, 0.05)
        r = 1 / (1 + math.exp(-(BASE + u)))
        flat.append(Evidence(p, 30_000, float(rng.binomial(30_000, r))))
        r = 1 / (1 + math.exp(-(math.log(rate(p) / (1 - rate(p))) + u)))
        effects.append(Evidence(p, 30_000, float(rng.binomial(30_000, r))))
    none = FaceModel(SMALL, flat)
    assert none.face_probability() < 0.5
    assert none.selected() is none.null_model()
    null = none.null_model()
    assert max(abs(v) for f in null.effects().values() for v in f.values()) < 1e-3
    some = FaceModel(SMALL, effects)
    assert some.face_probability() > 0.999
    assert some.selected() is some
    # without data the face model stands
    assert FaceModel(SMALL).face_probability() == 1.0


def test_a_told_model_knows_its_effects_without_doubt() -> None:
    model = FaceModel(SearchSpace(), [Evidence(FaceParams(), 10_000, 200)])
    coefficients = np.zeros(model.n_features)
    coefficients[-1] = -4.0
    coefficients[model.offsets["expression"]] = 0.3
    told = model.told(coefficients, 0.1)
    assert told.mean == pytest.approx(coefficients) and np.all(np.diag(told.cov) < 1e-9)
    assert told.creative_var == pytest.approx(0.01) and told.face_probability() == 1.0
    face = FaceParams(expression=model.values["expression"][0])
    assert told.rate(face) == pytest.approx(1.0 / (1.0 + math.exp(3.7)))
    # the original is untouched, and a draw of the effects is the coefficients
    assert model.mean[-1] != -4.0
    assert told.draw_effects(np.random.default_rng(0))[:, 0] == pytest.approx(
        coefficients, abs=1e-4
    )


def test_a_told_model_refuses_coefficients_it_cannot_read() -> None:
    model = FaceModel(SearchSpace())
    with pytest.raises(ValueError, match="intercept last"):
        model.told(np.zeros(model.n_features - 1), 0.1)
    with pytest.raises(ValueError, match="creative_sd"):
        model.told(np.zeros(model.n_features), -0.1)
