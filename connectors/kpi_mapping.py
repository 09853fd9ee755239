"""The mapping of a KPI CSV export onto KpiObservation fields, and its window rule
(docs/kpis.md). Shipped mappings live in kpi_mappings/ as package data."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from faceloop.briefs import parse_model, read_document
from faceloop.errors import InputError

__all__ = [
    "MAPPINGS_DIR",
    "ColumnMap",
    "KpiImportError",
    "KpiMapping",
    "WindowRule",
    "load_mapping",
    "shipped_mappings",
]

MAPPINGS_DIR = Path(__file__).parent / "kpi_mappings"
_LENGTH = re.compile(r"^([1-9][0-9]*)([hd])$")


class KpiImportError(InputError):
    """A KPI file or mapping is invalid; nothing was written to the catalog."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(source, problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        self.args = (
            f"{source} is invalid ({len(problems)} problem(s)); nothing was imported:\n{lines}",
        )


# --------------------------------------------------------------------------- the mapping

Columns = str | list[str]
# WindowRule has a field named `date`, which would shadow the type inside its class body
Day = date


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMap(_Strict):
    """The CSV header of each field; a list names alternatives, the first present wins
    (Meta names its clicks column "Link clicks" or "Clicks (all)" by the columns chosen)."""

    ad_id: Columns
    impressions: Columns
    clicks: Columns
    conversions: Columns
    segment: Columns | None = Field(
        default=None, description="without it every row is the campaign's only segment"
    )
    negative_feedback: Columns | None = None
    complaints: Columns | None = None

    @field_validator("*")
    @classmethod
    def _not_empty(cls, v: Columns | None) -> Columns | None:
        names = [v] if isinstance(v, str) else v or []
        if v is not None and (not names or any(not n.strip() for n in names)):
            raise ValueError("name the CSV column (a header text, or a list of alternatives)")
        return v


class WindowRule(_Strict):
    """Which window (round) a row belongs to: `round` names a column holding it; otherwise
    `date` names the column of the row's start, window k covering
    [start + k * length, start + (k + 1) * length)."""

    round: str | None = Field(default=None, description="column holding the window index")
    date: str | None = Field(default=None, description="column holding the row's first day")
    end: str | None = Field(
        default=None,
        description="column holding the row's last day (inclusive): the row must not span "
        "two windows",
    )
    format: str | None = Field(
        default=None, description="strptime format of the dates; default ISO 8601"
    )
    timezone: str = Field(default="UTC", description="zone of dates written without one")
    start: Literal["campaign"] | datetime | Day = Field(
        default="campaign",
        description="window 0's start: `campaign` (the start of the day, or hour, the "
        "campaign was created) or a date/time",
    )
    length: str = Field(default="1d", description="window length: Nd or Nh")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r}: use an IANA name, e.g. Europe/Berlin"
            ) from None
        return v

    @field_validator("length")
    @classmethod
    def _length(cls, v: str) -> str:
        if not _LENGTH.match(v):
            raise ValueError(f"{v!r} is not a window length: use e.g. 1d, 7d or 6h")
        return v

    @model_validator(mode="after")
    def _one_rule(self) -> WindowRule:
        if (self.round is None) == (self.date is None):
            raise ValueError("name exactly one of `round` (a window column) or `date`")
        if self.round is not None and self.end is not None:
            raise ValueError("`end` goes with `date`, not with `round`")
        return self

    @property
    def step(self) -> timedelta:
        m = _LENGTH.match(self.length)
        assert m is not None  # checked on load
        n = int(m.group(1))
        return timedelta(days=n) if m.group(2) == "d" else timedelta(hours=n)


class KpiMapping(_Strict):
    """How one CSV export maps onto KPI observations (docs/kpis.md)."""

    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    columns: ColumnMap
    window: WindowRule
    header_row: int = Field(default=1, ge=1, description="line of the header (1: the first)")
    thousands_separator: Literal[",", ".", " ", "'"] | None = None
    blank_is_zero: bool = Field(
        default=False, description="an empty count cell means 0 (Meta leaves 0 results blank)"
    )


def shipped_mappings() -> list[str]:
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def load_mapping(spec: str) -> KpiMapping:
    """A shipped mapping by name (meta, google, tiktok) or a YAML/JSON mapping file."""
    if spec in shipped_mappings():
        path, source = MAPPINGS_DIR / f"{spec}.yaml", f"mapping {spec}"
    elif Path(spec).suffix.lower() in (".yaml", ".yml", ".json"):
        path, source = Path(spec), spec
    else:
        raise KpiImportError(
            "--mapping",
            [
                f"{spec!r} is neither a shipped mapping ({', '.join(shipped_mappings())}) "
                "nor a .yaml/.json mapping file"
            ],
        )
    try:
        return parse_model(KpiMapping, read_document(path, source), source)
    except InputError as exc:
        raise KpiImportError(exc.source, exc.problems) from None
