"""The numbers of a round: per-variant KPI totals (polars over the catalog's observations)
and what the campaign's Optuna study has learned (parameter importances).
"""

from __future__ import annotations

import optuna
import polars as pl
from optuna.trial import TrialState

from faceloop.agents.models import VariantKpi
from faceloop.models import FaceParams, KpiGoal

__all__ = ["MIN_TRIALS_FOR_IMPORTANCE", "importances", "round_kpis"]

# on fewer completed trials than this an importance ranks noise; say so instead
MIN_TRIALS_FOR_IMPORTANCE = 6


def round_kpis(
    frame: pl.DataFrame, round_: int, goal: KpiGoal, params: dict[str, FaceParams]
) -> list[VariantKpi]:
    """Per-variant totals of one round, best first."""
    succ = "clicks" if goal == KpiGoal.ctr else "conversions"
    rows = (
        frame.filter(pl.col("round") == round_)
        .group_by("variant_id")
        .agg(pl.col("impressions").sum(), pl.col("clicks").sum(), pl.col("conversions").sum())
        .with_columns(
            (pl.col(succ) / pl.when(pl.col("impressions") > 0).then(pl.col("impressions")))
            .fill_null(0.0)
            .alias("rate")
        )
        .sort(["rate", "impressions", "variant_id"], descending=[True, True, False])
    )
    out = []
    for r in rows.iter_rows(named=True):
        p = params.get(r["variant_id"])
        out.append(
            VariantKpi(
                variant_id=r["variant_id"],
                round=round_,
                impressions=r["impressions"],
                clicks=r["clicks"],
                conversions=r["conversions"],
                rate=float(r["rate"]),
                params=p.model_dump() if p else {},
            )
        )
    return out


def importances(study: optuna.Study) -> tuple[int, dict[str, float], str]:
    """(completed trials, importances, a note saying why there are none, if so)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    n = len(done)
    if n < MIN_TRIALS_FOR_IMPORTANCE:
        return (
            n,
            {},
            f"parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCE} completed "
            f"trials; the study has {n} so far",
        )
    if len({tuple(t.values) for t in done}) < 2:  # `values`: also a multi-objective study
        return n, {}, f"all {n} completed trials scored the same, so no parameter stands out"
    try:
        # PED-ANOVA: native in Optuna (fANOVA needs scikit-learn), fast on few trials
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as exc:
        return n, {}, f"parameter importances could not be computed: {exc}"
    return n, {k: round(float(v), 3) for k, v in imp.items()}, ""
