"""The KPI analyst: after each round, the numbers of the round and what the study has learned,
in a few plain sentences.

kpis     per-variant totals of a round from the catalog's KPI observations (a polars frame)
         and parameter importances from the campaign's Optuna study.
summary  the templated summary (default and fallback), the optional ChatModel rephrasing
         that may not state a number the template does not hold, and `analyze`, which
         runs both for one round.
"""

from __future__ import annotations

from faceloop.agents.analyst.kpis import MIN_TRIALS_FOR_IMPORTANCE, importances, round_kpis
from faceloop.agents.analyst.summary import SummaryDraft, analyze, rephrase, summarise

__all__ = [
    "MIN_TRIALS_FOR_IMPORTANCE",
    "SummaryDraft",
    "analyze",
    "importances",
    "rephrase",
    "round_kpis",
    "summarise",
]
