"""Proposals (Optuna ask/tell, one study per campaign in RDB storage) and traffic allocation
(Thompson sampling on Beta-Binomial posteriors of the campaign's KPI).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from faceloop.errors import FaceloopError
from faceloop.models import CATEGORICAL_FIELDS, FaceParams, KpiGoal, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random")


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from any values, identical across processes (unlike hash())."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    dists: dict[str, BaseDistribution] = {
        name: CategoricalDistribution(list(getattr(space, name))) for name in CATEGORICAL_FIELDS
    }
    dists["skin_tone"] = IntDistribution(space.skin_tone.low, space.skin_tone.high)
    return dists


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # constant_liar: several trials are asked before any is told (one batch per round)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise FaceloopError(
        f"optuna_sampler {name!r} is unknown; set FACELOOP_OPTUNA_SAMPLER to one of {SAMPLERS}"
    )


@dataclass(frozen=True)
class Proposal:
    trial_number: int
    params: FaceParams


class Optimizer:
    """One Optuna study per campaign (study name = campaign id) in RDB storage."""

    def __init__(self, storage_url: str, sampler: str = "tpe") -> None:
        self.storage_url = storage_url
        self.sampler_name = sampler
        self._storage = optuna.storages.RDBStorage(
            storage_url, engine_kwargs={"pool_pre_ping": True}
        )

    def study(self, campaign_id: str, round_: int = 0) -> optuna.Study:
        # A sampler lives only as long as one activity call, so its seed must differ per
        # round: one seed for the campaign would replay the same random startup trials
        # every round.
        return optuna.create_study(
            study_name=campaign_id,
            storage=self._storage,
            direction="maximize",
            sampler=_sampler(self.sampler_name, stable_seed(campaign_id, round_)),
            load_if_exists=True,
        )

    def ask(self, campaign_id: str, round_: int, n: int, space: SearchSpace) -> list[Proposal]:
        """n proposals for this round. Idempotent: a retried activity gets the same trials
        back instead of leaking new ones into the study."""
        study = self.study(campaign_id, round_)
        existing = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("round") == round_ and t.state == TrialState.RUNNING
        ]
        existing.sort(key=lambda t: t.number)
        dists = distributions(space)
        out = [Proposal(t.number, FaceParams(**t.params)) for t in existing[:n]]
        while len(out) < n:
            trial = study.ask(dists)
            trial.set_user_attr("round", round_)
            out.append(Proposal(trial.number, FaceParams(**trial.params)))
        return out

    def tell(self, campaign_id: str, trial_number: int, value: float | None) -> bool:
        """Tell a KPI value, or None for a variant that was blocked or failed (so the sampler
        learns the infeasible region). Returns False if the trial was already finished."""
        study = self.study(campaign_id)
        trial = study.get_trials(deepcopy=False)[trial_number]
        if trial.state != TrialState.RUNNING:
            return False
        if value is None:
            study.tell(trial_number, state=TrialState.FAIL)
        else:
            study.tell(trial_number, value)
        return True

    def trials(self, campaign_id: str) -> list[optuna.trial.FrozenTrial]:
        return self.study(campaign_id).get_trials(deepcopy=False)


# --------------------------------------------------------------------------- allocation


@dataclass(frozen=True)
class ArmStats:
    variant_id: str
    impressions: int
    successes: int  # clicks for a CTR goal, conversions for a conversions goal


def successes(goal: KpiGoal, clicks: int, conversions: int) -> int:
    return clicks if goal == KpiGoal.ctr else conversions


def posterior_params(arms: list[ArmStats], prior_strength: float = 200.0) -> np.ndarray:
    """Beta(a, b) per arm with a prior centred on the pooled rate of all arms.

    A flat Beta(1, 1) prior would have mean 0.5, so a brand-new creative would look far better
    than any measured one (CTRs are around 1%) and Thompson sampling would hand it everything.
    """
    total_n = sum(a.impressions for a in arms)
    total_s = sum(a.successes for a in arms)
    pooled = (total_s + 1.0) / (total_n + 100.0)
    a0, b0 = pooled * prior_strength, (1.0 - pooled) * prior_strength
    return np.array(
        [[a0 + a.successes, b0 + max(a.impressions - a.successes, 0)] for a in arms], dtype=float
    )


def posterior_mean(arms: list[ArmStats]) -> dict[str, float]:
    ab = posterior_params(arms)
    return {a.variant_id: float(ab[i, 0] / ab[i].sum()) for i, a in enumerate(arms)}


def thompson_allocation(
    arms: list[ArmStats], floor: float, seed: int, draws: int = 4000
) -> dict[str, float]:
    """Share of the next window's impressions per arm: P(arm is best) under the posterior,
    with an exploration floor so no live arm is starved before it has data."""
    if not arms:
        return {}
    if floor * len(arms) > 1.0:
        floor = 1.0 / len(arms)
    ab = posterior_params(arms)
    rng = np.random.default_rng(seed)
    samples = rng.beta(ab[:, 0][:, None], ab[:, 1][:, None], size=(len(arms), draws))
    p_best = np.bincount(samples.argmax(axis=0), minlength=len(arms)) / draws
    shares = floor + (1.0 - floor * len(arms)) * p_best
    shares = shares / shares.sum()
    return {a.variant_id: float(s) for a, s in zip(arms, shares, strict=True)}


def split_impressions(shares: dict[str, float], total: int) -> dict[str, int]:
    """Integer impressions per arm summing exactly to total (largest remainder)."""
    if not shares:
        return {}
    raw = {k: v * total for k, v in shares.items()}
    out = {k: int(v) for k, v in raw.items()}
    rest = total - sum(out.values())
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[:rest]:
        out[k] += 1
    return out
