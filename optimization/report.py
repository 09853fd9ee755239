"""The optimisation sections of the campaign report: an estimated regret curve and the
Pareto front of a multi-objective campaign.

A live campaign has no ground truth, so its regret is *estimated*: each impression is
charged the gap between the posterior mean KPI of the best variant in its segment (over
the whole campaign) and that of the variant it went to. `faceloop bench optimize` plots the
true regret, against the sandbox's known best face (`--plot`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from faceloop.models import CampaignConfig, KpiGoal, KpiObservation
from faceloop.optimization.allocation import posterior_mean
from faceloop.optimization.evidence import arms_from_observations
from faceloop.optimization.plots import pareto_plot, regret_plot
from faceloop.optimization.study import Optimizer

REGRET_PLOT = "regret.png"
PARETO_PLOT = "pareto.png"


def estimated_regret(observations: Sequence[KpiObservation], goal: KpiGoal) -> dict[str, Any]:
    """Cumulative estimated regret per round, in successes (clicks or conversions) against
    each segment's posterior best variant. Empty `points` without observations."""
    rows = [o for o in observations if o.impressions > 0]
    if not rows:
        return {"kind": "estimated", "kpi": goal.value, "points": [], "best": {}}
    segments = sorted({o.segment for o in rows})
    vids = sorted({o.variant_id for o in rows})
    now = max(o.round for o in rows)
    stats = arms_from_observations(rows, vids, segments, goal, now)
    means: dict[str, dict[str, float]] = {}
    best: dict[str, str] = {}
    for s in segments:
        seen = [a for a in stats[s] if a.impressions > 0]
        means[s] = posterior_mean(seen)
        best[s] = max(means[s], key=lambda v: means[s][v])
    by_round: dict[int, tuple[float, float]] = {}
    for o in rows:
        gap = means[o.segment][best[o.segment]] - means[o.segment][o.variant_id]
        n, r = by_round.get(o.round, (0.0, 0.0))
        by_round[o.round] = (n + o.impressions, r + o.impressions * gap)
    points = []
    impressions = regret = 0.0
    for rnd in sorted(by_round):
        n, r = by_round[rnd]
        impressions += n
        regret += r
        points.append({"round": rnd, "impressions": int(impressions), "regret": round(regret, 2)})
    return {
        "kind": "estimated",
        "against": "each segment's posterior best variant over the whole campaign",
        "kpi": goal.value,
        "best": best,
        "best_rate": {s: means[s][best[s]] for s in segments},
        "points": points,
    }


def regret_section(
    observations: Sequence[KpiObservation], goal: KpiGoal, out_dir: Path
) -> dict[str, Any]:
    """`estimated_regret` plus its plot (REGRET_PLOT in out_dir; None without data)."""
    data = estimated_regret(observations, goal)
    path = out_dir / REGRET_PLOT
    if not data["points"]:
        path.unlink(missing_ok=True)
        data["plot"] = None
        return data
    points = data["points"]
    per_round = [points[0]["impressions"]] + [
        b["impressions"] - a["impressions"] for a, b in itertools.pairwise(points)
    ]
    unit = "clicks" if goal == KpiGoal.ctr else "conversions"
    regret_plot(
        {"this campaign": [p["regret"] for p in points]},
        per_round,
        path,
        title=f"Estimated cumulative regret ({unit} short of the posterior best)",
        estimated=True,
        unit=unit,
    )
    data["plot"] = REGRET_PLOT
    return data


def pareto_section(
    optimizer: Optimizer | None, campaign_id: str, config: CampaignConfig, out_dir: Path
) -> dict[str, Any]:
    """The Pareto front of a multi-objective campaign: every finished trial's values, the
    non-dominated ones with their faces, and a scatter plot (PARETO_PLOT). A single-objective
    campaign gets a note instead."""
    path = out_dir / PARETO_PLOT
    if not config.objectives:
        path.unlink(missing_ok=True)
        return {
            "objectives": [],
            "note": "single-objective campaign: every variant is ranked by the brief's KPI, so "
            "there is no Pareto front. Set objectives (e.g. [ctr, cpa]) in the campaign "
            "config for a multi-objective study.",
            "points": [],
            "front": [],
            "plot": None,
        }
    names = list(config.objectives)
    if optimizer is None:
        path.unlink(missing_ok=True)
        return {
            "objectives": names,
            "note": "the report was built without the campaign's Optuna study",
            "points": [],
            "front": [],
            "plot": None,
        }
    trials = [
        t
        for t in optimizer.trials(campaign_id)
        if t.state == TrialState.COMPLETE and t.values is not None
    ]
    values = [dict(zip(names, t.values, strict=True)) for t in trials]
    points = [{"trial_number": t.number, "values": v} for t, v in zip(trials, values, strict=True)]
    best = optimizer.pareto_front(campaign_id)
    front = [
        {
            "trial_number": p.trial_number,
            "params": p.params.model_dump(mode="json"),
            "values": p.values,
        }
        for p in best
    ]
    plot = None
    if front:
        pareto_plot(values, [p.values for p in best], names, path)
        plot = PARETO_PLOT
    else:
        path.unlink(missing_ok=True)
    return {
        "objectives": names,
        "note": "" if front else "no variant has finished its first KPI window yet",
        "points": points,
        "front": front,
        "plot": plot,
    }


__all__ = ["estimated_regret", "pareto_section", "regret_section"]
