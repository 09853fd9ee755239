"""Traffic allocation: how the next window's impressions are split between the live
variants of each segment (Thompson sampling on the posterior of the campaign's KPI), and the
posterior summaries the learn rule ranks by.

In `faceloop.optimization` it sits above `facemodel` (the posterior, when a KPI model is
given) and below `learn`. The deploy activity (`connectors/activities.py`) and the bench
both allocate through `allocate_window`, on the evidence `campaign_evidence` gathered.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from faceloop.models import FaceParams
from faceloop.optimization.evidence import ArmStats, pooled_arms
from faceloop.optimization.facemodel import CampaignEvidence, FaceModel
from faceloop.optimization.seeds import stable_seed

# Without a KPI model (arms without parameters): how much creatives of one campaign typically
# differ, the prior's coefficient of variation around the pooled rate.
PRIOR_CV = 0.2

# The exploration floor is for creatives not yet measured: one with this many impressions
# (its posterior is its own data's, not the prior's) gets Thompson's share alone. A floor
# on every live creative kept a measured loser at 2% for the rest of the campaign, and
# with a dozen live creatives a quarter of each window sat on the floor.
MEASURED_IMPRESSIONS = 2000.0

# Where the null model decides (`FaceModel.selected`: the face does not matter), the
# measured creatives' shares are P(best) to this power, renormalised (a tempered Thompson
# split). There the creatives differ only by their own small effects, each measured on a
# window's share, and plain P(best) spread a window nearly evenly over a dozen of them: on
# `flat` the truly best live creative got 4-17% of windows 12-27 and the window's served rate
# stayed 4-7% under that creative's. Chosen on the tuning seeds (`flat`, 1000-1031: +0.7% and
# +0.5% at 3; 100 (greedy) +0.5%; the draws' spread scaled by 0.5 or 0.3 instead, +0.3 to
# +0.7%; scripts/issue17_session11/README.md). The face model's split stays plain Thompson:
# the power on every split cost `segments` and `drift_fatigue` 2-4%, their exploration.
NULL_SHARE_POWER = 3.0


def posterior_params(arms: Sequence[ArmStats], prior_cv: float | None = None) -> np.ndarray:
    """Beta(a, b) per arm with a prior centred on the pooled rate of all arms, as wide as
    creatives typically differ (`prior_cv` of the rate). Used where no KPI model is given.

    A flat Beta(1, 1) prior would have mean 0.5, so a brand-new creative would look far better
    than any measured one (CTRs are around 1%) and Thompson sampling would hand it everything.
    """
    cv = PRIOR_CV if prior_cv is None else prior_cv
    total_n = sum(a.impressions for a in arms)
    total_s = sum(a.successes for a in arms)
    pooled = (total_s + 1.0) / (total_n + 100.0)
    # Beta variance m(1-m)/(k+1) = (cv m)^2  ->  k = (1-m) / (m cv^2) - 1
    strength = max((1.0 - pooled) / (pooled * cv * cv) - 1.0, 2.0)
    a0, b0 = pooled * strength, (1.0 - pooled) * strength
    return np.array(
        [[a0 + a.successes, b0 + max(a.impressions - a.successes, 0)] for a in arms], dtype=float
    )


def _faces(arms: Sequence[ArmStats]) -> list[tuple[FaceParams, float, float]]:
    missing = [a.variant_id for a in arms if a.params is None]
    if missing:
        raise ValueError(f"arms {missing} have no params: the KPI model needs each arm's face")
    return [(a.params, a.impressions, a.successes) for a in arms if a.params is not None]


def posterior_mean(arms: Sequence[ArmStats], model: FaceModel | None = None) -> dict[str, float]:
    """Posterior mean rate per arm: under the KPI model (its face's predicted rate and its
    own deviation) or, without one, the Beta-Binomial around the pooled rate."""
    if model is not None:
        means = model.arm_means(_faces(arms))
        return {a.variant_id: float(m) for a, m in zip(arms, means, strict=True)}
    ab = posterior_params(arms)
    return {a.variant_id: float(ab[i, 0] / ab[i].sum()) for i, a in enumerate(arms)}


def _draws(
    arms: Sequence[ArmStats], rng: np.random.Generator, draws: int, model: FaceModel | None
) -> np.ndarray:
    if model is not None:
        return model.arm_draws(_faces(arms), rng, draws)
    ab = posterior_params(arms)
    return rng.beta(ab[:, 0][:, None], ab[:, 1][:, None], size=(len(arms), draws))


def p_best(
    arms: Sequence[ArmStats], seed: int, draws: int = 4000, model: FaceModel | None = None
) -> dict[str, float]:
    """P(arm has the highest rate) under the posterior, by Monte Carlo."""
    if not arms:
        return {}
    samples = _draws(arms, np.random.default_rng(seed), draws, model)
    counts = np.bincount(samples.argmax(axis=0), minlength=len(arms)) / draws
    return {a.variant_id: float(c) for a, c in zip(arms, counts, strict=True)}


def thompson_allocation(
    arms: Sequence[ArmStats],
    floor: float,
    seed: int,
    draws: int = 4000,
    model: FaceModel | None = None,
    settled: bool = False,
) -> dict[str, float]:
    """Share of the next window's impressions per arm: P(arm is best) under the posterior,
    with an exploration floor for each arm not yet measured (fewer than
    `MEASURED_IMPRESSIONS` impressions), so no new arm is starved before it has data; a
    measured arm's share is its P(best) alone.

    `settled`: no new creative is worth its test any more (`learn.new_creatives_worth`),
    so an unmeasured arm gets its floor and no more (Thompson sampling would hand the
    widest posterior, a brand-new creative's, the largest share), and the measured arms
    share the rest by their P(best) among themselves.

    Under the null model (`FaceModel.is_null`) P(best) is tempered (`NULL_SHARE_POWER`)."""
    if not arms:
        return {}
    new = np.array([a.impressions < MEASURED_IMPRESSIONS for a in arms])
    if floor * new.sum() > 1.0:
        floor = 1.0 / new.sum()
    rest = 1.0 - floor * new.sum()
    if settled and new.any() and not new.all():
        measured = [a for a, is_new in zip(arms, new, strict=True) if not is_new]
        pb = dict.fromkeys((a.variant_id for a in arms), 0.0)
        pb.update(p_best(measured, seed, draws, model))
    else:
        pb = p_best(arms, seed, draws, model)
    if model is not None and model.is_null:
        pb = _tempered(pb, NULL_SHARE_POWER)
    shares = np.array(
        [floor * is_new + rest * pb[a.variant_id] for a, is_new in zip(arms, new, strict=True)]
    )
    shares = shares / shares.sum()
    return {a.variant_id: float(s) for a, s in zip(arms, shares, strict=True)}


def _tempered(pb: Mapping[str, float], power: float) -> dict[str, float]:
    """P(best) to `power`, scaled back to the same total (a leader's share grows, a
    long shot's shrinks)."""
    raised = {k: v**power for k, v in pb.items()}
    total, z = sum(pb.values()), sum(raised.values())
    if z <= 0.0:
        return dict(pb)
    return {k: total * v / z for k, v in raised.items()}


def split_impressions(shares: Mapping[str, float], total: int) -> dict[str, int]:
    """Integer impressions per arm summing exactly to total (largest remainder)."""
    if not shares:
        return {}
    raw = {k: v * total for k, v in shares.items()}
    out = {k: int(v) for k, v in raw.items()}
    rest = total - sum(out.values())
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[:rest]:
        out[k] += 1
    return out


def allocate(
    arms_by_segment: Mapping[str, Sequence[ArmStats]],
    segment_shares: Mapping[str, float],
    floor: float,
    seed: int,
    impressions: int,
    models: Mapping[str, FaceModel] | None = None,
    settled: Collection[str] = (),
) -> dict[str, dict[str, int]]:
    """Impressions per segment and arm for the next window: each segment's budget (its
    share, exactly) goes to that segment's arms by Thompson sampling on that segment's
    posterior (its KPI model in `models`), so each segment converges on its own best face.
    A campaign without segments passes {ALL: arms} and {ALL: 1.0}. A segment left without
    arms of its own (its targeted faces were blocked, say) is shown every live arm, on their
    pooled counts: the brief bought that segment's impressions, and an empty segment would
    leave them unspent."""
    budgets = split_impressions(segment_shares, impressions)
    pooled = pooled_arms(arms_by_segment)
    out: dict[str, dict[str, int]] = {}
    for segment, budget in budgets.items():
        arms = arms_by_segment.get(segment) or pooled
        model = (models or {}).get(segment)
        if model is not None:
            model = model.selected()  # the null model where faces do not matter
        shares = thompson_allocation(
            arms, floor, stable_seed(seed, segment), model=model, settled=segment in settled
        )
        out[segment] = split_impressions(shares, budget)
    return out


def allocate_window(
    evidence: CampaignEvidence,
    floor: float,
    seed: int,
    impressions: int,
    settled: Collection[str] = (),
) -> dict[str, dict[str, int]]:
    """The next window's impressions per segment and live variant, from the evidence after
    the last observed window: `allocate` on its live counts and KPI models. `settled`: the
    segments where no new creative is worth its test (`learn.settled_segments`)."""
    return allocate(
        evidence.arms, evidence.shares, floor, seed, impressions, evidence.models, settled
    )


__all__ = [
    "MEASURED_IMPRESSIONS",
    "PRIOR_CV",
    "allocate",
    "allocate_window",
    "p_best",
    "posterior_mean",
    "posterior_params",
    "split_impressions",
    "thompson_allocation",
]
