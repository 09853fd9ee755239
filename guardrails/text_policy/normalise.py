"""The text the rules see: disguises undone, accents folded, one line.

Unicode compatibility forms (fullwidth letters) are folded, invisible characters dropped,
Cyrillic and Greek look-alike letters mapped to Latin, s p a c e d letters joined, and
accents folded (über -> uber, ł -> l) so a rule written once matches with or without them.
`leet` undoes digit-for-letter swaps (1gn0re) on a second copy. `surface` keeps letter case
and accents for the person-name detector, which needs capitals to see a name.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["CONTROL", "INVISIBLE", "fold", "leet", "normalise", "surface"]

INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]"
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
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
# letters NFKD does not split into base + accent
_UNSPLIT = str.maketrans(
    {
        "ł": "l",
        "Ł": "L",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "’": "'",
        "‘": "'",
        "«": '"',
        "»": '"',
        "„": '"',
        "“": '"',
        "”": '"',
    }
)
# i g n o r e / i.g.n.o.r.e: four or more single letters with one separator between each
_SPACED = re.compile(r"\b(?:[^\W\d_][ .\-_*]){3,}[^\W\d_]\b")


def _clean(text: str) -> str:
    t = unicodedata.normalize("NFKC", text)
    t = INVISIBLE.sub("", t)
    t = CONTROL.sub(" ", t)
    t = t.translate(_HOMOGLYPHS)
    return _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), t)


def fold(text: str) -> str:
    """Accents off, lower case: Żydom -> zydom, Überspringen -> uberspringen."""
    t = unicodedata.normalize("NFKD", text.translate(_UNSPLIT))
    return "".join(c for c in t if not unicodedata.combining(c)).lower()


def normalise(text: str) -> str:
    """The text the rules match: disguises undone, accents folded, lower case, one line."""
    return " ".join(fold(_clean(text)).split())


def surface(text: str) -> str:
    """Disguises undone but case and accents kept: what the name detector reads."""
    return " ".join(_clean(text).translate(_UNSPLIT).split())


def leet(text: str) -> str:
    return text.translate(_LEET)
