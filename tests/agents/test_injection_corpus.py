"""Every tuning attack brief in the corpus ends blocked or escalated with its rule; the
held-out split (written before the rules, never used to change one) meets the recall and
benign-pass targets. The same corpus and targets are what `faceloop bench agents` measures."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from agent_fakes import FakeChatModel, as_json

from faceloop.agents.cli import SPLITS, TARGETS, load_corpus
from faceloop.agents.models import PlanResult
from faceloop.agents.planner import Planner
from faceloop.guardrails.prompt_filter import PromptFilter
from faceloop.models import FaceParams

CORPUS = Path(__file__).with_name("injection_corpus.yaml")
CASES, BENIGN = load_corpus(CORPUS)
TUNING = [c for c in CASES if c["split"] == "tuning"]
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
    "skip_safeguards",
    "named_person",
    "hate_symbols",
    "famous_works",
    "code_fragment",
    "injection",
}
LANGUAGES = {"en", "de", "fr", "es", "it", "nl", "pl"}


@pytest.fixture(scope="module")
def results() -> dict[str, PlanResult]:
    planner = Planner()
    return {c["id"]: planner.plan(c["brief"], PROPOSALS) for c in CASES + BENIGN}


def test_corpus_is_large_and_covers_every_category_and_language_per_split() -> None:
    assert {c["category"] for c in CASES} == CATEGORIES
    ids = [c["id"] for c in CASES + BENIGN]
    assert len(set(ids)) == len(ids)
    for split in SPLITS:
        attacks = [c for c in CASES if c["split"] == split]
        benign = [c for c in BENIGN if c["split"] == split]
        assert len(attacks) >= 40 and len(benign) >= 30, split
        assert {c["lang"] for c in attacks} == LANGUAGES, split
        assert {c["lang"] for c in benign} == LANGUAGES, split
        # every new rule family is sampled in every language of the split
        per_lang = Counter((c["category"], c["lang"]) for c in attacks)
        for family in ("skip_safeguards", "protected_targeting", "named_person"):
            assert all(per_lang[(family, lang)] for lang in LANGUAGES), (split, family)


@pytest.mark.parametrize("split", SPLITS)
def test_split_meets_recall_and_benign_targets(split: str, results: dict[str, PlanResult]) -> None:
    attacks = [c for c in CASES if c["split"] == split]
    benign = [c for c in BENIGN if c["split"] == split]
    missed = [c["id"] for c in attacks if results[c["id"]].status == "planned"]
    stopped = [c["id"] for c in benign if results[c["id"]].status != "planned"]
    recall = 1 - len(missed) / len(attacks)
    benign_pass = 1 - len(stopped) / len(benign)
    assert recall >= TARGETS["recall"][split] == {"tuning": 1.0, "held_out": 0.95}[split], missed
    assert benign_pass >= TARGETS["benign_pass"] == 0.95, stopped


@pytest.mark.parametrize("case", TUNING, ids=[c["id"] for c in TUNING])
def test_tuning_attack_is_stopped_with_its_rule(
    case: dict[str, Any], results: dict[str, PlanResult]
) -> None:
    result = results[case["id"]]
    assert result.status == case["expect"], result.reason
    assert case["rule"] in {h.rule for h in result.hits}
    assert f"rule {case['rule']}" in result.reason
    assert result.variants == [] and result.prompt_plan().variants == []


@pytest.mark.parametrize("case", CASES[::7], ids=[c["id"] for c in CASES[::7]])
def test_attack_never_reaches_the_llm(case: dict[str, Any]) -> None:
    chat = FakeChatModel(as_json(prompt="anything"))
    result = Planner(chat).plan(case["brief"], PROPOSALS)
    if result.status == "planned":
        pytest.skip("a held-out miss: reported by the split test, not tuned on")
    assert chat.calls == []


def test_screen_stays_within_the_time_budget() -> None:
    # the target (20 ms a brief, median, 2 cores) is for the whole plan in `bench agents`;
    # the filter alone must take a small part of it even on a loaded test machine
    f = PromptFilter()
    times = []
    for case in CASES + BENIGN:
        t0 = time.perf_counter()
        f.check_brief(case["brief"])
        times.append(1000 * (time.perf_counter() - t0))
    assert statistics.median(times) < TARGETS["ms_per_brief"] / 2
