"""The deterministic brief planner: brief + FaceParams -> one prompt per variant.

This is the embedded default and the fallback of the LLM planner: it needs no model, is
stable for the same input, and expresses every face parameter in words a text-to-image
model (SDXL) understands. Brief text is quoted as context, never spliced in as an
instruction.

SDXL reads a prompt through two CLIP text encoders whose tokenizers keep 77 tokens (start,
75 of the prompt, end) and drop the rest. So the parameter phrases come first and are short
(at most PARAMETER_TOKENS tokens together with the fixed words), and the brief's words fill
only the budget left, counted with a bound that needs no vocabulary: every prompt this
module writes fits in 77 tokens, whatever the brief says.
"""

from __future__ import annotations

import re
from typing import Any

from faceloop.models import Brief, FaceParams, PromptPlan, VariantPrompt

# Each table's phrases are distinct and none contains another value's phrase, so the check
# below can tell which value a prompt expresses; hyphens and digits cost CLIP tokens, so
# "head and shoulders" beats "head-and-shoulders" and "fifty" beats "50".
_AGE = {
    "18-24": "a young adult around twenty",
    "25-34": "an adult around thirty",
    "35-44": "an adult around forty",
    "45-54": "an adult around fifty",
    "55-64": "a mature adult around sixty",
    "65+": "an older adult around seventy",
}
_EXPRESSION = {
    "neutral": "neutral expression",
    "smile": "warm smile",
    "laugh": "laughing joyfully",
    "serious": "serious expression",
    "surprised": "surprised expression",
}
_GENDER = {
    "feminine": "feminine-presenting",
    "masculine": "masculine-presenting",
    "androgynous": "androgynous",
}
# Monk Skin Tone scale, lightest to darkest, in plain words; the scale's name is left out
# because the word "monk" could draw a monk, and the number is in the variant's params
_MONK = {
    1: "very pale skin",
    2: "fair skin",
    3: "light skin",
    4: "light beige skin",
    5: "tan skin",
    6: "light brown skin",
    7: "medium brown skin",
    8: "deep brown skin",
    9: "dark brown skin",
    10: "very dark skin",
}
_LIGHTING = {
    "soft": "soft diffused light",
    "studio": "studio softbox lighting",
    "natural": "natural daylight",
    "golden_hour": "golden hour sunlight",
    "dramatic": "dramatic low key lighting",
}
_BACKGROUND = {
    "white": "plain white background",
    "grey": "grey seamless backdrop",
    "blue": "solid blue background",
    "warm": "warm beige background",
    "green": "blurred green foliage background",
    "outdoor": "blurred outdoor park background",
    "office": "blurred modern office background",
}
_FRAMING = {
    "close_up": "close-up portrait",
    "head_shoulders": "head and shoulders portrait",
    "half_body": "half-body portrait",
}
# first in the prompt: SDXL weights early tokens most, and the style sets everything else
_STYLE = {
    "photo": "photorealistic photo",
    "editorial": "editorial fashion photo",
    "illustration": "flat digital illustration",
}
NEGATIVE_PROMPT = (
    "text, watermark, logo, extra fingers, deformed face, asymmetric eyes, blurry, "
    "lowres, jpeg artifacts, nudity, cleavage, minor, child, celebrity, famous person"
)

# What each market must show next to an AI-generated person (EU AI Act Art. 50 for EU markets).
_DISCLOSURE = {
    "DE": "KI-generiertes Bild",
    "AT": "KI-generiertes Bild",
    "FR": "Image générée par IA",
    "NL": "Afbeelding gegenereerd met AI",
    "ES": "Imagen generada por IA",
    "IT": "Immagine generata con IA",
}
_DEFAULT_DISCLOSURE = "AI-generated image"

_UNSAFE_CHARS = re.compile(r"[^\w\s.,;:!?%&()'/+-]", re.UNICODE)

# SDXL's CLIP tokenizers keep 77 tokens: start, 75 of the prompt, end
CLIP_TOKENS = 77
# The most CLIP tokens the parameter phrases and the fixed words (", mood:", ", ad for")
# take over every FaceParams; tests/agents/test_prompt_tokens.py counts it with the real
# CLIP tokenizer and fails when a phrase change makes this number wrong.
PARAMETER_TOKENS = 42
BRIEF_TOKENS = CLIP_TOKENS - 2 - PARAMETER_TOKENS
# CLIP has no notion of negation: "no exaggerated claims" in a prompt asks for them
_NEGATION = re.compile(r"^(?:no|not|never|avoid|without|don't|dont|nothing)\b", re.IGNORECASE)


def _quote(text: str, limit: int = 120) -> str:
    """Brief text as inert product context: no markup, no line breaks, bounded length."""
    cleaned = _UNSAFE_CHARS.sub(" ", " ".join(text.split()))
    return cleaned[:limit].strip()


def token_bound(text: str) -> int:
    """An upper bound on the CLIP tokens `text` becomes, computed without CLIP's vocabulary.

    CLIP's tokenizer splits lower-cased text at whitespace (and between letters, digits and
    punctuation), starts each piece from one symbol per UTF-8 byte and only merges symbols,
    so no word yields more tokens than it has bytes.
    """
    return sum(max(len(w.encode()), len(w.lower().encode())) for w in text.split())


def disclosure_for(markets: list[str]) -> str:
    """The disclosure line(s) the brief's markets require, deduplicated, in market order."""
    seen: list[str] = []
    for m in markets:
        text = _DISCLOSURE.get(m, _DEFAULT_DISCLOSURE)
        if text not in seen:
            seen.append(text)
    return " / ".join(seen)


def describe(p: FaceParams) -> str:
    """The parameter part of the prompt: one fixed phrase per parameter, style first."""
    return (
        f"{_STYLE[p.style]}, {_FRAMING[p.framing]} of {_AGE[p.age_band]}, "
        f"{_GENDER[p.gender_presentation]}, {_MONK[p.skin_tone]}, {_EXPRESSION[p.expression]}, "
        f"{_LIGHTING[p.lighting]}, {_BACKGROUND[p.background]}"
    )


def brief_context(brief: Brief) -> str:
    """The brief's words that fit in BRIEF_TOKENS: the tone's clauses in order (mood words
    shape the picture), then the product if it fits whole.

    The same for every variant of a brief, so variants differ only in their parameters.
    Parameter phrases are taken out, so brief text can never express a parameter value.
    """
    mood = ""
    for clause in re.split(r"[,;.!?]", _scrub(_quote(brief.tone, 60))):
        clause = clause.strip()
        if not clause or _NEGATION.match(clause):
            continue
        longer = f"{mood}, {clause}" if mood else clause
        if token_bound(longer) > BRIEF_TOKENS:
            break
        mood = longer
    product = _scrub(_quote(brief.product))
    if token_bound(mood) + token_bound(product) > BRIEF_TOKENS:
        product = ""  # a cut brand name says nothing
    parts = ([f"mood: {mood}"] if mood else []) + ([f"ad for {product}"] if product else [])
    return ", ".join(parts)


def prompt_for(brief: Brief, p: FaceParams) -> tuple[str, str]:
    """(prompt, negative prompt): every face parameter, then the brief's context."""
    context = brief_context(brief)
    return ", ".join(x for x in (describe(p), context) if x), NEGATIVE_PROMPT


def plan(brief: Brief, proposals: list[tuple[str, FaceParams]]) -> PromptPlan:
    """One VariantPrompt per (variant_id, params) proposal."""
    disclosure = disclosure_for(brief.markets)
    variants = []
    for variant_id, params in proposals:
        prompt, negative = prompt_for(brief, params)
        variants.append(
            VariantPrompt(
                variant_id=variant_id,
                params=params,
                prompt=prompt,
                negative_prompt=negative,
                disclosure=disclosure,
                written_by="deterministic",
            )
        )
    return PromptPlan(status="planned", variants=variants)


_TABLES: dict[str, dict[Any, str]] = {
    "age_band": _AGE,
    "expression": _EXPRESSION,
    "gender_presentation": _GENDER,
    "skin_tone": _MONK,
    "lighting": _LIGHTING,
    "background": _BACKGROUND,
    "framing": _FRAMING,
    "style": _STYLE,
}
# the safety terms every negative prompt carries, whoever wrote the rest of it
SAFETY_NEGATIVES: tuple[str, ...] = tuple(t.strip() for t in NEGATIVE_PROMPT.split(","))


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    # whole words only: "delight skin care" does not say "light skin"
    return re.compile(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", re.IGNORECASE)


_PATTERNS: dict[str, dict[Any, re.Pattern[str]]] = {
    field: {value: _phrase_pattern(phrase) for value, phrase in table.items()}
    for field, table in _TABLES.items()
}


def _scrub(text: str) -> str:
    """Brief text with every parameter phrase taken out."""
    for patterns in _PATTERNS.values():
        for pattern in patterns.values():
            text = pattern.sub(" ", text)
    return " ".join(text.split())


def required_phrases(p: FaceParams) -> dict[str, str]:
    """Field -> the phrase a prompt must contain to express that parameter value."""
    return {field: table[getattr(p, field)] for field, table in _TABLES.items()}


def expression_problems(prompt: str, p: FaceParams) -> list[str]:
    """Why a prompt does not express exactly these parameters; empty when it does.

    A phrase of another value of the same parameter counts as a changed parameter.
    """
    problems = []
    for field, patterns in _PATTERNS.items():
        value = getattr(p, field)
        if not patterns[value].search(prompt):
            phrase = _TABLES[field][value]
            problems.append(f"{field}={value} is not expressed (needs {phrase!r})")
        for other, pattern in patterns.items():
            if other != value and pattern.search(prompt):
                problems.append(f"{field} says {other!r} instead of {value!r}")
    return problems


def complete_negative(negative: str) -> str:
    """The negative prompt with every safety term it lacks appended."""
    present = {t.strip().casefold() for t in negative.split(",")}
    missing = [t for t in SAFETY_NEGATIVES if t.casefold() not in present]
    return ", ".join([t for t in (s.strip() for s in negative.split(",")) if t] + missing)
