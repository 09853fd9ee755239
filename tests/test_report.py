"""Campaign report: a small campaign built by hand, whose winner is known by construction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pytest
from PIL import Image

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
from faceloop.report import build_report, posterior_mean_ctr
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog

CID = "cmp-report"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EVIL_PRODUCT = 'Glow <script>alert("x")</script> & Co'


def face_images(n: int) -> list[np.ndarray]:
    """n distinct real photos: crops of a public-domain portrait, each tinted differently."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as im:
        face = np.asarray(im.convert("RGB").crop((110, 40, 430, 360)).resize((128, 128)))
    out = []
    for i in range(n):
        tint = np.array([1.0 + 0.08 * (i % 3), 1.0, 1.0 + 0.08 * (i // 3)])
        out.append(np.clip(face * tint, 0, 255).astype(np.uint8))
    return out


def checks(asset_id: str, bias: Verdict = Verdict.passed) -> GuardrailReport:
    return GuardrailReport(
        asset_id=asset_id,
        checks=[
            CheckResult(name="safety", verdict=Verdict.passed, score=0.01),
            CheckResult(name="bias", verdict=bias, score=0.3 if bias is Verdict.passed else 0.8),
            CheckResult(name="watermark", verdict=Verdict.passed, score=1.0),
        ],
    )


def observe(vid: str, rnd: int, segment: str, impr: int, clicks: int, conv: int) -> KpiObservation:
    return KpiObservation(
        campaign_id=CID,
        variant_id=vid,
        ad_id=f"ad-{vid}",
        round=rnd,
        segment=segment,
        impressions=impr,
        clicks=clicks,
        conversions=conv,
        observed_at=T0 + timedelta(hours=rnd),
    )


@pytest.fixture
def campaign(tmp_path: Path) -> Iterator[tuple[Catalog, AssetStore, dict[str, str]]]:
    """Two rounds. Round 0: a, b deployed, c blocked, d escalated; round 1: e, f deployed and
    b carried over. e has the best posterior CTR; d has a better raw CTR but never shipped."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    store = AssetStore(tmp_path / "assets")
    brief = Brief(
        product=EVIL_PRODUCT,
        message="Sun care <b>without</b> the sticky feel",
        audience=[
            AudienceSegment(name="young", share=0.5, description="18-34 <i>urban</i>"),
            AudienceSegment(name="older", share=0.5),
        ],
        markets=["DE", "FR", "NL"],
        budget_impressions=50_000,
        constraints=['<img src=x onerror="alert(1)">'],
    )
    catalog.upsert_campaign(CID, brief, CampaignConfig(rounds=2), "done")

    plan = [
        # id, round, decision, params
        ("a", 0, Decision.deploy, FaceParams(expression="smile", lighting="soft")),
        ("b", 0, Decision.deploy, FaceParams(expression="laugh", skin_tone=7)),
        ("c", 0, Decision.block, FaceParams(expression="serious", age_band="45-54")),
        ("d", 0, Decision.escalate, FaceParams(expression="neutral", background="blue")),
        ("e", 1, Decision.deploy, FaceParams(expression="laugh", skin_tone=3)),
        ("f", 1, Decision.deploy, FaceParams(expression="smile", lighting="golden_hour")),
    ]
    assets: dict[str, str] = {}
    for (vid, rnd, decision, params), rgb in zip(plan, face_images(len(plan)), strict=True):
        asset_id, uri = store.put_image(rgb)
        assets[vid] = asset_id
        bias = Verdict.block if decision is Decision.block else Verdict.passed
        catalog.upsert_variant(
            Variant(
                variant_id=vid,
                campaign_id=CID,
                round=rnd,
                params=params,
                seed=ord(vid),
                prompt=f"portrait photo {vid}, {params.expression}",
                asset=Asset(
                    asset_id=asset_id,
                    uri=uri,
                    width=128,
                    height=128,
                    generator="dcgan",
                    model_version="dcgan-64@1",
                    seed=ord(vid),
                ),
                report=checks(asset_id, bias),
                decision=decision,
                decision_reason="all checks passed"
                if decision is Decision.deploy
                else f"{decision.value}: bias check",
                ad_id=f"ad-{vid}" if decision is Decision.deploy else None,
            )
        )
        if decision is Decision.deploy:
            catalog.record_deployment(vid, asset_id, f"ad-{vid}", "sandbox", CID)

    catalog.record_observations(
        [
            observe("a", 0, "young", 600, 18, 2),
            observe("a", 0, "older", 400, 10, 1),
            observe("b", 0, "young", 500, 22, 3),
            observe("b", 0, "older", 500, 18, 2),
            # never deployed: a stray reading must not make it the winner
            observe("d", 0, "young", 10, 5, 1),
            observe("b", 1, "young", 1000, 45, 6),
            observe("e", 1, "young", 500, 35, 5),
            observe("e", 1, "older", 500, 29, 4),
            observe("f", 1, "young", 1000, 20, 1),
        ]
    )
    catalog.audit(CID, "submit", CID, "maria@example.com", {"rounds": 2}, ts=T0)
    catalog.audit(CID, "decision", "c", "playbook", {"decision": "block"}, ts=T0)
    catalog.audit("other", "submit", "other", "x", {}, ts=T0)
    yield catalog, store, assets
    catalog.close()


def test_report_json_has_rounds_kpis_and_the_winner(
    campaign: tuple[Catalog, AssetStore, dict[str, str]], tmp_path: Path
) -> None:
    catalog, store, assets = campaign
    json_path, html_path = build_report(
        catalog, store, CID, tmp_path / "out", prompt_only=frozenset({"lighting", "background"})
    )
    assert json_path == tmp_path / "out" / "report.json"
    assert html_path == tmp_path / "out" / "report.html"
    data = json.loads(json_path.read_text())

    assert data["campaign_id"] == CID
    assert data["status"] == "done"
    assert data["brief"]["product"] == EVIL_PRODUCT
    assert data["prompt_only_params"] == ["background", "lighting"]
    assert data["audit_entries"] == 2
    assert data["audit_intact"] is True

    r0, r1 = data["rounds"]
    assert [r0["round"], r1["round"]] == [0, 1]
    assert [v["variant_id"] for v in r0["variants"]] == ["a", "b", "c", "d"]
    assert [v["variant_id"] for v in r1["variants"]] == ["e", "f", "b"]

    a = r0["variants"][0]
    assert (a["impressions"], a["clicks"], a["conversions"]) == (1000, 28, 3)  # two segments
    assert a["ctr"] == pytest.approx(0.028)
    assert a["cvr"] == pytest.approx(3 / 28)
    assert a["asset_id"] == assets["a"]
    assert a["decision"] == "deploy"
    assert a["prompt"] == "portrait photo a, smile"
    assert a["params"] == FaceParams(expression="smile", lighting="soft").model_dump(mode="json")
    assert a["checks"] == {
        "safety": {"verdict": "pass", "score": 0.01},
        "bias": {"verdict": "pass", "score": 0.3},
        "watermark": {"verdict": "pass", "score": 1.0},
    }
    c = r0["variants"][2]
    assert (c["decision"], c["impressions"], c["ctr"]) == ("block", 0, None)
    assert c["checks"]["bias"]["verdict"] == "block"
    assert c["decision_reason"] == "block: bias check"

    # b ran again in round 1: that round counts only round 1's observations
    b1 = r1["variants"][2]
    assert (b1["impressions"], b1["clicks"], b1["carried_over"]) == (1000, 45, True)
    assert r1["impressions"] == 3000 and r1["clicks"] == 129

    assert data["winner"] == {
        "variant_id": "e",
        "asset_id": assets["e"],
        "round": 1,
        "params": FaceParams(expression="laugh", skin_tone=3).model_dump(mode="json"),
        "ctr": pytest.approx(64 / 1000),
        "posterior_mean_ctr": pytest.approx(posterior_mean_ctr(64, 1000)),
        "impressions": 1000,
        "clicks": 64,
        "conversions": 9,
        "exports": [],  # this catalog was written without an export stage
    }
    assert data["rollbacks"] == []


def test_report_html_shows_images_and_escapes_the_brief(
    campaign: tuple[Catalog, AssetStore, dict[str, str]], tmp_path: Path
) -> None:
    catalog, store, assets = campaign
    out = tmp_path / "out"
    _, html_path = build_report(catalog, store, CID, out, prompt_only=frozenset({"lighting"}))
    html = html_path.read_text()

    for asset_id in assets.values():
        assert f'src="images/{asset_id}.png"' in html
        with Image.open(out / "images" / f"{asset_id}.png") as im:
            assert im.size == (128, 128)
    assert 'src="kpi_by_round.png"' in html
    with Image.open(out / "kpi_by_round.png") as im:
        assert im.format == "PNG" and im.width > 600

    assert "<script>" not in html
    assert "Glow &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in html
    assert "Sun care &lt;b&gt;without&lt;/b&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert "<img src=x" not in html
    assert "18-34 &lt;i&gt;urban&lt;/i&gt;" in html

    assert "Prompt-only parameters" in html and "<b>Lighting</b>" in html
    for market in ("DE", "FR", "NL"):
        assert f'<span class="chip">{market}</span>' in html
    assert catalog.audit_entries(CID)[0].hash[:12] in html
    assert "maria@example.com" in html
    # nothing was rolled back: the section says so rather than vanishing
    assert "No rollback criterion of the playbook fired" in html


def test_missing_image_and_empty_kpis_still_give_a_report(tmp_path: Path) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        store = AssetStore(tmp_path / "assets")
        catalog.upsert_campaign(
            "fresh",
            Brief(
                product="P",
                message="M",
                audience=[AudienceSegment(name="all")],
                markets=["DE"],
                budget_impressions=100,
            ),
            CampaignConfig(),
            "running",
        )
        gone = "ab" * 32
        catalog.upsert_variant(
            Variant(
                variant_id="x",
                campaign_id="fresh",
                round=0,
                params=FaceParams(),
                seed=1,
                asset=Asset(
                    asset_id=gone,
                    uri=(store.root / "ab" / f"{gone}.png").as_uri(),
                    width=64,
                    height=64,
                    generator="dcgan",
                    model_version="1",
                    seed=1,
                ),
            )
        )
        json_path, html_path = build_report(catalog, store, "fresh", tmp_path / "out")

    data = json.loads(json_path.read_text())
    assert data["winner"] is None
    assert data["missing_images"] == [gone]
    assert data["rounds"][0]["variants"][0]["impressions"] == 0
    assert not (tmp_path / "out" / "kpi_by_round.png").exists()
    html = html_path.read_text()
    assert "image missing" in html and "there is no winner" in html


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        store = AssetStore(tmp_path / "assets")
        with pytest.raises(FaceloopError, match="'nope' is not in the catalog"):
            build_report(catalog, store, "nope", tmp_path / "out")
        with pytest.raises(FaceloopError, match="not face parameters"):
            build_report(catalog, store, "nope", tmp_path / "out", prompt_only=frozenset({"hat"}))


def test_the_campaigns_own_winner_is_the_reports_winner(
    campaign: tuple[Catalog, AssetStore, dict[str, str]], tmp_path: Path
) -> None:
    # the campaign's KPI model chose b (what `faceloop demo` prints); the report names b too,
    # not e, which the report's own Beta ranking would pick
    catalog, store, assets = campaign
    catalog.audit(CID, "campaign.done", CID, "workflow", {"reason": "", "winner": "b"}, ts=T0)
    json_path, _ = build_report(catalog, store, CID, tmp_path / "out")
    winner = json.loads(json_path.read_text())["winner"]
    assert winner["variant_id"] == "b" and winner["asset_id"] == assets["b"]
    # a recorded winner that never shipped does not override the ranking
    catalog.audit(CID, "campaign.done", CID, "workflow", {"reason": "", "winner": "d"}, ts=T0)
    json_path, _ = build_report(catalog, store, CID, tmp_path / "out2")
    assert json.loads(json_path.read_text())["winner"]["variant_id"] == "e"


def test_report_has_a_fidelity_column_and_a_confusion_table_per_parameter(
    campaign: tuple[Catalog, AssetStore, dict[str, str]], tmp_path: Path
) -> None:
    catalog, store, _ = campaign
    # b asked for Monk 7 and showed 9 (within 2 steps); e asked for 3 and showed 8 after
    # three tries (not rendered); the others were made before fidelity was measured
    for vid, measured, ok, tries, not_rendered in (
        ("b", 9, True, 1, []),
        ("e", 8, False, 3, ["skin_tone"]),
    ):
        v = catalog.get_variant(vid)
        assert v is not None
        fidelity = Fidelity(
            found=True,
            params={
                "skin_tone": ParamShown(requested=v.params.skin_tone, measured=measured, ok=ok),
                "expression": ParamShown(requested="laugh", measured="smile", ok=True),
                "age_band": ParamShown(requested=v.params.age_band),
            },
            tries=tries,
            enforced=True,
            not_rendered=not_rendered,
        )
        catalog.upsert_variant(v.model_copy(update={"fidelity": fidelity}))
    json_path, html_path = build_report(catalog, store, CID, tmp_path / "out")
    data = json.loads(json_path.read_text())

    fd = data["fidelity"]
    assert (fd["variants"], fd["measured"], fd["reseeded"], fd["with_not_rendered"]) == (
        6,
        2,
        1,
        1,
    )
    assert fd["tries"] == {"1": 1, "3": 1}
    skin = fd["params"]["skin_tone"]
    assert (skin["ok"], skin["off"], skin["unmeasured"], skin["not_rendered"]) == (1, 1, 4, 1)
    assert skin["ok_share"] == pytest.approx(0.5)
    assert skin["mean_abs_error"] == pytest.approx((2 + 5) / 2)
    # requested -> measured -> count; a variant never measured counts as unmeasured
    assert skin["confusion"]["7"] == {"9": 1}
    assert skin["confusion"]["3"] == {"8": 1}
    assert skin["confusion"]["5"] == {"unmeasured": 4}
    assert fd["params"]["expression"]["confusion"]["laugh"] == {"smile": 2}
    assert fd["params"]["age_band"]["unmeasured"] == 6

    e = next(v for v in data["rounds"][1]["variants"] if v["variant_id"] == "e")
    assert e["fidelity"] == {
        "found": True,
        "tries": 3,
        "enforced": True,
        "not_rendered": ["skin_tone"],
        "measured": {"skin_tone": 8, "expression": "smile"},
        "off": ["skin_tone"],
    }
    assert data["rounds"][0]["variants"][0]["fidelity"] is None  # a: never measured

    html = html_path.read_text()
    assert "What is asked is what is shown" in html
    assert "Skin tone 8 (asked 3) · 3 tries · not rendered: skin_tone" in html
    assert "<th>Fidelity</th>" in html and "not measured" in html
    # the winner's panel says what its image shows beside what was asked
    assert data["winner"]["variant_id"] == "e"
    start = html.index('<div class="card winner">')
    panel = html[start : html.index("<h2>", start)]
    assert 'MST 3 <span class="reason">(the image shows MST 8)</span>' in panel
    assert "Skin tone 8 (asked 3) · 3 tries" in panel
