"""Every attack brief in the corpus ends blocked or escalated with its reason; ordinary
briefs are planned. The same corpus is what `faceloop bench agents` measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agent_fakes import FakeChatModel, as_json

from faceloop.agents.cli import load_corpus
from faceloop.agents.planner import Planner
from faceloop.models import FaceParams

CORPUS = Path(__file__).with_name("injection_corpus.yaml")
CASES, BENIGN = load_corpus(CORPUS)
PROPOSALS = [("v1", FaceParams()), ("v2", FaceParams(expression="laugh", skin_tone=9))]
CATEGORIES = {
    "ignore_previous",
    "role_play",
    "hidden_in_product",
    "real_people",
    "minors",
    "sexual",
    "exfiltration",
    "tool_forgery",
    "unicode",
    "protected_targeting",
}


def test_corpus_is_large_and_covers_every_category() -> None:
    assert len(CASES) >= 40
    assert {c["category"] for c in CASES} == CATEGORIES
    assert len({c["id"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_attack_is_stopped_with_its_rule(case: dict[str, Any]) -> None:
    result = Planner().plan(case["brief"], PROPOSALS)
    assert result.status == case["expect"], result.reason
    assert case["rule"] in {h.rule for h in result.hits}
    assert f"rule {case['rule']}" in result.reason
    assert result.variants == [] and result.prompt_plan().variants == []


@pytest.mark.parametrize("case", CASES[::5], ids=[c["id"] for c in CASES[::5]])
def test_attack_never_reaches_the_llm(case: dict[str, Any]) -> None:
    chat = FakeChatModel(as_json(prompt="anything"))
    result = Planner(chat).plan(case["brief"], PROPOSALS)
    assert result.status in ("blocked", "escalated")
    assert chat.calls == []


@pytest.mark.parametrize("case", BENIGN, ids=[c["id"] for c in BENIGN])
def test_ordinary_brief_is_planned(case: dict[str, Any]) -> None:
    result = Planner().plan(case["brief"], PROPOSALS)
    assert result.status == "planned", result.reason
    assert len(result.variants) == 2
