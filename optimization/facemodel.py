"""A Bayesian model of how the face parameters move a campaign's KPI, shared by proposals
(the `thompson` sampler), traffic allocation and the keep/retire rule; and
`campaign_evidence`, which turns what a campaign observed into the models and counts one
round reads.

In `faceloop.optimization` it sits above `evidence` (the counts it is fitted on) and below
`allocation`, `samplers`, `study` and `learn`, which all read it. Every step of a round
(propose, deploy, learn) starts from `campaign_evidence`, in the workflow's activities and
in the bench alike.

For a creative i with face parameters x_i, shown to one audience segment:

    logit(rate_i) = intercept + sum over fields f of effect[f, x_i.f] + u_i
    effect[f, v] ~ N(0, effect_sd^2)      each attribute value moves the KPI by some 10%
    u_i          ~ N(0, creative_sd^2)    two images of the same face still differ

Observations are impressions and successes (clicks or conversions) per creative. The
posterior of the effects is Gaussian (weighted least squares on the logit scale, the usual
normal approximation of a logistic model), so it is cheap to refit every round.

Why a model rather than one Beta-Binomial per creative: a creative's own counts are too few
to tell a 5% difference (at a 2% CTR that takes ~100,000 impressions per arm), but the effect
of one attribute value is estimated from every creative that has it. A new creative starts at
the model's prediction for its face instead of at the campaign average, and a proposal is the
best face under one tempered posterior draw of the effects (Thompson sampling over the whole
space with the draw's spread halved, `PROPOSAL_SCALE`; the argmax is taken field by field
because the effects add up).

How fast old windows fade (the memory) is chosen each round by how well each choice
foresaw the creatives launched in recent windows (`choose_memory`).

Skin tone (Monk 1-10) and age band are ordinal: their prior correlates neighbouring values
(a squared-exponential kernel over their position, `ordinal_length` positions wide), so a
measured tone also says something about the tones next to it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceloop.models import (
    AGE_BANDS,
    CATEGORICAL_FIELDS,
    FaceParams,
    KpiGoal,
    KpiObservation,
    SearchSpace,
    ShownFrom,
)
from faceloop.optimization.evidence import (
    MEAN_DELAY_WINDOWS,
    ArmStats,
    Evidence,
    arms_from_observations,
    window_clicks,
)

# Priors: how strongly one attribute value moves the KPI (logit scale: 0.1 is about +-10%),
# how much two creatives of the same face differ, and how far an ordinal value's effect
# carries to its neighbours. They describe creatives in general, not any one scenario.
EFFECT_SD = 0.1
# Each field's effect sd is estimated per campaign too (`FaceModel._effect_var_estimate`):
# EFFECT_SD is its prior centre, worth EFFECT_PRIOR_WEIGHT attribute values, within
# EFFECT_SD_RANGE; EFFECT_PASSES fixed-point passes per fit.
EFFECT_PRIOR_WEIGHT = 2.0
EFFECT_SD_RANGE = (0.005, 0.5)
EFFECT_PASSES = 3
# The creative effect's sd is estimated from each campaign's data (empirical Bayes,
# `FaceModel._creative_var_estimate`): CREATIVE_SD is the prior's centre, worth
# CREATIVE_PRIOR_WEIGHT creatives, and the estimate stays within CREATIVE_SD_RANGE (a
# variance of exactly 0 would make every image of a face the same creative).
CREATIVE_SD = 0.1
CREATIVE_PRIOR_WEIGHT = 5.0
CREATIVE_SD_RANGE = (0.01, 1.0)
ORDINAL_LENGTH = 1.5
ORDINAL_FIELDS = ("skin_tone", "age_band")
# Whether the face matters at all (`FaceModel.face_probability`): the face model above
# against the null model where every face predicts the pooled rate (face effects of sd
# NULL_EFFECT_SD, i.e. none) and creatives differ only by their own effect. The prior odds
# favour the face FACE_PRIOR : 1 - FACE_PRIOR (faceloop is for audiences where faces
# matter), so the null model takes over the campaign's decisions (`FaceModel.selected`)
# only once the counts favour it by a Bayes factor above 99. Chosen on the tuning seeds
# (1000-1015, scripts/issue17_session10/README.md), before NULL_FROM_WINDOW: at 0.99
# `flat` gained 1.8% and the five tuning scenarios with face effects kept their KPI on
# every seed; at 0.9 `segments` lost 1.5% and `three_segments` 0.6% (at even odds their
# early windows, a few creatives per segment, gave P(face) as low as 0.02-0.08 on some
# seeds).
FACE_PRIOR = 0.99
NULL_EFFECT_SD = 1e-4
# The null model may decide only from this window on (before it, P(face) counts as 1).
# Early, with a few dozen creatives and the effect sd still at its prior, the Bayes factor
# can favour the null on campaigns where faces matter (`smooth` seed 1025: from window 2);
# once selected, the null's decisions (no new creatives worth a test, the new one on the
# floor) stop the data that would release it. On the face model's own trajectory (seeds
# 1016-1031, bf_trace.py) no segment-window of a tuning scenario with face effects fell
# below 99:1 against the face from window 11 on (the lowest: -4.2 nats), and 269 of
# `flat`'s 272 did (scripts/issue17_session10/README.md).
NULL_FROM_WINDOW = 11
# Proposals draw from the posterior with its spread scaled by this factor (a tempered
# Thompson draw). Plain Thompson sampling (1.0) keeps proposing far-off faces long after the
# model knows the region of the best one: over ~40 attribute values and a campaign of a few
# dozen rounds it explores more than the budget repays. Allocation and the keep rule still
# use the full posterior, so a new face is measured as fairly as before. 0.5 was chosen on
# tuning seeds (1000-1009, not the benchmark's published 0-19): oracle fraction on segments
# 0.839 / 0.861 / 0.883 / 0.869 at 1.0 / 0.7 / 0.5 / 0.3; at 0.5 every shipped scenario
# gained (docs/optimization.md).
PROPOSAL_SCALE = 0.5
# The posterior variance of a model told its effects (`FaceModel.told`): no doubt, but a
# covariance that stays positive definite for the Cholesky factor
KNOWN_VAR = 1e-10
# FaceParams field order: the model's features follow it
FIELDS: tuple[str, ...] = tuple(FaceParams.model_fields)


def _values(space: SearchSpace, field: str) -> list[Any]:
    if field == "skin_tone":
        return list(range(space.skin_tone.low, space.skin_tone.high + 1))
    return list(getattr(space, field))


def _position(field: str, value: Any) -> float:
    """Where an ordinal value sits on its full scale (so a narrowed space keeps distances)."""
    if field == "skin_tone":
        return float(value)
    return float(AGE_BANDS.index(value))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@functools.lru_cache(maxsize=64)
def _prior_precision_cached(space_json: str, effect_sd: float, ordinal_length: float) -> np.ndarray:
    space = SearchSpace.model_validate_json(space_json)
    n_features = sum(len(_values(space, f)) for f in FIELDS) + 1
    p = np.zeros((n_features, n_features))
    o = 0
    for f in FIELDS:
        values = _values(space, f)
        k = len(values)
        if f in ORDINAL_FIELDS:
            pos = np.array([_position(f, v) for v in values])
            cov = effect_sd**2 * np.exp(
                -0.5 * ((pos[:, None] - pos[None, :]) / ordinal_length) ** 2
            )
            p[o : o + k, o : o + k] = np.linalg.inv(cov + 1e-6 * effect_sd**2 * np.eye(k))
        else:
            p[o : o + k, o : o + k] = np.eye(k) / effect_sd**2
        o += k
    p[-1, -1] = 1.0  # intercept ~ N(logit(pooled), 1)
    p.setflags(write=False)
    return p


def _prior_precision(space: SearchSpace, effect_sd: float, ordinal_length: float) -> np.ndarray:
    """The prior precision of the coefficients; the same for every fit of a campaign, so it
    is computed once per space (a read-only array: `_fit` copies it)."""
    return _prior_precision_cached(space.model_dump_json(), effect_sd, ordinal_length)


def _gaussian_log_evidence(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, p0: np.ndarray, m0: np.ndarray
) -> float:
    """log N(y; x m0, diag(1 / w) + x p0^-1 x'): the marginal likelihood of a Gaussian
    linear model (x: creatives by features, w: each creative's precision, p0 and m0: the
    coefficients' prior precision and mean), by the matrix determinant lemma and Woodbury
    so that only features-by-features matrices are factored."""
    post = p0 + x.T @ (w[:, None] * x)
    rhs = p0 @ m0 + x.T @ (w * y)
    mean = np.linalg.solve(post, rhs)
    quad = float(y @ (w * y) + m0 @ p0 @ m0 - rhs @ mean)
    logdet = -float(np.sum(np.log(w))) + np.linalg.slogdet(post)[1] - np.linalg.slogdet(p0)[1]
    return -0.5 * (len(y) * math.log(2 * math.pi) + float(logdet) + quad)


class FaceModel:
    """Posterior of the main-effects model for one segment, fitted on `evidence`.

    Creatives whose parameters fall outside `space` contribute only through the fields whose
    values the space holds (a campaign's space is fixed, so this happens only for seeds).
    """

    def __init__(
        self,
        space: SearchSpace,
        evidence: Iterable[Evidence] = (),
        *,
        effect_sd: float | None = None,
        creative_sd: float | None = None,
        ordinal_length: float = ORDINAL_LENGTH,
    ) -> None:
        if (
            (effect_sd is not None and effect_sd <= 0)
            or (creative_sd is not None and creative_sd < 0)
            or ordinal_length <= 0
        ):
            raise ValueError(
                f"effect_sd ({effect_sd}) and ordinal_length ({ordinal_length}) must be > 0, "
                f"creative_sd ({creative_sd}) >= 0; None estimates either sd from the data"
            )
        self.space = space
        self.values: dict[str, list[Any]] = {f: _values(space, f) for f in FIELDS}
        self.offsets: dict[str, int] = {}
        n = 0
        for f in FIELDS:
            self.offsets[f] = n
            n += len(self.values[f])
        self.n_features = n + 1  # + intercept, last
        # value -> feature column, per field (features() runs for every creative every round)
        self._column: dict[str, dict[Any, int]] = {
            f: {v: self.offsets[f] + i for i, v in enumerate(self.values[f])} for f in FIELDS
        }
        data = [e for e in evidence if e.impressions > 0]
        total_n = sum(e.impressions for e in data)
        total_s = sum(e.successes for e in data)
        # the campaign's pooled rate: centre of the intercept's prior and the rate at which
        # counts are turned into logits (so one creative with 0 clicks is not a -inf outlier)
        self.pooled = (total_s + 1.0) / (total_n + 100.0)
        # the prior precision of the effects at an effect sd of 1: the effect sd scales it
        self._unit = _prior_precision(space, 1.0, ordinal_length)
        # the prior variance of each field's effects (one per field: a field that moves
        # the KPI does not widen the prior of one that does not)
        self.effect_vars: dict[str, float] = dict.fromkeys(
            FIELDS, EFFECT_SD**2 if effect_sd is None else effect_sd**2
        )
        if data:
            self._x = np.stack([self.features(e.params) for e in data])
            self._y, self._var = self._logits(
                np.array([e.impressions for e in data]), np.array([e.successes for e in data])
            )
        else:
            self._x, self._y, self._var = np.zeros((0, self.n_features)), np.zeros(0), np.zeros(0)
        self.creative_var = CREATIVE_SD**2 if creative_sd is None else creative_sd**2
        # the null model and P(the face matters), made on first use (`face_probability`)
        self._null: FaceModel | None = None
        self._p_face: float | None = None
        self._fit()
        # empirical Bayes: passes of the estimates of the two spreads, each refitting
        passes = 2 if effect_sd is not None else EFFECT_PASSES
        if (creative_sd is None or effect_sd is None) and len(self._y):
            for _ in range(passes):
                if creative_sd is None:
                    self.creative_var = self._creative_var_estimate()
                if effect_sd is None:
                    self.effect_vars = self._effect_var_estimate()
                self._fit()

    def _fit(self) -> None:
        """The Gaussian posterior of the effects, each creative weighed by its sampling
        variance plus the creative variance (its own effect is noise to the face model)."""
        # the unit prior is block-diagonal by field: each block scaled by its variance
        scale = np.ones(self.n_features)
        for f, v in self.effect_vars.items():
            scale[self.offsets[f] : self.offsets[f] + len(self.values[f])] = 1.0 / v
        precision = self._unit * scale[:, None]
        rhs = np.zeros(self.n_features)
        rhs[-1] = _logit(self.pooled) * precision[-1, -1]
        if len(self._y):
            w = 1.0 / (self._var + self.creative_var)
            precision = precision + self._x.T @ (w[:, None] * self._x)
            rhs = rhs + self._x.T @ (w * self._y)
        self.cov = np.linalg.inv(precision)
        self.cov = (self.cov + self.cov.T) / 2.0
        self.mean = self.cov @ rhs
        self._chol = np.linalg.cholesky(self.cov + 1e-12 * np.eye(self.n_features))

    def _prior(self) -> tuple[np.ndarray, np.ndarray]:
        """The coefficients' prior precision and mean at the fitted effect variances."""
        scale = np.ones(self.n_features)
        for f, v in self.effect_vars.items():
            scale[self.offsets[f] : self.offsets[f] + len(self.values[f])] = 1.0 / v
        m0 = np.zeros(self.n_features)
        m0[-1] = _logit(self.pooled)
        return self._unit * scale[:, None], m0

    def log_evidence(self) -> float:
        """Log marginal likelihood of the counts (their logits, Gaussian, as the fit reads
        them) under this model at its fitted spreads, the effects integrated out."""
        if not len(self._y):
            return 0.0
        p0, m0 = self._prior()
        w = 1.0 / (self._var + self.creative_var)
        return _gaussian_log_evidence(self._x, self._y, w, p0, m0)

    def null_model(self) -> FaceModel:
        """The same counts under "the face does not matter": every face predicts the pooled
        rate and creatives differ only by their own effect, whose spread is estimated again
        (here it takes up what the faces explained)."""
        if self._null is None:
            null = copy.copy(self)
            null.effect_vars = dict.fromkeys(FIELDS, NULL_EFFECT_SD**2)
            null.creative_var = CREATIVE_SD**2
            null._fit()
            for _ in range(EFFECT_PASSES):
                null.creative_var = null._creative_var_estimate()
                null._fit()
            null._null, null._p_face = null, 0.0
            self._null = null
        return self._null

    @property
    def is_null(self) -> bool:
        """Whether this is a `null_model` (the face does not matter), not a face model."""
        return self._null is self

    def face_probability(self) -> float:
        """Posterior probability that the face moves the KPI at all: this model's marginal
        likelihood against `null_model`'s (whose one coefficient is the intercept), at
        prior odds FACE_PRIOR : 1 - FACE_PRIOR. Where no face effect exists (the
        sandbox's `flat`) the fitted effect sd never falls far (its prior keeps it near
        0.07), but the null model explains the counts as well with fewer parameters and
        its Bayes factor grows with every window."""
        if self._p_face is None:
            if not len(self._y):
                self._p_face = 1.0
            else:
                null = self.null_model()
                w = 1.0 / (null._var + null.creative_var)
                m0 = np.array([_logit(self.pooled)])
                log_null = _gaussian_log_evidence(self._x[:, -1:], null._y, w, np.eye(1), m0)
                odds = self.log_evidence() - log_null + math.log(FACE_PRIOR / (1.0 - FACE_PRIOR))
                self._p_face = 1.0 / (1.0 + math.exp(-float(np.clip(odds, -50.0, 50.0))))
        return self._p_face

    def set_face_probability(self, p: float) -> None:
        """Take P(the face matters) from another fit (`round_models`: the whole campaign's,
        when this one forgets old windows)."""
        self._p_face = p

    def selected(self) -> FaceModel:
        """The model the campaign's decisions use: this one, or `null_model` where the
        counts favour it (`face_probability` below 0.5). The null model values a measured
        creative by its own counts alone, so where faces do not matter the campaign keeps
        and serves its measured best creatives instead of testing new faces whose predicted
        edge is only the fit's noise."""
        return self if self.face_probability() >= 0.5 else self.null_model()

    def _creative_var_estimate(self) -> float:
        """How much creatives differ beyond their faces (the variance of the per-creative
        effect), estimated from the data (empirical Bayes, method of moments).

        A creative's residual from its face's prediction has variance creative_var + its
        sampling variance, less what the fit itself absorbed (its leverage); the estimate
        is the mean excess of the squared residuals, leverage-corrected, pooled with
        CREATIVE_PRIOR_WEIGHT pseudo-creatives at CREATIVE_SD so that a campaign's first
        dozen creatives do not decide it alone."""
        k0 = CREATIVE_PRIOR_WEIGHT
        prior = CREATIVE_SD**2
        if not len(self._y):
            return prior
        r = self._y - self._x @ self.mean
        total = self._var + self.creative_var
        leverage = np.einsum("ij,jk,ik->i", self._x, self.cov, self._x) / total
        excess = r**2 / np.clip(1.0 - leverage, 0.05, 1.0) - self._var
        var = (k0 * prior + float(np.sum(excess))) / (k0 + len(r))
        return float(np.clip(var, CREATIVE_SD_RANGE[0] ** 2, CREATIVE_SD_RANGE[1] ** 2))

    @property
    def effect_var(self) -> float:
        """The largest field's effect variance (how much any one parameter can matter)."""
        return max(self.effect_vars.values())

    def _effect_var_estimate(self) -> dict[str, float]:
        """How strongly each face parameter moves the KPI (the prior variance of its
        effects), estimated from the data: MacKay's fixed point for the prior's scale, per
        field (the posterior mean effects' size in the prior's own metric, so the ordinal
        fields' correlation counts, over gamma, the number of the field's effects the data
        determine; values no creative has shown count for neither), pooled with
        EFFECT_PRIOR_WEIGHT pseudo-values at EFFECT_SD. Where a parameter does not matter
        its variance falls toward the low end of EFFECT_SD_RANGE; where none does (the
        sandbox's `flat`) the model predicts every face alike and with little doubt, so a
        new face is not worth more than a measured good creative."""
        out: dict[str, float] = {}
        for f, var in self.effect_vars.items():
            o, k = self.offsets[f], len(self.values[f])
            e = self.mean[o : o + k]
            unit = self._unit[o : o + k, o : o + k]
            gamma = k - float(np.sum(unit * self.cov[o : o + k, o : o + k])) / var
            size = float(e @ unit @ e)
            est = (EFFECT_PRIOR_WEIGHT * EFFECT_SD**2 + size) / (
                EFFECT_PRIOR_WEIGHT + max(gamma, 0.0)
            )
            out[f] = float(np.clip(est, EFFECT_SD_RANGE[0] ** 2, EFFECT_SD_RANGE[1] ** 2))
        return out

    def _logits(self, n: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed logit rates and their sampling variances, shrunk by one pseudo-success
        at the pooled rate."""
        m0 = 1.0 / self.pooled
        q = (s + 1.0) / (n + m0)
        q = np.clip(q, 1e-6, 1 - 1e-6)
        return np.log(q / (1.0 - q)), 1.0 / (n * self.pooled * (1.0 - self.pooled))

    def features(self, params: FaceParams) -> np.ndarray:
        x = np.zeros(self.n_features)
        x[-1] = 1.0
        for f, columns in self._column.items():
            i = columns.get(getattr(params, f))
            if i is not None:
                x[i] = 1.0
        return x

    # ------------------------------------------------------------------ predictions

    def draw_effects(self, rng: np.random.Generator, k: int = 1) -> np.ndarray:
        """k posterior draws of the coefficients, shape (features, k)."""
        z = rng.standard_normal((self.n_features, k))
        out: np.ndarray = self.mean[:, None] + self._chol @ z
        return out

    def _creative(
        self, arms: Sequence[tuple[FaceParams, float, float]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per creative: features, shrinkage toward its own counts, its observed logit and
        the residual variance left after them."""
        x = np.stack([self.features(p) for p, _, _ in arms]) if arms else np.zeros((0, 1))
        n = np.array([a[1] for a in arms], dtype=float)
        s = np.array([a[2] for a in arms], dtype=float)
        y, var = self._logits(np.maximum(n, 1.0), s)
        seen = n > 0
        # given the effects, u_i | data ~ N(k (y - x b), k var): k = creative / (creative + var)
        k = np.where(seen, self.creative_var / (self.creative_var + var), 0.0)
        resid_var = np.where(seen, k * var, self.creative_var)
        return x, k, np.where(seen, y, 0.0), resid_var

    def arm_draws(
        self,
        arms: Sequence[tuple[FaceParams, float, float]],
        rng: np.random.Generator,
        k: int = 2000,
    ) -> np.ndarray:
        """Posterior draws of each creative's logit rate, shape (arms, k): the model's
        prediction for its face plus its own deviation, as far as its counts show one."""
        if not arms:
            return np.zeros((0, k))
        x, shrink, y, resid_var = self._creative(arms)
        face = x @ self.draw_effects(rng, k)
        own = shrink[:, None] * (y[:, None] - face)
        noise = np.sqrt(resid_var)[:, None] * rng.standard_normal(face.shape)
        out: np.ndarray = face + own + noise
        return out

    def arm_means(self, arms: Sequence[tuple[FaceParams, float, float]]) -> np.ndarray:
        """Posterior mean rate of each creative."""
        if not arms:
            return np.zeros(0)
        x, shrink, y, _ = self._creative(arms)
        face = x @ self.mean
        logit = face + shrink * (y - face)
        out: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
        return out

    def log_likelihood(self, evidence: Iterable[Evidence]) -> float:
        """Log predictive density of fresh creatives' counts under this posterior (logit
        scale, Gaussian): how well the model, fitted before they ran, foresaw them."""
        data = [e for e in evidence if e.impressions > 0]
        if not data:
            return 0.0
        x = np.stack([self.features(e.params) for e in data])
        y, var = self._logits(
            np.array([e.impressions for e in data]), np.array([e.successes for e in data])
        )
        mu = x @ self.mean
        total = np.einsum("ij,jk,ik->i", x, self.cov, x) + self.creative_var + var
        return float(np.sum(-0.5 * (y - mu) ** 2 / total - 0.5 * np.log(2 * np.pi * total)))

    def rate(self, params: FaceParams) -> float:
        """Posterior mean rate of a fresh creative with these parameters (logit mean)."""
        return float(1.0 / (1.0 + math.exp(-float(self.features(params) @ self.mean))))

    def new_creative_rate(self) -> float:
        """The expected rate of a new creative of the posterior's best face: its face's
        predicted rate, its own effect drawn from the creative prior (mean 0, variance
        `creative_var`, which raises the expected rate a little on the logit scale). A
        live creative whose posterior mean is below it is worth replacing."""
        face = self.best(self.mean)
        x = self.features(face)
        mu = float(x @ self.mean)
        sd = math.sqrt(float(x @ self.cov @ x) + self.creative_var)
        # E[sigmoid(N(mu, sd^2))] by Gauss-Hermite quadrature (9 nodes: plenty at sd < 1)
        nodes, weights = np.polynomial.hermite_e.hermegauss(9)
        rates = 1.0 / (1.0 + np.exp(-(mu + sd * nodes)))
        return float(np.sum(weights * rates) / np.sum(weights))

    def best(
        self,
        effects: np.ndarray,
        penalty: Mapping[tuple[str, Any], float] | None = None,
        avoid: Collection[FaceParams] = (),
    ) -> FaceParams:
        """The face with the highest rate under one draw of the coefficients (the effects
        add up, so the best value of each field is chosen on its own), minus a per-value
        `penalty` (e.g. for values whose faces were blocked). A face in `avoid` is
        replaced by the best face that differs from it in one field."""
        score = {
            f: np.array(
                [
                    effects[self.offsets[f] + i] - (penalty or {}).get((f, v), 0.0)
                    for i, v in enumerate(self.values[f])
                ]
            )
            for f in FIELDS
        }
        pick = {f: int(np.argmax(score[f])) for f in FIELDS}
        face = FaceParams(**{f: self.values[f][pick[f]] for f in FIELDS})
        if face not in avoid:
            return face
        # cheapest single change that leaves `avoid`
        options: list[tuple[float, FaceParams]] = []
        for f in FIELDS:
            order = np.argsort(-score[f])
            for i in order[1:]:
                cand = face.model_copy(update={f: self.values[f][int(i)]})
                if cand not in avoid:
                    options.append((float(score[f][pick[f]] - score[f][int(i)]), cand))
                    break
        return min(options, key=lambda o: o[0])[1] if options else face

    def propose(
        self,
        rng: np.random.Generator,
        avoid: Collection[FaceParams] = (),
        penalty: Mapping[tuple[str, Any], float] | None = None,
        scale: float = PROPOSAL_SCALE,
    ) -> FaceParams:
        """One Thompson proposal: the best face under one posterior draw whose spread around
        the posterior mean is scaled by `scale` (1.0: plain Thompson sampling; 0: the
        posterior mean's best face)."""
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        draw = self.draw_effects(rng, 1)[:, 0]
        return self.best(self.mean + scale * (draw - self.mean), penalty, avoid)

    def told(self, coefficients: np.ndarray, creative_sd: float) -> FaceModel:
        """A copy of this model that knows the face effects: `coefficients` (in feature
        order, the intercept last) as its posterior, without doubt, and `creative_sd` as
        the spread of the creatives' own effects. Its counts stay: each creative's own
        effect is still read from them. Used by the bench's `faces_known` reference, which
        is told the sandbox's true effects (`simulate.known_face_models`). A model told that
        no face matters (every effect 0) is the null model's (`selected`)."""
        coefficients = np.asarray(coefficients, dtype=float)
        if coefficients.shape != (self.n_features,):
            raise ValueError(
                f"coefficients has shape {coefficients.shape}, the model {self.n_features} "
                "features (intercept last)"
            )
        if creative_sd < 0:
            raise ValueError(f"creative_sd must be >= 0, got {creative_sd}")
        out = copy.copy(self)
        out.mean = coefficients.copy()
        out.cov = KNOWN_VAR * np.eye(self.n_features)
        out._chol = math.sqrt(KNOWN_VAR) * np.eye(self.n_features)
        out.creative_var = max(creative_sd, CREATIVE_SD_RANGE[0]) ** 2
        out._null = None
        out._p_face = 1.0 if np.any(coefficients[:-1] != 0.0) else 0.0
        return out

    def effects(self) -> dict[str, dict[str, float]]:
        """Posterior mean effect of every value (logit scale), for reports and tests."""
        return {
            f: {str(v): float(self.mean[self.offsets[f] + i]) for i, v in enumerate(self.values[f])}
            for f in FIELDS
        }


assert set(CATEGORICAL_FIELDS) | {"skin_tone"} == set(FIELDS)


# --------------------------------------------------------------------------- the campaign's models


def segment_models(
    space: SearchSpace,
    history: Mapping[str, Sequence[ArmStats]],
    creative_sd: float | None = None,
    effect_sd: float | None = None,
) -> dict[str, FaceModel]:
    """The KPI model of each segment, fitted on every creative the campaign has shown there
    (live and retired: a retired face still says what its attribute values are worth);
    `creative_sd` None: the creative effect's spread estimated from the data."""
    return {
        segment: FaceModel(
            space,
            [
                Evidence(a.params, a.impressions, a.successes)
                for a in arms
                if a.params is not None and a.impressions > 0
            ],
            creative_sd=creative_sd,
            effect_sd=effect_sd,
        )
        for segment, arms in history.items()
    }


# How fast old observations fade from the KPI model, chosen per round by how well each
# choice foresaw the creatives launched in recent windows: None (all count) while the
# audience stays the same, a half-life of a few windows once it drifts.
MEMORY_CHOICES: tuple[float | None, ...] = (None, 4.0)
MEMORY_LOOKBACK = 4
# forgetting must foresee the launches better by this much (log likelihood; e^2 is a Bayes
# factor of about 7): a lucky round must not throw away what the campaign knows
MEMORY_MARGIN = 2.0


def choose_memory(
    space: SearchSpace,
    history: Callable[[float | None, int], Mapping[str, Sequence[ArmStats]]],
    launched: Mapping[int, Mapping[str, Sequence[ArmStats]]],
    now: int,
    choices: Sequence[float | None] = MEMORY_CHOICES,
    lookback: int = MEMORY_LOOKBACK,
    margin: float = MEMORY_MARGIN,
) -> float | None:
    """The memory (half-life in windows, None: everything counts) whose KPI models best
    predicted the creatives launched in the last `lookback` windows up to `now`.

    `history(memory, through)` gives every creative's counts per segment through window
    `through`, older windows weighed down by `memory`; `launched[w]` the counts in window w
    of the creatives that ran for the first time in w, per segment. A model fitted before
    they ran predicts them from their faces alone, so the check reads how well the model
    knows the audience now, not how one creative wore out. Another choice replaces the
    first only when it scored `margin` better.
    """
    scores = dict.fromkeys(choices, 0.0)
    for w in range(max(now - lookback + 1, 1), now + 1):
        fresh = launched.get(w, {})
        if not any(fresh.values()):
            continue
        for memory in choices:
            # scored with the prior spreads, not each fit's own estimates:
            # the estimate takes up whatever the faces do not explain, a drift included,
            # and would excuse the stale model's misses that this check is meant to catch
            models = segment_models(space, history(memory, w - 1), CREATIVE_SD, EFFECT_SD)
            scores[memory] += sum(
                models[s].log_likelihood(
                    Evidence(a.params, a.impressions, a.successes)
                    for a in arms
                    if a.params is not None
                )
                for s, arms in fresh.items()
                if s in models
            )
    best = max(choices, key=lambda m: scores[m])
    return best if scores[best] - scores[choices[0]] > margin else choices[0]


def round_models(
    observations: Sequence[KpiObservation],
    params: Mapping[str, FaceParams],
    segments: Sequence[str],
    goal: KpiGoal,
    now: int,
    space: SearchSpace,
    mean_delay_windows: float = MEAN_DELAY_WINDOWS,
) -> tuple[float | None, dict[str, FaceModel]]:
    """The campaign's memory and KPI model per segment after window `now`, from the observe
    step's rows of every variant in `params` (live or retired)."""
    vids = list(params)

    def history(memory: float | None, through: int) -> Mapping[str, Sequence[ArmStats]]:
        rows = [o for o in observations if o.round <= through]
        return arms_from_observations(
            rows, vids, segments, goal, through, mean_delay_windows, memory, params
        )

    first: dict[str, int] = {}
    for o in observations:
        if o.variant_id in params and o.impressions > 0:
            first[o.variant_id] = min(first.get(o.variant_id, o.round), o.round)
    launched = {
        w: arms_from_observations(
            [o for o in observations if o.round == w],
            [v for v in vids if first.get(v) == w],
            segments,
            goal,
            w,
            mean_delay_windows,
            None,
            params,
        )
        for w in range(max(now - MEMORY_LOOKBACK + 1, 0), now + 1)
    }
    memory = choose_memory(space, history, launched, now) if now > 0 else None
    models = segment_models(space, history(memory, now))
    if now < NULL_FROM_WINDOW:
        for model in models.values():
            model.set_face_probability(1.0)
    elif memory is not None:
        # whether the face matters is read from the whole campaign: after a trend shift the
        # forgetting model's few recent windows, or a stationary fit's clash of old and new
        # effects, can look like "no effect" while only which faces win has changed. Fitted
        # only where the null model may decide: before that the answer is fixed above
        whole = segment_models(space, history(None, now))
        for segment, model in models.items():
            if segment in whole:
                model.set_face_probability(whole[segment].face_probability())
    return memory, models


# --------------------------------------------------------------------------- one round's evidence


@dataclass(frozen=True)
class CampaignEvidence:
    """What the campaign knows after window `now`, in the form each step of a round reads:
    the memory and KPI model per segment (proposals, allocation, the learn rule), the live
    variants' counts per segment for the goal, and their clicks per window (fatigue)."""

    observations: tuple[KpiObservation, ...]
    faces: Mapping[str, FaceParams]  # every variant the campaign ran (live or retired)
    live: Mapping[str, str | None]  # live variant -> the one segment it runs in (None: all)
    shares: Mapping[str, float]  # impression share per segment
    goal: KpiGoal
    now: int  # the last observed window (-1: nothing observed yet)
    mean_delay_windows: float
    memory: float | None  # half-life of old windows in the models and arms (None: all count)
    models: dict[str, FaceModel]  # per segment
    arms: dict[str, list[ArmStats]]  # per segment: the live variants that run in it
    windows: dict[str, dict[int, tuple[float, float]]]  # live variant -> window -> (n, clicks)
    # the face each variant's request asked for, where it differs from the one its image
    # shows (`faces`); and, per variant, which parameters of `faces` were measured
    requested: Mapping[str, FaceParams] = dataclasses.field(default_factory=dict)
    shown_from: Mapping[str, Mapping[str, ShownFrom]] = dataclasses.field(default_factory=dict)

    def arms_for(self, goal: KpiGoal) -> dict[str, list[ArmStats]]:
        """The live variants' counts per segment for another KPI (a multi-objective
        campaign reads clicks and conversions both), with the same memory."""
        return _live_arms(
            self.observations,
            self.faces,
            self.live,
            self.shares,
            goal,
            self.now,
            self.mean_delay_windows,
            self.memory,
        )

    def with_live(
        self,
        live: Mapping[str, str | None],
        faces: Mapping[str, FaceParams],
        *,
        requested: Mapping[str, FaceParams] | None = None,
        shown_from: Mapping[str, Mapping[str, ShownFrom]] | None = None,
    ) -> CampaignEvidence:
        """The same evidence for another set of live variants (this round's proposals added,
        retired ones gone). Nothing was observed in between, so the memory and the models
        stand and only the live counts are read again: what `campaign_evidence` would give
        for `live` at the same window, without refitting. `faces` is every variant now;
        the ones it adds must have no observations yet."""
        added = set(faces) - set(self.faces)
        seen = sorted({o.variant_id for o in self.observations if o.variant_id in added})
        if seen:
            raise ValueError(
                f"variants {seen} have observations but were not in the evidence's faces: "
                "compute campaign_evidence again to fit the models on them"
            )
        return _evidence(
            self.observations,
            faces,
            live,
            self.shares,
            self.goal,
            self.now,
            self.mean_delay_windows,
            self.memory,
            self.models,
            requested={**self.requested, **(requested or {})},
            shown_from={**self.shown_from, **(shown_from or {})},
        )


def campaign_evidence(
    observations: Iterable[KpiObservation],
    faces: Mapping[str, FaceParams],
    live: Mapping[str, str | None],
    shares: Mapping[str, float],
    goal: KpiGoal,
    space: SearchSpace,
    now: int,
    mean_delay_windows: float = MEAN_DELAY_WINDOWS,
    *,
    requested: Mapping[str, FaceParams] | None = None,
    shown_from: Mapping[str, Mapping[str, ShownFrom]] | None = None,
) -> CampaignEvidence:
    """What a round needs from the catalog, after window `now`: the memory and KPI model per
    segment (fitted on every variant in `faces`, live or retired), the `live` variants'
    counts per segment for the `goal` and their clicks per window.

    `observations` are the observe step's rows (one per variant, segment and window, a
    window's conversions those reported in it); `faces` every variant the campaign ran,
    with its parameters; `live` the variants running now, each with the one segment it
    targets (None: every segment); `shares` the campaign's segments. The workflow's
    propose, deploy and learn activities call this on what the catalog holds; the bench
    (`faceloop.optimization.simulate`) on the rows its simulated audience records.

    `faces` is what each variant's image shows (`shown_faces`: measured parameters as
    measured, the rest as requested), so the models learn what the audience saw;
    `requested` the requests that differ from it (a refresh asks for the request again) and
    `shown_from` which parameters were measured, kept for the audit.
    """
    # what was known after window `now`: a later window must not leak into its models
    rows = tuple(o for o in observations if o.round <= now)
    memory, models = round_models(rows, faces, list(shares), goal, now, space, mean_delay_windows)
    return _evidence(
        rows,
        faces,
        live,
        shares,
        goal,
        now,
        mean_delay_windows,
        memory,
        models,
        requested=requested or {},
        shown_from=shown_from or {},
    )


def _live_arms(
    rows: Sequence[KpiObservation],
    faces: Mapping[str, FaceParams],
    live: Mapping[str, str | None],
    shares: Mapping[str, float],
    goal: KpiGoal,
    now: int,
    mean_delay_windows: float,
    memory: float | None,
) -> dict[str, list[ArmStats]]:
    return arms_from_observations(
        rows, list(live), list(shares), goal, now, mean_delay_windows, memory, faces, live
    )


def _evidence(
    rows: tuple[KpiObservation, ...],
    faces: Mapping[str, FaceParams],
    live: Mapping[str, str | None],
    shares: Mapping[str, float],
    goal: KpiGoal,
    now: int,
    mean_delay_windows: float,
    memory: float | None,
    models: dict[str, FaceModel],
    *,
    requested: Mapping[str, FaceParams],
    shown_from: Mapping[str, Mapping[str, ShownFrom]],
) -> CampaignEvidence:
    missing = [v for v in live if v not in faces]
    if missing:
        raise ValueError(f"live variants {missing} have no parameters in `faces`")
    return CampaignEvidence(
        observations=rows,
        faces=dict(faces),
        live=dict(live),
        shares=dict(shares),
        goal=goal,
        now=now,
        mean_delay_windows=mean_delay_windows,
        memory=memory,
        models=models,
        arms=_live_arms(rows, faces, live, shares, goal, now, mean_delay_windows, memory),
        windows=window_clicks(rows, set(live)),
        requested=dict(requested),
        shown_from=dict(shown_from),
    )


__all__ = [
    "CREATIVE_PRIOR_WEIGHT",
    "CREATIVE_SD",
    "CREATIVE_SD_RANGE",
    "EFFECT_SD",
    "MEMORY_CHOICES",
    "MEMORY_LOOKBACK",
    "MEMORY_MARGIN",
    "PROPOSAL_SCALE",
    "CampaignEvidence",
    "FaceModel",
    "campaign_evidence",
    "choose_memory",
    "round_models",
    "segment_models",
]
