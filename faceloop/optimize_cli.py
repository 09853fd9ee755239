"""`faceloop bench optimize`: the campaign loop against honest baselines on a sandbox
scenario (a simulated audience), with equal impression budgets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from faceloop.errors import FaceloopError

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    bench_app.command("optimize")(bench_optimize)


def bench_optimize(
    scenario: Annotated[
        Path,
        typer.Option(
            help="scenario YAML (schema: docs/sandbox.md), e.g. examples/scenarios/smooth.yaml"
        ),
    ],
    seeds: Annotated[
        int, typer.Option(min=1, max=1000, help="simulated campaigns per strategy")
    ] = 20,
    rounds: Annotated[
        int, typer.Option(min=2, max=500, help="rounds (KPI windows) per campaign")
    ] = 28,
    impressions: Annotated[
        int, typer.Option(min=100, max=100_000_000, help="impressions per round, every strategy")
    ] = 20_000,
    sampler: Annotated[
        str, typer.Option(help="faceloop's Optuna sampler: tpe, gp, cmaes, random")
    ] = "tpe",
    ab_test_rounds: Annotated[
        int | None,
        typer.Option(help="rounds of the A/B test phase (default: a quarter of --rounds)"),
    ] = None,
    jobs: Annotated[
        int, typer.Option(min=0, max=256, help="worker processes; 0: min(2, CPUs)")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Run `faceloop` (the real campaign logic), `ab_test`, `random` and `oracle` on a
    sandbox scenario with equal impression budgets; print clicks, conversions, the share of
    the oracle's clicks, the share of impressions on near-best faces, and faceloop's lift
    over the A/B test. No images are generated: the simulated audience scores the declared
    face parameters.
    """
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimizer import SAMPLERS
    from faceloop.simulate import BenchConfig, bench

    if sampler not in SAMPLERS:
        err.print(
            f"[red]error:[/red] --sampler {sampler!r} is unknown; use one of {', '.join(SAMPLERS)}"
        )
        raise typer.Exit(2)
    test_rounds = ab_test_rounds if ab_test_rounds is not None else max(rounds // 4, 1)
    if not 1 <= test_rounds < rounds:
        err.print(
            f"[red]error:[/red] --ab-test-rounds must be between 1 and {rounds - 1} (fewer than "
            f"--rounds), got {test_rounds}"
        )
        raise typer.Exit(2)
    try:
        sc = load_scenario(scenario)
        cfg = BenchConfig(
            rounds=rounds,
            impressions_per_round=impressions,
            sampler=sampler,
            ab_test_rounds=test_rounds,
        )
        out = bench(sc, cfg, seeds, jobs or min(2, os.cpu_count() or 1))
    except FaceloopError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    out["scenario_file"] = str(scenario)
    if as_json:
        print(json.dumps(out, indent=2))
        return
    table = Table(title=f"{sc.name}: {seeds} seeds, {rounds} x {impressions} impressions")
    for col in ("strategy", "clicks (95% CI)", "conversions", "oracle fraction", "best share"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for name, s in out["strategies"].items():
        lo, hi = s["clicks_ci95"]
        table.add_row(
            name,
            f"{s['clicks_mean']:.0f} ({lo:.0f}-{hi:.0f})",
            f"{s['conversions_mean']:.0f}",
            f"{s['oracle_fraction']:.3f}",
            f"{s['best_share']:.3f}",
        )
    console.print(table)
    console.print(f"lift vs A/B: {out['lift_vs_ab']:+.1%}   ({out['seconds']} s)")
