"""A person-name detector: a given name followed by a surname, not a list of famous people;
and a single name where the text asks for a likeness.

A name is a given name from the lexicon (about 5,000 given names of the EN, DE, FR, ES, IT,
NL and PL locales, from Faker, see data/NOTICE), optionally more given names and a particle
(van, de, von, di, ...), then a surname:
- capitalised: a surname from the lexicon (12,600 of them), a word after a particle, or
  any capitalised word that is not a common word of those languages (the lexicon's 7,500
  common words): "Sabine Weber", "Sanne de Vries", "Kylian Mbappé"; when the given name is
  itself a common word (Rose, Victoria), only the first two count, so "Rose Gold" is a
  colour and "Rose Miller" a person;
- all lower case: both words in the lexicons and neither a common word ("anna schmidt").
Polish and German inflect names (Agnieszkę Nowak, Annas); the lookup tries the nominative.
A single word is a name when it follows a likeness cue ("looks like", "resembling", "the
spitting image of", "sieht aus wie", "ressemble à", "se parece a", "somiglia a", "lijkt
(sprekend) op", "wygląda jak", ...) or comes right before a German one that ends a
relative clause ("das Heidi ähnelt")
and is capitalised, not all capitals, not a weekday, month, holiday or season, and a given
name or else not a common word: "looks like Shakira", "ressemble à Adele". Without the cue
a lone capitalised word is a brand, a place or a product far more often than a person;
with it, a place still counts ("looks like Tokyo"), which costs a review, not a campaign
(named_person escalates).
A name that belongs to the brief's consented persona is allowed (see `persona_names`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files

from faceloop.guardrails.text_policy.normalise import fold, leet, surface

__all__ = ["Lexicon", "NameDetector", "lexicon", "persona_names"]

_WORD = re.compile(r"[^\W\d_]+(?:['\-][^\W\d_]+)*")
_PARTICLES = frozenset(
    [
        "van",
        "von",
        "de",
        "der",
        "den",
        "da",
        "di",
        "del",
        "della",
        "dos",
        "das",
        "du",
        "le",
        "la",
        "ten",
        "ter",
        "zu",
    ]
)
# case endings tried, longest first, when a word is not in the lexicon as written
_ENDINGS = (
    ("owi", ""),
    ("iem", ""),
    ("em", ""),
    ("ego", ""),
    ("emu", ""),
    ("ie", "a"),
    ("ę", "a"),
    ("ą", "a"),
    ("ej", "a"),
    ("y", "a"),
    ("i", "a"),
    ("a", ""),
    ("u", ""),
    ("s", ""),
    ("ą", "i"),
    ("ą", "y"),
    ("ego", "i"),
    ("emu", "i"),
    ("im", "i"),
)


# Likeness cues, as folded word sequences (`fold`: accents off, lower case): the next word
# is read as a name when it looks like one (`NameDetector._likeness`)
_CUES: tuple[tuple[str, ...], ...] = tuple(
    tuple(c.split())
    for c in (
        # EN
        "look like",
        "looks like",
        "looked like",
        "looking like",
        "resemble",
        "resembles",
        "resembled",
        "resembling",
        "lookalike of",
        "look-alike of",
        "double of",
        "spitting image of",
        # DE ("sieht aus wie", "sah aus wie" end in "aus wie")
        "aus wie",
        "aussieht wie",
        "aussehen wie",
        "aussehend wie",
        "ahnelt",
        "ahnlich wie",
        "doppelganger von",
        # FR
        "ressemble a",
        "ressemblant a",
        "ressemblante a",
        "ressemblent a",
        "ressembler a",
        "sosie de",
        # ES
        "se parece a",
        "parecido a",
        "parecida a",
        "doble de",
        # IT
        "somiglia a",
        "assomiglia a",
        "simile a",
        "sosia di",
        # NL
        "lijkt op",
        "lijken op",
        # "lijkt sprekend op": an adverb inside the cue
        "sprekend op",
        "dubbelganger van",
        # PL
        "wyglada jak",
        "wygladajaca jak",
        "wygladajacy jak",
        "podobny do",
        "podobna do",
        "sobowtor",
    )
)


# Cues that follow the name: German puts the verb last in a relative clause ("ein Model,
# das Heidi ähnelt"), so the word before them is read as a name
_CUES_AFTER: frozenset[str] = frozenset(["ahnelt", "ahneln"])


@dataclass(frozen=True)
class Lexicon:
    given: frozenset[str]
    surnames: frozenset[str]
    common: frozenset[str]
    # weekdays, months, holidays, seasons: not people after a likeness cue
    calendar: frozenset[str] = frozenset()


def _read(name: str) -> frozenset[str]:
    text = (files("faceloop.guardrails.text_policy") / "data" / name).read_text(encoding="utf-8")
    return frozenset(fold(w) for w in text.split("\n") if w and not w.startswith("#"))


@cache
def lexicon() -> Lexicon:
    return Lexicon(
        _read("given_names.txt"),
        _read("surnames.txt"),
        _read("common_words.txt"),
        _read("calendar_words.txt"),
    )


@lru_cache(maxsize=8192)
def _forms(word: str) -> tuple[str, ...]:
    """The word folded, then its likely nominatives (Agnieszkę -> agnieszka)."""
    w = fold(word)
    out = [w]
    raw = word.lower()
    for end, repl in _ENDINGS:
        if raw.endswith(end) and len(raw) - len(end) >= 3:
            out.append(fold(raw[: -len(end)] + repl))
    return tuple(out)


def _in(word: str, table: frozenset[str]) -> bool:
    return any(f in table for f in _forms(word))


def _capitalised(word: str) -> bool:
    return word[0].isupper()


def persona_names(persona_id: str) -> frozenset[str]:
    """The name words a persona id carries: `lena-park` -> {lena, park}."""
    return frozenset(fold(w) for w in re.split(r"[^\w]+|_|\d+", persona_id) if len(w) >= 2)


class NameDetector:
    """Finds personal names in text; each found name is returned as written."""

    def __init__(self, lex: Lexicon | None = None) -> None:
        self.lex = lex or lexicon()

    def find(self, text: str, allowed: frozenset[str] = frozenset()) -> list[str]:
        found: list[str] = []
        shown = surface(text)
        for variant in (shown, _leet_words(shown)):
            for name in self._scan(variant):
                if name not in found and not _allowed(name, allowed):
                    found.append(name)
        return found

    def _scan(self, text: str) -> list[str]:
        words = [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text)]
        names = []
        i = 0
        while i < len(words) - 1:
            end = self._name_at(words, i, text)
            if end is None:
                i += 1
                continue
            names.append(text[words[i][1] : words[end][2]])
            i = end + 1
        return names + [n for n in self._likeness(words, text) if n not in names]

    def _likeness(self, words: list[tuple[str, int, int]], text: str) -> list[str]:
        """Single names after a likeness cue (module doc): "looks like Shakira"."""
        folded = [fold(w) for w, _, _ in words]
        found = []
        for i in range(len(words)):
            for cue in _CUES:
                j = i + len(cue)
                if j >= len(words) or tuple(folded[i:j]) != cue:
                    continue
                if not all(_adjacent(words[k - 1], words[k], text) for k in range(i + 1, j + 1)):
                    continue
                if self._single_name(words[j][0]):
                    found.append(words[j][0])
            if (
                i > 0
                and folded[i] in _CUES_AFTER
                and _adjacent(words[i - 1], words[i], text)
                and self._single_name(words[i - 1][0])
            ):
                found.append(words[i - 1][0])
        return found

    def _single_name(self, word: str) -> bool:
        """Whether one word, after a likeness cue, reads as a person's name."""
        if len(word) < 2 or not _capitalised(word) or word.isupper():
            return False
        stem = word.split("'")[0].split("’")[0]
        if fold(stem) in self.lex.calendar:
            return False
        # a given name counts even where it is also a word ("Summer"; "Mina", whose
        # nominative guess "min" is a common word); any other common word does not
        return _in(stem, self.lex.given) or not _in(stem, self.lex.common)

    def _name_at(self, words: list[tuple[str, int, int]], i: int, text: str) -> int | None:
        """Index of the surname word when a name starts at word i, else None."""
        lex = self.lex
        first = words[i][0]
        if not _in(first, lex.given) or len(first) < 2:
            return None
        upper = _capitalised(first)
        if not upper and (fold(first) in lex.common or len(first) < 3):
            return None
        j = i + 1
        particle = False
        # more given names (Anna Maria), or a particle (de Vries, van der Berg)
        while j < len(words) - 1 and _adjacent(words[j - 1], words[j], text):
            w = words[j][0]
            if fold(w) in _PARTICLES and not _capitalised(w):
                particle = True
                j += 1
                continue
            if (
                upper
                and _capitalised(w)
                and fold(w) in lex.given
                and fold(w) not in lex.surnames
                and fold(w) not in lex.common
            ):
                j += 1
                continue
            break
        if j >= len(words) or not _adjacent(words[j - 1], words[j], text):
            return None
        last = words[j][0]
        key = fold(last)
        if upper:
            if not _capitalised(last) or len(last) < 2:
                return None
            if last.isupper() and not first.isupper():
                return None  # "Anna SPF": an acronym, not a surname
            if particle or _in(last, lex.surnames):
                return j  # "de Boer", "García": surnames that are also words
            if key in lex.common or fold(first) in lex.common:
                return None
            return j
        if _capitalised(last) or key in lex.common or key in lex.given:
            return None
        return j if _in(last, lex.surnames) else None


def _adjacent(a: tuple[str, int, int], b: tuple[str, int, int], text: str) -> bool:
    """Only spaces between two words: a comma or full stop ends a name."""
    return text[a[2] : b[1]].strip() == ""


def _leet_words(text: str) -> str:
    # only words that mix letters and digits: "T4yl0r Sw1ft", not "SPF 50"
    return re.sub(r"\b(?=\w*[a-zA-Z])(?=\w*[0-9])\w+\b", lambda m: leet(m.group(0)), text)


def _allowed(name: str, allowed: frozenset[str]) -> bool:
    if not allowed:
        return False
    words = {fold(w) for w in _WORD.findall(name) if fold(w) not in _PARTICLES}
    forms = {f for w in _WORD.findall(name) for f in _forms(w)}
    # every word of the name is the persona's, or the persona's words all appear in the name
    return words <= allowed or allowed <= forms
