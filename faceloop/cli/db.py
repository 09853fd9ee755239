"""Database commands: `faceloop db current` and `faceloop db upgrade` (docs/storage.md)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from faceloop.cli.console import console, fail, group
from faceloop.errors import FaceloopError

if TYPE_CHECKING:
    from faceloop.settings import Settings


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    db = group("The catalog's database schema: which revision it is at, and upgrading it.")
    db.command("current")(current)
    db.command("upgrade")(upgrade)
    app.add_typer(db, name="db")


def _url() -> str:
    from faceloop.settings import get_settings

    return get_settings().resolved_database_url


def current(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show the catalog's schema revision and this faceloop's head; exit 1 if they differ."""
    from faceloop.storage import migrations
    from faceloop.storage.schema import safe_url

    url = _url()
    try:
        found = migrations.current(url)
    except FaceloopError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "catalog": safe_url(url),
                    "state": found.kind,
                    "revision": found.current,
                    "head": found.head,
                },
                indent=2,
            )
        )
    else:
        console.print(
            f"catalog  {safe_url(url)}\nrevision {found.describe()}\nhead     {found.head}"
        )
        if found.kind in ("release", "behind"):
            console.print(f"[yellow]behind:[/yellow] {migrations.UPGRADE_HINT}")
    # an empty database is fine: the first Catalog() creates it at head
    if found.kind not in ("head", "empty"):
        raise typer.Exit(1)


def upgrade() -> None:
    """Upgrade the catalog (FACELOOP_DATABASE_URL, else the SQLite file in the data dir) to
    this faceloop's schema, in one transaction. Back the database up first.

    A catalog the first release made (no version stamp) is recognised and upgraded too.
    `faceloop up`, `demo` and `worker` run this on their own.
    """
    from faceloop.settings import get_settings

    upgrade_catalog(get_settings(), quiet=False)


def upgrade_catalog(settings: Settings, *, quiet: bool = True) -> None:
    """Bring the settings' catalog to head before a command runs the stack on it; says what
    changed (quiet: only when something did). Exits with the error if it cannot."""
    from faceloop.storage import migrations
    from faceloop.storage.schema import safe_url

    url = settings.resolved_database_url
    try:
        before, after = migrations.upgrade(url)
    except FaceloopError as exc:
        raise fail(exc) from exc
    where = safe_url(url)
    if before.kind == "head":
        if not quiet:
            console.print(f"catalog {where} is at head {after.head}: nothing to do")
    elif before.kind == "empty":
        if not quiet:
            console.print(f"catalog {where} created at {after.head}")
    else:
        console.print(f"catalog {where} upgraded: {before.describe()} -> {after.describe()}")
