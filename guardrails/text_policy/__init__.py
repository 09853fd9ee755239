"""The text policy behind the prompt filter: normalisation, rule patterns in seven
languages (EN, DE, FR, ES, IT, NL, PL) and a person-name detector with its lexicons."""

from faceloop.guardrails.text_policy.names import NameDetector, lexicon, persona_names
from faceloop.guardrails.text_policy.normalise import fold, leet, normalise, surface
from faceloop.guardrails.text_policy.patterns import (
    GATES,
    MINOR_PRODUCT_USE,
    PATTERNS,
    PROTECTED_BARE,
    REAL_PEOPLE,
)

__all__ = [
    "GATES",
    "MINOR_PRODUCT_USE",
    "PATTERNS",
    "PROTECTED_BARE",
    "REAL_PEOPLE",
    "NameDetector",
    "fold",
    "leet",
    "lexicon",
    "normalise",
    "persona_names",
    "surface",
]
