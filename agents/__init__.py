"""faceloop.agents: the brief planner (LangGraph) and the KPI analyst.

The deterministic planner is the embedded default; any OpenAI-compatible endpoint is used
when FACELOOP_LLM_MODEL is set. Heavy modules (langgraph, openai) load on first use, so the
workflow code that imports this package for activity names stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from faceloop.agents.models import (
    AnalystSummary,
    AnalyzeInput,
    BriefFacts,
    PlanFallback,
    PlanResult,
    VariantKpi,
)
from faceloop.agents.settings import AgentSettings, get_agent_settings

__all__ = [
    "AgentSettings",
    "AnalystActivities",
    "AnalystSummary",
    "AnalyzeInput",
    "BriefFacts",
    "ChatModel",
    "OpenAIChatModel",
    "PlanFallback",
    "PlanResult",
    "Planner",
    "PlannerActivities",
    "VariantKpi",
    "analyze",
    "build_planner",
    "get_agent_settings",
]

_LAZY = {
    "AnalystActivities": "faceloop.agents.activities",
    "PlannerActivities": "faceloop.agents.activities",
    "build_planner": "faceloop.agents.activities",
    "ChatModel": "faceloop.agents.llm",
    "OpenAIChatModel": "faceloop.agents.llm",
    "Planner": "faceloop.agents.planner.graph",
    "analyze": "faceloop.agents.analyst",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'faceloop.agents' has no attribute {name!r}")
