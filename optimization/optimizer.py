"""Proposals (Optuna ask/tell, one study per campaign in RDB storage) and traffic allocation
(Thompson sampling on the posterior of the campaign's KPI).

The round logic lives here as plain functions over counts (`allocate`, `plan_learn`,
`trial_value`) so that the campaign workflow and the benchmark simulation
(`faceloop.optimization.simulate`) run the same code. The KPI model behind proposals and allocation is
`faceloop.optimization.facemodel.FaceModel`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from faceloop.errors import FaceloopError
from faceloop.models import (
    CATEGORICAL_FIELDS,
    Brief,
    FaceParams,
    KpiGoal,
    KpiObservation,
    SearchSpace,
    Variant,
)
from faceloop.optimization.facemodel import Evidence, FaceModel

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)

SAMPLERS = ("thompson", "tpe", "gp", "cmaes", "random")
# What each objective of a multi-objective study means and which way is better. CPA (cost per
# acquisition) is impressions per conversion here: the sandbox has no prices, and at a fixed
# CPM the cost is proportional to impressions.
OBJECTIVES: dict[str, StudyDirection] = {
    "ctr": StudyDirection.MAXIMIZE,
    "conversions": StudyDirection.MAXIMIZE,
    "cpa": StudyDirection.MINIMIZE,
}


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


def _sampler(
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


def _engine_kwargs(url: str) -> dict[str, object]:
    # A server database drops idle connections, so check each one before use; SQLite has no
    # server, and the ping would be one more query on every storage call.
    return {} if url.startswith("sqlite") else {"pool_pre_ping": True}


@dataclass(frozen=True)
class Proposal:
    trial_number: int
    params: FaceParams
    segment: str | None = None  # the audience segment this face is proposed for (None: all)
    refresh_of: str | None = None  # a fresh copy of this worn-out variant (same parameters)


@dataclass(frozen=True)
class ParetoPoint:
    """A trial on the Pareto front of a multi-objective study."""

    trial_number: int
    params: FaceParams
    values: dict[str, float]


def _next_target(segments: Mapping[str, float], taken: Sequence[str | None], round_: int) -> str:
    """The segment furthest below its share of the proposals so far (ties rotate by round,
    so an odd number of proposals does not always favour the same segment)."""
    names = sorted(segments)
    total = sum(segments.values())
    start = round_ % len(names)
    order = names[start:] + names[:start]
    n = len(taken) + 1
    return max(order, key=lambda s: segments[s] / total * n - taken.count(s))


class Optimizer:
    """One Optuna study per campaign (study name = campaign id) in RDB storage.

    `objectives` empty: one maximized value (the brief's KPI). Otherwise names from
    OBJECTIVES, e.g. ("ctr", "cpa"): tell() then takes one value per objective, in order,
    and pareto_front() returns the non-dominated trials. A campaign can set its own
    objectives (`CampaignConfig.objectives`); they are stored with its study.
    """

    def __init__(
        self,
        storage_url: str | optuna.storages.BaseStorage,
        sampler: str = "thompson",
        objectives: Sequence[str] = (),
    ) -> None:
        _check_objectives(objectives)
        if sampler not in SAMPLERS:
            raise FaceloopError(
                f"optuna_sampler {sampler!r} is unknown; set FACELOOP_OPTUNA_SAMPLER to one "
                f"of {SAMPLERS}"
            )
        self.sampler_name = sampler
        self.objectives = tuple(objectives)
        self._studies: dict[str, optuna.Study] = {}
        self._storage: optuna.storages.BaseStorage
        if isinstance(storage_url, str):
            # get_storage wraps the RDB storage in Optuna's cache of finished trials; built
            # once here (not per create_study) so the cache lives as long as the optimizer:
            # without it every ask and tell re-reads every trial from the database.
            self._storage = optuna.storages.get_storage(
                optuna.storages.RDBStorage(storage_url, engine_kwargs=_engine_kwargs(storage_url))
            )
        else:
            # another Optuna storage, e.g. InMemoryStorage for the benchmark: the same study
            # API and the same decisions, without a database round trip per call
            self._storage = storage_url

    def objectives_of(self, campaign_id: str) -> tuple[str, ...]:
        """The objective names the campaign's study was created with (empty: the KPI)."""
        study = self.study(campaign_id)
        return tuple(study.user_attrs.get("objectives", ()))

    def study(
        self, campaign_id: str, round_: int = 0, objectives: Sequence[str] | None = None
    ) -> optuna.Study:
        """The campaign's study, created on first use with `objectives` (default: the
        optimizer's); an existing study keeps the objectives it was created with."""
        study = self._studies.get(campaign_id)
        if study is None:
            names = tuple(self.objectives if objectives is None else objectives)
            _check_objectives(names)
            if names:
                study = optuna.create_study(
                    study_name=campaign_id,
                    storage=self._storage,
                    directions=[OBJECTIVES[o] for o in names],
                    load_if_exists=True,
                )
            else:
                study = optuna.create_study(
                    study_name=campaign_id,
                    storage=self._storage,
                    direction="maximize",
                    load_if_exists=True,
                )
            if "objectives" not in study.user_attrs and len(names) == (
                len(study.directions) if len(study.directions) > 1 else 0
            ):
                study.set_user_attr("objectives", list(names))
            if len(self._studies) > 256:  # a long-lived worker serves many campaigns
                self._studies.clear()
            self._studies[campaign_id] = study
        # A sampler lives only as long as one activity call, so its seed must differ per
        # round: one seed for the campaign would replay the same random startup trials
        # every round. The Study object holds only the name and id: trials are read from
        # the storage, so a cached one sees what other workers wrote.
        study.sampler = _sampler(
            self.sampler_name, stable_seed(campaign_id, round_), len(study.directions) > 1
        )
        return study

    def enqueue(self, campaign_id: str, seeds: Iterable[FaceParams], space: SearchSpace) -> int:
        """Queue a person's seed faces: the next ask() returns them before any sampled trial.
        Seeds already queued or tried are skipped (a retried activity adds nothing).
        Returns how many were queued."""
        study = self.study(campaign_id)
        n = 0
        for p in seeds:
            if not space.contains(p):
                raise FaceloopError(
                    f"seed face {p.key()} lies outside the brief's search_space; widen "
                    "search_space or drop the seed"
                )
            before = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            study.enqueue_trial(p.model_dump(), skip_if_exists=True)
            n += len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) - before
        return n

    def enqueue_refresh(
        self, campaign_id: str, variant_id: str, params: FaceParams, segment: str | None
    ) -> bool:
        """Queue a fresh creative of a worn-out variant: the same parameters (a new trial, so
        a new seed and a new image), proposed for the same segment. Returns False if that
        variant was already refreshed (a retried activity queues nothing)."""
        study = self.study(campaign_id)
        if any(
            t.user_attrs.get("refresh_of") == variant_id for t in study.get_trials(deepcopy=False)
        ):
            return False
        attrs: dict[str, Any] = {"refresh_of": variant_id}
        if segment is not None:
            attrs["segment"] = segment
        study.enqueue_trial(params.model_dump(), user_attrs=attrs, skip_if_exists=False)
        return True

    def ask(
        self,
        campaign_id: str,
        round_: int,
        n: int,
        space: SearchSpace,
        *,
        models: Mapping[str, FaceModel] | None = None,
        segments: Mapping[str, float] | None = None,
        avoid: Collection[FaceParams] = (),
        objectives: Sequence[str] | None = None,
    ) -> list[Proposal]:
        """n proposals for this round: queued seeds and refreshes first, then sampled faces.
        Idempotent: a retried activity gets the same trials back instead of leaking new ones
        into the study.

        With several `segments` (name -> share) each proposal targets one segment, in
        proportion to the shares, and the `thompson` sampler draws it from that segment's
        model (`models`); `avoid` are faces already live.
        """
        study = self.study(campaign_id, round_, objectives)
        trials = study.get_trials(deepcopy=False)
        existing = [
            t
            for t in trials
            if t.user_attrs.get("round") == round_ and t.state == TrialState.RUNNING
        ]
        existing.sort(key=lambda t: t.number)
        finished = [t for t in trials if t.state.is_finished()]
        dists = distributions(space)
        out = [_proposal(t.number, t.params, t.user_attrs) for t in existing[:n]]
        targeted = segments is not None and len(segments) > 1
        pool = models or {}
        while len(out) < n:
            target = (
                _next_target(segments, [p.segment for p in out], round_)
                if targeted and segments is not None
                else None
            )
            model = pool.get(target) if target else next(iter(pool.values()), None)
            study.sampler = _sampler(
                self.sampler_name,
                stable_seed(campaign_id, round_, len(out)),
                len(study.directions) > 1,
                space,
                model,
                {*avoid, *(p.params for p in out)},
                finished,
            )
            trial = study.ask(dists)
            trial.set_user_attr("round", round_)
            if target is not None and "segment" not in trial.user_attrs:
                trial.set_user_attr("segment", target)
            out.append(_proposal(trial.number, trial.params, trial.user_attrs))
        return out

    def tell(
        self,
        campaign_id: str,
        trial_number: int,
        value: float | Sequence[float] | None,
        state: TrialState = TrialState.FAIL,
    ) -> bool:
        """Tell a KPI value (one per objective in multi-objective mode), or None for a
        variant that was blocked or failed: it is told as `state` (FAIL, or PRUNED), so the
        sampler learns the infeasible region. Returns False if the trial was already
        finished (a retried activity)."""
        study = self.study(campaign_id)
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, trial_number
        )
        trial = self._storage.get_trial(trial_id)
        if trial.state != TrialState.RUNNING:
            return False
        if value is None:
            if state not in (TrialState.FAIL, TrialState.PRUNED):
                raise ValueError(f"a variant without a value is told FAIL or PRUNED, not {state}")
            study.tell(trial_number, state=state)
            return True
        if isinstance(value, (int, float)):
            values: list[float] = [float(value)]
        else:
            values = [float(v) for v in value]
        if len(values) != len(study.directions):
            raise ValueError(
                f"trial {trial_number}: {len(values)} values for objectives "
                f"{self.objectives_of(campaign_id) or ('kpi',)}"
            )
        study.tell(trial_number, values[0] if len(values) == 1 else values)
        return True

    def trials(self, campaign_id: str) -> list[FrozenTrial]:
        return self.study(campaign_id).get_trials(deepcopy=False)

    def pareto_front(self, campaign_id: str) -> list[ParetoPoint]:
        """The non-dominated trials (study.best_trials), best first by the first objective;
        for a single-objective study, the best trial. For the campaign report."""
        study = self.study(campaign_id)
        if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
            return []
        names = self.objectives_of(campaign_id) or ("kpi",)
        best = study.best_trials
        sign = -1.0 if (len(names) > 1 and OBJECTIVES[names[0]] == StudyDirection.MINIMIZE) else 1.0
        best.sort(key=lambda t: sign * t.values[0], reverse=True)
        return [
            ParetoPoint(
                t.number,
                FaceParams(**t.params),
                {n: float(v) for n, v in zip(names, t.values, strict=True)},
            )
            for t in best
        ]


def _check_objectives(objectives: Sequence[str]) -> None:
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise FaceloopError(
            f"objectives {unknown} are unknown; use names from {sorted(OBJECTIVES)}"
        )
    if len(objectives) == 1:
        raise FaceloopError(
            f"objectives {list(objectives)}: name two or more for a multi-objective campaign, "
            "or none to optimise the brief's KPI"
        )


def _proposal(number: int, params: Mapping[str, Any], attrs: Mapping[str, Any]) -> Proposal:
    return Proposal(number, FaceParams(**params), attrs.get("segment"), attrs.get("refresh_of"))


# --------------------------------------------------------------------------- allocation


@dataclass(frozen=True)
class ArmStats:
    variant_id: str
    impressions: float  # may be fractional: delay-adjusted exposure for conversions
    successes: float  # clicks for a CTR goal, conversions for a conversions goal (weighted)
    params: FaceParams | None = None  # the face behind the counts, for the KPI model


ALL = "all"  # the segment name of a campaign without segments (as the sandbox names it)


def successes(goal: KpiGoal, clicks: int, conversions: int) -> int:
    return clicks if goal == KpiGoal.ctr else conversions


# Without a KPI model (arms without parameters): how much creatives of one campaign typically
# differ, the prior's coefficient of variation around the pooled rate.
PRIOR_CV = 0.2


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
) -> dict[str, float]:
    """Share of the next window's impressions per arm: P(arm is best) under the posterior,
    with an exploration floor so no live arm is starved before it has data."""
    if not arms:
        return {}
    if floor * len(arms) > 1.0:
        floor = 1.0 / len(arms)
    pb = p_best(arms, seed, draws, model)
    shares = np.array([floor + (1.0 - floor * len(arms)) * pb[a.variant_id] for a in arms])
    shares = shares / shares.sum()
    return {a.variant_id: float(s) for a, s in zip(arms, shares, strict=True)}


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
        shares = thompson_allocation(arms, floor, stable_seed(seed, segment), model=model)
        out[segment] = split_impressions(shares, budget)
    return out


def pooled_arms(arms_by_segment: Mapping[str, Sequence[ArmStats]]) -> list[ArmStats]:
    """One ArmStats per arm summed over segments, in first-seen order."""
    imps: dict[str, float] = {}
    succ: dict[str, float] = {}
    faces: dict[str, FaceParams | None] = {}
    for arms in arms_by_segment.values():
        for a in arms:
            imps[a.variant_id] = imps.get(a.variant_id, 0.0) + a.impressions
            succ[a.variant_id] = succ.get(a.variant_id, 0) + a.successes
            faces.setdefault(a.variant_id, a.params)
    return [ArmStats(v, imps[v], succ[v], faces[v]) for v in imps]


def segment_models(
    space: SearchSpace, history: Mapping[str, Sequence[ArmStats]]
) -> dict[str, FaceModel]:
    """The KPI model of each segment, fitted on every creative the campaign has shown there
    (live and retired: a retired face still says what its attribute values are worth)."""
    return {
        segment: FaceModel(
            space,
            [
                Evidence(a.params, a.impressions, a.successes)
                for a in arms
                if a.params is not None and a.impressions > 0
            ],
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
            models = segment_models(space, history(memory, w - 1))
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


def delay_cdf(delay: int, mean_delay: float) -> float:
    """P(a conversion is reported at most `delay` windows after its click) under the
    geometric delay the sandbox documents (P(d) = p (1-p)^d, p = 1 / (1 + mean))."""
    if delay < 0:
        return 0.0
    p = 1.0 / (1.0 + mean_delay)
    return 1.0 - (1.0 - p) ** (delay + 1)


def delayed_exposure(
    impressions_by_window: Mapping[int, float], now: int, mean_delay: float
) -> float:
    """Impressions that have had time to convert, for a conversions KPI read in window `now`.

    A platform reports each conversion when it arrives, up to several windows after the
    click. Dividing the conversions reported so far by all impressions would make every
    young variant look worse than an old one with the same true rate. Each window's
    impressions count with the share of their conversions expected to be reported by now,
    so conversions are attributed to the window (round) of their click in expectation.
    """
    return sum(n * delay_cdf(now - w, mean_delay) for w, n in impressions_by_window.items())


def windowed_stats(
    variant_id: str,
    impressions: Mapping[int, float],
    successes: Mapping[int, float],
    now: int,
    half_life_windows: float | None,
    params: FaceParams | None = None,
) -> ArmStats:
    """An arm's counts with older windows weighted down (half weight after
    `half_life_windows`; None: all windows count fully).

    `impressions` are keyed by the window they were served in, `successes` by the window
    they were reported in (pass delay-adjusted impressions for a conversions KPI).
    """

    def weight(w: int) -> float:
        return 1.0 if half_life_windows is None else 0.5 ** ((now - w) / half_life_windows)

    n = sum(v * weight(w) for w, v in impressions.items())
    s = sum(v * weight(w) for w, v in successes.items())
    return ArmStats(variant_id, n, s, params)


def arms_from_observations(
    observations: Iterable[KpiObservation],
    variant_ids: Sequence[str],
    segments: Sequence[str],
    goal: KpiGoal,
    now: int,
    mean_delay_windows: float = 0.5,
    memory_windows: float | None = None,
    params: Mapping[str, FaceParams] | None = None,
    targets: Mapping[str, str | None] | None = None,
) -> dict[str, list[ArmStats]]:
    """Per-segment ArmStats of the given variants from the observe step's KpiObservations
    (one per variant, segment and window, counts *of that window*; a window's conversions
    are those reported in it). This is what the workflow passes to `allocate` and
    `plan_learn`; the benchmark builds the same numbers from its simulated platform.

    `now` is the last observed window. For a conversions goal each window's impressions
    count with the share of their conversions expected to be reported by now
    (`delayed_exposure`). `memory_windows` weighs older windows down (None: all count).
    `params` attaches each variant's face (for the KPI model); `targets` maps a variant to
    the one segment it runs in (None or absent: every segment), and a segment lists only
    the variants that run in it.
    """
    imps: dict[tuple[str, str], dict[int, float]] = {}
    succ: dict[tuple[str, str], dict[int, float]] = {}
    wanted = set(variant_ids)
    for o in observations:
        if o.variant_id not in wanted:
            continue
        key = (o.segment, o.variant_id)
        n = float(o.impressions)
        if goal == KpiGoal.conversions:
            n = delayed_exposure({o.round: n}, now, mean_delay_windows)
        imps.setdefault(key, {})[o.round] = imps.get(key, {}).get(o.round, 0.0) + n
        k = o.clicks if goal == KpiGoal.ctr else o.conversions
        succ.setdefault(key, {})[o.round] = succ.get(key, {}).get(o.round, 0.0) + k
    faces = params or {}
    where = targets or {}
    return {
        seg: [
            windowed_stats(
                vid,
                imps.get((seg, vid), {}),
                succ.get((seg, vid), {}),
                now,
                memory_windows,
                faces.get(vid),
            )
            for vid in variant_ids
            if where.get(vid) in (None, seg)
        ]
        for seg in segments
    }


def round_models(
    observations: Sequence[KpiObservation],
    params: Mapping[str, FaceParams],
    segments: Sequence[str],
    goal: KpiGoal,
    now: int,
    space: SearchSpace,
    mean_delay_windows: float = 0.5,
) -> tuple[float | None, dict[str, FaceModel]]:
    """The campaign's memory and KPI model per segment after window `now`, from the observe
    step's rows of every variant in `params` (live or retired). The workflow's propose,
    deploy and learn activities call this; the benchmark computes the same from its
    simulated platform (`faceloop.optimization.simulate`)."""
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
    return memory, segment_models(space, history(memory, now))


def campaign_models(
    observations: Sequence[KpiObservation],
    variants: Iterable[Variant],
    brief: Brief,
    now: int,
    mean_delay_windows: float = 0.5,
) -> tuple[float | None, dict[str, FaceModel]]:
    """`round_models` for a campaign: every variant it ever ran, the brief's segments,
    KPI goal and search space. Returns the memory (half-life in windows, None: all count)
    and the KPI model per segment after window `now`."""
    return round_models(
        observations,
        {v.variant_id: v.params for v in variants},
        list(segment_shares(brief)),
        brief.kpi_goal,
        now,
        brief.search_space,
        mean_delay_windows,
    )


def objective_values(
    variant_id: str,
    clicks: Mapping[str, Sequence[ArmStats]],
    conversions: Mapping[str, Sequence[ArmStats]],
    objectives: Sequence[str],
) -> list[float]:
    """One value per objective of a multi-objective campaign, from the variant's counts over
    all segments: ctr (posterior mean clicks per impression), conversions (posterior mean
    conversions per impression) and cpa (impressions per conversion, the inverse of the
    latter: at a fixed CPM, cost per acquisition)."""
    ctr = posterior_mean(pooled_arms(clicks)).get(variant_id, 0.0)
    cvr = posterior_mean(pooled_arms(conversions)).get(variant_id, 0.0)
    value = {"ctr": ctr, "conversions": cvr, "cpa": 1.0 / max(cvr, 1e-9)}
    return [value[o] for o in objectives]


def window_clicks(
    observations: Iterable[KpiObservation], variant_ids: Collection[str]
) -> dict[str, dict[int, tuple[float, float]]]:
    """Impressions and clicks per variant and window, summed over segments: what the
    fatigue check reads (a creative wears out for every segment at once)."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for o in observations:
        if o.variant_id not in variant_ids:
            continue
        by_window = out.setdefault(o.variant_id, {})
        n, c = by_window.get(o.round, (0.0, 0.0))
        by_window[o.round] = (n + o.impressions, c + o.clicks)
    return out


# A creative is worn out when its last window's CTR is this much below its first windows'
# and the drop is this many standard errors: then a fresh copy (same face, new image) takes
# its place. Fatigue is per creative, so a new image of the same face starts fresh.
REFRESH_DROP = 0.10
REFRESH_Z = 2.0


def fatigued(
    windows: Mapping[int, tuple[float, float]],
    min_drop: float = REFRESH_DROP,
    z: float = REFRESH_Z,
    min_impressions: float = 1000.0,
) -> bool:
    """Whether a creative's last window (impressions, clicks) fell against its first two:
    by more than `min_drop` of the early CTR and by more than `z` standard errors (a
    two-proportion z test), with at least `min_impressions` on each side."""
    ws = sorted(w for w, (n, _) in windows.items() if n > 0)
    if len(ws) < 3:
        return False
    n0 = sum(windows[w][0] for w in ws[:2])
    c0 = sum(windows[w][1] for w in ws[:2])
    n1, c1 = windows[ws[-1]]
    if n0 < min_impressions or n1 < min_impressions:
        return False
    p0, p1 = c0 / n0, c1 / n1
    pooled = (c0 + c1) / (n0 + n1)
    se = math.sqrt(max(pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1), 1e-12))
    return p1 < p0 * (1.0 - min_drop) and (p0 - p1) / se > z


# --------------------------------------------------------------------------- learn


@dataclass(frozen=True)
class LearnPlan:
    """What the learn step decides at the end of a round."""

    keep: list[str]  # live into the next round, best first
    retire: list[str]  # paused: not among the best, stopped early, or refreshed
    stopped: list[str]  # retired because they are clear losers (a subset of retire)
    posterior_mean: dict[str, float]  # share-weighted over the segments each arm runs in
    p_best: dict[str, float]  # highest P(best) over segments
    winner: str | None  # best posterior mean
    winners: dict[str, str] = field(default_factory=dict)  # best per segment
    refresh: list[str] = field(default_factory=list)  # worn out: retire, run a fresh copy


def plan_learn(
    arms_by_segment: Mapping[str, Sequence[ArmStats]],
    segment_shares: Mapping[str, float],
    incumbents: int,
    seed: int,
    stop_below: float = 0.02,
    min_impressions: float = 2000.0,
    models: Mapping[str, FaceModel] | None = None,
    windows: Mapping[str, Mapping[int, tuple[float, float]]] | None = None,
) -> LearnPlan:
    """Which live variants stay, which are retired, which are refreshed, and the winner.

    Kept: up to `incumbents` variants, taken round-robin from each segment's ranking by
    posterior mean (with segments, each segment keeps its own best face). A variant whose
    P(best) is below `stop_below` in every segment it runs in, after `min_impressions`, is
    a clear loser: it is stopped even if a place is free, so a new proposal replaces it.
    A kept variant whose CTR wore out (`fatigued`, from `windows`: impressions and clicks
    per window) is refreshed: retired, and the caller queues a fresh copy of its face.
    """
    pooled = pooled_arms(arms_by_segment)
    pb: dict[str, float] = {a.variant_id: 0.0 for a in pooled}
    rankings: list[list[str]] = []
    winners: dict[str, str] = {}
    seg_means: dict[str, dict[str, float]] = {}
    for segment, arms in arms_by_segment.items():
        if not arms:
            continue
        model = (models or {}).get(segment)
        m = posterior_mean(arms, model)
        seg_means[segment] = m
        for vid, p in p_best(arms, stable_seed(seed, "learn", segment), model=model).items():
            pb[vid] = max(pb[vid], p)
        ranked = sorted(m, key=lambda v: m[v], reverse=True)
        rankings.append(ranked)
        winners[segment] = ranked[0]
    means: dict[str, float] = {}
    for a in pooled:
        runs_in = [s for s in seg_means if a.variant_id in seg_means[s]]
        weight = sum(segment_shares.get(s, 0.0) for s in runs_in) or 1.0
        means[a.variant_id] = (
            sum(segment_shares.get(s, 0.0) * seg_means[s][a.variant_id] for s in runs_in) / weight
        )
    impressions = {a.variant_id: a.impressions for a in pooled}
    stopped = [v for v in means if impressions[v] >= min_impressions and pb[v] < stop_below]
    keep: list[str] = []
    depth = 0
    while len(keep) < incumbents and any(depth < len(r) for r in rankings):
        for r in rankings:
            if depth < len(r) and len(keep) < incumbents:
                v = r[depth]
                if v not in keep and v not in stopped:
                    keep.append(v)
        depth += 1
    refresh = [v for v in keep if windows is not None and fatigued(windows.get(v, {}))]
    keep = [v for v in keep if v not in refresh]
    retire = [v for v in means if v not in keep]
    winner = max(means, key=lambda v: means[v]) if means else None
    return LearnPlan(
        keep, retire, [v for v in stopped if v in retire], means, pb, winner, winners, refresh
    )


def segment_shares(brief: Brief) -> dict[str, float]:
    """Impression share per audience segment (one segment gets everything)."""
    shares = {s.name: s.share for s in brief.audience}
    return dict.fromkeys(shares, 1.0) if len(shares) == 1 else shares


def trial_value(variant_id: str, arms_by_segment: Mapping[str, Sequence[ArmStats]]) -> float:
    """The KPI told to Optuna for one variant: its posterior mean (shrunk toward the pooled
    rate, so a variant that had few impressions is not told a lucky extreme).

    With several segments, its posterior mean relative to the segment's pooled rate, in the
    segment where it does best among those it ran in: each segment gets its own best face,
    so a face that wins one segment is worth as much as one that wins another, whatever the
    segments' base rates.
    """
    real = {s: a for s, a in arms_by_segment.items() if a}
    if len(real) == 1:
        return posterior_mean(next(iter(real.values()))).get(variant_id, 0.0)
    best = 0.0
    for arms in real.values():
        mine = [a for a in arms if a.variant_id == variant_id and a.impressions > 0]
        if not mine:
            continue
        m = posterior_mean(arms)
        n = sum(a.impressions for a in arms)
        rate = (sum(a.successes for a in arms) + 1.0) / (n + 100.0)
        best = max(best, m[variant_id] / rate)
    return best
