"""The brief/prompt text filter: forbidden content and attacks on the planner, found in text.

Every brief field is checked before the planner reads it, and every prompt the planner
writes is checked again before it reaches a generator. A match names its rule and leads to
the action the playbook gives that rule (block or escalate); block wins over escalate.

Matching runs on a normalised copy of the text, so the usual disguises do not help:
Unicode compatibility forms (fullwidth letters) are folded, invisible characters dropped,
Cyrillic and Greek look-alike letters mapped to Latin, s p a c e d letters joined, and a
second copy has digit-for-letter swaps (1gn0re) undone. The disguises themselves
(zero-width or bidi characters, mixed-script words, long base64 blobs) are the hidden_text
rule. This is a pattern filter: it sees words, not meaning; a paraphrase it has no pattern
for passes, which is why the playbook can add patterns and why image guardrails follow.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from faceloop.models import Model, Verdict
from faceloop.playbooks.schema import PROMPT_RULES, PromptFilterRules, PromptRule

if TYPE_CHECKING:
    from faceloop.models import Brief

__all__ = ["FilterHit", "FilterResult", "PromptFilter", "brief_fields", "normalise"]

Action = Literal["block", "escalate"]


class FilterHit(Model):
    """One match: which rule, what it leads to, in which field, and what matched."""

    rule: str
    action: Action
    field: str
    matched: str = Field(max_length=80)


# --------------------------------------------------------------------------- normalisation

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Cyrillic and Greek letters that render like Latin ones
_HOMOGLYPHS = str.maketrans(
    {
        **dict(zip("аеорсухіјѕԁһԛԝмтнкв", "aeopcyxijsdhqwmtnkb", strict=True)),
        **dict(zip("АЕОРСУХІЈЅВНКМТ", "AEOPCYXIJSBHKMT", strict=True)),
        **dict(zip("αεοριτυχκνηΑΕΟΡΙΤΥΧΚΝΗΒΜΖ", "aeopituxknnAEOPITYXKNHBMZ", strict=True)),
    }
)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
# i g n o r e / i.g.n.o.r.e: four or more single letters with one separator between each
_SPACED = re.compile(r"\b(?:[a-z][ .\-_*]){3,}[a-z]\b")


def normalise(text: str) -> str:
    """The text the rules match: folded, invisible characters gone, lower case, one line."""
    t = unicodedata.normalize("NFKC", text)
    t = _INVISIBLE.sub("", t)
    t = _CONTROL.sub(" ", t)
    t = t.translate(_HOMOGLYPHS).lower()
    t = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), t)
    return " ".join(t.split())


# --------------------------------------------------------------------------- rules

_PROTECTED_TERMS = (
    r"(?:religio\w*|muslims?|islam\w*|jews?|jewish|christians?|catholics?|hindus?|sikhs?|"
    r"buddhists?|atheists?|ethnic\w*|race|races|racial\w*|black people|white people|"
    r"asian people|hispanics?|latin[oax]s?|arabs?|immigrants?|refugees?|gays?|lesbians?|"
    r"bisexual\w*|lgbt\w*|queer|transgender\w*|sexual orientation|disab\w*|pregnan\w*|"
    r"illness\w*|disease\w*|hiv|cancer patients|mental health|depress\w*|diabet\w*|"
    r"political\w*|democrats?|republicans?|trade unions?|caste|"
    r"(?:light|dark|fair)[- ]skinned (?:people|users|customers|viewers))"
)
_TARGETING = (
    r"(?:target\w*|aim\w* at|exclud\w*|only (?:to|for|show\w*|reach\w*|serve\w*)|"
    r"not (?:to )?(?:show|serve|display)\w*(?: \w+){0,3} to|avoid\w*|"
    r"keep (?:it |this )?away from|people who are|users who are|who are|audiences? of)"
)

_PROTECTED_BARE = re.compile(rf"\b{_PROTECTED_TERMS}\b", re.IGNORECASE)

PATTERNS: dict[PromptRule, tuple[str, ...]] = {
    "sexual_explicit": (
        r"\b(?:nude|nudes|nudity|naked|topless|bottomless|porn\w*|xxx|nsfw|erotic\w*|"
        r"genital\w*|nipples?|fetish\w*|bdsm|onlyfans|hentai|strip ?tease|stripper\w*|"
        r"orgasm\w*|intercourse)\b",
        r"\bexplicit (?:sex\w*|content|image\w*|photo\w*|scene\w*)\b",
        r"\bsex(?:ual)? (?:act\w*|scene\w*|position\w*|content)\b",
    ),
    "sexual_suggestive": (
        r"\b(?:sexy|seducti\w*|seductive\w*|sensual\w*|lingerie|underwear|bikini\w*|"
        r"swimsuit\w*|cleavage|provocative\w*|sultry|lust\w*|steamy|flirt\w*|see[- ]through|"
        r"sex|bedroom eyes|babe)\b",
        r"\bhot (?:girl|guy|babe|woman|women|men|man|model)s?\b",
        r"\b(?:mature|adult) content\b",
        r"\bbare (?:skin|shoulders|chest|body)\b",
    ),
    "minors": (
        r"\b(?:child|children|childlike|kid|kids|minors|underage|under-age|teen|teens|"
        r"teenage\w*|adolescen\w*|toddler\w*|baby|babies|infant\w*|schoolgirl\w*|"
        r"schoolboy\w*|school uniform|preteen\w*|pre-teen\w*|loli|lolita|jailbait|"
        r"little (?:girl|boy)s?|young (?:girl|boy)s?|boys? and girls?|juvenile\w*)\b",
        r"\ba minor\b",
        r"\b(?:1[0-7]|[1-9])[- ]?(?:yo|y/o|yrs? old|years?[- ]old)\b",
        r"\b(?:aged?|age of) (?:1[0-7]|[1-9])\b",
        r"\bunder (?:18|eighteen)\b",
    ),
    "real_people": (
        r"\b(?:celebrit\w*|celeb|celebs|look-?alike\w*|deep ?fake\w*|doppelg\w*|"
        r"impersonat\w*|politicians?|head of state|prime minister|president)\b",
        r"\bfamous (?:actor|actress|singer|athlete|person|people|face|model|star|footballer)s?\b",
        r"\b(?:movie|pop|film|tv|sports|rock|hollywood) stars?\b",
        r"\b(?:in the likeness of|likeness of|looks? exactly like)\b",
    ),
    "protected_targeting": (rf"\b{_TARGETING}\b.{{0,60}}?\b{_PROTECTED_TERMS}\b",),
    "injection": (
        r"\b(?:ignore|skip|drop)\b.{0,30}\b(?:previous|prior|above|earlier|preceding|former|"
        r"all|any|your|system|the)\b.{0,20}\b(?:instruction|prompt|rule|direction|message|"
        r"guideline|guardrail|polic|filter)",
        r"\b(?:disregard|forget)\b.{0,40}\b(?:instruction|prompt|rule|guideline|above|"
        r"previous|everything|polic)",
        r"\b(?:override|bypass|circumvent|disable|turn off|skip)\b.{0,30}\b(?:instruction|rule|"
        r"filter|guardrail|safety|polic|moderation|check|restriction)",
        r"\byou (?:are|were) (?:now|no longer|actually|free)\b",
        r"\b(?:from now on|act as|acting as|pretend (?:to be|you)|role[- ]?play\w*|"
        r"imagine you are|your new (?:role|task|instruction\w*)|new instructions?|"
        r"developer mode|jailbreak\w*|dan mode|do anything now|system prompt|prompt injection|"
        r"hidden instructions?|secret instructions?|respond as|simulate (?:a|an|being))\b",
        r"(?:^|[\n.;!?]\s*)(?:user|tool)\s*:|\b(?:system|assistant|developer)\s*:",
        r"<\|[a-z_]+\|>|\[/?inst\]|<</?sys>>|###\s*(?:system|instruction|assistant|response)",
        r"</?\s*(?:system|instructions?|brief_data|assistant|user|tool_call|function_call|"
        r"tool|im_start|im_end)\b[^>]*>",
        r"\"?\b(?:tool_calls?|function_call|tool_use|tool_choice)\b\"?\s*[:=]",
        r"\"role\"\s*:\s*\"(?:system|assistant|tool|developer|function)\"",
        r"\b(?:call|invoke|execute|run|use) (?:the |a )?(?:tool|function|command|shell|"
        r"python|code)\b",
        r"\bnote to (?:the )?(?:ai|assistant|model|llm|planner|bot|system|agent)\b",
        r"\b(?:ai|assistant|model|llm|chatgpt|gpt|planner|bot|agent)\s*[,:]\s*(?:please|you|"
        r"ignore|write|output|generate|add|include|do|always|never)\b",
        r"\b(?:do not|don't|never) (?:follow|obey|apply|enforce)\b",
        r"\binstead,? (?:write|output|generate|say|print|respond|reply|add)\b",
        r"\b(?:output|print|respond with|reply with|say|write) (?:only|exactly|the following|"
        r"verbatim)\b",
        r"<!--|```|\{\{|\}\}|<script|javascript:",
        r"\bignorier\w*.{0,30}anweisung|\bignor\w*.{0,30}instrucciones|\boubli\w*.{0,30}"
        r"instructions",
    ),
    "exfiltration": (
        r"\b(?:api[ _-]?keys?|openai_api_key|faceloop_[a-z_]+|(?:secret|private) keys?|"
        r"client secrets?|access tokens?|bearer tokens?|passwords?|credentials?|"
        r"environment variables?|env vars?|\.env|/etc/passwd|ssh keys?)\b",
        r"\bsk-[a-z0-9_-]{8,}",
        r"\b(?:reveal|print|show|tell|output|dump|leak|send|share|list|repeat|expose|display|"
        r"return|include)\b.{0,30}\b(?:system prompt|your instructions|your prompt|"
        r"settings|config\w*|secrets?|keys?|tokens?|hidden prompt|prompt above|"
        r"internal \w+)\b",
        r"\b(?:send|post|upload|exfiltrate|forward|transmit|email|curl|fetch|wget)\b.{0,40}"
        r"(?:https?://|www\.|\b[a-z0-9-]+\.(?:com|net|org|io|ru|xyz)\b)",
    ),
    "hidden_text": (),  # judged on the raw text, see _hidden
}
assert set(PATTERNS) == set(PROMPT_RULES), "every playbook rule needs its patterns"

# Named real people; a playbook adds its own. Lower case, matched as whole words.
REAL_PEOPLE: tuple[str, ...] = (
    "taylor swift",
    "beyonce",
    "rihanna",
    "kim kardashian",
    "kylie jenner",
    "selena gomez",
    "ariana grande",
    "scarlett johansson",
    "emma watson",
    "angelina jolie",
    "jennifer aniston",
    "margot robbie",
    "zendaya",
    "tom cruise",
    "brad pitt",
    "leonardo dicaprio",
    "keanu reeves",
    "dwayne johnson",
    "the rock",
    "ryan reynolds",
    "morgan freeman",
    "cristiano ronaldo",
    "lionel messi",
    "serena williams",
    "lebron james",
    "elon musk",
    "jeff bezos",
    "mark zuckerberg",
    "bill gates",
    "barack obama",
    "michelle obama",
    "donald trump",
    "joe biden",
    "kamala harris",
    "vladimir putin",
    "emmanuel macron",
    "angela merkel",
    "olaf scholz",
    "rishi sunak",
    "king charles",
    "pope francis",
    "greta thunberg",
    "oprah winfrey",
    "billie eilish",
    "harry styles",
)

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
    m = _INVISIBLE.search(raw) or _CONTROL.search(raw)
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
        compiled: dict[PromptRule, list[re.Pattern[str]]] = {}
        for rule in PROMPT_RULES:
            patterns = [*PATTERNS[rule], *self.rules.extra_patterns.get(rule, [])]
            compiled[rule] = [re.compile(p, re.IGNORECASE | re.DOTALL) for p in patterns]
        names = sorted({*REAL_PEOPLE, *(n.lower().strip() for n in self.rules.real_people)})
        names = [n for n in names if n]
        if names:
            alternation = "|".join(r"\s+".join(map(re.escape, n.split())) for n in names)
            compiled["real_people"].append(re.compile(rf"\b(?:{alternation})\b"))
        self._compiled = compiled

    def action(self, rule: PromptRule) -> Action:
        return self.rules.actions[rule]

    def check_text(self, text: str, field: str = "text") -> list[FilterHit]:
        """Every rule that matches the text, once per rule."""
        hits: list[FilterHit] = []
        hidden = _hidden(text)
        if hidden is not None:
            hits.append(self._hit("hidden_text", field, hidden))
        norm = normalise(text)
        variants = (norm, norm.translate(_LEET))
        for rule, patterns in self._compiled.items():
            found = _first_match(patterns, variants)
            if found is None and rule == "protected_targeting" and field.startswith("audience."):
                # an audience description is a targeting statement by itself
                found = _first_match([_PROTECTED_BARE], variants)
            if found is not None:
                hits.append(self._hit(rule, field, found))
        return hits

    def check_fields(self, fields: Mapping[str, str]) -> FilterResult:
        hits = [h for name, text in fields.items() for h in self.check_text(text, name)]
        return FilterResult(verdict=_verdict(hits), hits=hits)

    def check_brief(self, brief: Brief) -> FilterResult:
        return self.check_fields(brief_fields(brief))

    def check_prompt(self, prompt: str, field: str = "prompt") -> FilterResult:
        return self.check_fields({field: prompt})

    def _hit(self, rule: PromptRule, field: str, matched: str) -> FilterHit:
        shown = " ".join(matched.split())
        return FilterHit(
            rule=rule, action=self.action(rule), field=field, matched=shown[:60].strip()
        )


def _first_match(patterns: Iterable[re.Pattern[str]], texts: Iterable[str]) -> str | None:
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
