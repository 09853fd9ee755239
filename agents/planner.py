"""The deterministic brief planner: brief + FaceParams -> one prompt per variant.

This is the embedded default and the fallback of the LLM planner: it needs no model, is
stable for the same input, and expresses every face parameter in words a text-to-image
model (SDXL) understands. Brief text is quoted as product context, never spliced in as an
instruction.
"""

from __future__ import annotations

import re
from typing import Any

from faceloop.models import Brief, FaceParams, PromptPlan, VariantPrompt

_AGE = {
    "18-24": "a young adult in their early twenties",
    "25-34": "an adult in their late twenties or early thirties",
    "35-44": "an adult in their late thirties or early forties",
    "45-54": "a middle-aged adult around fifty",
    "55-64": "a mature adult around sixty",
    "65+": "an older adult in their late sixties or seventies",
}
_EXPRESSION = {
    "neutral": "a calm, neutral expression",
    "smile": "a warm, natural smile",
    "laugh": "laughing openly, joyful",
    "serious": "a serious, focused expression",
    "surprised": "a pleasantly surprised expression",
}
_GENDER = {
    "feminine": "feminine-presenting",
    "masculine": "masculine-presenting",
    "androgynous": "androgynous-presenting",
}
# Monk Skin Tone scale words; the number is kept too because SDXL responds to both poorly alone
_MONK = {
    1: "very fair skin (Monk skin tone 1)",
    2: "fair skin (Monk skin tone 2)",
    3: "light skin (Monk skin tone 3)",
    4: "light-medium skin (Monk skin tone 4)",
    5: "medium skin (Monk skin tone 5)",
    6: "medium-tan skin (Monk skin tone 6)",
    7: "tan-brown skin (Monk skin tone 7)",
    8: "brown skin (Monk skin tone 8)",
    9: "dark brown skin (Monk skin tone 9)",
    10: "deep dark skin (Monk skin tone 10)",
}
_LIGHTING = {
    "soft": "soft diffused light",
    "studio": "clean studio lighting, softbox key light",
    "natural": "natural daylight",
    "golden_hour": "warm golden-hour sunlight",
    "dramatic": "dramatic low-key lighting with strong shadows",
}
_BACKGROUND = {
    "white": "plain white background",
    "grey": "neutral grey seamless background",
    "blue": "solid blue background",
    "warm": "warm beige background",
    "green": "soft green foliage background, out of focus",
    "outdoor": "blurred outdoor park background",
    "office": "blurred modern office background",
}
_FRAMING = {
    "close_up": "close-up portrait, face filling the frame",
    "head_shoulders": "head-and-shoulders portrait",
    "half_body": "half-body portrait, waist up",
}
_STYLE = {
    "photo": "photorealistic photograph, 85mm lens, natural skin texture",
    "editorial": "editorial magazine photograph, high-end fashion look",
    "illustration": "clean digital illustration, flat shading",
}
_NEGATIVE = (
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


def _quote(text: str, limit: int = 120) -> str:
    """Brief text as inert product context: no markup, no line breaks, bounded length."""
    cleaned = _UNSAFE_CHARS.sub(" ", " ".join(text.split()))
    return cleaned[:limit].strip()


def disclosure_for(markets: list[str]) -> str:
    """The disclosure line(s) the brief's markets require, deduplicated, in market order."""
    seen: list[str] = []
    for m in markets:
        text = _DISCLOSURE.get(m, _DEFAULT_DISCLOSURE)
        if text not in seen:
            seen.append(text)
    return " / ".join(seen)


def prompt_for(brief: Brief, p: FaceParams) -> tuple[str, str]:
    """(prompt, negative prompt) expressing every face parameter."""
    subject = (
        f"{_STYLE[p.style]} of {_AGE[p.age_band]}, {_GENDER[p.gender_presentation]}, "
        f"{_MONK[p.skin_tone]}, {_EXPRESSION[p.expression]}"
    )
    scene = f"{_FRAMING[p.framing]}, {_LIGHTING[p.lighting]}, {_BACKGROUND[p.background]}"
    context = f"advertising image for {_quote(brief.product)}, mood: {_quote(brief.tone, 60)}"
    return f"{subject}, {scene}, {context}", _NEGATIVE


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
SAFETY_NEGATIVES: tuple[str, ...] = tuple(t.strip() for t in _NEGATIVE.split(","))


def required_phrases(p: FaceParams) -> dict[str, str]:
    """Field -> the phrase a prompt must contain to express that parameter value."""
    return {field: table[getattr(p, field)] for field, table in _TABLES.items()}


def expression_problems(prompt: str, p: FaceParams) -> list[str]:
    """Why a prompt does not express exactly these parameters; empty when it does.

    A phrase of another value of the same parameter counts as a changed parameter.
    """
    text = prompt.casefold()
    problems = []
    for field, table in _TABLES.items():
        value = getattr(p, field)
        if table[value].casefold() not in text:
            problems.append(f"{field}={value} is not expressed (needs {table[value]!r})")
        for other, phrase in table.items():
            if other != value and phrase.casefold() in text:
                problems.append(f"{field} says {other!r} instead of {value!r}")
    return problems


def complete_negative(negative: str) -> str:
    """The negative prompt with every safety term it lacks appended."""
    present = {t.strip().casefold() for t in negative.split(",")}
    missing = [t for t in SAFETY_NEGATIVES if t.casefold() not in present]
    return ", ".join([t for t in (s.strip() for s in negative.split(",")) if t] + missing)
