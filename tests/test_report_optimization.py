"""The report's optimisation sections: estimated regret (numbers and plot) and the Pareto
front of a multi-objective campaign (table, scatter plot, report.json points)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from optuna.storages import InMemoryStorage

from faceloop.models import (
    AudienceSegment,
    Brief,
    CampaignConfig,
    Decision,
    FaceParams,
    KpiObservation,
    SearchSpace,
    Variant,
)
from faceloop.optimization import ArmStats, Optimizer, posterior_mean
from faceloop.report import build_report
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def brief() -> Brief:
    return Brief(
        product="Sun care",
        message="No sticky feel",
        audience=[AudienceSegment(name="young", share=0.5), AudienceSegment(name="old", share=0.5)],
        markets=["DE"],
        budget_impressions=10_000,
    )


def ob(
    cid: str, vid: str, rnd: int, seg: str, n: int, clicks: int, conv: int = 0
) -> KpiObservation:
    return KpiObservation(
        campaign_id=cid,
        variant_id=vid,
        ad_id=f"ad-{vid}",
        round=rnd,
        segment=seg,
        impressions=n,
        clicks=clicks,
        conversions=conv,
        observed_at=T0,
    )


def campaign(tmp_path: Path, cid: str, config: CampaignConfig) -> tuple[Catalog, AssetStore]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.upsert_campaign(cid, brief(), config, "done")
    for vid, rnd, expr in (("a", 0, "smile"), ("b", 0, "serious"), ("c", 1, "laugh")):
        catalog.upsert_variant(
            Variant(
                variant_id=vid,
                campaign_id=cid,
                round=rnd,
                params=FaceParams(expression=expr),
                seed=1,
                decision=Decision.deploy,
                ad_id=f"ad-{vid}",
            )
        )
    catalog.record_observations(
        [
            ob(cid, "a", 0, "young", 1000, 30),
            ob(cid, "b", 0, "young", 1000, 10),
            ob(cid, "b", 0, "old", 1000, 40),
            ob(cid, "a", 1, "young", 2000, 60),
            ob(cid, "c", 1, "old", 500, 10),
        ]
    )
    return catalog, AssetStore(tmp_path / "assets")


def test_estimated_regret_is_charged_against_each_segments_posterior_best(
    tmp_path: Path,
) -> None:
    catalog, store = campaign(tmp_path, "c1", CampaignConfig(rounds=2))
    json_path, html_path = build_report(catalog, store, "c1", tmp_path / "out")
    regret = json.loads(json_path.read_text())["regret"]
    young = posterior_mean([ArmStats("a", 3000, 90), ArmStats("b", 1000, 10)])
    old = posterior_mean([ArmStats("b", 1000, 40), ArmStats("c", 500, 10)])
    assert regret["kind"] == "estimated" and regret["best"] == {"old": "b", "young": "a"}
    # round 0: b's 1000 young impressions cost (a - b); round 1: c's 500 old ones (b - c)
    r0 = 1000 * (young["a"] - young["b"])
    r1 = r0 + 500 * (old["b"] - old["c"])
    assert [p["impressions"] for p in regret["points"]] == [3000, 5500]
    assert [p["regret"] for p in regret["points"]] == [
        pytest.approx(r0, abs=0.01),
        pytest.approx(r1, abs=0.01),
    ]
    assert (tmp_path / "out" / "regret.png").read_bytes()[:4] == b"\x89PNG"
    html = html_path.read_text()
    assert 'src="regret.png"' in html and "Estimated: a live campaign has no ground truth" in html
    # a single-objective campaign says why there is no Pareto front
    pareto = json.loads(json_path.read_text())["pareto"]
    assert pareto["objectives"] == [] and pareto["front"] == []
    assert "single-objective campaign" in pareto["note"] and "single-objective campaign" in html
    assert not (tmp_path / "out" / "pareto.png").exists()


def test_a_multi_objective_campaign_shows_its_pareto_front(tmp_path: Path) -> None:
    config = CampaignConfig(rounds=2, objectives=["ctr", "cpa"])
    catalog, store = campaign(tmp_path, "mo", config)
    opt = Optimizer(InMemoryStorage(), "thompson")
    props = opt.ask("mo", 0, 4, SearchSpace(), objectives=config.objectives)
    values = [(0.03, 900.0), (0.02, 500.0), (0.01, 1000.0), (0.025, 700.0)]
    for p, v in zip(props, values, strict=True):
        opt.tell("mo", p.trial_number, v)
    json_path, html_path = build_report(catalog, store, "mo", tmp_path / "out", optimizer=opt)
    pareto = json.loads(json_path.read_text())["pareto"]
    assert pareto["objectives"] == ["ctr", "cpa"]
    assert len(pareto["points"]) == 4
    # (0.01, 1000) is dominated; the front trades CTR against CPA, best CTR first
    assert [f["values"] for f in pareto["front"]] == [
        {"ctr": 0.03, "cpa": 900.0},
        {"ctr": 0.025, "cpa": 700.0},
        {"ctr": 0.02, "cpa": 500.0},
    ]
    assert pareto["front"][0]["params"] == props[0].params.model_dump(mode="json")
    assert (tmp_path / "out" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    html = html_path.read_text()
    assert 'src="pareto.png"' in html and html.count('<td class="n">') >= 6
    # without the study the report says so instead of inventing a front
    json_path, _ = build_report(catalog, store, "mo", tmp_path / "out2")
    assert (
        "without the campaign's Optuna study" in json.loads(json_path.read_text())["pareto"]["note"]
    )


def test_config_objectives_need_two_different_names() -> None:
    with pytest.raises(ValueError, match="two or more"):
        CampaignConfig(objectives=["ctr"])
    with pytest.raises(ValueError, match="two or more"):
        CampaignConfig(objectives=["ctr", "ctr"])
