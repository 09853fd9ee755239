"""Catalog: idempotent writes, round trips and traceability, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from faceloop.errors import FaceloopError
from faceloop.models import (
    Asset,
    AudienceSegment,
    Brief,
    CampaignConfig,
    CheckResult,
    Decision,
    FaceParams,
    Fidelity,
    GuardrailReport,
    KpiObservation,
    ParamShown,
    Variant,
    Verdict,
)
from faceloop.storage.catalog import Catalog
from faceloop.storage.schema import variants

CAMPAIGN = "cmp-1"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def brief(product: str = "Lumen SPF 50") -> Brief:
    return Brief(
        product=product,
        message="Everyday sun protection that feels like nothing.",
        audience=[
            AudienceSegment(name="young_urban", share=0.6),
            AudienceSegment(name="established", share=0.4),
        ],
        markets=["DE", "FR"],
        budget_impressions=10_000,
    )


def asset(n: int) -> Asset:
    return Asset(
        asset_id=f"{n:064x}",
        uri=f"file:///assets/{n:064x}.png",
        width=64,
        height=64,
        generator="dcgan",
        model_version="dcgan-64@1.0",
        seed=1000 + n,
    )


def report(n: int, *, bias: Verdict = Verdict.passed) -> GuardrailReport:
    return GuardrailReport(
        asset_id=asset(n).asset_id,
        checks=[
            CheckResult(name="safety", verdict=Verdict.passed, score=0.02, evidence={"nsfw": []}),
            CheckResult(name="bias", verdict=bias, score=0.4, evidence={"tones": [3, 5]}),
            CheckResult(name="quality", verdict=Verdict.passed, score=0.91),
        ],
    )


def variant(n: int, round: int = 0, **changes: object) -> Variant:
    v = Variant(
        variant_id=f"v{n}",
        campaign_id=CAMPAIGN,
        round=round,
        trial_number=n,
        params=FaceParams(skin_tone=1 + n % 10, expression="laugh" if n % 2 else "smile"),
        seed=1000 + n,
        prompt=f"portrait {n}, soft light",
        negative_prompt="blurry, text",
        disclosure="AI-generated image",
        asset=asset(n),
        report=report(n),
        decision=Decision.deploy,
        decision_reason="all checks passed",
        ad_id=f"ad-{n}",
        impressions=100 * n,
        clicks=3 * n,
        conversions=n,
        live=True,
    )
    return v.model_copy(update=changes)


def obs(n: int, round: int, segment: str, impressions: int, clicks: int) -> KpiObservation:
    return KpiObservation(
        campaign_id=CAMPAIGN,
        variant_id=f"v{n}",
        ad_id=f"ad-{n}",
        round=round,
        segment=segment,
        impressions=impressions,
        clicks=clicks,
        conversions=clicks // 3,
        observed_at=T0 + timedelta(hours=round),
    )


# --------------------------------------------------------------------------- campaigns


def test_reopening_an_existing_catalog_keeps_its_rows(catalog_url: str) -> None:
    with Catalog(catalog_url) as first:
        first.upsert_campaign(CAMPAIGN, brief(), CampaignConfig(), "running")
    with Catalog(catalog_url) as second:
        assert [c.campaign_id for c in second.list_campaigns()] == [CAMPAIGN]


def test_upsert_campaign_is_idempotent_and_keeps_round(catalog: Catalog) -> None:
    catalog.upsert_campaign(CAMPAIGN, brief(), CampaignConfig(rounds=4), "submitted")
    first = catalog.get_campaign(CAMPAIGN)
    assert first is not None
    catalog.set_campaign_status(CAMPAIGN, "running", round=2)
    # a retried submit activity arrives after the campaign moved on
    catalog.upsert_campaign(CAMPAIGN, brief(), CampaignConfig(rounds=4), "running")

    rows = catalog.list_campaigns()
    assert len(rows) == 1
    row = rows[0]
    assert row.brief == brief()
    assert row.config == CampaignConfig(rounds=4)
    assert row.status == "running"
    assert row.round == 2
    assert row.created_at == first.created_at
    assert row.updated_at >= first.updated_at
    assert row.created_at.tzinfo is not None


def test_set_status_without_round_keeps_round(catalog: Catalog) -> None:
    catalog.upsert_campaign(CAMPAIGN, brief(), CampaignConfig(), "running")
    catalog.set_campaign_status(CAMPAIGN, "running", round=1)
    catalog.set_campaign_status(CAMPAIGN, "done")
    row = catalog.get_campaign(CAMPAIGN)
    assert row is not None and (row.status, row.round) == ("done", 1)


def test_status_of_unknown_campaign_is_an_error(catalog: Catalog) -> None:
    assert catalog.get_campaign("nope") is None
    with pytest.raises(FaceloopError, match="'nope' is not in the catalog"):
        catalog.set_campaign_status("nope", "done")


def test_list_campaigns_newest_first(catalog: Catalog) -> None:
    for cid in ("a", "b", "c"):
        catalog.upsert_campaign(cid, brief(), CampaignConfig(), "running")
    assert [c.campaign_id for c in catalog.list_campaigns()] == ["c", "b", "a"]


# --------------------------------------------------------------------------- variants


def test_variant_round_trips_every_field(catalog: Catalog) -> None:
    v = variant(1)
    catalog.upsert_variant(v)
    assert catalog.get_variant("v1") == v
    assert catalog.get_variant("missing") is None


def test_variant_fidelity_round_trips_and_lands_in_its_columns(
    catalog: Catalog,
) -> None:
    fidelity = Fidelity(
        found=True,
        params={
            "skin_tone": ParamShown(requested=2, measured=7, ok=False),
            "expression": ParamShown(requested="laugh", measured="smile", ok=True),
            "age_band": ParamShown(requested="25-34"),
        },
        tries=3,
        enforced=True,
        not_rendered=["skin_tone"],
        perception={"found": True, "skin_tone": 7, "raw": {"ita": -12.5, "bg_hue": None}},
    )
    v = variant(3, fidelity=fidelity)
    catalog.upsert_variant(v)
    assert catalog.get_variant("v3") == v
    with catalog._read() as conn:
        row = conn.execute(
            sa.select(variants.c.measured, variants.c.fidelity, variants.c.tries).where(
                variants.c.variant_id == "v3"
            )
        ).one()
    assert row.tries == 3
    assert row.measured["raw"]["ita"] == -12.5
    assert row.fidelity["params"]["skin_tone"] == {"requested": 2, "measured": 7, "ok": False}
    assert "perception" not in row.fidelity
    # a variant made before fidelity was measured keeps NULLs and reads back None
    catalog.upsert_variant(variant(4))
    got = catalog.get_variant("v4")
    assert got is not None and got.fidelity is None


def test_variant_without_asset_or_decision_round_trips(catalog: Catalog) -> None:
    v = variant(2, asset=None, report=None, decision=None, ad_id=None, trial_number=None)
    catalog.upsert_variant(v)
    assert catalog.get_variant("v2") == v


def test_upsert_variant_is_idempotent_and_takes_the_latest_state(catalog: Catalog) -> None:
    catalog.upsert_variant(variant(1, decision=None, ad_id=None, live=False))
    catalog.upsert_variant(variant(1, decision=None, ad_id=None, live=False))
    final = variant(1, decision=Decision.escalate, decision_reason="bias: review", live=False)
    catalog.upsert_variant(final)
    catalog.upsert_variant(final)

    assert catalog.variants(CAMPAIGN) == [final]


def test_upsert_without_report_keeps_recorded_checks(catalog: Catalog) -> None:
    catalog.upsert_variant(variant(1))
    catalog.upsert_variant(variant(1, report=None, live=False))
    stored = catalog.get_variant("v1")
    assert stored is not None
    assert stored.report == report(1)
    assert stored.live is False


def test_variants_by_round_in_insertion_order(catalog: Catalog) -> None:
    for n, rnd in [(5, 1), (3, 0), (4, 1), (1, 0)]:
        catalog.upsert_variant(variant(n, round=rnd))
    assert [v.variant_id for v in catalog.variants(CAMPAIGN)] == ["v3", "v1", "v5", "v4"]
    assert [v.variant_id for v in catalog.variants(CAMPAIGN, round=1)] == ["v5", "v4"]
    assert catalog.variants(CAMPAIGN, round=7) == []
    assert catalog.variants("other") == []


# --------------------------------------------------------------------------- reports


def test_record_report_replaces_the_previous_one(catalog: Catalog) -> None:
    catalog.upsert_variant(variant(1, report=None))
    catalog.record_report("v1", report(1))
    catalog.record_report("v1", report(1))
    stored = catalog.get_variant("v1")
    assert stored is not None and stored.report == report(1)

    # a re-run of the guard stage with a different set of checks
    rerun = GuardrailReport(
        asset_id=asset(1).asset_id,
        checks=[
            CheckResult(name="watermark", verdict=Verdict.passed, score=1.0),
            CheckResult(name="bias", verdict=Verdict.escalate, score=0.8, evidence={"k": "v"}),
        ],
    )
    catalog.record_report("v1", rerun)
    stored = catalog.get_variant("v1")
    assert stored is not None and stored.report == rerun
    assert stored.report.verdict is Verdict.escalate


def test_non_finite_evidence_is_stored_as_null(catalog: Catalog) -> None:
    rep = GuardrailReport(
        asset_id=asset(1).asset_id,
        checks=[
            CheckResult(name="quality", verdict="pass", score=0.5, evidence={"x": float("nan")})
        ],
    )
    catalog.upsert_variant(variant(1, report=None))
    catalog.record_report("v1", rep)
    stored = catalog.get_variant("v1")
    assert stored is not None and stored.report is not None
    assert stored.report.checks[0].evidence == {"x": None}


# --------------------------------------------------------------------------- deployments


def test_deployment_is_unique_per_platform_and_asset(catalog: Catalog) -> None:
    a = asset(1).asset_id
    assert catalog.record_deployment("v1", a, "ad-1", "sandbox", CAMPAIGN) is True
    assert catalog.record_deployment("v1", a, "ad-1", "sandbox", CAMPAIGN) is False
    # a retry that got a different ad id from the platform still does not add a second ad
    assert catalog.record_deployment("v1", a, "ad-1b", "sandbox", CAMPAIGN) is False
    assert catalog.record_deployment("v1", a, "meta-9", "meta", CAMPAIGN) is True
    assert catalog.record_deployment("v2", asset(2).asset_id, "ad-2", "sandbox", "cmp-2") is True

    deps = catalog.deployments(CAMPAIGN)
    assert [(d.platform, d.ad_id, d.variant_id) for d in deps] == [
        ("sandbox", "ad-1", "v1"),
        ("meta", "meta-9", "v1"),
    ]
    assert all(d.asset_id == a and d.deployed_at.tzinfo is not None for d in deps)


# --------------------------------------------------------------------------- observations


def test_re_recorded_observations_do_not_double_count(catalog: Catalog) -> None:
    window = [obs(1, 0, "young_urban", 600, 12), obs(1, 0, "established", 400, 6)]
    catalog.record_observations(window)
    catalog.record_observations(window)  # the observe activity retried
    # a later read of the same window has more traffic: it replaces, never adds
    catalog.record_observations([obs(1, 0, "young_urban", 700, 14)])
    catalog.record_observations([obs(1, 1, "young_urban", 50, 1), obs(2, 1, "young_urban", 80, 2)])

    got = catalog.observations(CAMPAIGN)
    assert [(o.variant_id, o.round, o.segment) for o in got] == [
        ("v1", 0, "established"),
        ("v1", 0, "young_urban"),
        ("v1", 1, "young_urban"),
        ("v2", 1, "young_urban"),
    ]
    assert got[1] == obs(1, 0, "young_urban", 700, 14)

    frame = catalog.observations_frame(CAMPAIGN)
    totals = (
        frame.group_by("variant_id", "round")
        .agg(pl.col("impressions").sum())
        .sort("variant_id", "round")
    )
    assert totals.rows() == [("v1", 0, 1100), ("v1", 1, 50), ("v2", 1, 80)]


def test_hides_and_complaints_keep_not_reported_apart_from_zero(catalog: Catalog) -> None:
    reported = obs(1, 0, "all", 1000, 20).model_copy(
        update={"negative_feedback": 7, "complaints": 0}
    )
    unreported = obs(2, 0, "all", 1000, 20)  # a platform without these signals
    catalog.record_observations([reported, unreported])
    got = {o.variant_id: o for o in catalog.observations(CAMPAIGN)}
    assert (got["v1"].negative_feedback, got["v1"].complaints) == (7, 0)
    assert (got["v2"].negative_feedback, got["v2"].complaints) == (None, None)
    frame = catalog.observations_frame(CAMPAIGN).sort("variant_id")
    assert frame["negative_feedback"].to_list() == [7, None]
    # a re-read of the window replaces the counts too
    catalog.record_observations([reported.model_copy(update={"negative_feedback": 9})])
    assert catalog.observations(CAMPAIGN)[0].negative_feedback == 9


def test_duplicates_within_one_batch_keep_the_last(catalog: Catalog) -> None:
    catalog.record_observations([obs(1, 0, "all", 10, 1), obs(1, 0, "all", 20, 2)])
    assert [o.impressions for o in catalog.observations(CAMPAIGN)] == [20]


def test_naive_observation_time_is_taken_as_utc(catalog: Catalog) -> None:
    naive = obs(1, 0, "all", 10, 1).model_copy(update={"observed_at": datetime(2025, 3, 1, 9)})
    catalog.record_observations([naive])
    assert catalog.observations(CAMPAIGN)[0].observed_at == datetime(2025, 3, 1, 9, tzinfo=UTC)


def test_observations_frame_of_an_empty_campaign_has_the_columns(catalog: Catalog) -> None:
    frame = catalog.observations_frame("none")
    assert frame.height == 0
    assert frame.columns == list(KpiObservation.model_fields)
    assert frame.schema["impressions"] == pl.Int64


# --------------------------------------------------------------------------- trace


def test_trace_returns_the_whole_history_of_an_asset(catalog: Catalog) -> None:
    catalog.upsert_campaign(CAMPAIGN, brief(), CampaignConfig(), "running")
    v = variant(3)
    catalog.upsert_variant(v)
    catalog.upsert_variant(variant(4))  # another asset: must not leak into the trace
    catalog.record_deployment("v3", v.asset.asset_id, "ad-3", "sandbox", CAMPAIGN)  # type: ignore[union-attr]
    catalog.record_observations([obs(3, 0, "young_urban", 500, 20), obs(4, 0, "all", 9, 1)])
    catalog.audit(CAMPAIGN, "approval", "v3", "reviewer@x", {"approved": True})
    catalog.audit(CAMPAIGN, "approval", "v4", "reviewer@x", {"approved": True})

    t = catalog.trace(asset(3).asset_id)

    assert t["brief"] == brief().model_dump(mode="json")
    assert t["campaign_id"] == CAMPAIGN
    assert t["variant_id"] == "v3" and t["variants"] == ["v3"]
    assert t["prompt"] == v.prompt and t["negative_prompt"] == v.negative_prompt
    assert t["params"] == v.params.model_dump(mode="json")
    assert t["seed"] == v.seed
    assert t["model_version"] == "dcgan-64@1.0" and t["generator"] == "dcgan"
    assert [c["name"] for c in t["verdicts"]] == ["safety", "bias", "quality"]
    assert t["verdict"] == "pass"
    assert t["decision"] == "deploy" and t["decision_reason"] == "all checks passed"
    assert [(d["platform"], d["ad_id"]) for d in t["deployments"]] == [("sandbox", "ad-3")]
    assert [(o["variant_id"], o["impressions"]) for o in t["observations"]] == [("v3", 500)]
    assert [(a["kind"], a["subject"]) for a in t["audit"]] == [("approval", "v3")]


def test_trace_lists_every_variant_sharing_the_image(catalog: Catalog) -> None:
    catalog.upsert_variant(variant(1, round=0))
    catalog.upsert_variant(variant(1, round=1).model_copy(update={"variant_id": "v1-r1"}))
    t = catalog.trace(asset(1).asset_id)
    assert t["variant_id"] == "v1" and t["variants"] == ["v1", "v1-r1"]
    assert t["brief"] is None  # the campaign row was never written; the trace still works


def test_trace_of_unknown_asset_says_so(catalog: Catalog) -> None:
    with pytest.raises(FaceloopError, match="not in the catalog"):
        catalog.trace("f" * 64)


# --------------------------------------------------------------------------- urls


def test_in_memory_sqlite_works() -> None:
    with Catalog("sqlite://") as cat:
        cat.upsert_variant(variant(1))
        assert cat.get_variant("v1") == variant(1)
        cat.audit(None, "k", "s", "a", {})
        assert cat.verify_audit() == []


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(FaceloopError, match="supports sqlite and postgresql"):
        Catalog("mysql://u@localhost/db")
    with pytest.raises(FaceloopError, match="not a SQLAlchemy URL"):
        Catalog("not a url")


def test_unreachable_database_says_where_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FaceloopError, match=r"cannot open the catalog at .*FACELOOP_DATABASE_URL"):
        Catalog("postgresql+psycopg://postgres@127.0.0.1:1/test")
    (tmp_path / "dir.db").mkdir()  # a folder where the SQLite file should be
    with pytest.raises(FaceloopError, match="cannot open the catalog"):
        Catalog(f"sqlite:///{tmp_path / 'dir.db'}")


def test_seeds_and_counts_beyond_32_bits_round_trip(catalog: Catalog) -> None:
    # seeds are 32-bit unsigned (stable_seed) or wider: a signed INTEGER column overflows
    big = 2**40 + 7
    v = variant(90).model_copy(
        update={
            "seed": big,
            "asset": asset(90).model_copy(update={"seed": big}),
            "impressions": big,
        }
    )
    catalog.upsert_variant(v)
    got = catalog.get_variant("v90")
    assert got is not None and got.seed == big and got.asset is not None
    assert got.asset.seed == big and got.impressions == big
