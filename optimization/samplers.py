"""The Optuna samplers a campaign's study can use: `thompson` (faceloop's own, drawing
proposals from the KPI model) and Optuna's TPE, GP, CMA-ES and random, behind one factory
(`build_sampler`, named by the FACELOOP_OPTUNA_SAMPLER setting).

In `faceloop.optimization` it sits above `facemodel` (the thompson sampler proposes from its
posterior) and below `study`, whose `Optimizer.ask` builds a sampler per proposal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from faceloop.errors import FaceloopError
from faceloop.models import CATEGORICAL_FIELDS, FaceParams, SearchSpace
from faceloop.optimization.facemodel import FaceModel
from faceloop.optimization.seeds import stable_seed

SAMPLERS = ("thompson", "tpe", "gp", "cmaes", "random")


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    dists: dict[str, BaseDistribution] = {
        name: CategoricalDistribution(list(getattr(space, name))) for name in CATEGORICAL_FIELDS
    }
    dists["skin_tone"] = IntDistribution(space.skin_tone.low, space.skin_tone.high)
    return dists


class ThompsonSampler(optuna.samplers.BaseSampler):
    """Thompson sampling over the whole face space: each trial is the best face under one
    tempered posterior draw (`facemodel.PROPOSAL_SCALE`) of the campaign's KPI model
    (`FaceModel`, fitted on every observation so far, for the trial's target segment).

    Without a model (no data yet) the draw comes from the prior, i.e. a random face. Faces
    that were blocked or failed (trials told FAIL or PRUNED, in `finished`) are avoided:
    each attribute value gets a penalty drawn from Beta(fails, completes) of the trials
    that had it, so the value behind a blocked look is soon left out while one unlucky
    co-occurrence fades. Faces in `avoid` (the live ads and this round's other proposals)
    are not proposed again: a second copy of a live face teaches the model nothing new.
    """

    def __init__(
        self,
        seed: int,
        space: SearchSpace,
        model: FaceModel | None = None,
        avoid: Collection[FaceParams] = (),
        finished: Sequence[FrozenTrial] = (),
    ) -> None:
        self._seed = seed
        self._space = space
        self._model = model
        self._avoid = set(avoid)
        self._finished = finished
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return distributions(self._space)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        model = self._model or FaceModel(self._space)
        rng = np.random.default_rng(stable_seed(self._seed, trial.number))
        face = model.propose(rng, self._avoid, blocked_penalty(self._finished, rng))
        values = face.model_dump()
        return {name: values[name] for name in search_space}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)


def blocked_penalty(
    trials: Iterable[FrozenTrial], rng: np.random.Generator
) -> dict[tuple[str, Any], float]:
    """-log(1 - P(blocked)) per attribute value, P drawn from Beta(0.1 + fails, 2 + completes)
    over the finished trials that had the value; empty while nothing failed."""
    fails: dict[tuple[str, Any], int] = {}
    oks: dict[tuple[str, Any], int] = {}
    for t in trials:
        if t.state in (TrialState.FAIL, TrialState.PRUNED):
            bucket = fails
        elif t.state == TrialState.COMPLETE:
            bucket = oks
        else:
            continue
        for item in t.params.items():
            bucket[item] = bucket.get(item, 0) + 1
    if not fails:
        return {}
    keys = sorted(set(fails) | set(oks), key=str)
    p = rng.beta([0.1 + fails.get(k, 0) for k in keys], [2.0 + oks.get(k, 0) for k in keys])
    return {k: float(-np.log1p(-min(float(x), 0.999))) for k, x in zip(keys, p, strict=True)}


def build_sampler(
    name: str,
    seed: int,
    multi_objective: bool,
    space: SearchSpace | None = None,
    model: FaceModel | None = None,
    avoid: Collection[FaceParams] = (),
    finished: Sequence[FrozenTrial] = (),
) -> optuna.samplers.BaseSampler:
    if name == "thompson":
        return ThompsonSampler(seed, space or SearchSpace(), model, avoid, finished)
    if name == "tpe":
        # constant_liar: several trials are asked before any is told (one batch per round)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        # GPSampler needs torch (a core dependency); it handles categoricals natively
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=8, deterministic_objective=False
        )
    if name == "cmaes":
        if multi_objective:
            raise FaceloopError(
                "optuna_sampler 'cmaes' optimizes one objective only; set "
                "FACELOOP_OPTUNA_SAMPLER to thompson, tpe, gp or random for a multi-objective "
                "campaign"
            )
        try:
            import cmaes  # noqa: F401
        except ModuleNotFoundError:
            raise FaceloopError(
                "optuna_sampler 'cmaes' needs the cmaes package; pip install cmaes, "
                "or set FACELOOP_OPTUNA_SAMPLER to thompson, tpe, gp or random"
            ) from None
        # CMA-ES models skin tone (the one ordinal parameter); the categorical fields go to
        # the independent fallback, TPE rather than the default random sampler
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            n_startup_trials=8,
            warn_independent_sampling=False,
            independent_sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        )
    raise FaceloopError(
        f"optuna_sampler {name!r} is unknown; set FACELOOP_OPTUNA_SAMPLER to one of {SAMPLERS}"
    )


__all__ = ["SAMPLERS", "ThompsonSampler", "blocked_penalty", "build_sampler", "distributions"]
