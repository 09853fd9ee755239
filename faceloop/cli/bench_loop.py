"""`faceloop bench loop`: the whole loop under load, and under chaos (workflows/loadbench.py;
docs/benchmarks.md)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from faceloop.cli.console import console, err, run
from faceloop.settings import Settings


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    bench_app.command("loop")(bench_loop)


def bench_loop(
    campaigns: Annotated[int, typer.Option(min=1, max=200, help="concurrent campaigns")] = 4,
    rounds: Annotated[int, typer.Option(min=1, max=20, help="rounds per campaign")] = 2,
    variants: Annotated[int, typer.Option(min=2, max=64, help="variants per round")] = 4,
    kpi_window: Annotated[
        float, typer.Option(min=0.5, help="seconds of each round's KPI window (a durable timer)")
    ] = 2.0,
    chaos: Annotated[
        bool,
        typer.Option(
            "--chaos",
            help="SIGKILL a random worker every --kill-every s, restart the Temporal server "
            "once, fill the asset store's disk once, FAKE faults on --fault-rate of the "
            "sandbox's requests; then check outcomes, duplicate ads, lost assets, audit chain",
        ),
    ] = False,
    kill_every: Annotated[
        float, typer.Option(min=1.0, help="--chaos: seconds between worker kills")
    ] = 20.0,
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="--chaos: share of sandbox requests faulted")
    ] = 0.10,
    timeout: Annotated[
        float, typer.Option(min=10.0, help="seconds the campaigns get before they are ended")
    ] = 900.0,
    seed: Annotated[int, typer.Option(help="seed of the chaos draws")] = 0,
    split_main: Annotated[
        bool,
        typer.Option(
            "--split-main/--one-main-worker",
            help="workflow tasks and the main queue's activities in two worker processes "
            "(`--queues workflows`, `--queues main-activities`), or in one (`--queues main`, "
            "the default: measured faster, docs/benchmarks.md)",
        ),
    ] = False,
    keep: Annotated[
        Path | None,
        typer.Option(help="run in this data dir and keep it (logs, catalog); default: a temp dir"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only; progress on stderr")] = (
        False
    ),
) -> None:
    """Run `--campaigns` campaigns at once, `--rounds` x `--variants` each, on a fresh
    embedded stack with one worker process per task queue (main, gpu, cpu; `--split-main`:
    workflow tasks and main activities in two).

    Reports variants per minute, p50/p95 per stage (activity execution and queue wait) and
    the orchestration share of per-variant time, read from the campaigns' Temporal histories.
    Progress goes to stderr. With `--chaos`, exit 1 unless every campaign ended with a clear
    outcome, no ad was duplicated, no asset lost and the audit chain verifies.
    """
    from faceloop.cli.db import upgrade_catalog
    from faceloop.examples import example_path
    from faceloop.workflows.chaos import ChaosPlan
    from faceloop.workflows.loadbench import LoopBenchConfig, run_loop_bench

    bench = LoopBenchConfig(
        campaigns=campaigns,
        rounds=rounds,
        variants=variants,
        kpi_window_seconds=kpi_window,
        timeout_seconds=timeout,
        seed=seed,
        split_main=split_main,
        chaos=ChaosPlan(kill_every_s=kill_every, fault_rate=fault_rate) if chaos else None,
    )
    tmp = None if keep is not None else tempfile.mkdtemp(prefix="faceloop-bench-loop-")
    home = keep if keep is not None else Path(str(tmp)) / "home"
    try:
        # a bench of its own: fresh data dir, the shipped playbook; nothing of the user's
        settings = Settings(home=home)
        upgrade_catalog(settings)

        def progress(line: str) -> None:
            err.print(escape(line), highlight=False)

        result = run(run_loop_bench(settings, example_path("brief.yaml"), bench, progress))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        _print(result)
    if keep is not None:
        err.print(f"data dir kept: {escape(str(keep))}")
    inv = result.invariants
    # every campaign must end: done, or blocked/failed with its reason
    unclear = [
        c
        for c in result.campaigns
        if c.status == "unfinished" or (c.status != "done" and not c.reason)
    ]
    if chaos and (unclear or inv is None or not inv.hold):
        raise typer.Exit(1)


def _print(result: object) -> None:
    from faceloop.workflows.loadbench import LoopBenchResult

    assert isinstance(result, LoopBenchResult)
    c = result.config
    console.print(
        f"{c.campaigns} campaigns x {c.rounds} rounds x {c.variants} variants: "
        f"{result.variants} variants in {result.wall_s:.1f}s = "
        f"[bold]{result.variants_per_minute:.1f} variants/min[/bold] "
        f"(stack + workers up in {result.startup_s:.1f}s; {result.cpu_count} CPUs, "
        f"load {result.load_average_1m})"
    )
    table = Table(title="per stage (activity), seconds")
    for col in ("stage", "queue", "n", "exec p50", "exec p95", "wait p50", "wait p95", "retried"):
        table.add_column(col, justify="left" if col in ("stage", "queue") else "right")
    for s in result.stages:
        table.add_row(
            s.stage,
            s.task_queue,
            str(s.count),
            f"{s.exec_p50_s:.2f}",
            f"{s.exec_p95_s:.2f}",
            f"{s.wait_p50_s:.2f}",
            f"{s.wait_p95_s:.2f}",
            str(s.retried),
        )
    console.print(table)
    sp = result.split
    console.print(
        f"per variant: {sp.per_variant_wall_s:.2f}s wall, {sp.per_variant_orchestration_s:.2f}s "
        f"orchestration; [bold]orchestration share {sp.orchestration_share:.1%}[/bold] "
        f"(campaign seconds: activities {sp.activities_s:.0f}, timers {sp.timers_s:.0f}, "
        f"GPU slot wait {sp.slot_wait_s:.0f}, recovery {sp.recovery_s:.0f}, orchestration "
        f"{sp.orchestration_s:.0f}, of which workflow tasks {sp.workflow_tasks_s:.0f}, "
        f"{sp.workflow_task_wait_s:.0f} of them waiting for the main worker)"
    )
    for o in result.campaigns:
        console.print(f"  {o.campaign_id}: {o.status} {escape(o.reason)}")
    if result.chaos is not None:
        ch = result.chaos
        console.print(
            f"chaos: kills {ch.worker_kills}, Temporal restarts {ch.temporal_restarts} "
            f"({ch.temporal_down_s:.1f}s down), disk full {ch.disk_full_s:.0f}s "
            f"({ch.disk_full_refused_writes} writes refused), connector faults "
            f"{ch.connector_faults} of {ch.connector_requests} requests"
        )
    if result.invariants is not None:
        inv = result.invariants
        console.print(
            f"invariants {'[green]hold[/green]' if inv.hold else '[red]broken[/red]'}: "
            f"{inv.ads} ads, duplicates {inv.duplicate_ads_by_asset} by asset / "
            f"{inv.duplicate_ads_by_variant} by variant, unknown ads {len(inv.unknown_ads)}, "
            f"lost assets {len(inv.lost_assets)} of {inv.assets_checked}, audit "
            f"{inv.audit_entries} entries, problems {len(inv.audit_problems)}"
        )
