"""The campaign's Optuna study: one per campaign (study name = campaign id) in RDB storage,
asked for each round's proposals and told each variant's KPI (`Optimizer`).

In `faceloop.optimization` it sits above `samplers` (which sampler each ask uses) and
`facemodel`; `learn` tells it and queues refreshes on it. The propose and learn activities
(`workflows/campaign_activities.py`) and the bench use the same `Optimizer`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from faceloop.errors import FaceloopError
from faceloop.models import FaceParams, SearchSpace
from faceloop.optimization.facemodel import FaceModel
from faceloop.optimization.samplers import SAMPLERS, build_sampler, distributions
from faceloop.optimization.seeds import stable_seed

# Optuna logs every trial at INFO: one line per proposal in a worker's log
optuna.logging.set_verbosity(optuna.logging.WARNING)

# What each objective of a multi-objective study means and which way is better. CPA (cost per
# acquisition) is impressions per conversion here: the sandbox has no prices, and at a fixed
# CPM the cost is proportional to impressions.
OBJECTIVES: dict[str, StudyDirection] = {
    "ctr": StudyDirection.MAXIMIZE,
    "conversions": StudyDirection.MAXIMIZE,
    "cpa": StudyDirection.MINIMIZE,
}


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
        # every round. And each call gets a Study object of its own (the name and id; trials
        # are read from the shared storage, so it sees what other workers wrote): the sampler
        # belongs to the object, and two activities of one campaign at once (a round's
        # propose beside the previous round's analysis) must not swap each other's sampler
        # in the middle of an ask.
        return optuna.Study(
            study_name=study.study_name,
            storage=self._storage,
            sampler=build_sampler(
                self.sampler_name, stable_seed(campaign_id, round_), len(study.directions) > 1
            ),
        )

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
            study.sampler = build_sampler(
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


__all__ = ["OBJECTIVES", "Optimizer", "ParetoPoint", "Proposal"]
