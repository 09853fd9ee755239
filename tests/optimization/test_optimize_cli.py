from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from faceloop.examples import example_path
from faceloop.optimization.cli import register

runner = CliRunner()


def _app() -> typer.Typer:
    # the same wiring as faceloop.cli._register_subcommands
    app = typer.Typer()
    bench_app = typer.Typer()
    app.add_typer(bench_app, name="bench")
    register(app, bench_app)
    return app


def test_bench_optimize_prints_the_documented_json() -> None:
    scenario = example_path("scenarios", "smooth.yaml")
    args = ["bench", "optimize", "--scenario", str(scenario), "--seeds", "1", "--rounds", "3"]
    res = runner.invoke(_app(), [*args, "--impressions", "2000", "--jobs", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["scenario"] == "smooth" and out["seeds"] == 1
    assert out["config"]["ab_test_rounds"] == 1 and out["config"]["budget_impressions"] == 6000
    assert set(out["strategies"]) == {
        "faceloop",
        "ab_test",
        "random",
        "best_fixed",
        "faces_known",
        "oracle",
    }
    assert isinstance(out["lift_vs_ab"], float)


def test_bench_optimize_rejects_bad_input_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseed: 1\nbase_ctr: 2\nbase_cvr: 0.1\n")
    res = runner.invoke(_app(), ["bench", "optimize", "--scenario", str(bad)])
    assert res.exit_code == 2 and "base_ctr" in res.output
    scenario = str(example_path("scenarios", "smooth.yaml"))
    res = runner.invoke(_app(), ["bench", "optimize", "--scenario", scenario, "--sampler", "x"])
    assert res.exit_code == 2 and "--sampler" in res.output
    res = runner.invoke(
        _app(),
        ["bench", "optimize", "--scenario", scenario, "--rounds", "4", "--ab-test-rounds", "4"],
    )
    assert res.exit_code == 2 and "--ab-test-rounds" in res.output


def test_bench_optimize_writes_the_regret_plot(tmp_path: Path) -> None:
    scenario = str(example_path("scenarios", "segments.yaml"))
    base = ["bench", "optimize", "--scenario", scenario, "--seeds", "2", "--rounds", "4"]
    base += ["--impressions", "3000", "--jobs", "1", "--json"]
    png = tmp_path / "plots" / "regret.png"
    res = runner.invoke(_app(), [*base, "--plot", str(png)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the JSON holds the points the plot draws: cumulative regret per round, per strategy
    curves = {k: v["regret_curve"] for k, v in out["strategies"].items()}
    assert all(len(c) == 4 for c in curves.values())
    assert curves["oracle"] == [0.0] * 4
    assert curves["random"][-1] > 0 and curves["ab_test"][-1] > 0
    page = tmp_path / "regret.html"
    res = runner.invoke(_app(), [*base, "--plot", str(page)])
    assert res.exit_code == 0, res.output
    text = page.read_text()
    assert "data:image/png;base64," in text and "<td>faceloop</td>" in text
    # the reference is on the page and the page says what it is
    assert "<td>faces_known</td>" in text and "told the true face effects" in text
    assert not (tmp_path / "regret.png").exists()  # inlined, not left beside the page
    res = runner.invoke(_app(), [*base, "--plot", str(tmp_path / "regret.svg")])
    assert res.exit_code == 2 and "--plot" in res.output


def test_a_conversions_scenarios_page_counts_conversions(tmp_path: Path) -> None:
    """The page's table and regret are in the goal's KPI (they were in clicks for every
    goal), and the text table puts the 95% interval on the goal's column."""
    scenario = str(example_path("scenarios", "late_conversions.yaml"))
    base = ["bench", "optimize", "--scenario", scenario, "--seeds", "2", "--rounds", "3"]
    base += ["--impressions", "3000", "--jobs", "1"]
    page = tmp_path / "regret.html"
    res = runner.invoke(_app(), [*base, "--plot", str(page)])
    assert res.exit_code == 0, res.output
    text = page.read_text()
    assert "<th>conversions mean" in text and "Regret is the conversions each" in text
    assert "clicks mean" not in text
    assert "conversions (95% CI)" in res.output and "clicks (95% CI)" not in res.output


def test_bench_optimize_all_writes_a_table_and_a_plot_per_scenario(tmp_path: Path) -> None:
    names = sorted(p.stem for p in example_path("scenarios").glob("*.yaml"))
    args = ["bench", "optimize", "--all", "--seeds", "2", "--rounds", "2"]
    args += ["--impressions", "500", "--variants", "4", "--jobs", "2"]
    res = runner.invoke(_app(), [*args, "--plot-dir", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    for name in names:
        assert f"{name}: 2 seeds, 2 x 500 impressions" in res.output
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(_app(), [*args, "--jobs", "1", "--json"])
    assert res.exit_code == 0, res.output
    outs = json.loads(res.stdout)
    assert [o["scenario"] for o in outs] == names
    assert all(o["strategies"]["faceloop"]["expected_fraction"] <= 1.0 for o in outs)
    # each scenario against issue 17's targets, as JSON and as one closing table
    for o in outs:
        fraction, lift = o["targets"]["oracle_fraction"], o["targets"]["lift_vs_ab"]
        assert fraction["value"] == o["strategies"]["faceloop"]["oracle_fraction"]
        assert fraction["met"] == (fraction["value"] >= 0.90)
        if o["parameters_matter"]:
            assert lift["met"] == (o["lift_vs_ab"] >= 0.10)
        else:
            mine = o["strategies"]["faceloop"]["kpi_mean"]
            assert lift["met"] == (mine >= o["strategies"]["ab_test"]["kpi_ci95"][0])
    assert [o["scenario"] for o in outs if not o["parameters_matter"]] == ["flat", "flat_noisy"]
    table = runner.invoke(_app(), [*args, "--jobs", "1"], env={"COLUMNS": "160"}).output
    table = table[table.index("faceloop against the targets") :]
    rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert all(name in rows for name in names)
    assert "no harm" in rows["flat"] and "no harm" in rows["flat_noisy"]
    assert ">= +0.10" in rows["smooth"] and ">= +0.10" in rows["late_conversions"]
    flat = next(o for o in outs if o["scenario"] == "flat")
    assert f"{flat['targets']['oracle_fraction']['value']:.3f}" in rows["flat"]


def test_bench_optimize_runs_one_set_on_the_seeds_asked() -> None:
    """--split picks the tuning or held-out scenarios, --first-seed the seeds (tuning seeds
    are disjoint from the published ones); each JSON names its set and its first seed."""
    args = ["bench", "optimize", "--all", "--split", "heldout", "--seeds", "1", "--rounds", "2"]
    args += ["--impressions", "500", "--variants", "4", "--jobs", "1", "--first-seed", "1000"]
    res = runner.invoke(_app(), [*args, "--json"])
    assert res.exit_code == 0, res.output
    outs = json.loads(res.stdout)
    assert outs and {o["split"] for o in outs} == {"heldout"}
    assert all(o["first_seed"] == 1000 for o in outs)
    goals = {o["scenario"]: o["config"]["goal"] for o in outs}
    assert goals["slow_conversions"] == "conversions" and goals["multimodal"] == "ctr"
    lo, hi = outs[0]["lift_vs_ab_ci95"]
    assert lo <= outs[0]["lift_vs_ab"] <= hi
    res = runner.invoke(_app(), ["bench", "optimize", "--all", "--split", "both"])
    assert res.exit_code == 2 and "--split" in res.output


def test_bench_optimize_needs_exactly_one_of_scenario_and_all(tmp_path: Path) -> None:
    res = runner.invoke(_app(), ["bench", "optimize"])
    assert res.exit_code == 2 and "--all" in res.output
    scenario = str(example_path("scenarios", "smooth.yaml"))
    res = runner.invoke(_app(), ["bench", "optimize", "--all", "--scenario", scenario])
    assert res.exit_code == 2 and "--scenario" in res.output
    res = runner.invoke(_app(), ["bench", "optimize", "--all", "--plot", str(tmp_path / "r.png")])
    assert res.exit_code == 2 and "--plot-dir" in res.output
