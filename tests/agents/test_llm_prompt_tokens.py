"""LLM drafts are held to SDXL's 77 CLIP tokens, like the deterministic prompts.

The LLM is FakeChatModel (a scripted stand-in); token counts are checked against
instant-clip-tokenizer directly, the CLIP BPE tokenizer SDXL's text encoders use.
"""

from __future__ import annotations

import json

import instant_clip_tokenizer
import pytest
from agent_fakes import FakeChatModel, as_json

from faceloop.agents.llm import Message
from faceloop.agents.planner import deterministic as det
from faceloop.agents.planner import tokens
from faceloop.agents.planner.graph import Planner, PromptDraft
from faceloop.briefs import load_brief
from faceloop.examples import example_path
from faceloop.models import AudienceSegment, Brief, FaceParams

TOKENIZER = instant_clip_tokenizer.Tokenizer()

BRIEF = Brief(
    product="Lumen SPF 50",
    message="Everyday sun protection.",
    audience=[AudienceSegment(name="all", description="adults")],
    markets=["US"],
    tone="warm",
    budget_impressions=1000,
)
P = FaceParams(expression="laugh", skin_tone=8, lighting="golden_hour")
FACTS = as_json(product="Lumen SPF 50", audience=["all"], markets=["US"], tone="warm")
# plain scene words that name no parameter value and match no filter rule
FILLER = (
    "ad campaign image, sharp focus, high detail, clean composition, crisp edges, "
    "professional retouching, natural pores, realistic hair, catchlight in the eyes, "
    "shallow depth of field, bokeh, eighty five millimeter lens, wide aperture, "
    "fine film grain, subtle vignette, balanced colors, gentle contrast, matte"
)


def ids(text: str) -> list[int]:
    return list(TOKENIZER.encode(text))


def phrases_of(messages: list[Message]) -> list[str]:
    """The required phrases the write node's system message lists."""
    return [ln[2:] for ln in messages[0]["content"].splitlines() if ln.startswith("- ")]


def long_prompt(messages: list[Message]) -> str:
    # valid in every other way: all phrases, nothing else, one plain line; but last
    return as_json(prompt=FILLER + ", " + ", ".join(phrases_of(messages)), negative_prompt="")


def short_prompt(messages: list[Message]) -> str:
    return as_json(prompt=", ".join(phrases_of(messages)) + ", sharp focus", negative_prompt="")


# ------------------------------------------------------------------ token functions


def test_token_count_matches_the_clip_tokenizer() -> None:
    text = "photorealistic photo, close-up portrait"
    assert tokens.clip_token_count(text) == len(ids(text)) == 8
    # case and spacing change nothing: the encoders see lower-cased words
    assert tokens.clip_token_count("Photorealistic  PHOTO ,close-up portrait") == 8
    assert tokens.clip_token_count(det.NEGATIVE_PROMPT) == len(ids(det.NEGATIVE_PROMPT)) == 40
    assert tokens.clip_token_count("") == 0
    assert tokens.CONTENT_TOKENS == 75


def test_total_bound_is_75_tokens_without_start_and_end() -> None:
    p = FaceParams()
    head = det.describe(p)
    pad = 75 - len(ids(head + ", "))
    assert pad > 0
    fits = head + ", " + "photo " * pad
    assert len(ids(fits)) == 75 and tokens.prompt_token_problems(fits, p) == []
    (problem,) = tokens.prompt_token_problems(fits + " photo", p)
    assert problem.startswith("prompt is 76 CLIP tokens; SDXL reads 75 (77 with start and end)")


def test_a_phrase_ending_past_75_is_named_with_its_end_token() -> None:
    p = FaceParams(expression="smile")
    others = [ph for f, ph in det.required_phrases(p).items() if f != "expression"]
    # "red, " is two tokens: 37 of them end at token 74, and "warm smile" takes two more
    prompt = ", ".join(others) + ", " + "red, " * 37 + "warm smile"
    head = len(ids(", ".join(others) + ", "))
    problems = tokens.prompt_token_problems(prompt, p)
    assert problems == [
        f"prompt is {head + 76} CLIP tokens; SDXL reads 75 (77 with start and end): "
        "shorten it, parameter phrases first",
        f"expression phrase 'warm smile' ends at token {head + 76}, past SDXL's 75",
    ]
    # the end the prefix count gives is where the phrase's tokens lie in the whole prompt
    whole, sub = ids(prompt), ids("warm smile")
    assert whole[head + 74 : head + 76] == sub
    # the other phrases come first and stay inside: only the late one is named
    assert not any(f in " ".join(problems) for f in ("age_band", "skin_tone", "style"))


def test_a_phrase_ending_at_token_75_is_read() -> None:
    p = FaceParams(expression="smile")
    others = ", ".join(ph for f, ph in det.required_phrases(p).items() if f != "expression")
    pad = 75 - len(ids(others + ", warm smile"))
    prompt = others + ", " + "photo " * pad + "warm smile"
    assert len(ids(prompt)) == 75
    assert tokens.prompt_token_problems(prompt, p) == []
    assert any("ends at token 76" in x for x in tokens.prompt_token_problems("x " + prompt, p))


def test_a_missing_phrase_is_left_to_the_parameter_check() -> None:
    assert tokens.prompt_token_problems("a portrait", FaceParams()) == []


def test_deterministic_prompts_have_no_token_problems() -> None:
    brief = load_brief(example_path("brief.yaml"))
    for field in ("age_band", "background", "lighting", "framing"):
        for value in det._TABLES[field]:
            p = FaceParams.model_validate({field: value})
            prompt, negative = det.prompt_for(brief, p)
            assert tokens.prompt_token_problems(prompt, p) == []
            assert tokens.negative_token_problems(negative) == []


def test_negative_prompt_bound_counts_the_appended_safety_terms() -> None:
    # the safety terms take 40 tokens; each "photo, " before them adds two
    fits = det.complete_negative("photo, " * 17)
    assert len(ids(fits)) == 74 and tokens.negative_token_problems(fits) == []
    completed = det.complete_negative("photo, " * 18)
    assert len(ids(completed)) == 76
    (problem,) = tokens.negative_token_problems(completed)
    assert problem.startswith("negative prompt is 76 CLIP tokens")
    assert "the safety terms take 40" in problem


# ------------------------------------------------------------------ the planner's LLM path


def test_a_long_llm_prompt_falls_back_with_the_token_reason() -> None:
    phrases = list(det.required_phrases(P).values())
    draft = json.loads(long_prompt([{"role": "system", "content": "\n- " + "\n- ".join(phrases)}]))
    assert len(ids(draft["prompt"])) == 100 and len(draft["prompt"]) <= 600
    # valid in every way but length: the token bound is what rejects it
    assert det.expression_problems(draft["prompt"], P) == []

    chat = FakeChatModel(FACTS, long_prompt)
    result = Planner(chat, max_attempts=2).plan(BRIEF, [("v1", P)])
    assert result.status == "planned"
    (v,) = result.variants
    assert v.written_by == "deterministic" and v.prompt == det.prompt_for(BRIEF, P)[0]
    (fb,) = result.fallbacks
    assert fb.node == "write_prompt" and fb.variant_id == "v1" and fb.attempts == 2
    assert "prompt is 100 CLIP tokens" in fb.reason
    assert "past SDXL's 75" in fb.reason
    # the retry told the model why, so it could shorten the prompt
    assert "CLIP tokens" in chat.calls[2][-1]["content"]


def test_a_short_llm_prompt_is_used() -> None:
    result = Planner(FakeChatModel(FACTS, short_prompt)).plan(BRIEF, [("v1", P)])
    assert result.fallbacks == []
    (v,) = result.variants
    assert v.written_by == "llm" and v.prompt.endswith(", sharp focus")
    assert len(ids(v.prompt)) <= 75 and len(ids(v.negative_prompt)) <= 75


def test_a_long_draft_retried_and_shortened_is_used() -> None:
    chat = FakeChatModel(FACTS, long_prompt, short_prompt)
    result = Planner(chat, max_attempts=2).plan(BRIEF, [("v1", P)])
    assert result.fallbacks == []
    assert result.variants[0].written_by == "llm"
    assert "CLIP tokens" in chat.calls[2][-1]["content"]


def test_a_long_llm_negative_prompt_is_a_problem() -> None:
    def long_negative(messages: list[Message]) -> str:
        out = json.loads(short_prompt(messages))
        out["negative_prompt"] = FILLER
        return json.dumps(out)

    result = Planner(FakeChatModel(FACTS, long_negative)).plan(BRIEF, [("v1", P)])
    (v,) = result.variants
    assert v.written_by == "deterministic" and v.negative_prompt == det.NEGATIVE_PROMPT
    assert "negative prompt is" in result.fallbacks[0].reason
    draft = PromptDraft(prompt="x", negative_prompt=FILLER)
    assert any(
        x.startswith("negative prompt is") for x in Planner().draft_problems(draft, FaceParams())
    )


def test_without_the_tokenizer_the_count_is_an_upper_bound_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # where instant-clip-tokenizer has no wheel it is not installed: counts fall back to
    # deterministic.token_bound, which never undercounts, and the problems name the bound
    monkeypatch.setattr(tokens, "EXACT", False)
    prompt = det.prompt_for(BRIEF, P)[0]
    assert tokens.clip_token_count(prompt) == det.token_bound(prompt)
    assert tokens.clip_token_count(prompt) >= len(ids(prompt))
    short = ", ".join(det.required_phrases(P).values())
    problems = tokens.prompt_token_problems(short + ", " + "x" * 80, P)
    assert problems and all("upper bound" in p for p in problems)
    # an over-long draft is still refused and recorded, never let through
    result = Planner(FakeChatModel(FACTS, long_prompt), max_attempts=1).plan(BRIEF, [("v1", P)])
    (v,) = result.variants
    assert v.written_by == "deterministic"
    assert "upper bound" in result.fallbacks[0].reason
