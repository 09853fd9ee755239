"""The brief/prompt text filter: forbidden content and attacks on the planner, found in text.

Every brief field is checked before the planner reads it, and every prompt the planner
writes is checked again before it reaches a generator. A match names its rule and leads to
the action the playbook gives that rule (block or escalate); block wins over escalate.

The rules and their words, in EN, DE, FR, ES, IT, NL and PL, live in `text_policy/`:
the normalisation that undoes disguises (fullwidth letters, invisible characters, Cyrillic
look-alikes, s p a c e d letters, digit-for-letter swaps) and folds accents, the patterns
per rule, and a person-name detector (a given name and a surname, backed by a name lexicon)
that escalates any named person who is not the brief's consented persona. The disguises
themselves (zero-width or bidi characters, mixed-script words, long base64 blobs) are the
hidden_text rule. This is a pattern filter: it sees words, not meaning; a paraphrase it has
no pattern for passes, which is why the playbook can add patterns and why image guardrails
follow.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field

from faceloop.guardrails.text_policy import (
    GATES,
    MINOR_PRODUCT_USE,
    PATTERNS,
    PROTECTED_BARE,
    REAL_PEOPLE,
    NameDetector,
    leet,
    normalise,
    persona_names,
)
from faceloop.guardrails.text_policy.normalise import CONTROL, INVISIBLE
from faceloop.models import Model, Verdict
from faceloop.playbooks.schema import PROMPT_RULES, PromptFilterRules, PromptRule, playbook_regex

if TYPE_CHECKING:
    from faceloop.models import Brief

__all__ = ["FilterHit", "FilterResult", "PromptFilter", "brief_fields", "normalise"]

Action = Literal["block", "escalate"]


class _Match(Protocol):
    def group(self, group: Literal[0] = 0, /) -> str | Any: ...


class _Pattern(Protocol):
    """A compiled pattern: Python's `re` for the built-in rules, RE2 for a playbook's."""

    def search(self, text: str, /) -> _Match | None: ...


class FilterHit(Model):
    """One match: which rule, what it leads to, in which field, and what matched."""

    rule: str
    action: Action
    field: str
    matched: str = Field(max_length=80)


# who submitted a brief is a person's name by design, not someone to put in a picture
_NOT_NAMES = ("submitted_by",)

_MIXED_SCRIPT_WORD = re.compile(r"\w+", re.UNICODE)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def _script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    for script in ("LATIN", "CYRILLIC", "GREEK"):
        if name.startswith(script):
            return script
    return "OTHER"


def _hidden(raw: str) -> str | None:
    """What in the raw text hides or disguises content, or None."""
    m = INVISIBLE.search(raw) or CONTROL.search(raw)
    if m:
        return f"U+{ord(m.group(0)):04X} {unicodedata.name(m.group(0), 'control character')}"
    if any(0xE000 <= ord(c) <= 0xF8FF for c in raw):
        return "private-use characters"
    for word in _MIXED_SCRIPT_WORD.findall(raw):
        scripts = {s for s in map(_script, word) if s is not None}
        if "LATIN" in scripts and scripts & {"CYRILLIC", "GREEK"}:
            return f"mixed-script word {word!a}"
    fullwidth = [c for c in raw if 0xFF01 <= ord(c) <= 0xFF5E]
    if len(fullwidth) >= 3:
        return "fullwidth letters"
    b64 = _BASE64.search(raw)
    if b64:
        return f"encoded blob of {len(b64.group(0))} characters"
    return None


# --------------------------------------------------------------------------- filter


@dataclass(frozen=True)
class FilterResult:
    verdict: Verdict
    hits: list[FilterHit]

    @property
    def reason(self) -> str:
        if not self.hits:
            return ""
        return "; ".join(
            f"prompt filter rule {h.rule} ({h.action}) matched {h.matched!r} in {h.field}"
            for h in self.hits
        )


class PromptFilter:
    """Checks text against the playbook's prompt filter rules."""

    name = "prompt_filter"

    def __init__(self, rules: PromptFilterRules | None = None) -> None:
        self.rules = rules or PromptFilterRules()
        compiled: dict[PromptRule, list[_Pattern]] = {}
        for rule in PROMPT_RULES:
            # a rule's own patterns as one alternation: one scan of the text, not dozens;
            # a playbook's patterns stay apart (they may carry inline flags) and run on RE2,
            # in linear time: they are user input, ours may use lookaround
            own = [f"(?:{p})" for p in PATTERNS[rule]]
            builtin = [re.compile("|".join(own), re.IGNORECASE | re.DOTALL)] if own else []
            extra = [playbook_regex(p) for p in self.rules.extra_patterns.get(rule, [])]
            compiled[rule] = [*builtin, *extra]
        self._gates = {rule: re.compile(g) for rule, g in GATES.items()}
        self._own = {rule: len(PATTERNS[rule]) > 0 for rule in PROMPT_RULES}
        names = sorted({*REAL_PEOPLE, *(n.lower().strip() for n in self.rules.real_people)})
        names = [normalise(n) for n in names if n.strip()]
        if names:
            alternation = "|".join(r"\s+".join(map(re.escape, n.split())) for n in names)
            compiled["real_people"].append(re.compile(rf"\b(?:{alternation})\b"))
        self._compiled = compiled
        self.names = NameDetector()

    def action(self, rule: PromptRule) -> Action:
        return self.rules.actions[rule]

    def check_text(
        self, text: str, field: str = "text", persona: frozenset[str] = frozenset()
    ) -> list[FilterHit]:
        """Every rule that matches the text, once per rule. `persona`: the name words of
        the brief's consented persona (see text_policy.persona_names), which may be named."""
        hits: list[FilterHit] = []
        hidden = _hidden(text)
        if hidden is not None:
            hits.append(self._hit("hidden_text", field, hidden))
        norm = normalise(text)
        undone = leet(norm)
        variants = (norm, undone) if undone != norm else (norm,)
        for rule, patterns in self._compiled.items():
            texts: Iterable[str] = variants
            if rule == "minors":
                texts = [MINOR_PRODUCT_USE.sub(" ", v) for v in variants]
            gate = self._gates.get(rule)
            if gate is not None and not any(gate.search(v) for v in variants):
                patterns = patterns[1:] if self._own[rule] else patterns  # the playbook's only
            found = _first_match(patterns, texts)
            if found is None and rule == "protected_targeting" and field.startswith("audience."):
                # an audience description is a targeting statement by itself
                found = _first_match([PROTECTED_BARE], variants)
            if found is None and rule == "named_person" and not field.startswith(_NOT_NAMES):
                people = self.names.find(text, persona)
                found = people[0] if people else None
            if found is not None:
                hits.append(self._hit(rule, field, found))
        return hits

    def check_fields(
        self, fields: Mapping[str, str], persona: frozenset[str] = frozenset()
    ) -> FilterResult:
        hits = [h for name, text in fields.items() for h in self.check_text(text, name, persona)]
        return FilterResult(verdict=_verdict(hits), hits=hits)

    def check_brief(self, brief: Brief) -> FilterResult:
        persona = persona_names(brief.persona.persona_id) if brief.persona else frozenset()
        return self.check_fields(brief_fields(brief), persona)

    def check_prompt(
        self, prompt: str, field: str = "prompt", persona: frozenset[str] = frozenset()
    ) -> FilterResult:
        return self.check_fields({field: prompt}, persona)

    def _hit(self, rule: PromptRule, field: str, matched: str) -> FilterHit:
        shown = " ".join(matched.split())
        return FilterHit(
            rule=rule, action=self.action(rule), field=field, matched=shown[:60].strip()
        )


def _first_match(patterns: Iterable[_Pattern], texts: Iterable[str]) -> str | None:
    for text in texts:
        for p in patterns:
            m = p.search(text)
            if m:
                return m.group(0)
    return None


def _verdict(hits: list[FilterHit]) -> Verdict:
    actions = {h.action for h in hits}
    if "block" in actions:
        return Verdict.block
    if "escalate" in actions:
        return Verdict.escalate
    return Verdict.passed


def brief_fields(brief: Brief) -> dict[str, str]:
    """Every free-text field of a brief, by its path, as the planner would read it."""
    fields = {
        "product": brief.product,
        "message": brief.message,
        "tone": brief.tone,
        "submitted_by": brief.submitted_by,
    }
    for i, seg in enumerate(brief.audience):
        fields[f"audience.{i}.name"] = seg.name
        if seg.description:
            fields[f"audience.{i}.description"] = seg.description
    for i, c in enumerate(brief.constraints):
        fields[f"constraints.{i}"] = c
    return fields
