"""Campaign simulation for `faceloop bench optimize`: the real round logic, in-process.

Each round runs what the campaign workflow runs (propose -> allocate -> deliver one KPI
window -> learn), with the same `Optimizer` (an Optuna study in SQLite RDB storage) and the
same `allocate` / `plan_learn` / `trial_value` functions from `faceloop.optimization.optimizer`. What is
left out: images, guardrails and Temporal. The audience is the sandbox's (a simulated one,
named a fake in docs/sandbox.md): rates come from
`faceloop.connectors.sandbox_platform.scenario.true_rates` (segments, drift, fatigue, per-ad
noise) and clicks/conversions are Binomial draws, conversions reported after the scenario's
geometric delay, as the sandbox delivers them.

Strategies, all with the same impression budget:
- `faceloop`: Optuna proposals (sampler from the config) + Thompson allocation + learn rule.
- `random`: the same loop with random proposals.
- `ab_test`: a fixed set of random variants, an equal split for the test phase, then all of
  each segment's traffic to the variant with the best observed KPI in that segment.
- `oracle`: every round a fresh creative with the true best parameters for each segment
  and window (it knows the truth, including drift).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import optuna

from faceloop.connectors.sandbox_platform.scenario import (
    Kpi,
    Scenario,
    best_params,
    seed_words,
    true_rates,
)
from faceloop.models import CampaignConfig, FaceParams, KpiGoal, SearchSpace
from faceloop.optimization.facemodel import FaceModel
from faceloop.optimization.optimizer import (
    ALL,
    MEMORY_LOOKBACK,
    ArmStats,
    Optimizer,
    allocate,
    choose_memory,
    delayed_exposure,
    plan_learn,
    segment_models,
    split_impressions,
    stable_seed,
    trial_value,
    windowed_stats,
)

STRATEGIES = ("faceloop", "ab_test", "random", "oracle")
NEAR_BEST = 0.95  # best_share counts impressions on variants within 5% of the optimum


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
    stop_below: float = 0.02
    min_impressions: float = 2000.0
    # what the campaign assumes about conversion delays (a setting, not the scenario's truth)
    assumed_delay_windows: float = 0.5
    # weight of a window's counts halves after this many windows (None: all count); the
    # campaign loop sets it each round (optimizer.choose_memory), as the workflow does
    memory_windows: float | None = None
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
            "memory": "chosen per round from (None, 4) windows (optimizer.choose_memory)",
        }


# --------------------------------------------------------------------------- the audience


@dataclass
class SimArm:
    """One live creative (one ad) and everything the platform reported about it."""

    variant_id: str
    params: FaceParams
    asset_id: str
    trial_number: int | None = None
    target: str | None = None  # the one segment it runs in (None: every segment)
    born: int = 0  # the window it first ran in
    delivered: int = 0  # all impressions so far (fatigue)
    impressions: dict[str, dict[int, int]] = field(default_factory=dict)  # seg -> window -> n
    clicks: dict[str, dict[int, int]] = field(default_factory=dict)  # seg -> window -> n
    conversions: dict[str, dict[int, int]] = field(default_factory=dict)  # by report window

    def stats(self, segment: str, cfg: BenchConfig, now: int) -> ArmStats:
        """Its counts in `segment` as known at the end of window `now`: later windows are
        left out, as the workflow's catalog reads (`round_models`) leave them out, so a
        model fitted "through window w" never sees what happened after w."""
        by_window = {w: n for w, n in self.impressions.get(segment, {}).items() if w <= now}
        if cfg.goal == KpiGoal.ctr:
            exposure: dict[int, float] = {w: float(n) for w, n in by_window.items()}
            got = self.clicks.get(segment, {})
        else:
            # conversions: count the impressions whose conversions could be reported by now
            exposure = {
                w: delayed_exposure({w: n}, now, cfg.assumed_delay_windows)
                for w, n in by_window.items()
            }
            got = self.conversions.get(segment, {})
        succ = {w: n for w, n in got.items() if w <= now}
        return windowed_stats(self.variant_id, exposure, succ, now, cfg.memory_windows, self.params)

    def first_window(self, segment: str, cfg: BenchConfig) -> ArmStats:
        """Its counts in the window it first ran in (for a conversions goal, those reported
        by then)."""
        one = {
            self.born: self.impressions.get(segment, {}).get(self.born, 0),
        }
        got = (self.clicks if cfg.goal == KpiGoal.ctr else self.conversions).get(segment, {})
        exposure = (
            {self.born: float(one[self.born])}
            if cfg.goal == KpiGoal.ctr
            else {self.born: delayed_exposure(one, self.born, cfg.assumed_delay_windows)}
        )
        return windowed_stats(
            self.variant_id,
            exposure,
            {self.born: got.get(self.born, 0)},
            self.born,
            None,
            self.params,
        )

    def windows(self) -> dict[int, tuple[float, float]]:
        """Impressions and clicks per window over all segments (the fatigue check)."""
        out: dict[int, tuple[float, float]] = {}
        for segment, by_window in self.impressions.items():
            for w, n in by_window.items():
                i, c = out.get(w, (0.0, 0.0))
                out[w] = (i + n, c + self.clicks.get(segment, {}).get(w, 0))
        return out


@dataclass
class Tally:
    clicks: int = 0
    conversions: int = 0  # every conversion the clicks caused, reported or not yet
    impressions: int = 0
    near_best: int = 0
    clicks_by_round: list[int] = field(default_factory=list)


class Audience:
    """The sandbox's delivery model in-process: Binomial clicks and conversions from the
    scenario's true rates, conversions reported after a geometric delay."""

    def __init__(self, scenario: Scenario, run_seed: int, segments: Mapping[str, float]) -> None:
        self.scenario = scenario
        self.run_seed = run_seed
        self.segments = dict(segments)
        self._pending: dict[tuple[int, str, str], int] = {}  # (window, variant, seg) -> conv
        self._arms: dict[str, SimArm] = {}
        self._best: dict[tuple[str, tuple[int, ...]], tuple[FaceParams, float]] = {}

    def best(self, segment: str, window: int, kpi: Kpi) -> tuple[FaceParams, float]:
        """The true best parameters for a segment in a window (drift changes them)."""
        active = tuple(i for i, d in enumerate(self.scenario.drift) if d.from_window <= window)
        key = (f"{segment}|{kpi}", active)
        if key not in self._best:
            self._best[key] = best_params(self.scenario, {segment: 1.0}, kpi, window)
        return self._best[key]

    def deliver(
        self, arm: SimArm, window: int, by_segment: Mapping[str, int], tally: Tally, kpi: Kpi
    ) -> int:
        """Serve one window of impressions; returns the clicks."""
        self._arms[arm.variant_id] = arm
        total = sum(by_segment.values())
        if total == 0:
            return 0
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
                self.scenario, arm.params, segment, so_far, window, asset_id=arm.asset_id
            )
            clicks = int(rng.binomial(n, ctr))
            conv = int(rng.binomial(clicks, cvr))
            delays = rng.geometric(p, size=conv) - 1
            for d, k in zip(*np.unique(delays, return_counts=True), strict=True):
                key = (window + int(d), arm.variant_id, segment)
                self._pending[key] = self._pending.get(key, 0) + int(k)
            arm.impressions.setdefault(segment, {})[window] = n
            arm.clicks.setdefault(segment, {})[window] = clicks
            clicks_total += clicks
            tally.clicks += clicks
            tally.conversions += conv
            tally.impressions += n
            _, best = self.best(segment, window, kpi)
            fresh_ctr, fresh_cvr = true_rates(self.scenario, arm.params, segment, 0, window)
            rate = fresh_ctr * (fresh_cvr if kpi == "conversions" else 1.0)
            if rate >= NEAR_BEST * best:
                tally.near_best += n
        arm.delivered += total
        return clicks_total

    def report(self, window: int) -> None:
        """Conversions that arrive in this window are credited to their ad and segment."""
        for key in [k for k in self._pending if k[0] == window]:
            _, vid, segment = key
            arm = self._arms[vid]
            arm.conversions.setdefault(segment, {})[window] = self._pending.pop(key)


# --------------------------------------------------------------------------- strategies


def campaign_segments(scenario: Scenario) -> dict[str, float]:
    """A brief naming the scenario's segments, with the scenario's shares."""
    return {s.name: s.share for s in scenario.segments} or {ALL: 1.0}


def _arms_by_segment(
    live: list[SimArm], segments: Mapping[str, float], cfg: BenchConfig, now: int
) -> dict[str, list[ArmStats]]:
    """Each segment's arms: those that run in it (their target, or every segment)."""
    return {s: [a.stats(s, cfg, now) for a in live if a.target in (None, s)] for s in segments}


def _models(
    ever: list[SimArm], segments: Mapping[str, float], cfg: BenchConfig, now: int
) -> tuple[float | None, dict[str, FaceModel]]:
    """The campaign's memory (chosen by how well it foresaw recent launches) and its KPI
    model per segment, from every creative shown so far, through window `now`."""

    def history(memory: float | None, through: int) -> dict[str, list[ArmStats]]:
        c = replace(cfg, memory_windows=memory)
        return {s: [a.stats(s, c, through) for a in ever if a.born <= through] for s in segments}

    launched = {
        w: {s: [a.first_window(s, cfg) for a in ever if a.born == w] for s in segments}
        for w in range(max(now - MEMORY_LOOKBACK + 1, 0), now + 1)
    }
    memory = choose_memory(cfg.space, history, launched, now) if now > 0 else None
    return memory, segment_models(cfg.space, history(memory, now))


def _kpi(goal: KpiGoal) -> Kpi:
    return "ctr" if goal == KpiGoal.ctr else "conversions"


def run_optuna_loop(
    scenario: Scenario,
    cfg: BenchConfig,
    run_seed: int,
    sampler: str,
    storage_url: str | None,
    name: str,
) -> Tally:
    """The campaign loop: what CampaignWorkflow does per round (its propose, deploy and learn
    activities call the same functions), minus images, guardrails and Temporal."""
    segments = campaign_segments(scenario)
    audience = Audience(scenario, run_seed, segments)
    opt = Optimizer(_storage(storage_url), sampler)
    cid = f"{name}-{run_seed}"
    tally = Tally()
    live: list[SimArm] = []
    ever: list[SimArm] = []
    kpi = _kpi(cfg.goal)
    memory, models = None, segment_models(cfg.space, {s: [] for s in segments})
    for rnd in range(cfg.rounds):
        run = replace(cfg, memory_windows=memory)
        # propose: queued refreshes, then new trials fill the places the incumbents leave
        # free, each for one segment, from that segment's model
        proposals = opt.ask(
            cid,
            rnd,
            cfg.campaign.variants_per_round - len(live),
            cfg.space,
            models=models,
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
                rnd,
            )
            for p in proposals
        ]
        live = live + new
        ever = ever + new
        # deploy: Thompson allocation per segment on what was observed before this window
        alloc = allocate(
            _arms_by_segment(live, segments, run, rnd - 1),  # data through the last window
            segments,
            cfg.campaign.exploration_floor,
            stable_seed(cid, rnd),
            cfg.impressions_per_round,
            models,
        )
        clicks = 0
        for arm in live:
            by_seg = {s: alloc[s].get(arm.variant_id, 0) for s in segments}
            clicks += audience.deliver(arm, rnd, by_seg, tally, kpi)
        tally.clicks_by_round.append(clicks)
        # observe: conversions that arrive in this window
        audience.report(rnd)
        # learn: tell this round's trials, keep the best, retire the rest, refresh worn-out
        memory, models = _models(ever, segments, cfg, rnd)
        run = replace(cfg, memory_windows=memory)
        stats = _arms_by_segment(live, segments, run, rnd)
        for arm in new:
            assert arm.trial_number is not None
            opt.tell(cid, arm.trial_number, trial_value(arm.variant_id, stats))
        plan = plan_learn(
            stats,
            segments,
            cfg.campaign.incumbents,
            stable_seed(cid, rnd, "learn"),
            cfg.stop_below,
            cfg.min_impressions,
            models,
            {a.variant_id: a.windows() for a in live} if cfg.campaign.refresh_creatives else None,
        )
        for arm in live:
            if arm.variant_id in plan.refresh:
                opt.enqueue_refresh(cid, arm.variant_id, arm.params, arm.target)
        keep = set(plan.keep)
        live = [a for a in live if a.variant_id in keep]
    return tally


def run_ab_test(
    scenario: Scenario, cfg: BenchConfig, run_seed: int, storage_url: str | None
) -> Tally:
    """Test a fixed set of random variants with an equal split, then roll out the winner
    (per segment: a marketer with the same targeting as faceloop picks each segment's best)."""
    segments = campaign_segments(scenario)
    audience = Audience(scenario, run_seed, segments)
    cid = f"ab_test-{run_seed}"
    opt = Optimizer(_storage(storage_url), "random")
    arms = [
        SimArm(f"{cid}-t{p.trial_number}", p.params, f"{cid}-t{p.trial_number}", p.trial_number)
        for p in opt.ask(cid, 0, cfg.ab_variants, cfg.space)
    ]
    budgets = split_impressions(segments, cfg.impressions_per_round)
    tally = Tally()
    kpi = _kpi(cfg.goal)
    winners: dict[str, SimArm] = {}
    plain = replace(cfg, memory_windows=None)  # the test phase's totals, not discounted
    for rnd in range(cfg.rounds):
        if rnd < cfg.ab_test_rounds:
            equal = {a.variant_id: 1.0 / len(arms) for a in arms}
            alloc = {s: split_impressions(equal, budgets[s]) for s in segments}
        else:
            if not winners:
                for s in segments:
                    stats = [a.stats(s, plain, rnd) for a in arms]
                    best = max(stats, key=lambda st: st.successes / max(st.impressions, 1.0))
                    winners[s] = next(a for a in arms if a.variant_id == best.variant_id)
            alloc = {s: {winners[s].variant_id: budgets[s]} for s in segments}
        clicks = 0
        for arm in arms:
            by_seg = {s: alloc[s].get(arm.variant_id, 0) for s in segments}
            clicks += audience.deliver(arm, rnd, by_seg, tally, kpi)
        tally.clicks_by_round.append(clicks)
        audience.report(rnd)
    return tally


def run_oracle(scenario: Scenario, cfg: BenchConfig, run_seed: int) -> Tally:
    """A fresh creative with the true best parameters, per segment and window."""
    segments = campaign_segments(scenario)
    audience = Audience(scenario, run_seed, segments)
    budgets = split_impressions(segments, cfg.impressions_per_round)
    tally = Tally()
    kpi = _kpi(cfg.goal)
    for rnd in range(cfg.rounds):
        clicks = 0
        for s in segments:
            params, _ = audience.best(s, rnd, kpi)
            arm = SimArm(f"oracle-{run_seed}-{rnd}-{s}", params, f"oracle-{run_seed}-{rnd}-{s}")
            clicks += audience.deliver(arm, rnd, {s: budgets[s]}, tally, kpi)
        tally.clicks_by_round.append(clicks)
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
    return {
        "faceloop": run_optuna_loop(scenario, cfg, seed, cfg.sampler, storage_url, "faceloop"),
        "ab_test": run_ab_test(scenario, cfg, seed, storage_url),
        "random": run_optuna_loop(scenario, cfg, seed, "random", storage_url, "random"),
        "oracle": run_oracle(scenario, cfg, seed),
    }


def _run_seed_args(args: tuple[Scenario, BenchConfig, int, str | None]) -> dict[str, Tally]:
    return run_seed(*args)


def _ci95(x: np.ndarray) -> list[float]:
    # t quantile for small samples (scipy is a dependency of optuna's GP and fanova paths)
    from scipy import stats

    if len(x) < 2:
        return [float(x.mean()), float(x.mean())]
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return [float(x.mean()) - half, float(x.mean()) + half]


def summarize(scenario: Scenario, cfg: BenchConfig, runs: list[dict[str, Tally]]) -> dict[str, Any]:
    """The bench JSON: per strategy clicks_mean, clicks_ci95, conversions_mean,
    oracle_fraction, best_share and regret_curve; lift_vs_ab for faceloop."""
    oracle_clicks = np.array([r["oracle"].clicks for r in runs], dtype=float)
    oracle_rounds = np.array([r["oracle"].clicks_by_round for r in runs], dtype=float)
    out: dict[str, Any] = {}
    for name in STRATEGIES:
        clicks = np.array([r[name].clicks for r in runs], dtype=float)
        rounds = np.array([r[name].clicks_by_round for r in runs], dtype=float)
        regret = np.cumsum(oracle_rounds - rounds, axis=1).mean(axis=0)
        out[name] = {
            "clicks_mean": float(clicks.mean()),
            "clicks_ci95": _ci95(clicks),
            "conversions_mean": float(np.mean([r[name].conversions for r in runs])),
            "oracle_fraction": float(clicks.mean() / oracle_clicks.mean()),
            "best_share": float(
                sum(r[name].near_best for r in runs)
                / max(sum(r[name].impressions for r in runs), 1)
            ),
            "regret_curve": [round(float(x), 1) for x in regret],
        }
    ab = out["ab_test"]["clicks_mean"]
    return {
        "scenario": scenario.name,
        "seeds": len(runs),
        "config": cfg.to_json(),
        "strategies": out,
        "lift_vs_ab": float(out["faceloop"]["clicks_mean"] / ab - 1.0) if ab else None,
    }


def bench(
    scenario: Scenario,
    cfg: BenchConfig,
    seeds: int,
    jobs: int = 1,
    storage_url: str | None = None,
) -> dict[str, Any]:
    """Run every strategy on seeds 0..seeds-1 (in `jobs` processes) and summarize.
    `storage_url`: RDB storage for the studies (None: Optuna's in-memory storage)."""
    t0 = time.perf_counter()
    args = [(scenario, cfg, s, storage_url) for s in range(seeds)]
    if jobs > 1 and seeds > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            runs = list(pool.map(_run_seed_args, args))
    else:
        runs = [_run_seed_args(a) for a in args]
    out = summarize(scenario, cfg, runs)
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
    "run_ab_test",
    "run_optuna_loop",
    "run_oracle",
    "run_seed",
    "summarize",
]
