"""The brief planner: brief + FaceParams -> one checked prompt per variant.

deterministic  the phrase tables, `prompt_for`, `plan`, `disclosure_for` and the parameter
               check: no model, stable for the same input; the embedded default and the
               fallback of every LLM node.
graph          `Planner`, the LangGraph StateGraph (screen -> extract -> write -> disclose ->
               check) that asks a ChatModel first when one is configured.

The graph loads langgraph (about 1 s), so it is imported on first use: code that needs only
the deterministic tables stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from faceloop.agents.planner.deterministic import (
    CLIP_TOKENS,
    SAFETY_NEGATIVES,
    brief_context,
    complete_negative,
    describe,
    disclosure_for,
    expression_problems,
    plan,
    prompt_for,
    required_phrases,
    token_bound,
)

if TYPE_CHECKING:
    from faceloop.agents.planner.graph import Planner, PlannerState, PromptDraft, build_graph

__all__ = [
    "CLIP_TOKENS",
    "SAFETY_NEGATIVES",
    "Planner",
    "PlannerState",
    "PromptDraft",
    "brief_context",
    "build_graph",
    "complete_negative",
    "describe",
    "disclosure_for",
    "expression_problems",
    "plan",
    "prompt_for",
    "required_phrases",
    "token_bound",
]

_LAZY = {"Planner", "PlannerState", "PromptDraft", "build_graph"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("faceloop.agents.planner.graph"), name)
    raise AttributeError(f"module 'faceloop.agents.planner' has no attribute {name!r}")
