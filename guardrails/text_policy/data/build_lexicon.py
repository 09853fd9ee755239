"""Rebuild the name and common-word lexicons in this folder from Faker's locale data.

    python -m venv /tmp/fk && /tmp/fk/bin/pip install faker
    /tmp/fk/bin/python guardrails/text_policy/data/build_lexicon.py

Faker (https://github.com/joke2k/faker, MIT licence, Copyright (c) 2012 Daniele Faraglia;
the licence text is in NOTICE beside this script) ships given names, surnames and a common
word list per locale. Faker is not a dependency of faceloop: the lists are copied once,
folded to lower case, and shipped as package data.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
# EN, DE, FR, ES, IT, NL, PL and their neighbouring markets
PERSON_LOCALES = [
    "en_US",
    "en_GB",
    "en_IE",
    "de_DE",
    "de_AT",
    "de_CH",
    "fr_FR",
    "fr_BE",
    "fr_CH",
    "es_ES",
    "es_MX",
    "it_IT",
    "nl_NL",
    "nl_BE",
    "pl_PL",
]
WORD_LOCALES = ["en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL"]
GIVEN_ATTRS = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary")
SURNAME_ATTRS = (
    "last_names",
    "last_names_male",
    "last_names_female",
    "male_last_names",
    "female_last_names",
    "unisex_last_names",
)


def _collect(module: str, attrs: tuple[str, ...]) -> set[str]:
    provider = importlib.import_module(module).Provider
    out: set[str] = set()
    for attr in attrs:
        values = getattr(provider, attr, None) or ()
        for value in values:  # tuples, or dicts of name -> weight
            out.update(w.lower() for w in str(value).replace("-", " ").split())
    return out


def main() -> None:
    given: set[str] = set()
    surnames: set[str] = set()
    for loc in PERSON_LOCALES:
        given |= _collect(f"faker.providers.person.{loc}", GIVEN_ATTRS)
        surnames |= _collect(f"faker.providers.person.{loc}", SURNAME_ATTRS)
    words: set[str] = set()
    for loc in WORD_LOCALES:
        words |= _collect(f"faker.providers.lorem.{loc}", ("word_list",))
    header = f"# from Faker {version('faker')} (MIT, see NOTICE): locales {{}}\n"
    for name, data, locs in (
        ("given_names.txt", given, PERSON_LOCALES),
        ("surnames.txt", surnames, PERSON_LOCALES),
        ("common_words.txt", words, WORD_LOCALES),
    ):
        body = "\n".join(sorted(w for w in data if len(w) > 1 and w.isalpha()))
        (HERE / name).write_text(header.format(" ".join(locs)) + body + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
