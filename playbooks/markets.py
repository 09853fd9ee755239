"""Market codes a playbook may name: ISO 3166-1 alpha-2, checked against the real list.

A brief only checks the shape of a market code (two capital letters); a playbook is stricter,
because a rule for a code that does not exist (UK, EL) silently never fires: its author meant
GB or GR and the campaign would run without the rule they wrote.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

__all__ = ["EU_MEMBERS", "ISO_3166_ALPHA2", "IsoMarket", "iso_market"]

# The 249 officially assigned ISO 3166-1 alpha-2 codes (ISO 3166 Maintenance Agency).
_ASSIGNED = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
"""
ISO_3166_ALPHA2: frozenset[str] = frozenset(_ASSIGNED.split())

# The 27 member states, for rules on EU law (AI Act, GDPR, DSA).
EU_MEMBERS: tuple[str, ...] = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip

# Codes people write that ISO does not assign: the EU's own abbreviations and habits.
_HINTS = {"UK": "GB", "EL": "GR", "EN": "GB", "EU": "list the member states"}


def iso_market(code: str) -> str:
    """The code if ISO 3166-1 assigns it; else an error that says what was probably meant."""
    if code in ISO_3166_ALPHA2:
        return code
    hint = _HINTS.get(code.upper())
    if code.upper() in ISO_3166_ALPHA2:
        hint = code.upper()
    fix = f"; did you mean {hint}?" if hint and len(hint) == 2 else f" ({hint})" if hint else ""
    raise PydanticCustomError(
        "unknown_market",
        "'{code}' is not an ISO 3166-1 alpha-2 country code{fix}",
        {"code": code, "fix": fix},
    )


# validated per item, so an error names the index (markets_any.2) a person has to fix
IsoMarket = Annotated[str, AfterValidator(iso_market)]
