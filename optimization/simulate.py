"""The optimisation bench (`faceloop bench optimize`): simulated campaigns that run the
workflow's own learn-stage composition, in-process.

The top of `faceloop.optimization`, beside `cli` and `report`: each round of the `faceloop`
strategy calls what the campaign workflow's activities call: `Optimizer.ask` on the models
of `campaign_evidence` (propose), `allocate_window` (deploy), the simulated audience records
the observe step's `KpiObservation` rows, then `campaign_evidence` and `learn_round`
(learn). What is left out: images, guardrails and Temporal. The audience is the sandbox's (a
simulated one, named a fake in docs/sandbox.md): rates come from
`faceloop.connectors.sandbox_platform.scenario.true_rates` (segments, drift, fatigue, per-ad
noise) and clicks/conversions are Binomial draws, conversions reported after the scenario's
geometric delay, as the sandbox delivers them.

Strategies, all with the same impression budget:
- `faceloop`: Optuna proposals (sampler from the config) + Thompson allocation + learn rule.
- `random`: the same loop with random proposals.
- `ab_test`: a fixed set of random variants, an equal split for the test phase, then all of
  each segment's traffic to the variant with the best observed KPI in that segment.
- `oracle`: an upper bound, as issue 17 defines it. Every round exactly as many new
  creatives as faceloop launched in that round (`Tally.new_by_round`), each with the true
  best parameters for a segment and window; it knows every live creative's true rate
  (per-ad noise, fatigue, drift included) and also every creative the other strategies
  ran on the seed, and splits each window's impressions greedily by true marginal KPI
  across all of them.
- `best_fixed`: the best fixed creative in hindsight: of the creatives faceloop ran, the one
  with the highest true expected total, shown every impression of the campaign.
- `faces_known`: faceloop's loop, round for round, with each segment's KPI model told the
  scenario's true face effects for the window about to be served (`known_face_models`):
  what is left to learn is each creative's own effect (per-ad noise), fatigue and the
  conversion delay. A reference, not a strategy a campaign could run: the share of the
  oracle it reaches is what learning the creatives costs, the rest of faceloop's gap to
  it what learning the faces costs.

With a scenario's `audience_sees: measured` every creative is rendered and read
(`faceloop.optimization.sees`): the audience reacts to the face its image shows, faceloop
learns that face, and the oracle is served the rendered version of its best faces, so it
is an upper bound only in declared mode.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import optuna
from threadpoolctl import threadpool_limits

from faceloop.connectors.sandbox_platform.scenario import (
    Kpi,
    Scenario,
    best_params,
    fatigue_factor,
    seed_words,
    true_rates,
)
from faceloop.models import CampaignConfig, FaceParams, KpiGoal, KpiObservation, SearchSpace
from faceloop.optimization.allocation import allocate_window, split_impressions
from faceloop.optimization.evidence import ALL, MEAN_DELAY_WINDOWS, arms_from_observations
from faceloop.optimization.facemodel import (
    FIELDS,
    CampaignEvidence,
    FaceModel,
    campaign_evidence,
)
from faceloop.optimization.learn import (
    STOP_BELOW,
    STOP_MIN_IMPRESSIONS,
    learn_round,
    settled_segments,
)
from faceloop.optimization.seeds import stable_seed
from faceloop.optimization.sees import MeasuredFaces, default_eyes
from faceloop.optimization.study import Optimizer

STRATEGIES = ("faceloop", "ab_test", "random", "best_fixed", "faces_known", "oracle")
ORACLE_CHUNKS = 20  # the oracle splits a segment's window into this many greedy chunks
ORACLE_SHORTLIST = 16  # creatives per segment the greedy split considers (best first)
NEAR_BEST = 0.95  # best_share counts impressions on variants within 5% of the optimum
# Issue 17's targets, which the bench reports per scenario (`targets`): faceloop's oracle
# fraction; its lift over the A/B test where face parameters matter; where none does, its
# KPI within the A/B test's 95% interval or above ("do no harm")
ORACLE_FRACTION_TARGET = 0.90
LIFT_TARGET = 0.10


@dataclass(frozen=True)
class BenchConfig:
    """How each simulated campaign runs. The defaults are the workflow's defaults
    (CampaignConfig) plus a campaign length and budget."""

    rounds: int = 28  # e.g. two weeks of 12-hour KPI windows
    impressions_per_round: int = 20_000
    campaign: CampaignConfig = field(default_factory=CampaignConfig)
    sampler: str = "thompson"
    goal: KpiGoal = KpiGoal.ctr
    # the classic test-then-rollout baseline: a handful of variants, tested with an equal
    # split for a quarter of the campaign
    ab_variants: int = 6
    ab_test_rounds: int = 7
    stop_below: float = STOP_BELOW
    min_impressions: float = STOP_MIN_IMPRESSIONS
    # what the campaign assumes about conversion delays (a setting, not the scenario's truth)
    assumed_delay_windows: float = MEAN_DELAY_WINDOWS
    space: SearchSpace = field(default_factory=SearchSpace)

    def to_json(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "impressions_per_round": self.impressions_per_round,
            "budget_impressions": self.rounds * self.impressions_per_round,
            "variants_per_round": self.campaign.variants_per_round,
            "incumbents": self.campaign.incumbents,
            "exploration_floor": self.campaign.exploration_floor,
            "sampler": self.sampler,
            "goal": self.goal.value,
            "ab_variants": self.ab_variants,
            "ab_test_rounds": self.ab_test_rounds,
            "stop_below": self.stop_below,
            "refresh": self.campaign.refresh_creatives,
            "min_impressions": self.min_impressions,
            "memory": "chosen per round from (None, 4) windows (facemodel.choose_memory)",
        }


# --------------------------------------------------------------------------- the audience


@dataclass
class SimArm:
    """One creative (one ad) on the simulated platform."""

    variant_id: str
    params: FaceParams
    asset_id: str
    trial_number: int | None = None
    target: str | None = None  # the one segment it runs in (None: every segment)
    delivered: int = 0  # all impressions so far (fatigue)
    # measured mode: the face its image shows (set by Audience.look); None: as declared
    shown: FaceParams | None = None

    @property
    def face(self) -> FaceParams:
        """What the audience reacts to: the face its image shows, or the declared one."""
        return self.shown if self.shown is not None else self.params


@dataclass
class Tally:
    clicks: int = 0
    conversions: int = 0  # every conversion the clicks caused, reported or not yet
    impressions: int = 0
    near_best: int = 0
    clicks_by_round: list[int] = field(default_factory=list)
    # the conversions each round's clicks caused (reported then or later): a conversions
    # goal's regret is counted in these
    conversions_by_round: list[int] = field(default_factory=list)
    expected: float = 0.0  # the true expected KPI (clicks or conversions) of what was served
    # every creative served: asset id -> (first window, parameters); the oracle sees these
    creatives: dict[str, tuple[int, FaceParams]] = field(default_factory=dict)
    # creatives put live per round (new trials and refreshes): the oracle launches as many
    new_by_round: list[int] = field(default_factory=list)

    def end_round(self) -> None:
        """Record the round just served: its clicks and the conversions they caused."""
        self.clicks_by_round.append(self.clicks - sum(self.clicks_by_round))
        self.conversions_by_round.append(self.conversions - sum(self.conversions_by_round))

    def total(self, kpi: Kpi) -> int:
        """The KPI over the campaign: clicks, or every conversion the clicks caused."""
        return self.clicks if kpi == "ctr" else self.conversions

    def by_round(self, kpi: Kpi) -> list[int]:
        """The KPI per round: clicks, or the conversions each round's clicks caused."""
        return self.clicks_by_round if kpi == "ctr" else self.conversions_by_round


# when the simulated campaign's first window ends (a KpiObservation carries a time)
_START = datetime(2026, 1, 1, tzinfo=UTC)
_WINDOW = timedelta(hours=12)


class Audience:
    """The sandbox's delivery model in-process: Binomial clicks and conversions from the
    scenario's true rates, conversions reported after a geometric delay. `observe` records
    what the workflow's observe activity would store: `observations`, one KpiObservation
    per live ad, segment and window."""

    def __init__(
        self,
        scenario: Scenario,
        run_seed: int,
        segments: Mapping[str, float],
        campaign_id: str = "bench",
        eyes: MeasuredFaces | None = None,
    ) -> None:
        self.scenario = scenario
        # measured mode: every creative is rendered and read (`look`); `eyes` replaces the
        # process's renderer (tests)
        self.eyes = (eyes or default_eyes()) if scenario.audience_sees == "measured" else None
        self.run_seed = run_seed
        self.segments = dict(segments)
        self.campaign_id = campaign_id
        self.observations: list[KpiObservation] = []
        self._served: dict[tuple[int, str, str], tuple[int, int]] = {}  # -> impressions, clicks
        self._pending: dict[tuple[int, str, str], int] = {}  # (window, variant, seg) -> conv
        self._best: dict[tuple[str, tuple[int, ...]], tuple[FaceParams, float]] = {}

    def best(self, segment: str, window: int, kpi: Kpi) -> tuple[FaceParams, float]:
        """The true best parameters for a segment in a window (drift changes them)."""
        active = tuple(i for i, d in enumerate(self.scenario.drift) if d.from_window <= window)
        key = (f"{segment}|{kpi}", active)
        if key not in self._best:
            self._best[key] = best_params(self.scenario, {segment: 1.0}, kpi, window)
        return self._best[key]

    def look(self, arm: SimArm) -> SimArm:
        """In measured mode, render the creative and set the face it shows (`arm.shown`);
        its image seed follows from its asset id, so every strategy renders a creative
        alike. Declared mode: nothing to do."""
        if self.eyes is not None and arm.shown is None:
            arm.shown, _ = self.eyes.seen(arm.params, stable_seed("bench-image", arm.asset_id))
        return arm

    def deliver(
        self, arm: SimArm, window: int, by_segment: Mapping[str, int], tally: Tally, kpi: Kpi
    ) -> int:
        """Serve one window of impressions; returns the clicks."""
        total = sum(by_segment.values())
        if total == 0:
            return 0
        self.look(arm)
        # the oracle and best_fixed see what the audience saw: the face, not the declaration
        tally.creatives.setdefault(arm.asset_id, (window, arm.face))
        rng = np.random.default_rng(
            np.random.SeedSequence(
                seed_words(self.scenario.seed, self.run_seed, window, arm.asset_id)
            )
        )
        # fatigue at the middle of this window's impressions, as the sandbox computes it
        so_far = arm.delivered + total / 2
        p = 1.0 / (1.0 + self.scenario.conversion_delay.mean_windows)
        clicks_total = 0
        for segment in sorted(by_segment):
            n = by_segment[segment]
            if n == 0:
                continue
            ctr, cvr = true_rates(
                self.scenario, arm.face, segment, so_far, window, asset_id=arm.asset_id
            )
            clicks = int(rng.binomial(n, ctr))
            conv = int(rng.binomial(clicks, cvr))
            delays = rng.geometric(p, size=conv) - 1
            for d, k in zip(*np.unique(delays, return_counts=True), strict=True):
                key = (window + int(d), arm.variant_id, segment)
                self._pending[key] = self._pending.get(key, 0) + int(k)
            self._served[(window, arm.variant_id, segment)] = (n, clicks)
            clicks_total += clicks
            tally.clicks += clicks
            tally.conversions += conv
            tally.impressions += n
            tally.expected += n * ctr * (cvr if kpi == "conversions" else 1.0)
            _, best = self.best(segment, window, kpi)
            fresh_ctr, fresh_cvr = true_rates(self.scenario, arm.face, segment, 0, window)
            rate = fresh_ctr * (fresh_cvr if kpi == "conversions" else 1.0)
            if rate >= NEAR_BEST * best:
                tally.near_best += n
        arm.delivered += total
        return clicks_total

    def observe(self, window: int, live: Sequence[SimArm]) -> list[KpiObservation]:
        """The end of `window`, as the observe activity stores it: per live ad and segment
        the window's impressions and clicks and the conversions reported in it (those of
        earlier clicks included). An ad no longer live is not read, so conversions that
        arrive after it was retired are not stored, as in the workflow."""
        ads = {a.variant_id: a for a in live}
        counts: dict[tuple[str, str], list[int]] = {}
        for key in [k for k in self._served if k[0] == window]:
            _, vid, segment = key
            n, clicks = self._served.pop(key)
            if vid in ads:
                counts[(vid, segment)] = [n, clicks, 0]
        for key in [k for k in self._pending if k[0] == window]:
            _, vid, segment = key
            conversions = self._pending.pop(key)
            if vid in ads:
                counts.setdefault((vid, segment), [0, 0, 0])[2] += conversions
        rows = [
            KpiObservation(
                campaign_id=self.campaign_id,
                variant_id=vid,
                ad_id=ads[vid].asset_id,
                round=window,
                segment=segment,
                impressions=n,
                clicks=clicks,
                conversions=conversions,
                observed_at=_START + _WINDOW * window,
            )
            for (vid, segment), (n, clicks, conversions) in counts.items()
        ]
        self.observations.extend(rows)
        return rows


# --------------------------------------------------------------------------- strategies


def campaign_segments(scenario: Scenario) -> dict[str, float]:
    """A brief naming the scenario's segments, with the scenario's shares."""
    return {s.name: s.share for s in scenario.segments} or {ALL: 1.0}


def _kpi(goal: KpiGoal) -> Kpi:
    return "ctr" if goal == KpiGoal.ctr else "conversions"


def run_optuna_loop(
    scenario: Scenario,
    cfg: BenchConfig,
    run_seed: int,
    sampler: str,
    storage_url: str | None,
    name: str,
    *,
    faces_known: bool = False,
) -> Tally:
    """The campaign loop, round by round through what the workflow's activities call:
    propose (`Optimizer.ask` on the evidence's KPI models), deploy (`allocate_window`),
    observe (the audience records the KpiObservation rows), learn (`campaign_evidence` on
    those rows, then `learn_round`). Left out: images, guardrails and Temporal.

    The workflow's propose and deploy activities read the evidence after the last window
    from the catalog again; here the learn step's evidence is kept for them, with the live
    variants read again (`CampaignEvidence.with_live`): nothing is observed in between, so
    the numbers are the same and the models are fitted once per round instead of three
    times.

    `faces_known`: the KPI models are told the scenario's true face effects each round
    (`known_face_models`, the `faces_known` reference)."""
    segments = campaign_segments(scenario)
    cid = f"{name}-{run_seed}"
    audience = Audience(scenario, run_seed, segments, cid)
    opt = Optimizer(_storage(storage_url), sampler)
    tally = Tally()
    live: list[SimArm] = []
    # every variant the campaign ran, in launch order: the face its image shows (measured
    # mode) or the declared one, as the workflow's learn stage reads it; `requested` the
    # requests that differ from it (a refresh asks for the request again)
    faces: dict[str, FaceParams] = {}
    requested: dict[str, FaceParams] = {}
    kpi = _kpi(cfg.goal)

    def told(evidence: CampaignEvidence) -> CampaignEvidence:
        if not faces_known:
            return evidence
        known = known_face_models(scenario, evidence.models, evidence.now + 1, kpi)
        return dataclasses.replace(evidence, models=known)

    evidence = told(
        campaign_evidence(
            (), faces, {}, segments, cfg.goal, cfg.space, -1, cfg.assumed_delay_windows
        )
    )
    for rnd in range(cfg.rounds):
        # propose: queued refreshes, then new trials fill the places the incumbents leave
        # free, each for one segment, from that segment's model
        proposals = opt.ask(
            cid,
            rnd,
            cfg.campaign.variants_per_round - len(live),
            cfg.space,
            models=evidence.models,
            segments=segments,
            avoid=[a.params for a in live],
        )
        new = [
            SimArm(
                f"{cid}-r{rnd}-t{p.trial_number}",
                p.params,
                f"{cid}-t{p.trial_number}",  # a new trial is a new image: fresh fatigue
                p.trial_number,
                p.segment,
            )
            for p in proposals
        ]
        live = live + new
        tally.new_by_round.append(len(new))
        for a in new:
            faces[a.variant_id] = audience.look(a).face
            if a.face != a.params:
                requested[a.variant_id] = a.params
        # deploy: Thompson allocation per segment on what was observed before this window
        window_evidence = evidence.with_live(_targets(live), faces)
        alloc = allocate_window(
            window_evidence,
            cfg.campaign.exploration_floor,
            stable_seed(cid, rnd),
            cfg.impressions_per_round,
            # as the deploy activity: where no new creative repays its test, the round's
            # new one gets the floor alone
            settled_segments(
                window_evidence,
                cfg.rounds - rnd,
                cfg.campaign.variants_per_round,
                cfg.campaign.incumbents,
                stable_seed(cid, rnd, "settled"),
            ),
        )
        for arm in live:
            by_seg = {s: alloc[s].get(arm.variant_id, 0) for s in segments}
            audience.deliver(arm, rnd, by_seg, tally, kpi)
        tally.end_round()
        # observe: this window's counts and the conversions that arrive in it
        audience.observe(rnd, live)
        # learn: tell this round's trials, keep the best, retire the rest, refresh worn-out
        evidence = told(
            campaign_evidence(
                audience.observations,
                faces,
                _targets(live),
                segments,
                cfg.goal,
                cfg.space,
                rnd,
                cfg.assumed_delay_windows,
                requested=requested,
            )
        )
        plan = learn_round(
            opt,
            cid,
            rnd,
            evidence,
            {a.trial_number: a.variant_id for a in new if a.trial_number is not None},
            cfg.campaign.incumbents,
            refresh=cfg.campaign.refresh_creatives,
            stop_below=cfg.stop_below,
            min_impressions=cfg.min_impressions,
            places=cfg.campaign.variants_per_round,
            # as the workflow: new creatives only where the rounds left repay their test
            rounds_left=cfg.rounds - rnd - 1,
        )
        keep = set(plan.keep)
        live = [a for a in live if a.variant_id in keep]
    return tally


def known_face_models(
    scenario: Scenario, models: Mapping[str, FaceModel], window: int, kpi: Kpi
) -> dict[str, FaceModel]:
    """Each segment's model told the scenario's true face effects in `window`
    (`FaceModel.told`): per attribute value, the logit of the KPI rate (CTR, or CTR x CVR
    for conversions) of a face with that value against a reference face, fresh and without
    per-ad noise; the creatives' own spread is the scenario's per-ad sd (on both steps for
    conversions). The sandbox's effects add up on the logit of each step, so for clicks the
    told model is exact; for conversions it is additive on logit(CTR x CVR), which the
    sandbox's rates are only nearly: within 1% (tests/optimization/test_simulate.py)."""
    conversions = kpi == "conversions"
    sd = scenario.noise.ad_sd * (math.sqrt(2.0) if conversions else 1.0)
    out: dict[str, FaceModel] = {}
    for segment, model in models.items():

        def logit(face: FaceParams, segment: str = segment) -> float:
            ctr, cvr = true_rates(scenario, face, segment, 0, window)
            rate = ctr * (cvr if conversions else 1.0)
            return math.log(rate / (1.0 - rate))

        reference = FaceParams(**{f: model.values[f][0] for f in FIELDS})
        base = logit(reference)
        coefficients = np.zeros(model.n_features)
        coefficients[-1] = base
        for f in FIELDS:
            for i, value in enumerate(model.values[f]):
                face = reference.model_copy(update={f: value})
                coefficients[model.offsets[f] + i] = logit(face) - base
        out[segment] = model.told(coefficients, sd)
    return out


def _targets(live: Sequence[SimArm]) -> dict[str, str | None]:
    return {a.variant_id: a.target for a in live}


def run_ab_test(
    scenario: Scenario, cfg: BenchConfig, run_seed: int, storage_url: str | None
) -> Tally:
    """Test a fixed set of random variants with an equal split, then roll out the winner
    (per segment: a marketer with the same targeting as faceloop picks each segment's best)."""
    segments = campaign_segments(scenario)
    cid = f"ab_test-{run_seed}"
    audience = Audience(scenario, run_seed, segments, cid)
    opt = Optimizer(_storage(storage_url), "random")
    arms = [
        SimArm(f"{cid}-t{p.trial_number}", p.params, f"{cid}-t{p.trial_number}", p.trial_number)
        for p in opt.ask(cid, 0, cfg.ab_variants, cfg.space)
    ]
    budgets = split_impressions(segments, cfg.impressions_per_round)
    tally = Tally()
    kpi = _kpi(cfg.goal)
    winners: dict[str, SimArm] = {}
    for rnd in range(cfg.rounds):
        if rnd < cfg.ab_test_rounds:
            equal = {a.variant_id: 1.0 / len(arms) for a in arms}
            alloc = {s: split_impressions(equal, budgets[s]) for s in segments}
        else:
            if not winners:
                # the test phase's totals, not discounted
                by_segment = arms_from_observations(
                    audience.observations,
                    [a.variant_id for a in arms],
                    list(segments),
                    cfg.goal,
                    rnd,
                    cfg.assumed_delay_windows,
                )
                for s, stats in by_segment.items():
                    best = max(stats, key=lambda st: st.successes / max(st.impressions, 1.0))
                    winners[s] = next(a for a in arms if a.variant_id == best.variant_id)
            alloc = {s: {winners[s].variant_id: budgets[s]} for s in segments}
        for arm in arms:
            by_seg = {s: alloc[s].get(arm.variant_id, 0) for s in segments}
            audience.deliver(arm, rnd, by_seg, tally, kpi)
        tally.end_round()
        audience.observe(rnd, arms)
    return tally


class _TrueRates:
    """The true KPI rate per impression of a creative (its per-ad noise included) before
    fatigue, per segment and window; fatigue is a factor on CTR (scenario.fatigue_factor)."""

    def __init__(self, scenario: Scenario, kpi: Kpi) -> None:
        self.scenario = scenario
        self.kpi = kpi
        self._cache: dict[tuple[str, str, tuple[int, ...]], float] = {}

    def fresh(self, arm: SimArm, segment: str, window: int) -> float:
        active = tuple(i for i, d in enumerate(self.scenario.drift) if d.from_window <= window)
        key = (arm.asset_id, segment, active)
        if key not in self._cache:
            ctr, cvr = true_rates(
                self.scenario, arm.face, segment, 0, window, asset_id=arm.asset_id
            )
            self._cache[key] = ctr * (cvr if self.kpi == "conversions" else 1.0)
        return self._cache[key]

    def fatigue(self, impressions_so_far: float) -> float:
        return fatigue_factor(self.scenario, impressions_so_far)


def _split_window(
    rates: _TrueRates, candidates: Sequence[SimArm], budgets: Mapping[str, int], window: int
) -> dict[str, dict[str, int]]:
    """Each segment's impressions, in chunks, each to the creative whose true expected KPI
    it raises most (fatigue within the window included, as `Audience.deliver` computes it:
    at the middle of the window's impressions). Per-ad value is concave in its impressions,
    so the greedy split is the best split of this window up to one chunk."""
    plan: dict[str, dict[str, int]] = {}  # asset id -> segment -> impressions
    arms = {a.asset_id: a for a in candidates}

    def value(arm: SimArm, by_seg: Mapping[str, int]) -> float:
        n = sum(by_seg.values())
        f = rates.fatigue(arm.delivered + n / 2)
        return sum(k * rates.fresh(arm, s, window) * f for s, k in by_seg.items())

    for segment in sorted(budgets):
        budget = budgets[segment]
        shortlist = sorted(
            candidates,
            key=lambda a: rates.fresh(a, segment, window) * rates.fatigue(a.delivered),
            reverse=True,
        )[:ORACLE_SHORTLIST]
        chunk = max(math.ceil(budget / ORACLE_CHUNKS), 1)
        left = budget
        while left > 0:
            c = min(chunk, left)
            best, gain = shortlist[0], -math.inf
            for arm in shortlist:
                now = plan.get(arm.asset_id, {})
                more = {**now, segment: now.get(segment, 0) + c}
                g = value(arm, more) - value(arm, now)
                if g > gain:
                    best, gain = arm, g
            row = plan.setdefault(best.asset_id, {})
            row[segment] = row.get(segment, 0) + c
            left -= c
    return {aid: {s: by_seg.get(s, 0) for s in budgets} for aid, by_seg in plan.items()} | {
        aid: dict.fromkeys(budgets, 0) for aid in arms if aid not in plan
    }


def run_oracle(
    scenario: Scenario,
    cfg: BenchConfig,
    run_seed: int,
    seen: Mapping[str, tuple[int, FaceParams]] | None = None,
    *,
    launches: Sequence[int],
) -> Tally:
    """The upper bound. In round r, `launches[r]` new creatives (faceloop's count that
    round, `Tally.new_by_round`: the issue's "same number of new creatives per round as
    faceloop") with the true best parameters (segments in turn); with the creatives in
    `seen` (every creative the strategies ran on this seed, asset id -> (first window,
    parameters): the same ads, the same per-ad noise, from the window they appeared) it
    knows every candidate's true rate and splits each window greedily by true marginal KPI
    (`_split_window`). Whatever a strategy showed in a window, the oracle could have shown
    too, so per window it does at least as well in expectation; `Tally.expected` holds
    that expectation."""
    if len(launches) != cfg.rounds:
        raise ValueError(f"launches has {len(launches)} rounds, the config {cfg.rounds}")
    segments = campaign_segments(scenario)
    order = sorted(segments)
    audience = Audience(scenario, run_seed, segments, f"oracle-{run_seed}")
    budgets = split_impressions(segments, cfg.impressions_per_round)
    kpi = _kpi(cfg.goal)
    rates = _TrueRates(scenario, kpi)
    tally = Tally()
    seen = dict(seen or {})
    # `seen` holds the faces the audience saw already: they are not rendered again
    others = {aid: SimArm(aid, p, aid, shown=p) for aid, (_, p) in seen.items()}
    own: list[SimArm] = []
    for rnd in range(cfg.rounds):
        for i in range(launches[rnd]):
            s = order[i % len(order)]
            params, _ = audience.best(s, rnd, kpi)
            aid = f"oracle-{run_seed}-r{rnd}-{i}"
            # measured mode: the oracle asks for the best face but gets what the generator
            # renders, like everyone else; it plans on the face it got
            own.append(audience.look(SimArm(aid, params, aid)))
        live = own + [others[aid] for aid, (first, _) in seen.items() if first <= rnd]
        plan = _split_window(rates, live, budgets, rnd)
        for arm in live:
            audience.deliver(arm, rnd, plan[arm.asset_id], tally, kpi)
        tally.end_round()
        tally.new_by_round.append(launches[rnd])
    return tally


def run_best_fixed(
    scenario: Scenario,
    cfg: BenchConfig,
    run_seed: int,
    creatives: Mapping[str, tuple[int, FaceParams]],
) -> Tally:
    """The best fixed creative in hindsight: of `creatives` (those a run showed), the one
    with the highest true expected total when it gets every impression of the campaign
    from the first window (drift and fatigue included), then served so."""
    if not creatives:
        raise ValueError("best_fixed needs at least one creative to choose from")
    segments = campaign_segments(scenario)
    budgets = split_impressions(segments, cfg.impressions_per_round)
    kpi = _kpi(cfg.goal)
    rates = _TrueRates(scenario, kpi)

    def total(arm: SimArm) -> float:
        out, done = 0.0, 0
        for rnd in range(cfg.rounds):
            f = rates.fatigue(done + cfg.impressions_per_round / 2)
            out += sum(n * rates.fresh(arm, s, rnd) * f for s, n in budgets.items())
            done += cfg.impressions_per_round
        return out

    best = max(
        (SimArm(aid, p, aid, shown=p) for aid, (_, p) in sorted(creatives.items())), key=total
    )
    audience = Audience(scenario, run_seed, segments, f"best_fixed-{run_seed}")
    tally = Tally()
    for rnd in range(cfg.rounds):
        audience.deliver(best, rnd, budgets, tally, kpi)
        tally.end_round()
    return tally


def _storage(url: str | None) -> str | optuna.storages.BaseStorage:
    """Where a simulated campaign keeps its Optuna study: a URL for RDB storage (as the
    workflow), or None for Optuna's in-memory storage. The study API and every decision are
    the same (tests/optimize checks that both give the same clicks); only the database
    round trips are saved, which are most of the benchmark's time."""
    return optuna.storages.InMemoryStorage() if url is None else url


def run_seed(
    scenario: Scenario, cfg: BenchConfig, seed: int, storage_url: str | None = None
) -> dict[str, Tally]:
    """Every strategy once, on one seed. Each Optimizer gets a study store of its own: with
    a URL such as sqlite:///:memory: each opens its own connection (a file URL works too,
    and is slower: every tell is a committed transaction)."""
    runs = {
        "faceloop": run_optuna_loop(scenario, cfg, seed, cfg.sampler, storage_url, "faceloop"),
        "ab_test": run_ab_test(scenario, cfg, seed, storage_url),
        "random": run_optuna_loop(scenario, cfg, seed, "random", storage_url, "random"),
    }
    runs["best_fixed"] = run_best_fixed(scenario, cfg, seed, runs["faceloop"].creatives)
    runs["faces_known"] = run_optuna_loop(
        scenario, cfg, seed, cfg.sampler, storage_url, "faces_known", faces_known=True
    )
    seen = {aid: c for t in runs.values() for aid, c in t.creatives.items()}
    runs["oracle"] = run_oracle(scenario, cfg, seed, seen, launches=runs["faceloop"].new_by_round)
    return runs


def for_scenario(cfg: BenchConfig, scenario: Scenario) -> BenchConfig:
    """The bench config with the scenario's KPI goal (its `bench.goal`; CTR without one)."""
    goal = KpiGoal(scenario.bench.goal) if scenario.bench is not None else cfg.goal
    return cfg if goal == cfg.goal else dataclasses.replace(cfg, goal=goal)


def _run_seed_args(args: tuple[Scenario, BenchConfig, int, str | None]) -> dict[str, Tally]:
    return run_seed(*args)


def _one_blas_thread() -> None:
    """Each bench process multiplies small matrices (a few dozen features by 2,000 draws):
    OpenBLAS's threads cost more to wake than they save, and with one process per core
    they spin against each other. One thread per process made one seed 4-5x faster on
    the 2-core VM with identical results (docs/benchmarks.md)."""
    threadpool_limits(1, user_api="blas")


def _ci95(x: np.ndarray) -> list[float]:
    # t quantile for small samples (scipy is a dependency of optuna's GP and fanova paths)
    from scipy import stats

    if len(x) < 2:
        return [float(x.mean()), float(x.mean())]
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return [float(x.mean()) - half, float(x.mean()) + half]


def _lift_ci95(faceloop: np.ndarray, ab: np.ndarray, resamples: int = 2000) -> list[float]:
    """95% interval of the lift (ratio of mean KPIs - 1) over seeds: a paired bootstrap
    (each resample draws seeds, both strategies' runs on them), with a fixed seed so the
    report is reproducible."""
    if len(faceloop) < 2 or ab.sum() <= 0:
        lift = float(faceloop.mean() / ab.mean() - 1.0) if ab.mean() else 0.0
        return [lift, lift]
    rng = np.random.default_rng(17)
    idx = rng.integers(0, len(faceloop), size=(resamples, len(faceloop)))
    lifts = faceloop[idx].mean(axis=1) / np.maximum(ab[idx].mean(axis=1), 1e-12) - 1.0
    lo, hi = np.percentile(lifts, [2.5, 97.5])
    return [float(lo), float(hi)]


def summarize(scenario: Scenario, cfg: BenchConfig, runs: list[dict[str, Tally]]) -> dict[str, Any]:
    """The bench JSON: per strategy clicks_mean, clicks_ci95, conversions_mean,
    kpi_mean and kpi_ci95 (clicks or conversions: the campaign's goal), oracle_fraction (of
    the goal's KPI), expected_fraction (true expected KPI / the oracle's, the bound that
    holds by construction), best_share and regret_curve (the goal's KPI short of the
    oracle's, cumulative per round: clicks, or the conversions each round's clicks caused);
    lift_vs_ab (of the goal's KPI) with its 95% interval for faceloop."""

    goal = _kpi(cfg.goal)

    def kpi(t: Tally) -> float:
        return float(t.total(goal))

    oracle_kpi = np.array([kpi(r["oracle"]) for r in runs], dtype=float)
    oracle_expected = float(np.mean([r["oracle"].expected for r in runs]))
    oracle_rounds = np.array([r["oracle"].by_round(goal) for r in runs], dtype=float)
    out: dict[str, Any] = {}
    for name in STRATEGIES:
        clicks = np.array([r[name].clicks for r in runs], dtype=float)
        values = np.array([kpi(r[name]) for r in runs], dtype=float)
        rounds = np.array([r[name].by_round(goal) for r in runs], dtype=float)
        regret = np.cumsum(oracle_rounds - rounds, axis=1).mean(axis=0)
        out[name] = {
            "clicks_mean": float(clicks.mean()),
            "clicks_ci95": _ci95(clicks),
            "conversions_mean": float(np.mean([r[name].conversions for r in runs])),
            "kpi_mean": float(values.mean()),
            "kpi_ci95": _ci95(values),
            "oracle_fraction": float(values.mean() / oracle_kpi.mean()),
            "expected_fraction": float(np.mean([r[name].expected for r in runs]) / oracle_expected),
            "best_share": float(
                sum(r[name].near_best for r in runs)
                / max(sum(r[name].impressions for r in runs), 1)
            ),
            "regret_curve": [round(float(x), 1) for x in regret],
        }
    ab = out["ab_test"]["kpi_mean"]
    mine = np.array([kpi(r["faceloop"]) for r in runs], dtype=float)
    theirs = np.array([kpi(r["ab_test"]) for r in runs], dtype=float)
    lift = float(out["faceloop"]["kpi_mean"] / ab - 1.0) if ab else None
    matter = scenario.parameters_matter()
    return {
        "scenario": scenario.name,
        # declared: the audience reacts to the declared face parameters (no images);
        # measured: to those measured in each creative's rendered image (optimization/sees.py)
        "audience_sees": scenario.audience_sees,
        "split": scenario.bench.split if scenario.bench is not None else None,
        "seeds": len(runs),
        "config": cfg.to_json(),
        "strategies": out,
        "lift_vs_ab": lift,
        "lift_vs_ab_ci95": _lift_ci95(mine, theirs),
        "parameters_matter": matter,
        "targets": _targets_met(matter, out, lift),
    }


def _targets_met(
    parameters_matter: bool, out: Mapping[str, Mapping[str, Any]], lift: float | None
) -> dict[str, dict[str, Any]]:
    """Each of issue 17's targets for faceloop on a scenario (`parameters_matter`: whether a
    face parameter moves its KPI): its value, the target and whether it is met."""
    fraction = float(out["faceloop"]["oracle_fraction"])
    mine = float(out["faceloop"]["kpi_mean"])
    if parameters_matter:
        harm = {
            "target": f"lift vs A/B >= {LIFT_TARGET:+.2f}",
            "value": lift,
            "met": lift is not None and lift >= LIFT_TARGET,
        }
    else:
        low = float(out["ab_test"]["kpi_ci95"][0])
        harm = {
            "target": "KPI >= the A/B test's 95% interval (do no harm)",
            "value": lift,
            "ab_low": low,
            "met": mine >= low,
        }
    return {
        "oracle_fraction": {
            "target": f">= {ORACLE_FRACTION_TARGET:.2f}",
            "value": fraction,
            "met": fraction >= ORACLE_FRACTION_TARGET,
        },
        "lift_vs_ab": harm,
    }


def bench(
    scenario: Scenario,
    cfg: BenchConfig,
    seeds: int,
    jobs: int = 1,
    storage_url: str | None = None,
    on_seed: Callable[[], None] | None = None,
    first_seed: int = 0,
) -> dict[str, Any]:
    """Run every strategy on seeds first_seed..first_seed+seeds-1 (in `jobs` processes) and
    summarize. The KPI is the scenario's bench goal (`bench.goal`, default CTR).
    `storage_url`: RDB storage for the studies (None: Optuna's in-memory storage).
    `on_seed` is called as each seed finishes (a progress bar)."""
    t0 = time.perf_counter()
    cfg = for_scenario(cfg, scenario)
    args = [(scenario, cfg, s, storage_url) for s in range(first_seed, first_seed + seeds)]
    runs: list[dict[str, Tally]] = []
    if jobs > 1 and seeds > 1:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_one_blas_thread) as pool:
            futures = [pool.submit(_run_seed_args, a) for a in args]
            for fut in as_completed(futures):
                fut.result()  # a failed seed raises here, not after the others
                if on_seed is not None:
                    on_seed()
            runs = [f.result() for f in futures]
    else:
        with threadpool_limits(1, user_api="blas"):
            for a in args:
                runs.append(_run_seed_args(a))
                if on_seed is not None:
                    on_seed()
    out = summarize(scenario, cfg, runs)
    out["first_seed"] = first_seed
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


__all__ = [
    "STRATEGIES",
    "Audience",
    "BenchConfig",
    "SimArm",
    "Tally",
    "bench",
    "campaign_segments",
    "for_scenario",
    "known_face_models",
    "run_ab_test",
    "run_best_fixed",
    "run_optuna_loop",
    "run_oracle",
    "run_seed",
    "summarize",
]
