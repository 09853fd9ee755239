"""Proposals (Optuna ask/tell, one study per campaign in RDB storage) and traffic allocation
(Thompson sampling on Beta-Binomial posteriors of the campaign's KPI).

The round logic lives here as plain functions over counts (`allocate`, `plan_learn`,
`trial_value`) so that the campaign workflow and the benchmark simulation
(`faceloop.simulate`) run the same code.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

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
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "gp", "cmaes", "random")
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


def _sampler(name: str, seed: int, multi_objective: bool) -> optuna.samplers.BaseSampler:
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
                "FACELOOP_OPTUNA_SAMPLER to tpe, gp or random for a multi-objective campaign"
            )
        try:
            import cmaes  # noqa: F401
        except ModuleNotFoundError:
            raise FaceloopError(
                "optuna_sampler 'cmaes' needs the cmaes package; pip install cmaes, "
                "or set FACELOOP_OPTUNA_SAMPLER to tpe, gp or random"
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


@dataclass(frozen=True)
class ParetoPoint:
    """A trial on the Pareto front of a multi-objective study."""

    trial_number: int
    params: FaceParams
    values: dict[str, float]


class Optimizer:
    """One Optuna study per campaign (study name = campaign id) in RDB storage.

    `objectives` empty: one maximized value (the brief's KPI). Otherwise names from
    OBJECTIVES, e.g. ("ctr", "cpa"): tell() then takes one value per objective, in order,
    and pareto_front() returns the non-dominated trials.
    """

    def __init__(
        self, storage_url: str, sampler: str = "tpe", objectives: Sequence[str] = ()
    ) -> None:
        unknown = [o for o in objectives if o not in OBJECTIVES]
        if unknown:
            raise FaceloopError(
                f"objectives {unknown} are unknown; use names from {sorted(OBJECTIVES)}"
            )
        if sampler not in SAMPLERS:
            raise FaceloopError(
                f"optuna_sampler {sampler!r} is unknown; set FACELOOP_OPTUNA_SAMPLER to one "
                f"of {SAMPLERS}"
            )
        self.storage_url = storage_url
        self.sampler_name = sampler
        self.objectives = tuple(objectives)
        self._studies: dict[str, optuna.Study] = {}
        # get_storage wraps the RDB storage in Optuna's cache of finished trials; built once
        # here (not per create_study) so the cache lives as long as the optimizer: without
        # it every ask and tell re-reads every trial of the study from the database.
        self._storage = optuna.storages.get_storage(
            optuna.storages.RDBStorage(storage_url, engine_kwargs=_engine_kwargs(storage_url))
        )

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def study(self, campaign_id: str, round_: int = 0) -> optuna.Study:
        # A sampler lives only as long as one activity call, so its seed must differ per
        # round: one seed for the campaign would replay the same random startup trials
        # every round.
        sampler = _sampler(
            self.sampler_name, stable_seed(campaign_id, round_), self.multi_objective
        )
        study = self._studies.get(campaign_id)
        if study is not None:
            # the Study object holds only the name and id: trials are read from the storage,
            # so a cached one sees what other workers wrote
            study.sampler = sampler
            return study
        if self.objectives:
            study = optuna.create_study(
                study_name=campaign_id,
                storage=self._storage,
                directions=[OBJECTIVES[o] for o in self.objectives],
                sampler=sampler,
                load_if_exists=True,
            )
        else:
            study = optuna.create_study(
                study_name=campaign_id,
                storage=self._storage,
                direction="maximize",
                sampler=sampler,
                load_if_exists=True,
            )
        if len(self._studies) > 256:  # a long-lived worker serves many campaigns
            self._studies.clear()
        self._studies[campaign_id] = study
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
        if len(values) != max(len(self.objectives), 1):
            raise ValueError(
                f"trial {trial_number}: {len(values)} values for objectives "
                f"{self.objectives or ('kpi',)}"
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
        names = self.objectives or ("kpi",)
        best = study.best_trials
        sign = (
            -1.0 if (self.objectives and OBJECTIVES[names[0]] == StudyDirection.MINIMIZE) else 1.0
        )
        best.sort(key=lambda t: sign * t.values[0], reverse=True)
        return [
            ParetoPoint(
                t.number,
                FaceParams(**t.params),
                {n: float(v) for n, v in zip(names, t.values, strict=True)},
            )
            for t in best
        ]


# --------------------------------------------------------------------------- allocation


@dataclass(frozen=True)
class ArmStats:
    variant_id: str
    impressions: float  # may be fractional: delay-adjusted exposure for conversions
    successes: float  # clicks for a CTR goal, conversions for a conversions goal (weighted)


ALL = "all"  # the segment name of a campaign without segments (as the sandbox names it)


def successes(goal: KpiGoal, clicks: int, conversions: int) -> int:
    return clicks if goal == KpiGoal.ctr else conversions


# How much creatives of one campaign typically differ: the prior's coefficient of variation
# of an arm's rate around the pooled rate (0.2: most faces within +-40% of the average).
PRIOR_CV = float(os.environ.get("FACELOOP_PRIOR_CV", "0.2"))


def posterior_params(arms: Sequence[ArmStats], prior_cv: float | None = None) -> np.ndarray:
    """Beta(a, b) per arm with a prior centred on the pooled rate of all arms, as wide as
    creatives typically differ (`prior_cv` of the rate).

    A flat Beta(1, 1) prior would have mean 0.5, so a brand-new creative would look far better
    than any measured one (CTRs are around 1%) and Thompson sampling would hand it everything.
    A prior of fixed weight would be too wide at low rates: at a 2% CTR, 200 pseudo-
    impressions allow anything from 0% to 5%, and every new arm would take a large share of
    the traffic on the chance that it is a 2.5x outlier.
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


def posterior_mean(arms: Sequence[ArmStats]) -> dict[str, float]:
    ab = posterior_params(arms)
    return {a.variant_id: float(ab[i, 0] / ab[i].sum()) for i, a in enumerate(arms)}


def p_best(arms: Sequence[ArmStats], seed: int, draws: int = 4000) -> dict[str, float]:
    """P(arm has the highest rate) under the posterior, by Monte Carlo."""
    if not arms:
        return {}
    ab = posterior_params(arms)
    rng = np.random.default_rng(seed)
    samples = rng.beta(ab[:, 0][:, None], ab[:, 1][:, None], size=(len(arms), draws))
    counts = np.bincount(samples.argmax(axis=0), minlength=len(arms)) / draws
    return {a.variant_id: float(c) for a, c in zip(arms, counts, strict=True)}


def thompson_allocation(
    arms: Sequence[ArmStats], floor: float, seed: int, draws: int = 4000
) -> dict[str, float]:
    """Share of the next window's impressions per arm: P(arm is best) under the posterior,
    with an exploration floor so no live arm is starved before it has data."""
    if not arms:
        return {}
    if floor * len(arms) > 1.0:
        floor = 1.0 / len(arms)
    pb = p_best(arms, seed, draws)
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
) -> dict[str, dict[str, int]]:
    """Impressions per segment and arm for the next window: each segment's budget (its
    share, exactly) goes to the arms by Thompson sampling on that segment's posteriors, so
    each segment converges on its own best face. A campaign without segments passes
    {ALL: arms} and {ALL: 1.0}."""
    budgets = split_impressions(segment_shares, impressions)
    out: dict[str, dict[str, int]] = {}
    for segment, budget in budgets.items():
        arms = arms_by_segment.get(segment, [])
        shares = thompson_allocation(arms, floor, stable_seed(seed, segment))
        out[segment] = split_impressions(shares, budget)
    return out


def per_variant(allocation: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Total impressions per arm over all segments (for platforms that take one number)."""
    total: dict[str, int] = {}
    for by_arm in allocation.values():
        for vid, n in by_arm.items():
            total[vid] = total.get(vid, 0) + n
    return total


def pooled_arms(arms_by_segment: Mapping[str, Sequence[ArmStats]]) -> list[ArmStats]:
    """One ArmStats per arm summed over segments, in first-seen order."""
    imps: dict[str, float] = {}
    succ: dict[str, float] = {}
    for arms in arms_by_segment.values():
        for a in arms:
            imps[a.variant_id] = imps.get(a.variant_id, 0.0) + a.impressions
            succ[a.variant_id] = succ.get(a.variant_id, 0) + a.successes
    return [ArmStats(v, imps[v], succ[v]) for v in imps]


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
) -> ArmStats:
    """An arm's counts with older windows weighted down (half weight after
    `half_life_windows`; None: all windows count fully).

    Creatives wear out and audiences drift: a face that was best a week ago may not be now,
    and cumulative counts would hide that for as long as its early windows dominate.
    `impressions` are keyed by the window they were served in, `successes` by the window
    they were reported in (pass delay-adjusted impressions for a conversions KPI).
    """

    def weight(w: int) -> float:
        return 1.0 if half_life_windows is None else 0.5 ** ((now - w) / half_life_windows)

    n = sum(v * weight(w) for w, v in impressions.items())
    s = sum(v * weight(w) for w, v in successes.items())
    return ArmStats(variant_id, n, s)


def arms_from_observations(
    observations: Iterable[KpiObservation],
    variant_ids: Sequence[str],
    segments: Sequence[str],
    goal: KpiGoal,
    now: int,
    mean_delay_windows: float = 0.5,
    memory_windows: float | None = 4.0,
) -> dict[str, list[ArmStats]]:
    """Per-segment ArmStats of the live variants from the observe step's KpiObservations
    (one per variant, segment and window, counts *of that window*; a window's conversions
    are those reported in it). This is what the workflow passes to `allocate` and
    `plan_learn`; the benchmark builds the same numbers from its simulated platform.

    `now` is the last observed window. Older windows weigh less (`memory_windows`), and for
    a conversions goal each window's impressions count with the share of their conversions
    expected to be reported by now (`delayed_exposure`).
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
    return {
        seg: [
            windowed_stats(
                vid, imps.get((seg, vid), {}), succ.get((seg, vid), {}), now, memory_windows
            )
            for vid in variant_ids
        ]
        for seg in segments
    }


# --------------------------------------------------------------------------- learn


@dataclass(frozen=True)
class LearnPlan:
    """What the learn step decides at the end of a round."""

    keep: list[str]  # live into the next round, best first
    retire: list[str]  # paused: not among the best, or stopped early
    stopped: list[str]  # retired because they are clear losers (a subset of retire)
    posterior_mean: dict[str, float]  # pooled over segments
    p_best: dict[str, float]  # highest P(best) over segments
    winner: str | None  # best pooled posterior mean
    winners: dict[str, str] = field(default_factory=dict)  # best per segment


def plan_learn(
    arms_by_segment: Mapping[str, Sequence[ArmStats]],
    segment_shares: Mapping[str, float],
    incumbents: int,
    seed: int,
    stop_below: float = 0.02,
    min_impressions: float = 2000.0,
) -> LearnPlan:
    """Which live variants stay, which are retired, and the winner.

    Kept: up to `incumbents` variants, taken round-robin from each segment's ranking by
    posterior mean (with segments, each segment keeps its own best face). A variant whose
    P(best) is below `stop_below` in every segment after `min_impressions` is a clear loser:
    it is stopped even if a place is free, so a new proposal replaces it.
    """
    pooled = pooled_arms(arms_by_segment)
    means = posterior_mean(pooled)
    pb: dict[str, float] = {a.variant_id: 0.0 for a in pooled}
    rankings: list[list[str]] = []
    winners: dict[str, str] = {}
    seg_means: dict[str, dict[str, float]] = {}
    for segment, arms in arms_by_segment.items():
        if not arms:
            continue
        m = posterior_mean(arms)
        seg_means[segment] = m
        for vid, p in p_best(arms, stable_seed(seed, "learn", segment)).items():
            pb[vid] = max(pb[vid], p)
        ranked = sorted(m, key=lambda v: m[v], reverse=True)
        rankings.append(ranked)
        winners[segment] = ranked[0]
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
    retire = [v for v in means if v not in keep]
    weighted = {
        v: sum(segment_shares.get(s, 0.0) * seg_means[s].get(v, 0.0) for s in seg_means)
        for v in means
    }
    winner = max(weighted, key=lambda v: weighted[v]) if weighted else None
    return LearnPlan(keep, retire, [v for v in stopped if v in retire], means, pb, winner, winners)


def segment_shares(brief: Brief) -> dict[str, float]:
    """Impression share per audience segment (one segment gets everything)."""
    shares = {s.name: s.share for s in brief.audience}
    return dict.fromkeys(shares, 1.0) if len(shares) == 1 else shares


def trial_value(variant_id: str, arms_by_segment: Mapping[str, Sequence[ArmStats]]) -> float:
    """The KPI told to Optuna for one variant: its posterior mean (shrunk toward the pooled
    rate, so a variant that had few impressions is not told a lucky extreme).

    With several segments, its posterior mean relative to the segment's pooled rate, in the
    segment where it does best: each segment gets its own best face, so a face that wins one
    segment is worth as much as one that wins another, whatever the segments' base rates.
    """
    real = {s: a for s, a in arms_by_segment.items() if a}
    if len(real) == 1:
        return posterior_mean(next(iter(real.values()))).get(variant_id, 0.0)
    best = 0.0
    for arms in real.values():
        m = posterior_mean(arms)
        if variant_id in m:
            n = sum(a.impressions for a in arms)
            rate = (sum(a.successes for a in arms) + 1.0) / (n + 100.0)
            best = max(best, m[variant_id] / rate)
    return best
