"""KPI import from a CSV export, for channels without an API and for history.

A mapping (a shipped one for Meta, Google Ads or TikTok exports, or the user's YAML) names
the CSV column of each KpiObservation field and the rule that turns a row into a window
(round): a date column counted from the campaign's start in windows of a fixed length, or
an explicit round column. `plan_import` reads and checks everything and writes nothing;
`apply_import` writes what a plan found new (or, with replace, different), so the rows
reach the catalog exactly as the observe step's do and the learn step reads them alike.

Counts are per window (the catalog's semantics): impressions, clicks and conversions
reported in that window, never running totals. A file with any bad row is refused whole,
every problem named by line and column; a good file is written in one transaction with its
audit entry, so nothing is ever half-applied. An import is idempotent per (ad, window,
segment): the same file again changes nothing, and a row that differs from what is stored
for its key is a conflict unless `replace`.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from faceloop.briefs import read_file_bytes
from faceloop.connectors.kpi_mapping import (
    MAPPINGS_DIR,
    Columns,
    KpiImportError,
    KpiMapping,
    WindowRule,
    load_mapping,
    shipped_mappings,
)
from faceloop.errors import InputError
from faceloop.models import KpiObservation

if TYPE_CHECKING:
    from faceloop.storage.catalog import Catalog

__all__ = [
    "MAPPINGS_DIR",
    "ImportPlan",
    "ImportResult",
    "KpiImportError",
    "KpiMapping",
    "apply_import",
    "load_mapping",
    "plan_import",
    "shipped_mappings",
]

AUDIT_KIND = "kpis.imported"
COUNT_FIELDS = ("impressions", "clicks", "conversions")
OPTIONAL_COUNT_FIELDS = ("negative_feedback", "complaints")

# --------------------------------------------------------------------------- one row


class KpiRow(BaseModel):
    """One CSV row's values, before the campaign is consulted."""

    model_config = ConfigDict(extra="forbid")

    ad_id: str = Field(min_length=1)
    segment: str | None = None
    impressions: int = Field(ge=0)
    clicks: int = Field(ge=0)
    conversions: int = Field(ge=0)
    negative_feedback: int | None = Field(default=None, ge=0)
    complaints: int | None = Field(default=None, ge=0)

    @field_validator("ad_id", "segment", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v

    @field_validator(*COUNT_FIELDS, *OPTIONAL_COUNT_FIELDS, mode="before")
    @classmethod
    def _count(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, str):
            return v
        ctx = info.context or {}
        text = v.strip()
        if sep := ctx.get("thousands_separator"):
            text = text.replace(sep, "")
        if not text:
            if info.field_name in OPTIONAL_COUNT_FIELDS:
                return None
            if ctx.get("blank_is_zero"):
                return 0
            raise ValueError("empty: write the count (0 if none)")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError("not a number: write a whole count such as 120") from None
        if not number.is_finite() or number != number.to_integral_value():
            # fractional conversions come from data-driven attribution; the catalog counts
            # events, so a fraction would be invented precision
            raise ValueError(
                "not a whole number: counts are events (fractional conversions: export "
                "them with last-click attribution, or rounded)"
            )
        return int(number)


# --------------------------------------------------------------------------- the plan

RowStatus = Literal["new", "unchanged", "replaced"]


@dataclass(frozen=True)
class PlannedRow:
    line: int
    status: RowStatus
    observation: KpiObservation


@dataclass
class ImportPlan:
    """What an import would do; `apply_import` writes it."""

    campaign_id: str
    file: str
    sha256: str
    mapping: str
    rows: list[PlannedRow] = field(default_factory=list)

    def count(self, status: RowStatus) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def changes(self) -> list[PlannedRow]:
        return [r for r in self.rows if r.status != "unchanged"]


@dataclass(frozen=True)
class ImportResult:
    plan: ImportPlan
    written: bool
    audit_seq: int | None


def _key(o: KpiObservation) -> tuple[str, int, str]:
    return (o.variant_id, o.round, o.segment)


def _same(a: KpiObservation, b: KpiObservation) -> bool:
    fields = (*COUNT_FIELDS, *OPTIONAL_COUNT_FIELDS, "ad_id")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def _read_rows(
    path: Path, mapping: KpiMapping
) -> tuple[str, list[str], list[tuple[int, list[str]]]]:
    """(sha256 of the bytes, header, [(line, cells)]) of the CSV."""
    source = str(path)
    try:
        data = read_file_bytes(path, source)
    except InputError as exc:
        raise KpiImportError(source, exc.problems) from None
    try:
        # utf-8-sig: spreadsheet tools put a byte-order mark in front of UTF-8 exports
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KpiImportError(
            source,
            [f"not UTF-8 text (byte {exc.start}): export the report as CSV (UTF-8) again"],
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    first = 1  # where the record being read starts: an open quote is reported there
    try:
        for cells in reader:
            first, at = reader.line_num + 1, first
            if header is None:
                if reader.line_num >= mapping.header_row:
                    header = [c.strip() for c in cells]
                continue
            if any(c.strip() for c in cells):
                rows.append((at, cells))
    except csv.Error as exc:
        raise KpiImportError(
            source,
            [f"line {first}: not valid CSV: {exc}; check the quotes of the row starting there"],
        ) from None
    if header is None:
        raise KpiImportError(
            source, [f"no header at line {mapping.header_row}: the file is empty or too short"]
        )
    return hashlib.sha256(data).hexdigest(), header, rows


def _resolve(header: list[str], mapping: KpiMapping) -> tuple[dict[str, str], list[str]]:
    """field -> the header it reads, and the problems of columns that are missing."""
    problems: list[str] = []
    wanted: dict[str, Columns | None] = dict(mapping.columns)
    rule = mapping.window
    for name in ("round", "date", "end"):
        wanted[f"window.{name}"] = getattr(rule, name)
    out: dict[str, str] = {}
    for fld, cols in wanted.items():
        if cols is None:
            continue
        options = [cols] if isinstance(cols, str) else cols
        found = next((c for c in options if c in header), None)
        if found is not None and header.count(found) > 1:
            problems.append(
                f"line {mapping.header_row}: column {found!r} (the mapping's {fld}) appears "
                f"{header.count(found)} times; keep one"
            )
        elif found is not None:
            out[fld] = found
        else:
            problems.append(
                f"line {mapping.header_row}: column {' or '.join(repr(c) for c in options)} "
                f"is missing (the mapping's {fld}); the file has {header}: export it with "
                "that column, or map another one in a custom mapping"
            )
    return out, problems


def _parse_time(text: str, rule: WindowRule) -> datetime:
    text = text.strip()
    if rule.format is not None:
        value = datetime.strptime(text, rule.format)
    else:
        value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(rule.timezone))
    return value


def _window_start(rule: WindowRule, created_at: datetime) -> datetime:
    zone = ZoneInfo(rule.timezone)
    if rule.start == "campaign":
        local = created_at.astimezone(zone)
        if rule.length.endswith("d"):
            return local.replace(hour=0, minute=0, second=0, microsecond=0)
        return local.replace(minute=0, second=0, microsecond=0)
    if isinstance(rule.start, datetime):
        return rule.start if rule.start.tzinfo else rule.start.replace(tzinfo=zone)
    return datetime(rule.start.year, rule.start.month, rule.start.day, tzinfo=zone)


def _fix(fld: str) -> str:
    if fld in (*COUNT_FIELDS, *OPTIONAL_COUNT_FIELDS):
        return "counts are whole numbers >= 0 for that window"
    if fld == "ad_id":
        return "every row needs the platform's ad id"
    return "correct the cell"


def plan_import(
    catalog: Catalog,
    campaign_id: str,
    path: Path,
    mapping: KpiMapping,
    *,
    replace: bool = False,
    now: datetime | None = None,
) -> ImportPlan:
    """Read and check `path` against the campaign; raise KpiImportError naming every bad
    row and column, or return what an import would write. Writes nothing."""
    source = str(path)
    camp = catalog.get_campaign(campaign_id)
    if camp is None:
        raise KpiImportError(
            "--campaign",
            [f"campaign {campaign_id!r} is not in the catalog: check the id (`faceloop status`)"],
        )
    sha, header, raw = _read_rows(path, mapping)
    cols, problems = _resolve(header, mapping)
    if problems:
        raise KpiImportError(source, problems)
    if not raw:
        raise KpiImportError(source, ["no data rows after the header: nothing to import"])

    segments = [s.name for s in camp.brief.audience]
    if "segment" not in cols and len(segments) > 1:
        raise KpiImportError(
            source,
            [
                f"campaign {campaign_id!r} has segments {segments}: map a segment column "
                "(columns.segment in a custom mapping) so each row names its segment"
            ],
        )
    ad_to_variant: dict[str, str] = {}
    for d in catalog.deployments(campaign_id):
        ad_to_variant.setdefault(d.ad_id, d.variant_id)
    for v in catalog.variants(campaign_id):
        if v.ad_id:
            ad_to_variant.setdefault(v.ad_id, v.variant_id)
    rule = mapping.window
    start = _window_start(rule, camp.created_at)
    step = rule.step
    observed_at = now or datetime.now(UTC)
    context = {
        "thousands_separator": mapping.thousands_separator,
        "blank_is_zero": mapping.blank_is_zero,
    }

    parsed: list[tuple[int, KpiObservation]] = []
    seen: dict[tuple[str, int, str], int] = {}
    for line, cells in raw:
        at = f"line {line}"
        values = {
            fld: (cells[header.index(col)] if header.index(col) < len(cells) else "")
            for fld, col in cols.items()
        }
        try:
            row = KpiRow.model_validate(
                {k: v for k, v in values.items() if not k.startswith("window.")},
                context=context,
            )
        except ValidationError as err:
            for e in err.errors():
                fld = str(e["loc"][0]) if e["loc"] else "(row)"
                col = cols.get(fld, fld)
                got = values.get(fld, "")
                # our own checks name their fix; pydantic's bounds get the field's
                if e["type"] == "value_error":
                    msg = f"{e['msg'].removeprefix('Value error, ')} (got {got!r})"
                else:
                    msg = f"{e['msg']} (got {got!r}); {_fix(fld)}"
                problems.append(f"{at}, column {col!r}: {msg}")
            continue
        if row.clicks > row.impressions:
            problems.append(
                f"{at}, column {cols['clicks']!r}: {row.clicks} clicks exceed "
                f"{row.impressions} impressions; check that both columns come from the same "
                "report (link clicks, not all clicks, if impressions are filtered)"
            )
        variant_id = ad_to_variant.get(row.ad_id)
        if variant_id is None:
            problems.append(
                f"{at}, column {cols['ad_id']!r}: ad {row.ad_id!r} is not an ad of campaign "
                f"{campaign_id!r}; remove the row, or import it into the campaign that "
                "deployed it"
            )
        segment = row.segment if row.segment is not None else segments[0]
        if segment not in segments:
            problems.append(
                f"{at}, column {cols.get('segment', 'segment')!r}: segment {segment!r} is not "
                f"one of the campaign's {segments}; rename it to one of them"
            )
        window = _row_window(at, values, cols, rule, start, step, camp.round, problems)
        if variant_id is None or window is None or segment not in segments:
            continue
        key = (variant_id, window, segment)
        if key in seen:
            problems.append(
                f"{at}, column {cols['ad_id']!r}: ad {row.ad_id!r}, window {window}, segment "
                f"{segment!r} is already on line {seen[key]}; one row per ad, window and "
                "segment (export with a time breakdown equal to the window length)"
            )
            continue
        seen[key] = line
        parsed.append(
            (
                line,
                KpiObservation(
                    campaign_id=campaign_id,
                    variant_id=variant_id,
                    ad_id=row.ad_id,
                    round=window,
                    segment=segment,
                    impressions=row.impressions,
                    clicks=row.clicks,
                    conversions=row.conversions,
                    observed_at=observed_at,
                    negative_feedback=row.negative_feedback,
                    complaints=row.complaints,
                ),
            )
        )
    if problems:
        raise KpiImportError(source, problems)

    stored = {_key(o): o for o in catalog.observations(campaign_id)}
    plan = ImportPlan(campaign_id=campaign_id, file=source, sha256=sha, mapping=mapping.name)
    for line, obs in parsed:
        old = stored.get(_key(obs))
        if old is None:
            status: RowStatus = "new"
        elif _same(old, obs):
            status = "unchanged"
        elif replace:
            status = "replaced"
        else:
            problems.append(
                f"line {line}: ad {obs.ad_id!r}, window {obs.round}, segment {obs.segment!r} "
                f"is stored with impressions/clicks/conversions {old.impressions}/"
                f"{old.clicks}/{old.conversions}, the file says {obs.impressions}/"
                f"{obs.clicks}/{obs.conversions}; pass --replace to overwrite the stored "
                "window, or correct the file"
            )
            continue
        plan.rows.append(PlannedRow(line, status, obs))
    if problems:
        raise KpiImportError(source, problems)
    return plan


def _row_window(
    at: str,
    values: dict[str, str],
    cols: dict[str, str],
    rule: WindowRule,
    start: datetime,
    step: timedelta,
    reached: int,
    problems: list[str],
) -> int | None:
    """The row's window, or None with its problem appended."""
    if rule.round is not None:
        col, text = cols["window.round"], values["window.round"].strip()
        try:
            window = int(text)
        except ValueError:
            problems.append(f"{at}, column {col!r}: {text!r} is not a window number (0, 1, ...)")
            return None
        if not 0 <= window <= reached:
            problems.append(
                f"{at}, column {col!r}: window {window} is outside the campaign (windows "
                f"0..{reached} so far); correct the round"
            )
            return None
        return window
    col = cols["window.date"]
    fmt = rule.format or "ISO 8601 (2025-03-01)"
    try:
        when = _parse_time(values["window.date"], rule)
    except ValueError:
        problems.append(
            f"{at}, column {col!r}: {values['window.date']!r} is not a date in {fmt}; "
            "set window.format in a custom mapping"
        )
        return None
    window = (when - start) // step
    last = start + (reached + 1) * step
    if when < start or window > reached:
        problems.append(
            f"{at}, column {col!r}: {values['window.date'].strip()} is outside the campaign "
            f"(its windows so far run from {start:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} "
            f"{rule.timezone}); "
            "remove the row or check window.start and window.length"
        )
        return None
    if rule.end is not None:
        ecol = cols["window.end"]
        try:
            end = _parse_time(values["window.end"], rule)
        except ValueError:
            problems.append(
                f"{at}, column {ecol!r}: {values['window.end']!r} is not a date in {fmt}"
            )
            return None
        if end < when or (end - start) // step != window:
            problems.append(
                f"{at}, column {ecol!r}: the row runs {values['window.date'].strip()} to "
                f"{values['window.end'].strip()}, not within one {rule.length} window; export "
                f"with a time breakdown of {rule.length}"
            )
            return None
    return window


def apply_import(catalog: Catalog, plan: ImportPlan, actor: str) -> ImportResult:
    """Write a plan's new and replaced rows and its `kpis.imported` audit entry, in one
    transaction: a failure anywhere (the database, a crash, a window changed since the plan
    was made) leaves neither a row nor the entry, and running the import again finds the
    same rows to write. A plan with nothing to change writes neither.

    The entry is keyed by the file and the rows it writes, so a second import of the same
    rows is recorded once."""
    from faceloop.storage.catalog import AuditRecord

    changes = plan.changes
    if not changes:
        return ImportResult(plan, written=False, audit_seq=None)
    digest = hashlib.sha256(
        "\n".join(
            f"{r.status} {r.observation.model_dump_json(exclude={'observed_at'})}" for r in changes
        ).encode()
    ).hexdigest()
    audit = AuditRecord(
        kind=AUDIT_KIND,
        subject=plan.campaign_id,
        actor=actor,
        payload={
            "file": Path(plan.file).name,
            "sha256": plan.sha256,
            "mapping": plan.mapping,
            "rows": len(plan.rows),
            "new": plan.count("new"),
            "replaced": plan.count("replaced"),
            "unchanged": plan.count("unchanged"),
            "windows": sorted({r.observation.round for r in changes}),
        },
        key=f"{AUDIT_KIND}:{plan.campaign_id}:{plan.sha256}:{digest}",
    )

    def unchanged_since_plan(stored: list[KpiObservation]) -> None:
        # what the plan found must still hold inside the transaction: a window that another
        # import or the observe step wrote meanwhile would otherwise be overwritten unasked
        now = {_key(o): o for o in stored}
        problems = []
        for r in plan.rows:
            old = now.get(_key(r.observation))
            status = "new" if old is None else "unchanged" if _same(old, r.observation) else None
            if r.status == status or (r.status == "replaced" and old is not None):
                continue
            problems.append(
                f"line {r.line}: ad {r.observation.ad_id!r}, window {r.observation.round}, "
                f"segment {r.observation.segment!r} changed in the catalog since the file was "
                "checked; nothing was written: run the import again"
            )
        if problems:
            raise KpiImportError(plan.file, problems)

    entry = catalog.import_observations(
        plan.campaign_id, [r.observation for r in changes], unchanged_since_plan, audit
    )
    return ImportResult(plan, written=True, audit_seq=entry.seq)
