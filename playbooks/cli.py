"""`faceloop playbook check|list|schema`: governance playbooks at the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from faceloop.cli.console import console, err, group
from faceloop.playbooks.check import check_playbook
from faceloop.playbooks.schema import Playbook, shipped_playbooks


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    playbook = group(
        "Governance playbooks: check one, list the shipped ones, export the JSON Schema."
    )
    playbook.command("check")(check)
    playbook.command("list")(list_playbooks)
    playbook.command("schema")(schema)
    app.add_typer(playbook, name="playbook")


def schema_json() -> str:
    """The playbook's JSON Schema as committed in docs/playbook.schema.json."""
    schema: dict[str, Any] = Playbook.model_json_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://faceloop.dev/schemas/playbook.schema.json",
        **schema,
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def check(
    playbook: Annotated[str, typer.Argument(help="playbook file (YAML/JSON) or shipped name")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Validate a playbook and report every error with its path.

    Exit code 0 when it is valid (warnings are printed but do not fail it), 1 when not.
    """
    result = check_playbook(playbook)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    elif not result.valid:
        err.print(
            f"[red]{escape(result.source)} is invalid[/red] "
            f"({escape(str(len(result.errors)))} error(s)):"
        )
        for p in result.errors:
            err.print(f"  {escape(p.path)}: {escape(p.message)}")
    else:
        s = result.summary
        console.print(
            f"[green]{escape(result.source)} is valid[/green]: playbook {s['name']!r} "
            f"v{s['version']}, {s['rules']} rule(s), {len(s['rollback'])} rollback criteria"
        )
        console.print(
            "  markets named: "
            f"{escape(str(', '.join(s['markets']) or '(none: rules apply to all)'))}"
        )
        console.print(
            f"  approvers: up to {s['max_approvers']}"
            + (f" (four eyes: {', '.join(s['four_eyes_rules'])})" if s["four_eyes_rules"] else "")
        )
        console.print(f"  escalation: {escape(s['escalation'])}")
    for w in result.warnings:
        err.print(f"[yellow]warning[/yellow] {escape(w.path)}: {escape(w.message)}")
    raise typer.Exit(0 if result.valid else 1)


def list_playbooks(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List the playbooks shipped with faceloop (use them by name: `--playbook eu`)."""
    shipped = shipped_playbooks()
    if as_json:
        typer.echo(json.dumps(shipped, indent=2, ensure_ascii=False))
        return
    for name, about in shipped.items():
        console.print(f"[bold]{escape(str(name))}[/bold]  {escape(about)}")


def schema(
    out: Annotated[
        Path | None,
        typer.Option(help="write here (docs/playbook.schema.json in the repo); default: stdout"),
    ] = None,
) -> None:
    """Print or write the playbook's JSON Schema (for editors and docs)."""
    text = schema_json()
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {escape(str(out))}")
