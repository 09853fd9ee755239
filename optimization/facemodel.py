"""A Bayesian model of how the face parameters move a campaign's KPI, shared by proposals
(the `thompson` sampler), traffic allocation and the keep/retire rule.

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

Skin tone (Monk 1-10) and age band are ordinal: their prior correlates neighbouring values
(a squared-exponential kernel over their position, `ordinal_length` positions wide), so a
measured tone also says something about the tones next to it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceloop.models import AGE_BANDS, CATEGORICAL_FIELDS, FaceParams, SearchSpace

# Priors: how strongly one attribute value moves the KPI (logit scale: 0.1 is about +-10%),
# how much two creatives of the same face differ, and how far an ordinal value's effect
# carries to its neighbours. They describe creatives in general, not any one scenario.
EFFECT_SD = 0.1
CREATIVE_SD = 0.1
ORDINAL_LENGTH = 1.5
ORDINAL_FIELDS = ("skin_tone", "age_band")
# Proposals draw from the posterior with its spread scaled by this factor (a tempered
# Thompson draw). Plain Thompson sampling (1.0) keeps proposing far-off faces long after the
# model knows the region of the best one: over ~40 attribute values and a campaign of a few
# dozen rounds it explores more than the budget repays. Allocation and the keep rule still
# use the full posterior, so a new face is measured as fairly as before. 0.5 was chosen on
# tuning seeds (1000-1009, not the benchmark's published 0-19): oracle fraction on segments
# 0.839 / 0.861 / 0.883 / 0.869 at 1.0 / 0.7 / 0.5 / 0.3; at 0.5 every shipped scenario
# gained (docs/optimization.md).
PROPOSAL_SCALE = 0.5
# FaceParams field order: the model's features follow it
FIELDS: tuple[str, ...] = tuple(FaceParams.model_fields)


@dataclass(frozen=True)
class Evidence:
    """What one creative delivered in one segment (successes: clicks or conversions)."""

    params: FaceParams
    impressions: float
    successes: float


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
        effect_sd: float = EFFECT_SD,
        creative_sd: float = CREATIVE_SD,
        ordinal_length: float = ORDINAL_LENGTH,
    ) -> None:
        if effect_sd <= 0 or creative_sd < 0 or ordinal_length <= 0:
            raise ValueError(
                f"effect_sd ({effect_sd}) and ordinal_length ({ordinal_length}) must be > 0, "
                f"creative_sd ({creative_sd}) >= 0"
            )
        self.space = space
        self.values: dict[str, list[Any]] = {f: _values(space, f) for f in FIELDS}
        self.offsets: dict[str, int] = {}
        n = 0
        for f in FIELDS:
            self.offsets[f] = n
            n += len(self.values[f])
        self.n_features = n + 1  # + intercept, last
        self.creative_var = creative_sd**2
        data = [e for e in evidence if e.impressions > 0]
        total_n = sum(e.impressions for e in data)
        total_s = sum(e.successes for e in data)
        # the campaign's pooled rate: centre of the intercept's prior and the rate at which
        # counts are turned into logits (so one creative with 0 clicks is not a -inf outlier)
        self.pooled = (total_s + 1.0) / (total_n + 100.0)
        precision = self._prior_precision(effect_sd, ordinal_length)
        rhs = np.zeros(self.n_features)
        rhs[-1] = _logit(self.pooled) * precision[-1, -1]
        if data:
            x = np.stack([self.features(e.params) for e in data])
            y, var = self._logits(
                np.array([e.impressions for e in data]), np.array([e.successes for e in data])
            )
            w = 1.0 / (var + self.creative_var)
            precision = precision + x.T @ (w[:, None] * x)
            rhs = rhs + x.T @ (w * y)
        self.cov = np.linalg.inv(precision)
        self.cov = (self.cov + self.cov.T) / 2.0
        self.mean = self.cov @ rhs
        self._chol = np.linalg.cholesky(self.cov + 1e-12 * np.eye(self.n_features))

    def _prior_precision(self, effect_sd: float, ordinal_length: float) -> np.ndarray:
        p = np.zeros((self.n_features, self.n_features))
        for f in FIELDS:
            o, k = self.offsets[f], len(self.values[f])
            if f in ORDINAL_FIELDS:
                pos = np.array([_position(f, v) for v in self.values[f]])
                cov = effect_sd**2 * np.exp(
                    -0.5 * ((pos[:, None] - pos[None, :]) / ordinal_length) ** 2
                )
                p[o : o + k, o : o + k] = np.linalg.inv(cov + 1e-6 * effect_sd**2 * np.eye(k))
            else:
                p[o : o + k, o : o + k] = np.eye(k) / effect_sd**2
        p[-1, -1] = 1.0  # intercept ~ N(logit(pooled), 1)
        return p

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
        for f in FIELDS:
            value = getattr(params, f)
            if value in self.values[f]:
                x[self.offsets[f] + self.values[f].index(value)] = 1.0
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

    def effects(self) -> dict[str, dict[str, float]]:
        """Posterior mean effect of every value (logit scale), for reports and tests."""
        return {
            f: {str(v): float(self.mean[self.offsets[f] + i]) for i, v in enumerate(self.values[f])}
            for f in FIELDS
        }


assert set(CATEGORICAL_FIELDS) | {"skin_tone"} == set(FIELDS)

__all__ = ["CREATIVE_SD", "EFFECT_SD", "PROPOSAL_SCALE", "Evidence", "FaceModel"]
