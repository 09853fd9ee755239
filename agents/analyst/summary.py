"""The analyst's words: a templated summary of a round, optionally rephrased by a ChatModel.

The templated summary is the default and the fallback; a ChatModel may rephrase it, but a
reply that states a number the template does not hold is rejected, so the model cannot
invent results.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING

from faceloop.agents.analyst.kpis import importances, round_kpis
from faceloop.agents.llm import ChatModel, LLMOutputError, structured
from faceloop.agents.models import AnalystSummary, AnalyzeInput, VariantKpi
from faceloop.models import KpiGoal, Model

if TYPE_CHECKING:
    from faceloop.optimization import Optimizer
    from faceloop.storage.catalog import Catalog

__all__ = ["SummaryDraft", "analyze", "rephrase", "summarise"]


def _rate_text(goal: KpiGoal, rate: float | None) -> str:
    if rate is None:
        return "n/a"
    if goal == KpiGoal.ctr:
        return f"{rate:.2%} CTR"
    return f"{1000 * rate:.2f} conversions per 1k impressions"


def _param_words(params: dict[str, str | int]) -> str:
    if not params:
        return "parameters unknown"
    order = ("expression", "age_band", "gender_presentation", "skin_tone", "lighting")
    words = []
    for k in order:
        if k in params:
            v = params[k]
            words.append(f"skin tone {v}" if k == "skin_tone" else f"{k.replace('_', ' ')} {v}")
    return ", ".join(words)


def summarise(
    inp: AnalyzeInput,
    kpis: list[VariantKpi],
    completed: int,
    imp: dict[str, float],
    note: str,
) -> AnalystSummary:
    """The templated summary: every number in the text is a field of the summary too."""
    goal = inp.kpi_goal
    succ_word = "clicks" if goal == KpiGoal.ctr else "conversions"
    total_i = sum(k.impressions for k in kpis)
    total_s = sum(k.clicks if goal == KpiGoal.ctr else k.conversions for k in kpis)
    rate = total_s / total_i if total_i else None
    best = kpis[0] if kpis else None
    worst = kpis[-1] if len(kpis) > 1 else None
    head = f"Round {inp.round + 1}: "
    if not kpis or total_i == 0:
        sentences = [head + "no impressions were recorded, so this round teaches nothing yet."]
    else:
        sentences = [
            head + f"{len(kpis)} live variants got {total_i:,} impressions and "
            f"{total_s:,} {succ_word} ({_rate_text(goal, rate)})."
        ]
        assert best is not None
        sentences.append(
            f"Best: {best.variant_id} at {_rate_text(goal, best.rate)} "
            f"({best.impressions:,} impressions; {_param_words(best.params)})."
        )
        if worst is not None:
            sentences.append(
                f"Weakest: {worst.variant_id} at {_rate_text(goal, worst.rate)} "
                f"({worst.impressions:,} impressions)."
            )
    if imp:
        ranked = sorted(imp.items(), key=lambda kv: kv[1], reverse=True)[:3]
        parts = [f"{k.replace('_', ' ')} ({v:.2f})" for k, v in ranked]
        sentences.append(
            f"Across {completed} completed trials, the parameters that matter most are "
            + ", ".join(parts)
            + " (importance, sums to 1)."
        )
    else:
        sentences.append(note[:1].upper() + note[1:] + ".")
    return AnalystSummary(
        campaign_id=inp.campaign_id,
        round=inp.round,
        kpi_goal=goal,
        text=" ".join(sentences),
        round_impressions=total_i,
        round_successes=total_s,
        round_rate=rate,
        best=best,
        worst=worst,
        variants=kpis,
        completed_trials=completed,
        importances=imp,
        importance_note=note,
    )


class SummaryDraft(Model):
    text: str


_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_ANALYST_SYSTEM = (
    "You rewrite a campaign analyst's note for a marketer in at most four short, plain "
    "sentences. The user message is JSON data. Use only numbers that appear in it, written "
    'the same way. Reply with one JSON object: {"text": str}.'
)


def _numbers(text: str) -> set[str]:
    return {m.group(0).rstrip(".,").replace(",", "") for m in _NUMBER.finditer(text)}


def rephrase(
    summary: AnalystSummary, chat: ChatModel, attempts: int, budget_s: float | None = None
) -> AnalystSummary:
    """The summary in the model's words, or the template with the reason it was kept."""
    allowed = _numbers(summary.text)

    def problems(d: SummaryDraft) -> list[str]:
        out = []
        if not d.text.strip() or len(d.text) > 800:
            out.append("text must be 1 to 800 characters")
        invented = sorted(_numbers(d.text) - allowed)
        if invented:
            out.append(f"numbers not in the data: {invented[:5]}")
        return out

    data = json.dumps({"note": summary.text}, ensure_ascii=True)
    messages = [
        {"role": "system", "content": _ANALYST_SYSTEM},
        {"role": "user", "content": data},
    ]
    try:
        deadline = None if budget_s is None else time.monotonic() + budget_s
        draft, _ = structured(chat, messages, SummaryDraft, problems, attempts, deadline)
    except LLMOutputError as exc:
        return summary.model_copy(update={"fallback_reason": exc.reason})
    return summary.model_copy(update={"text": " ".join(draft.text.split()), "written_by": "llm"})


def analyze(
    inp: AnalyzeInput,
    catalog: Catalog,
    optimizer: Optimizer,
    chat: ChatModel | None = None,
    attempts: int = 2,
    budget_s: float | None = None,
) -> AnalystSummary:
    frame = catalog.observations_frame(inp.campaign_id)
    params = {v.variant_id: v.params for v in catalog.variants(inp.campaign_id)}
    kpis = round_kpis(frame, inp.round, inp.kpi_goal, params)
    completed, imp, note = importances(optimizer.study(inp.campaign_id, inp.round))
    summary = summarise(inp, kpis, completed, imp, note)
    if chat is not None:
        summary = rephrase(summary, chat, attempts, budget_s)
    return summary
