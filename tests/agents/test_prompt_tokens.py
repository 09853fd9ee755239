"""Deterministic prompts fit SDXL's CLIP text encoders: 77 tokens, every parameter inside.

Counted with instant-clip-tokenizer (a dependency: the planner counts LLM drafts with it):
OpenAI's CLIP BPE tokenizer with its vocabulary compiled in, the tokenizer SDXL's two text
encoders use. A prompt past 77 tokens is cut by the pipeline, so a parameter phrase past
token 75 would never reach the image.
"""

from __future__ import annotations

import itertools
import random
import string
from typing import Any

import instant_clip_tokenizer
import pytest

from faceloop.agents.cli import DEFAULT_CORPUS, load_corpus
from faceloop.agents.planner import deterministic as det
from faceloop.briefs import load_brief
from faceloop.examples import example_path
from faceloop.models import (
    AGE_BANDS,
    BACKGROUNDS,
    EXPRESSIONS,
    FRAMINGS,
    GENDER_PRESENTATIONS,
    LIGHTINGS,
    STYLES,
    AudienceSegment,
    Brief,
    FaceParams,
)

TOKENIZER = instant_clip_tokenizer.Tokenizer()
CONTENT = det.CLIP_TOKENS - 2  # what is left after the start and end tokens


def ids(text: str) -> list[int]:
    return list(TOKENIZER.encode(text))


VALUES: dict[str, tuple[Any, ...]] = {
    "age_band": AGE_BANDS,
    "expression": EXPRESSIONS,
    "gender_presentation": GENDER_PRESENTATIONS,
    "skin_tone": tuple(range(1, 11)),
    "lighting": LIGHTINGS,
    "background": BACKGROUNDS,
    "framing": FRAMINGS,
    "style": STYLES,
}


def full_grid() -> list[FaceParams]:
    """All 283,500 combinations (model_construct: every value is valid by construction)."""
    names = list(VALUES)
    return [
        FaceParams.model_construct(**dict(zip(names, combo, strict=True)))
        for combo in itertools.product(*VALUES.values())
    ]


def value_grid() -> list[FaceParams]:
    """Every value of every categorical parameter, both ends of the skin tone scale, and
    the combination of every table's longest phrase."""
    out = [FaceParams()]
    for field, values in VALUES.items():
        out += [FaceParams.model_validate({field: v}) for v in values]
    longest = {
        field: max(table.items(), key=lambda kv: len(ids(kv[1])))[0]
        for field, table in det._TABLES.items()
    }
    return [*out, FaceParams.model_validate(longest)]


def _brief(product: str, tone: str) -> Brief:
    return Brief(
        product=product,
        message="m",
        tone=tone,
        audience=[AudienceSegment(name="a")],
        markets=["US"],
        budget_impressions=1000,
    )


def adversarial_briefs() -> list[Brief]:
    """Brief text that tokenizes badly: invented words, digits, punctuation, non-Latin."""
    rng = random.Random(7)
    gibberish = " ".join(
        "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(2, 14)))
        for _ in range(30)
    )
    return [
        _brief(gibberish[:200], gibberish[200:400]),
        _brief("Qxzv Brrkt 9000 X7-Z3 ultra", "zqx, vbnm, kjh, wqz, plk, xcv, mnb, fgh, tyu, iop"),
        _brief("1234567890 " * 18, "9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1"),
        _brief("((((....))))!!!???%%%&&&''''//++--", ";;;:::,,,...!!!???"),
        _brief("Crème brûlée İstanbul straße ﬁne Ωμέγα 日本語の製品 Ünïcödé", "ĞÜŞİÖÇ, 静かな, ヤ"),
        _brief("a " * 100, "b, " * 60),
    ]


def all_briefs() -> list[Brief]:
    attacks, benign = load_corpus(DEFAULT_CORPUS)
    return [
        load_brief(example_path("brief.yaml")),
        *(c["brief"] for c in attacks + benign),
        *adversarial_briefs(),
    ]


def test_parameter_tokens_is_the_true_maximum_over_every_combination() -> None:
    fixed = len(ids(", mood:")) + len(ids(", ad for"))
    most = max(len(ids(det.describe(p))) for p in full_grid())
    assert most + fixed == det.PARAMETER_TOKENS, (
        f"the parameter phrases now take up to {most} + {fixed} CLIP tokens: set "
        f"PARAMETER_TOKENS = {most + fixed} in agents/planner/deterministic.py"
    )
    assert det.BRIEF_TOKENS >= 25, "parameter phrases leave too little room for the brief"


def test_token_bound_is_never_below_the_real_count() -> None:
    words = set()
    for brief in all_briefs():
        for text in (brief.product, brief.tone, brief.message, det._quote(brief.product)):
            words.update(text.split())
    rng = random.Random(3)
    alphabet = string.printable.strip() + "éüßİıǅﬁΩжヤ静"
    words.update(
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20))) for _ in range(3000)
    )
    assert len(words) > 3000
    for w in words:
        assert len(ids(w)) <= det.token_bound(w), w
    # and on whole texts: whitespace never adds tokens
    assert len(ids("warm,  confident ;honest")) <= det.token_bound("warm,  confident ;honest")


@pytest.mark.parametrize("brief", all_briefs(), ids=lambda b: b.product[:24])
def test_every_prompt_fits_in_77_tokens_with_every_parameter_inside(brief: Brief) -> None:
    negative = ids(det.NEGATIVE_PROMPT)
    assert len(negative) + 2 <= det.CLIP_TOKENS
    for p in value_grid():
        prompt, neg = det.prompt_for(brief, p)
        assert neg == det.NEGATIVE_PROMPT
        tokens = ids(prompt)
        assert len(tokens) + 2 <= det.CLIP_TOKENS, (len(tokens), prompt)
        # the parameters come first: the prompt starts with exactly their tokens ...
        head = ids(det.describe(p))
        assert tokens[: len(head)] == head
        # ... and each parameter's phrase lies inside what the encoder reads
        kept = tokens[:CONTENT]
        for field, phrase in det.required_phrases(p).items():
            sub = ids(phrase)
            starts = [i for i in range(len(kept) - len(sub) + 1) if kept[i : i + len(sub)] == sub]
            assert starts, f"{field} ({phrase!r}) is not inside the first 77 tokens of {prompt!r}"
        assert det.expression_problems(prompt, p) == []


def test_a_long_brief_keeps_whole_tone_clauses_and_drops_a_product_that_does_not_fit() -> None:
    brief = load_brief(example_path("brief.yaml"))
    context = det.brief_context(brief)
    # "no exaggerated claims" is left out (CLIP reads no negation); the product name does
    # not fit in what the tone leaves of the budget, so it is left out whole, not cut
    assert context == "mood: warm, confident, honest"
    assert det.token_bound("warm, confident, honest") <= det.BRIEF_TOKENS
    short = _brief("Aurea night cream", "elegant, serene")
    assert det.brief_context(short) == "mood: elegant, serene, ad for Aurea night cream"
    # the same context for every variant of a brief: variants differ only in parameters
    prompts = {det.prompt_for(short, p)[0].split(", mood: ")[1] for p in value_grid()}
    assert prompts == {"elegant, serene, ad for Aurea night cream"}


def test_brief_text_cannot_express_or_change_a_parameter() -> None:
    brief = _brief("Sun cream for fair skin", "warm smile, natural daylight; delight skin care")
    p = FaceParams(skin_tone=9, expression="serious", lighting="dramatic")
    prompt, _ = det.prompt_for(brief, p)
    assert det.expression_problems(prompt, p) == []
    assert "fair skin" not in prompt and "warm smile" not in prompt
    # whole words only: "delight skin care" is not "light skin"
    assert "delight skin care" in prompt
