"""The learn step of a round: tell the study what this round's variants delivered, decide
which live variants stay, which are retired or stopped and which worn-out creatives are
refreshed, and name the winner.

The top of `faceloop.optimization`: it reads the evidence (`facemodel.campaign_evidence`),
ranks with the posterior (`allocation`) and tells the study (`study.Optimizer`).
`learn_round` is the whole step; the learn activity (`workflows/campaign_activities.py`)
calls it and writes the catalog and audit log, the bench (`simulate`) calls it each round.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceloop.models import KpiGoal
from faceloop.optimization.allocation import p_best, posterior_mean
from faceloop.optimization.evidence import ArmStats, pooled_arms
from faceloop.optimization.facemodel import CampaignEvidence, FaceModel
from faceloop.optimization.seeds import stable_seed
from faceloop.optimization.study import Optimizer

# A variant is a clear loser, stopped even while a place is free, when its P(best) is below
# STOP_BELOW in every segment it runs in after STOP_MIN_IMPRESSIONS impressions.
STOP_BELOW = 0.02
STOP_MIN_IMPRESSIONS = 2000.0
# the id of the hypothetical new creative the keep rule weighs each live one against
NEW_CREATIVE = "(new creative)"

# The value of new creatives (`new_creatives_worth`): a new creative is measured for
# TEST_WEIGHT / (rate x its prior variance) impressions (its own counts then weigh
# TEST_WEIGHT times its prior), at the cost of its expected shortfall against the best live
# one; what it may add is its expected improvement over that one for the rest of the
# campaign. WORTH_DRAWS Monte Carlo draws per segment.
TEST_WEIGHT = 8.0
WORTH_DRAWS = 4000

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


def new_creatives_worth(
    model: FaceModel,
    best_rate: float,
    window_impressions: float,
    rounds_left: int,
    most: int,
    seed: int,
    test_weight: float | None = None,
) -> int:
    """How many new creatives (0 to `most`) are worth launching in a segment next round,
    against keeping the live ones: the expected value over the rest of the campaign.

    A new creative of the model's best face has a logit rate ~ N(mu, s^2) (its face's
    posterior plus the creative effect). Testing one costs n_test = test_weight / (p s^2)
    impressions at its expected shortfall against the best live creative (d = logit of
    `best_rate` - mu, when positive); k of them may add E[max(best of k - d, 0)] for every
    impression after their tests. The rates are on the logit scale times p(1 - p), a
    constant that does not change the choice. Where the parameters and the creatives
    barely matter (small s) or the campaign is nearly over, testing costs more than it can
    repay and the answer is 0: the campaign exploits what it has measured.
    """
    if most <= 0 or rounds_left <= 0 or window_impressions <= 0:
        return 0
    face = model.best(model.mean)
    x = model.features(face)
    mu = float(x @ model.mean)
    s2 = float(x @ model.cov @ x) + model.creative_var
    p = min(max(best_rate, 1e-9), 1.0 - 1e-9)
    d = math.log(p / (1.0 - p)) - mu
    horizon = rounds_left * window_impressions
    weight = TEST_WEIGHT if test_weight is None else test_weight
    n_test = min(weight / (p * (1.0 - p) * s2), horizon)
    rng = np.random.default_rng(seed)
    tops = np.maximum.accumulate(rng.standard_normal((most, WORTH_DRAWS)) * math.sqrt(s2), axis=0)
    gains = np.maximum(tops - d, 0.0).mean(axis=1)  # gains[k-1]: the best of k new ones
    values = [0.0] + [
        float(gains[k - 1]) * max(horizon - k * n_test, 0.0) - k * max(d, 0.0) * n_test
        for k in range(1, most + 1)
    ]
    return int(np.argmax(values))


def settled_segments(
    evidence: CampaignEvidence, rounds_left: int, places: int, incumbents: int, seed: int
) -> set[str]:
    """The segments where no new creative is worth its test (`new_creatives_worth` is 0,
    as the learn step weighs it): there the next window exploits what is measured, and the
    one new creative a round still makes gets the exploration floor and no more
    (`allocation.thompson_allocation`). `evidence` is the one after the last observed
    window, `rounds_left` the windows from the next one on."""
    window = _window_impressions(evidence)
    free = max(places - 1 - incumbents, 0)
    out: set[str] = set()
    for segment, arms in evidence.arms.items():
        model = evidence.models.get(segment)
        # without a last window (the campaign's first, or a paused one) nothing says what
        # a window buys: not settled
        if not arms or model is None or window.get(segment, 0.0) <= 0:
            continue
        model = model.selected()  # the null model where faces do not matter
        best = max(posterior_mean(arms, model).values())
        worth = new_creatives_worth(
            model,
            best,
            window.get(segment, 0.0),
            rounds_left,
            free,
            stable_seed(seed, "worth", segment),
        )
        if worth == 0:
            out.add(segment)
    return out


def plan_learn(
    arms_by_segment: Mapping[str, Sequence[ArmStats]],
    segment_shares: Mapping[str, float],
    incumbents: int,
    seed: int,
    stop_below: float = STOP_BELOW,
    min_impressions: float = STOP_MIN_IMPRESSIONS,
    models: Mapping[str, FaceModel] | None = None,
    windows: Mapping[str, Mapping[int, tuple[float, float]]] | None = None,
    places: int | None = None,
    rounds_left: int | None = None,
    window_impressions: Mapping[str, float] | None = None,
) -> LearnPlan:
    """Which live variants stay, which are retired, which are refreshed, and the winner.

    Kept: variants taken round-robin from each segment's ranking by posterior mean (with
    segments, each segment keeps its own best face). The first `incumbents` are kept in any
    case. With `places` (the campaign's variants per round) and a KPI model per segment,
    more are kept while their posterior mean (their face's prediction plus their own
    effect) makes them at least as likely to be the segment's best as a new creative of
    the model's best face (its own effect drawn from the creative prior), up to
    `places - 1` (a round always has room for one new proposal): a new creative is made
    only where it beats keeping. Without
    `places` exactly `incumbents` are kept (a fixed quota of new ones). A variant whose
    P(best) is below `stop_below` in every segment it runs in, after `min_impressions`, is
    a clear loser: it is stopped even if a place is free, so a new proposal replaces it.
    A kept variant whose CTR wore out (`fatigued`, from `windows`: impressions and clicks
    per window) is refreshed: retired, and the caller queues a fresh copy of its face.

    With `rounds_left` and `window_impressions` (per segment, the last window's) the number
    of new creatives follows their expected value (`new_creatives_worth`): a segment where
    none is worth its test keeps its live creatives without the P(best) comparison, and
    the campaign keeps up to `places - 1` (one new proposal a round still runs).
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
        # the model the data favour: where faces do not matter, the null model ranks each
        # creative by its own counts (`FaceModel.selected`)
        model = model.selected() if model is not None else None
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
    # a new creative of each segment's best face, as one more arm: a live variant is worth
    # its place while it is at least as likely as that new one to be the segment's best
    # (its own effect against a fresh draw from the creative prior; a mean comparison alone
    # would keep every slightly-above-average creative and never look for a better one)
    beats: set[str] = set()
    for segment, arms in arms_by_segment.items():
        model = (models or {}).get(segment)
        if not arms or model is None or places is None:
            continue
        model = model.selected()
        new = ArmStats(NEW_CREATIVE, 0.0, 0.0, model.best(model.mean))
        pb_new = p_best([*arms, new], stable_seed(seed, "keep", segment), model=model)
        beats |= {a.variant_id for a in arms if pb_new[a.variant_id] >= pb_new[NEW_CREATIVE]}

    # segments where no new creative is worth its test (known horizon only)
    exploit: set[str] = set()
    wanted = 0
    if rounds_left is not None and window_impressions is not None and places is not None:
        free = max(places - 1 - incumbents, 0)
        for segment, arms in arms_by_segment.items():
            model = (models or {}).get(segment)
            if not arms or model is None:
                continue
            k = new_creatives_worth(
                model.selected(),
                max(seg_means[segment].values()),
                window_impressions.get(segment, 0.0),
                rounds_left,
                free,
                stable_seed(seed, "worth", segment),
            )
            wanted += k
            if k == 0:
                exploit |= {a.variant_id for a in arms}

    def beats_new(v: str) -> bool:
        return v in beats or v in exploit

    limit = max(places - 1, incumbents) if places is not None and models else incumbents
    keep: list[str] = []
    depth = 0
    while len(keep) < limit and any(depth < len(r) for r in rankings):
        for r in rankings:
            if depth < len(r) and len(keep) < limit:
                v = r[depth]
                if v not in keep and v not in stopped and (len(keep) < incumbents or beats_new(v)):
                    keep.append(v)
        depth += 1
    refresh = [v for v in keep if windows is not None and fatigued(windows.get(v, {}))]
    keep = [v for v in keep if v not in refresh]
    retire = [v for v in means if v not in keep]
    winner = max(means, key=lambda v: means[v]) if means else None
    return LearnPlan(
        keep, retire, [v for v in stopped if v in retire], means, pb, winner, winners, refresh
    )


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


def learn_round(
    optimizer: Optimizer,
    campaign_id: str,
    round_: int,
    evidence: CampaignEvidence,
    told: Mapping[int, str | None],
    incumbents: int,
    *,
    objectives: Sequence[str] = (),
    refresh: bool = True,
    paused: Collection[str] = (),
    stop_below: float = STOP_BELOW,
    min_impressions: float = STOP_MIN_IMPRESSIONS,
    places: int | None = None,
    rounds_left: int | None = None,
) -> LearnPlan:
    """The learn step after window `round_`, on the campaign's `evidence` through it.

    `told` maps each of this round's trials to its deployed variant, or to None when the
    variant did not ship (blocked, rejected): that trial is told FAIL so the sampler learns
    the infeasible region; a deployed one is told its KPI (`trial_value`), or one value
    per objective (`objective_values`) in a multi-objective campaign. Then `plan_learn`
    decides on the live variants (`places`: the campaign's variants per round, so live
    creatives that beat a new one are kept beyond `incumbents`); ads in `paused` (rolled
    back) leave the plan; each worn-out creative (`refresh`) gets a fresh copy queued on
    the study for the next round.
    Writes nothing but the study: the caller records the plan.
    """
    stats = evidence.arms
    clicks, conversions = (
        (evidence.arms_for(KpiGoal.ctr), evidence.arms_for(KpiGoal.conversions))
        if objectives
        else ({}, {})
    )
    for trial_number, variant_id in told.items():
        value: float | list[float] | None = None
        if variant_id is not None:
            value = (
                objective_values(variant_id, clicks, conversions, objectives)
                if objectives
                else trial_value(variant_id, stats)
            )
        optimizer.tell(campaign_id, trial_number, value)
    plan = plan_learn(
        stats,
        evidence.shares,
        incumbents,
        stable_seed(campaign_id, round_, "learn"),
        stop_below,
        min_impressions,
        models=evidence.models,
        windows=evidence.windows if refresh else None,
        places=places,
        rounds_left=rounds_left,
        window_impressions=_window_impressions(evidence) if rounds_left is not None else None,
    )
    if paused:
        plan = _without(plan, set(paused))
    # a worn-out creative is retired and a fresh image of its face runs next round
    for vid in plan.refresh:
        # the fresh image asks for what the worn-out one was asked for, not for what its
        # pixels happened to show
        face = evidence.requested.get(vid, evidence.faces[vid])
        optimizer.enqueue_refresh(campaign_id, vid, face, evidence.live[vid])
    return plan


def _window_impressions(evidence: CampaignEvidence) -> dict[str, float]:
    """Impressions per segment in the last observed window: what one more window buys."""
    out = dict.fromkeys(evidence.shares, 0.0)
    for o in evidence.observations:
        if o.round == evidence.now and o.segment in out:
            out[o.segment] += o.impressions
    return out


def _without(plan: LearnPlan, paused: set[str]) -> LearnPlan:
    """The plan with rolled-back ads taken out: a paused ad is neither kept nor the winner
    (they were paused already, so they are not retired a second time either)."""
    allowed = {k: m for k, m in plan.posterior_mean.items() if k not in paused}
    winner = plan.winner if plan.winner not in paused else None
    if winner is None and allowed:
        winner = max(allowed, key=lambda k: allowed[k])
    return dataclasses.replace(
        plan,
        keep=[i for i in plan.keep if i not in paused],
        retire=[i for i in plan.retire if i not in paused],
        stopped=[i for i in plan.stopped if i not in paused],
        refresh=[i for i in plan.refresh if i not in paused],
        winner=winner,
        winners={seg: v for seg, v in plan.winners.items() if v not in paused},
    )


__all__ = [
    "REFRESH_DROP",
    "REFRESH_Z",
    "STOP_BELOW",
    "STOP_MIN_IMPRESSIONS",
    "LearnPlan",
    "fatigued",
    "learn_round",
    "new_creatives_worth",
    "objective_values",
    "plan_learn",
    "settled_segments",
    "trial_value",
]
