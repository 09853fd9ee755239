"""The `faceloop` app: built here, its commands live with their concern.

Each CLI module has `register(app, bench_app)`, which attaches its commands, its command
groups and its `faceloop bench` entries; `faceloop --help` lists commands in this order.
"""

from __future__ import annotations

import typer

from faceloop.agents import cli as agents_cli
from faceloop.cli import campaigns, db, governance, kpis, privacy
from faceloop.cli.console import group
from faceloop.generators import cli as generators_cli
from faceloop.guardrails import cli as guardrails_cli
from faceloop.optimization import cli as optimization_cli
from faceloop.playbooks import cli as playbooks_cli

app = typer.Typer(
    help="faceloop: run AI-face ad campaigns as a durable, governed closed loop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
bench_app = group(
    "Measure speed, memory and quality on this machine; results go to docs/benchmarks.md."
)
app.add_typer(bench_app, name="bench")

for register in (
    campaigns.register,
    generators_cli.register,
    guardrails_cli.register,
    agents_cli.register,
    optimization_cli.register,
    governance.register,
    kpis.register,
    playbooks_cli.register,
    privacy.register,
    db.register,
):
    register(app, bench_app)


if __name__ == "__main__":
    app()
