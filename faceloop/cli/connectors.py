"""Connector commands: `faceloop bench connectors`, the soak of the platform connectors
against their fakes (faceloop.connectors.soak; docs/connectors.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from faceloop.cli.console import console, fail, run
from faceloop.errors import FaceloopError


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    bench_app.command("connectors")(bench_connectors)


def bench_connectors(
    connector: Annotated[
        list[str] | None,
        typer.Option(
            "--connector", help="soak only this connector (repeatable); default: every one"
        ),
    ] = None,
    ops: Annotated[int, typer.Option(min=1, max=1_000_000, help="operations per connector")] = 1000,
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="share of requests that get a fault")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="seed of the operation mix and the faults")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only (a list)")] = False,
) -> None:
    """Soak each platform connector: `--ops` operations (deploy, allocate, pause, insights)
    through its FAKE platform, which injects `--fault-rate` faults (answers lost after the
    platform committed, 5xx, throttles); duplicates and lost updates are counted on the
    fake's side. Waiting runs on a virtual clock; the result says how long a real run would
    have waited. Exit 1 when any connector duplicated or lost a write."""
    from faceloop.connectors.soak import SOAK_TARGETS, soak

    names = connector or sorted(SOAK_TARGETS)
    unknown = [n for n in names if n not in SOAK_TARGETS]
    if unknown:
        raise fail(
            FaceloopError(
                f"--connector {unknown[0]!r} has no soak target; use one of "
                f"{', '.join(sorted(SOAK_TARGETS))}"
            )
        )
    results = [run(soak(n, ops=ops, fault_rate=fault_rate, seed=seed)) for n in names]
    if as_json:
        print(json.dumps([r.model_dump() for r in results], indent=2))
    else:
        table = Table(title=f"connector soak: {ops} ops, {fault_rate:.0%} faults, seed {seed}")
        cols = ("connector", "faults", "requests", "retries", "duplicates", "lost", "failed")
        for col in (*cols, "virtual wait", "wall"):
            table.add_column(col, justify="left" if col == "connector" else "right")
        for r in results:
            table.add_row(
                r.connector,
                str(sum(r.faults_injected.values())),
                str(r.requests),
                str(r.retries),
                str(r.duplicates),
                str(r.lost_updates),
                str(r.failed_ops),
                f"{r.virtual_wait_s:.0f} s",
                f"{r.wall_s:.1f} s",
            )
        console.print(table)
    if any(r.duplicates or r.lost_updates for r in results):
        raise typer.Exit(1)
