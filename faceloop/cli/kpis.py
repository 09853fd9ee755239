"""KPI commands: `faceloop kpis import`, KPIs from a CSV export into the catalog (docs/kpis.md)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from faceloop.cli.console import console, fail, group
from faceloop.errors import FaceloopError


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    kpis = group("KPIs from channels without an API, or history, imported from CSV exports.")
    kpis.command("import")(import_kpis)
    app.add_typer(kpis, name="kpis")


def import_kpis(
    file: Annotated[Path, typer.Argument(help="the CSV export", show_default=False)],
    campaign: Annotated[str, typer.Option("--campaign", help="the campaign the ads belong to")],
    mapping: Annotated[
        str,
        typer.Option("--mapping", help="meta, google, tiktok, or a custom mapping .yaml"),
    ],
    replace: Annotated[
        bool,
        typer.Option("--replace", help="overwrite stored windows the file reports differently"),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="check and count, write nothing")
    ] = False,
    by: Annotated[
        str, typer.Option("--by", help="who imports, for the audit log (default: OS user)")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Import per-window KPIs (impressions, clicks, conversions per ad, window and segment)
    from a CSV export; the campaign's next learn step reads them like observed ones.

    Every bad row is reported with its line and column and nothing is written; importing
    the same file again changes nothing; a row that differs from a stored window is a
    conflict unless --replace.
    """
    from faceloop.connectors.kpi_import import apply_import, load_mapping, plan_import
    from faceloop.settings import get_settings
    from faceloop.storage.catalog import Catalog

    try:
        spec = load_mapping(mapping)
        with Catalog(get_settings().resolved_database_url) as catalog:
            plan = plan_import(catalog, campaign, file, spec, replace=replace)
            result = None if dry_run else apply_import(catalog, plan, by or getpass.getuser())
    except FaceloopError as exc:
        raise fail(exc) from exc
    counts = {s: plan.count(s) for s in ("new", "replaced", "unchanged")}
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "campaign_id": campaign,
                    "file": str(file),
                    "sha256": plan.sha256,
                    "mapping": plan.mapping,
                    "rows": len(plan.rows),
                    **counts,
                    "dry_run": dry_run,
                    "written": bool(result and result.written),
                    "audit_seq": result.audit_seq if result else None,
                },
                indent=2,
            )
        )
        return
    summary = f"{counts['new']} new, {counts['replaced']} replaced, {counts['unchanged']} unchanged"
    where = f"{escape(str(file))} -> campaign {escape(campaign)}"
    if dry_run:
        console.print(f"dry run: {where}: would write {summary}")
    elif result is not None and result.written:
        console.print(f"imported {where}: {summary} (audit entry {result.audit_seq})")
    else:
        console.print(f"{where}: {summary}; nothing to write")
