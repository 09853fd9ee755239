"""Consent (GDPR Art. 9, German KUG §22): the records that make a persona usable.

A persona is the likeness of a real person, so it is biometric, special-category data. It
may be used only within what its subject agreed to: a scope of uses, a list of markets, an
expiry date, and signed evidence (kept outside faceloop; the record carries its sha256).

`ConsentRecord` is the boundary model: the file a person hands in (`faceloop consent add`,
`faceloop persona train --consent`). The catalog keeps the records and their revocations
(`Catalog.record_consent`, `revoke_consent`, `consent_status`); `evaluate_consents` is the
one rule that turns the records of a persona into a `ConsentStatus` a person can read, and
`ConsentActivities.check_consent` is how the campaign workflow asks for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError, field_validator

from faceloop.briefs import read_document
from faceloop.errors import InputError
from faceloop.models import Line, Model, Text

__all__ = [
    "ConsentCheckInput",
    "ConsentRecord",
    "ConsentState",
    "ConsentStatus",
    "RegisteredConsent",
    "check_revocation_reason",
    "evaluate_consents",
    "load_consent",
]

# the scope a consent needs for its persona to appear in ads
ADS_SCOPE = "ads"
# a scope entry that grants every use
ALL_SCOPES = "all"


class ConsentRecord(Model):
    """What the subject agreed to. Every field is required; nothing is inferred."""

    consent_id: Line = Field(
        min_length=1, max_length=128, description="id of this consent, stored with the adapter"
    )
    persona_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    subject_name: Line = Field(min_length=1, max_length=200)
    scope: list[Annotated[Line, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=20, description="uses agreed to, e.g. ['ads', 'social']"
    )
    markets: list[str] = Field(
        min_length=1, max_length=250, description="ISO country codes, e.g. ['US', 'DE']"
    )
    expires: dt.date
    evidence_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the signed form")

    @field_validator("markets")
    @classmethod
    def _iso_codes(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if len(m) != 2 or not m.isalpha() or not m.isupper()]
        if bad:
            raise ValueError(f"{bad} are not two-letter upper-case ISO country codes")
        return v

    def covers_scope(self, scope: str) -> bool:
        return scope in self.scope or ALL_SCOPES in self.scope


class RegisteredConsent(ConsentRecord):
    """A consent record as the catalog keeps it: when it was recorded, revoked, erased.

    After the persona's erasure `subject_name` is blank: the record stays (ids, dates,
    evidence hash) as proof of what was consented to and withdrawn, without the name.
    """

    subject_name: str = ""
    recorded_at: dt.datetime
    revoked_at: dt.datetime | None = None
    revoked_reason: str | None = None
    erased_at: dt.datetime | None = None


# why a consent was revoked: kept with the record, so free text with the brief's limits
_REVOCATION_REASON: TypeAdapter[str] = TypeAdapter(
    Annotated[Text, Field(min_length=1, max_length=2000)]
)


def check_revocation_reason(reason: str) -> str:
    """The reason, or InputError naming --reason: empty, control characters, over 2000."""
    if not reason.strip():
        raise InputError("--reason", ["the reason is empty; say why consent is revoked"])
    try:
        return _REVOCATION_REASON.validate_python(reason)
    except ValidationError as err:
        raise InputError(
            "--reason", [e["msg"].removeprefix("Value error, ") for e in err.errors()]
        ) from None


def load_consent(
    path: str | Path, *, today: dt.date | None = None, scope: str | None = "persona_training"
) -> ConsentRecord:
    """Read and check a consent file; InputError naming the field and the fix otherwise.

    `scope` must be among the record's scopes (or the record must list "all"); None checks
    no particular use (registering a record). An `evidence` file next to the record, when
    present, must hash to evidence_sha256.
    """
    path = Path(path)
    source = f"consent record {path}"
    if not path.is_file():
        raise InputError(
            source, ["(file): not found; pass --consent with the subject's consent record"]
        )
    raw = read_document(path, source)
    if not isinstance(raw, dict):
        raise InputError(source, ["(root): expected a mapping of consent fields"])
    evidence = raw.pop("evidence", None)
    try:
        record = ConsentRecord.model_validate(raw)
    except ValidationError as err:
        raise InputError.from_validation(source, err) from err
    problems = []
    today = today or dt.date.today()
    if record.expires < today:
        problems.append(
            f"expires: consent expired on {record.expires} (today {today}); "
            "get a renewed consent before training"
        )
    if scope is not None and not record.covers_scope(scope):
        problems.append(f"scope: {record.scope} does not include {scope!r}; training needs it")
    if evidence is not None:
        ev = (path.parent / str(evidence)).resolve()
        if not ev.is_file():
            problems.append(f"evidence: file {ev} not found")
        elif hashlib.sha256(ev.read_bytes()).hexdigest() != record.evidence_sha256:
            problems.append(
                f"evidence_sha256: does not match the sha256 of {ev.name}; "
                "the evidence file was changed or the hash was mistyped"
            )
    if problems:
        raise InputError(source, problems)
    return record


# --------------------------------------------------------------------------- status


class ConsentState(StrEnum):
    valid = "valid"
    missing = "missing"
    expired = "expired"
    revoked = "revoked"
    market_not_covered = "market-not-covered"
    scope_not_covered = "scope-not-covered"


class ConsentStatus(Model):
    """Whether a persona may be used in some markets at some time, and why (or why not)."""

    persona_id: str
    state: ConsentState
    reason: str = Field(description="one sentence a person can act on")
    markets: list[str] = Field(default_factory=list, description="the markets asked about")
    missing_markets: list[str] = Field(default_factory=list)
    consent_ids: list[str] = Field(
        default_factory=list, description="valid: the records that grant it; else those seen"
    )
    expires: dt.date | None = Field(
        default=None, description="valid: the first expiry among the granting records"
    )
    checked_at: dt.datetime

    @property
    def ok(self) -> bool:
        return self.state is ConsentState.valid


class ConsentCheckInput(Model):
    """What the campaign workflow asks before it makes or ships persona variants."""

    campaign_id: str
    persona_id: str
    markets: list[str] = Field(default_factory=list, description="markets to cover (empty: any)")
    consent_ref: str | None = Field(
        default=None, description="the brief's persona.consent_ref: only that record counts"
    )
    scope: str = Field(default=ADS_SCOPE, description="the use the record must name")


def evaluate_consents(
    records: Sequence[RegisteredConsent],
    persona_id: str,
    markets: Sequence[str],
    at: dt.datetime,
    *,
    scope: str = ADS_SCOPE,
    consent_ref: str | None = None,
) -> ConsentStatus:
    """The persona's consent state at `at` for `markets` (empty: any market) and `scope`.

    Several live records may together cover the markets (one per country, say). A record
    counts on its expiry date and not after (as `load_consent` reads `expires`). When
    nothing grants it, the reason names the most specific obstacle: a revocation, an
    expiry, a missing scope, then missing markets.
    """
    markets = sorted(set(markets))
    day = at.astimezone(dt.UTC).date() if at.tzinfo else at.date()
    mine = [r for r in records if r.persona_id == persona_id]

    def status(state: ConsentState, reason: str, **kw: object) -> ConsentStatus:
        return ConsentStatus(
            persona_id=persona_id,
            state=state,
            reason=reason,
            markets=markets,
            checked_at=at,
            **kw,
        )

    if consent_ref is not None:
        ref = [r for r in records if r.consent_id == consent_ref]
        if not ref:
            return status(
                ConsentState.missing,
                f"consent {consent_ref!r} named by the brief is not in the consent registry; "
                "record it with `faceloop consent add FILE`",
            )
        if ref[0].persona_id != persona_id:
            return status(
                ConsentState.missing,
                f"consent {consent_ref!r} is for persona {ref[0].persona_id!r}, not "
                f"{persona_id!r}; fix the brief's persona.consent_ref",
                consent_ids=[consent_ref],
            )
        mine = ref
    if not mine:
        return status(
            ConsentState.missing,
            f"persona {persona_id!r} has no consent record; record the subject's signed "
            "consent with `faceloop consent add FILE` before using the persona",
        )
    seen = [r.consent_id for r in mine]
    live = [r for r in mine if r.revoked_at is None and r.expires >= day]
    usable = [r for r in live if r.covers_scope(scope)]
    covered = {m for r in usable for m in r.markets}
    missing = [m for m in markets if m not in covered]
    if usable and not missing:
        granting = [r for r in usable if not markets or set(r.markets) & set(markets)]
        return status(
            ConsentState.valid,
            f"consent {', '.join(r.consent_id for r in granting)} covers {scope!r} in "
            f"{', '.join(markets) or 'any market'} until {min(r.expires for r in granting)}",
            consent_ids=[r.consent_id for r in granting],
            expires=min(r.expires for r in granting),
        )
    if not live:
        revoked = [r for r in mine if r.revoked_at is not None]
        if len(revoked) == len(mine):
            last = max(revoked, key=lambda r: r.revoked_at or at)
            assert last.revoked_at is not None
            return status(
                ConsentState.revoked,
                f"consent {', '.join(seen)} of persona {persona_id!r} was revoked on "
                f"{last.revoked_at.date()}; the persona must not be used",
                consent_ids=seen,
            )
        last_day = max(r.expires for r in mine if r.revoked_at is None)
        return status(
            ConsentState.expired,
            f"every consent of persona {persona_id!r} has ended (last valid day {last_day}, "
            f"checked {day}); get a renewed consent and record it",
            consent_ids=seen,
        )
    if not usable:
        return status(
            ConsentState.scope_not_covered,
            f"no live consent of persona {persona_id!r} includes the use {scope!r} "
            f"(scopes: {sorted({s for r in live for s in r.scope})})",
            consent_ids=[r.consent_id for r in live],
        )
    return status(
        ConsentState.market_not_covered,
        f"persona {persona_id!r} has no live consent for market(s) {', '.join(missing)} "
        f"(covered: {', '.join(sorted(covered))}); drop those markets or get consent for them",
        missing_markets=missing,
        consent_ids=[r.consent_id for r in usable],
    )
