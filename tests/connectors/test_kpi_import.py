"""KPI import from CSV: rows reach the learn step as observed ones, the import is idempotent
per (ad, window, segment), and every bad row is refused with its line and column, whole."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from faceloop.connectors.kpi_import import (
    KpiImportError,
    KpiMapping,
    apply_import,
    load_mapping,
    plan_import,
    shipped_mappings,
)
from faceloop.models import (
    AudienceSegment,
    Brief,
    CampaignConfig,
    Decision,
    FaceParams,
    Variant,
)
from faceloop.optimization.evidence import segment_shares
from faceloop.optimization.facemodel import CampaignEvidence, campaign_evidence
from faceloop.storage.catalog import Catalog

CAMPAIGN = "cmp-kpi"
ADS = {"v1": "120001", "v2": "120002", "v3": "120003"}


def brief(*segments: str) -> Brief:
    names = segments or ("adults",)
    return Brief(
        product="Lumen SPF 50",
        message="Everyday sun protection.",
        audience=[AudienceSegment(name=n, share=1 / len(names)) for n in names],
        markets=["DE"],
        budget_impressions=10_000,
    )


def variant(vid: str, n: int, campaign: str = CAMPAIGN) -> Variant:
    return Variant(
        variant_id=vid,
        campaign_id=campaign,
        round=0,
        trial_number=n,
        params=FaceParams(skin_tone=1 + n, expression="smile" if n % 2 else "laugh"),
        seed=n,
        prompt="portrait",
        decision=Decision.deploy,
        ad_id=ADS[vid],
        live=True,
    )


def make_campaign(catalog: Catalog, campaign: str, *segments: str, round: int = 2) -> None:
    catalog.upsert_campaign(campaign, brief(*segments), CampaignConfig(rounds=5), "running")
    catalog.set_campaign_status(campaign, "running", round)
    for n, vid in enumerate(ADS, start=1):
        catalog.upsert_variant(variant(vid, n, campaign))
        catalog.record_deployment(vid, f"{n:064x}", ADS[vid], "google", campaign)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    make_campaign(cat, CAMPAIGN)
    try:
        yield cat
    finally:
        cat.close()


def day(catalog: Catalog, window: int) -> str:
    """The date of window `window` under the shipped mappings (day windows from the day the
    campaign was created, UTC)."""
    camp = catalog.get_campaign(CAMPAIGN)
    assert camp is not None
    return (camp.created_at.astimezone(UTC).date() + timedelta(days=window)).isoformat()


def write(tmp_path: Path, text: str, name: str = "kpis.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def google_csv(catalog: Catalog, tmp_path: Path, rows: list[str] | None = None) -> Path:
    d0, d1 = day(catalog, 0), day(catalog, 1)
    rows = rows or [
        f'120001,{d0},"1,200",30,2',
        f"120002,{d0},800,12,1",
        f"120001,{d1},900,21,3",
        f"120002,{d1},700,7,0",
    ]
    return write(tmp_path, "Ad ID,Day,Impr.,Clicks,Conversions\n" + "\n".join(rows) + "\n")


def evidence(catalog: Catalog, campaign: str, now: int) -> CampaignEvidence:
    """What the learn activity computes (CampaignActivities._evidence), on this catalog."""
    b = brief()
    faces = {v.variant_id: v.params for v in catalog.variants(campaign)}
    return campaign_evidence(
        catalog.observations(campaign),
        faces,
        dict.fromkeys(faces),
        segment_shares(b),
        b.kpi_goal,
        b.search_space,
        now,
    )


def import_file(catalog: Catalog, path: Path, mapping: str | KpiMapping, **kw: bool) -> str:
    spec = load_mapping(mapping) if isinstance(mapping, str) else mapping
    plan = plan_import(catalog, CAMPAIGN, path, spec, **kw)
    apply_import(catalog, plan, "analyst@example.com")
    new, replaced, same = (plan.count(s) for s in ("new", "replaced", "unchanged"))
    return f"{new} new, {replaced} replaced, {same} unchanged"


def problems(catalog: Catalog, path: Path, mapping: str | KpiMapping, **kw: bool) -> list[str]:
    spec = load_mapping(mapping) if isinstance(mapping, str) else mapping
    with pytest.raises(KpiImportError) as info:
        plan_import(catalog, CAMPAIGN, path, spec, **kw)
    assert "nothing was imported" in str(info.value)
    return info.value.problems


# --------------------------------------------------------------------------- the learn step


def test_imported_counts_are_what_the_learn_step_sees(catalog: Catalog, tmp_path: Path) -> None:
    assert import_file(catalog, google_csv(catalog, tmp_path), "google") == (
        "4 new, 0 replaced, 0 unchanged"
    )

    ev = evidence(catalog, CAMPAIGN, now=1)
    assert ev.windows["v1"] == {0: (1200, 30), 1: (900, 21)}
    assert ev.windows["v2"] == {0: (800, 12), 1: (700, 7)}
    assert "v3" not in ev.windows or ev.windows["v3"] == {}
    got = {
        (o.variant_id, o.round): (o.impressions, o.clicks, o.conversions) for o in ev.observations
    }
    assert got == {
        ("v1", 0): (1200, 30, 2),
        ("v2", 0): (800, 12, 1),
        ("v1", 1): (900, 21, 3),
        ("v2", 1): (700, 7, 0),
    }
    assert {o.segment for o in ev.observations} == {"adults"}

    # the same rows recorded the way the observe activity records them give the same evidence
    make_campaign(catalog, "cmp-observed")
    catalog.record_observations(
        [o.model_copy(update={"campaign_id": "cmp-observed"}) for o in ev.observations]
    )
    observed = evidence(catalog, "cmp-observed", now=1)
    assert observed.arms == ev.arms
    assert observed.windows == ev.windows


def test_the_import_is_audited_once(catalog: Catalog, tmp_path: Path) -> None:
    path = google_csv(catalog, tmp_path)
    import_file(catalog, path, "google")
    (entry,) = [e for e in catalog.audit_entries(CAMPAIGN) if e.kind == "kpis.imported"]
    assert entry.actor == "analyst@example.com"
    assert entry.payload["mapping"] == "google"
    assert entry.payload["rows"] == 4 and entry.payload["new"] == 4
    assert entry.payload["windows"] == [0, 1]
    assert entry.payload["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- idempotency


def test_reimporting_the_same_file_changes_nothing(catalog: Catalog, tmp_path: Path) -> None:
    path = google_csv(catalog, tmp_path)
    import_file(catalog, path, "google")
    before = catalog.observations(CAMPAIGN)
    audits = len(catalog.audit_entries(CAMPAIGN))

    assert import_file(catalog, path, "google") == "0 new, 0 replaced, 4 unchanged"
    assert catalog.observations(CAMPAIGN) == before  # observed_at included: not rewritten
    assert len(catalog.audit_entries(CAMPAIGN)) == audits


def test_a_differing_row_is_a_conflict_unless_replace(catalog: Catalog, tmp_path: Path) -> None:
    import_file(catalog, google_csv(catalog, tmp_path), "google")
    d0, d1 = day(catalog, 0), day(catalog, 1)
    changed = google_csv(
        catalog,
        tmp_path,
        [f'120001,{d0},"1,200",30,2', f"120002,{d0},800,15,1", f"120003,{d1},50,1,0"],
    )
    (conflict,) = problems(catalog, changed, "google")
    assert conflict.startswith("line 3: ad '120002', window 0, segment 'adults'")
    assert "800/12/1" in conflict and "800/15/1" in conflict and "--replace" in conflict
    assert {(o.variant_id, o.round): o.clicks for o in catalog.observations(CAMPAIGN)}[
        ("v2", 0)
    ] == 12  # and the new v3 row was not written either
    assert len(catalog.observations(CAMPAIGN)) == 4

    assert import_file(catalog, changed, "google", replace=True) == (
        "1 new, 1 replaced, 1 unchanged"
    )
    stored = {(o.variant_id, o.round): o.clicks for o in catalog.observations(CAMPAIGN)}
    assert stored[("v2", 0)] == 15 and stored[("v3", 1)] == 1
    assert [
        e.payload["replaced"] for e in catalog.audit_entries(CAMPAIGN) if e.kind == "kpis.imported"
    ] == [0, 1]


# --------------------------------------------------------------------------- all or nothing


def test_a_failure_mid_write_leaves_nothing_half_applied(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = google_csv(catalog, tmp_path)
    plan = plan_import(catalog, CAMPAIGN, path, load_mapping("google"))
    entries = len(catalog.audit_entries())
    real_upsert = catalog._upsert

    def half_then_fail(conn: Any, table: Any, rows: Any, keys: Any, *a: Any, **kw: Any) -> None:
        # the first two rows reach the database, then it fails (disk full, killed, ...)
        real_upsert(conn, table, rows[:2], keys, *a, **kw)
        raise OSError("disk I/O error")

    monkeypatch.setattr(catalog, "_upsert", half_then_fail)
    with pytest.raises(OSError, match="disk I/O error"):
        apply_import(catalog, plan, "analyst@example.com")
    assert catalog.observations(CAMPAIGN) == []
    assert len(catalog.audit_entries()) == entries  # not the entry without its rows
    assert catalog.verify_audit() == []

    monkeypatch.undo()
    assert import_file(catalog, path, "google") == "4 new, 0 replaced, 0 unchanged"
    assert len(catalog.observations(CAMPAIGN)) == 4
    assert [e.kind for e in catalog.audit_entries()[entries:]] == ["kpis.imported"]


def test_a_window_written_after_the_check_refuses_the_whole_file(
    catalog: Catalog, tmp_path: Path
) -> None:
    plan = plan_import(catalog, CAMPAIGN, google_csv(catalog, tmp_path), load_mapping("google"))
    # the observe step (or another import) writes one of the file's windows meanwhile
    (row,) = [r for r in plan.rows if r.line == 3]
    catalog.record_observations([row.observation.model_copy(update={"clicks": 5})])
    with pytest.raises(KpiImportError) as info:
        apply_import(catalog, plan, "analyst@example.com")
    (problem,) = info.value.problems
    assert problem.startswith("line 3: ad '120002', window 0") and "run the import again" in problem
    # nothing of the file was written, and no entry claims it was
    assert [(o.variant_id, o.clicks) for o in catalog.observations(CAMPAIGN)] == [("v2", 5)]
    assert not [e for e in catalog.audit_entries(CAMPAIGN) if e.kind == "kpis.imported"]


# --------------------------------------------------------------------------- bad rows


def test_every_bad_row_is_named_by_line_and_column(catalog: Catalog, tmp_path: Path) -> None:
    d0, d1 = day(catalog, 0), day(catalog, 1)
    before = (date.fromisoformat(d0) - timedelta(days=1)).isoformat()
    later = (date.fromisoformat(d0) + timedelta(days=9)).isoformat()
    path = google_csv(
        catalog,
        tmp_path,
        [
            f"120001,{d0},1000,20,1",  # line 2: good
            f"120001,{d1},12.5,3,0",  # 3: not whole
            f"120002,{d0},500,-4,0",  # 4: negative
            f"120002,{d1},10,11,0",  # 5: clicks > impressions
            f"999999,{d0},10,1,0",  # 6: unknown ad
            f"120003,{before},10,1,0",  # 7: before the campaign
            f"120003,{later},10,1,0",  # 8: after the window it reached
            f"120001,{d0},1000,20,1",  # 9: duplicate of line 2
            "120003,not-a-day,10,1,0",  # 10: bad date
            f"120003,{d1},ten,1,0",  # 11: not a number
        ],
    )
    found = problems(catalog, path, "google")
    expected = [
        ("line 3, column 'Impr.'", "not a whole number"),
        ("line 4, column 'Clicks'", "greater than or equal to 0"),
        ("line 5, column 'Clicks'", "11 clicks exceed 10 impressions"),
        ("line 6, column 'Ad ID'", "ad '999999' is not an ad of campaign 'cmp-kpi'"),
        ("line 7, column 'Day'", "outside the campaign"),
        ("line 8, column 'Day'", "outside the campaign"),
        ("line 9, column 'Ad ID'", "is already on line 2"),
        ("line 10, column 'Day'", "is not a date"),
        ("line 11, column 'Impr.'", "not a number"),
    ]
    assert len(found) == len(expected), found
    for problem, (where, what) in zip(found, expected, strict=True):
        assert problem.startswith(where) and what in problem, problem
    assert catalog.observations(CAMPAIGN) == []
    assert not [e for e in catalog.audit_entries(CAMPAIGN) if e.kind == "kpis.imported"]


def test_missing_columns_are_named(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, "Ad ID,Date,Impressions,Clicks\n120001,2025-01-01,10,1\n")
    (problem,) = problems(catalog, path, "tiktok")
    assert problem.startswith("line 1: column 'Conversions' is missing")
    meta = write(tmp_path, "Ad ID,Reporting starts,Reporting ends,Impressions\n1,2,3,4\n")
    found = problems(catalog, meta, "meta")
    assert any("'Link clicks' or 'Clicks (all)' is missing" in p for p in found)


def test_a_file_that_is_not_utf8_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "Ad ID,Day,Impr.,Clicks,Conversions\n120001,Montag \xe4,1,1,0\n".encode("latin-1")
    )
    (problem,) = problems(catalog, path, "google")
    assert "not UTF-8" in problem and "export the report as CSV (UTF-8)" in problem
    head = "Ad ID,Day,Impr.,Clicks,Conversions\n"
    broken = write(tmp_path, head + '120001,"2025-01-01,1,1,0\n' + "120002,2025-01-01,1,1,0\n" * 5)
    (problem,) = problems(catalog, broken, "google")
    assert problem.startswith("line 2: not valid CSV: unexpected end of data"), problem


def test_meta_export_rows_must_fit_one_window(catalog: Catalog, tmp_path: Path) -> None:
    d0, d1 = day(catalog, 0), day(catalog, 1)
    header = "\ufeffAd name,Ad ID,Reporting starts,Reporting ends,Impressions,Link clicks,Results\n"
    good = write(tmp_path, header + f"Sunny,120001,{d0},{d0},1000,10,\n", "meta.csv")
    assert import_file(catalog, good, "meta") == "1 new, 0 replaced, 0 unchanged"
    assert catalog.observations(CAMPAIGN)[0].conversions == 0  # Meta leaves 0 results blank
    week = write(tmp_path, header + f"Sunny,120002,{d0},{d1},1000,10,1\n", "week.csv")
    (problem,) = problems(catalog, week, "meta")
    assert problem.startswith("line 2, column 'Reporting ends'") and "not within one 1d" in problem


# --------------------------------------------------------------------------- custom mappings


def custom(tmp_path: Path, text: str) -> Path:
    return write(tmp_path, text, "mapping.yaml")


def test_a_custom_mapping_with_a_round_column_and_segments(tmp_path: Path) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'seg.db'}") as catalog:
        make_campaign(catalog, CAMPAIGN, "gen_z", "professionals", round=1)
        mapping = custom(
            tmp_path,
            """
name: crm-export
columns:
  ad_id: ad
  segment: audience
  impressions: shown
  clicks: clicked
  conversions: bought
  complaints: reports
window:
  round: round
""",
        )
        csv = write(
            tmp_path,
            "ad,round,audience,shown,clicked,bought,reports\n"
            "120001,0,gen_z,100,5,1,0\n"
            "120001,0,professionals,80,2,0,\n"
            "120002,1,gen_z,90,4,1,1\n"
            "120002,2,gen_z,90,4,1,1\n"
            "120002,1,students,90,4,1,1\n",
            "x.csv",
        )
        found = problems(catalog, csv, str(mapping))
        assert [p.split(":")[0] for p in found] == [
            "line 5, column 'round'",
            "line 6, column 'audience'",
        ]
        csv.write_text("\n".join(csv.read_text().splitlines()[:4]) + "\n", encoding="utf-8")
        assert import_file(catalog, csv, str(mapping)) == "3 new, 0 replaced, 0 unchanged"
        rows = {
            (o.variant_id, o.round, o.segment): o.complaints for o in catalog.observations(CAMPAIGN)
        }
        assert rows == {
            ("v1", 0, "gen_z"): 0,
            ("v1", 0, "professionals"): None,
            ("v2", 1, "gen_z"): 1,
        }


def test_title_lines_above_the_header(catalog: Catalog, tmp_path: Path) -> None:
    mapping = custom(
        tmp_path,
        "name: google-titled\nheader_row: 3\n"
        "columns: {ad_id: Ad ID, impressions: Impr., clicks: Clicks, conversions: Conversions}\n"
        "window: {date: Day}\n",
    )
    titled = write(
        tmp_path,
        "Ad report\nAll time\nAd ID,Day,Impr.,Clicks,Conversions\n"
        f"120001,{day(catalog, 1)},9,1,0\n",
    )
    assert import_file(catalog, titled, str(mapping)) == "1 new, 0 replaced, 0 unchanged"
    assert [(o.variant_id, o.round) for o in catalog.observations(CAMPAIGN)] == [("v1", 1)]


def test_a_multi_segment_campaign_needs_a_segment_column(tmp_path: Path) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'seg.db'}") as catalog:
        make_campaign(catalog, CAMPAIGN, "gen_z", "professionals")
        path = google_csv(catalog, tmp_path)
        (problem,) = problems(catalog, path, "google")
        assert "has segments ['gen_z', 'professionals']: map a segment column" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\ncolumns: {ad_id: a}\nwindow: {round: r}\n",
            "columns.impressions: Field required",
        ),
        (
            "name: x\ncolumns: {ad_id: a, impressions: i, clicks: c, conversions: v}\n"
            "window: {round: r, date: d}\n",
            "name exactly one of `round`",
        ),
        (
            "name: x\ncolumns: {ad_id: a, impressions: i, clicks: c, conversions: v}\n"
            "window: {date: d, length: 1w}\n",
            "'1w' is not a window length",
        ),
        (
            "name: x\ncolumns: {ad_id: a, impressions: i, clicks: c, conversions: v}\n"
            "window: {date: d, timezone: Mars/Olympus}\n",
            "unknown time zone",
        ),
        (
            "name: x\nname: y\ncolumns: {ad_id: a, impressions: i, clicks: c, conversions: v}\n"
            "window: {round: r}\n",
            "duplicate key 'name'",
        ),
        (
            "name: x\ncolumns: {ad_id: a, impressions: i, clicks: c, conversions: v, cost: s}\n"
            "window: {round: r}\n",
            "columns.cost: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_mapping_is_refused_with_its_path(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(KpiImportError) as info:
        load_mapping(str(custom(tmp_path, text)))
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_the_shipped_mappings_load() -> None:
    assert shipped_mappings() == ["google", "meta", "tiktok"]
    for name in shipped_mappings():
        assert load_mapping(name).name == name
    with pytest.raises(KpiImportError, match="neither a shipped mapping"):
        load_mapping("linkedin")


# --------------------------------------------------------------------------- the command


def test_the_command_imports_then_finds_nothing_new(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceloop.cli import app

    monkeypatch.setenv("FACELOOP_DATABASE_URL", catalog.url)
    path = google_csv(catalog, tmp_path)
    args = ["kpis", "import", str(path), "--campaign", CAMPAIGN, "--mapping", "google"]
    runner = CliRunner()
    dry = runner.invoke(app, [*args, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert '"new": 4' in dry.output and '"written": false' in dry.output
    assert catalog.observations(CAMPAIGN) == []
    first = runner.invoke(app, [*args, "--by", "ana"])
    assert first.exit_code == 0, first.output
    assert "4 new, 0 replaced, 0 unchanged" in first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "0 new, 0 replaced, 4 unchanged" in again.output
    (entry,) = [e for e in catalog.audit_entries(CAMPAIGN) if e.kind == "kpis.imported"]
    assert entry.actor == "ana"
    unknown = runner.invoke(app, [*args[:4], "nope", "--mapping", "google"])
    assert unknown.exit_code == 2
    assert "campaign 'nope' is not in the catalog" in unknown.output
