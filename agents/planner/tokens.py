"""CLIP token counts of prompts, as SDXL's text encoders see them.

SDXL's two CLIP tokenizers keep 77 tokens (start, 75 of the prompt, end) and the pipeline
silently drops the rest, so a parameter phrase past token 75 never reaches the image. The
deterministic prompts are bounded without a vocabulary (`deterministic.token_bound`); an
LLM draft can say anything, so it is counted exactly with OpenAI's CLIP BPE, which
instant-clip-tokenizer ships with its vocabulary compiled in (numpy only, no torch).

Where that package has no wheel (CPython 3.13+, Linux on ARM) it is not installed, and the
count is `deterministic.token_bound`, an upper bound: no over-long draft gets through, but
many fitting ones are refused too (each refusal is a recorded fallback to the
deterministic prompt). `EXACT` says which count is in use; the problems name it.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

from faceloop.agents.planner import deterministic as det
from faceloop.models import FaceParams

__all__ = [
    "CONTENT_TOKENS",
    "clip_token_count",
    "negative_token_problems",
    "prompt_token_problems",
]

# what the encoders read of a prompt once the start and end tokens are in
CONTENT_TOKENS = det.CLIP_TOKENS - 2
# whether counts are exact (the CLIP tokenizer is installed) or an upper bound
EXACT = importlib.util.find_spec("instant_clip_tokenizer") is not None


@functools.cache
def _tokenizer() -> Any:
    # built on first use (about 30 ms) so importing the planner costs nothing extra
    import instant_clip_tokenizer

    return instant_clip_tokenizer.Tokenizer()


def clip_token_count(text: str) -> int:
    """CLIP tokens of `text`, without the start and end tokens (case and spacing ignored);
    an upper bound of it where the tokenizer is not installed (`EXACT` False)."""
    if not EXACT:
        return det.token_bound(text)
    return len(_tokenizer().encode(text))


def _counted() -> str:
    return "" if EXACT else " (upper bound: instant-clip-tokenizer is not installed)"


def prompt_token_problems(prompt: str, params: FaceParams) -> list[str]:
    """Why SDXL would not read all of `prompt` or all of its parameter phrases; empty if it does.

    A missing parameter phrase is not reported here: `deterministic.expression_problems`
    names it.
    """
    problems = []
    total = clip_token_count(prompt)
    if total > CONTENT_TOKENS:
        problems.append(
            f"prompt is {total} CLIP tokens{_counted()}; SDXL reads {CONTENT_TOKENS} "
            f"({det.CLIP_TOKENS} with start and end): shorten it, parameter phrases first"
        )
    for field, phrase in det.required_phrases(params).items():
        # the same whole-word match the parameter check uses; its first occurrence counts
        match = det._PATTERNS[field][getattr(params, field)].search(prompt)
        if match is None:
            continue
        # CLIP splits at letter/punctuation boundaries before BPE and every phrase ends in a
        # letter, so the tokens of the text up to the phrase's end are a prefix of the whole
        end = clip_token_count(prompt[: match.end()])
        if end > CONTENT_TOKENS:
            problems.append(
                f"{field} phrase {phrase!r} ends at token {end}{_counted()}, past SDXL's "
                f"{CONTENT_TOKENS}"
            )
    return problems


def negative_token_problems(negative: str) -> list[str]:
    """Why SDXL would not read all of a completed negative prompt; empty if it does."""
    total = clip_token_count(negative)
    if total <= CONTENT_TOKENS:
        return []
    safety = clip_token_count(", ".join(det.SAFETY_NEGATIVES))
    return [
        f"negative prompt is {total} CLIP tokens{_counted()} with the safety terms appended; "
        f"SDXL reads {CONTENT_TOKENS} ({det.CLIP_TOKENS} with start and end) and the safety "
        f"terms take {safety}: shorten it"
    ]
