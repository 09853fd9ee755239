"""Console users from the shell: `faceloop users add|list|token|revoke|passwd|disable|enable`.

This is how the first admin exists (docs/console.md): whoever can run faceloop against the
catalog's database already holds everything a console admin could reach.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from faceloop.cli.console import console, err, fail, group
from faceloop.errors import FaceloopError

if TYPE_CHECKING:
    from faceloop.console.users import UserStore


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    users = group("Console users, their roles and API tokens (docs/console.md).")
    users.command("add")(add)
    users.command("list")(list_users)
    users.command("token")(token)
    users.command("revoke")(revoke)
    users.command("passwd")(passwd)
    users.command("disable")(disable)
    users.command("enable")(enable)
    app.add_typer(users, name="users")


def _store() -> UserStore:
    from faceloop.console.users import UserStore
    from faceloop.settings import get_settings

    return UserStore(get_settings().resolved_database_url)


def _password(prompt: bool) -> str:
    # a password on the command line would sit in the shell history and `ps`
    given = os.environ.get("FACELOOP_NEW_PASSWORD")
    if given:
        return given
    if not prompt:
        raise fail(FaceloopError("no password: set FACELOOP_NEW_PASSWORD or run interactively"))
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


def add(
    username: Annotated[str, typer.Argument(help="login name (stored lower-case)")],
    role: Annotated[str, typer.Option(help="marketer, compliance or admin")] = "marketer",
    review_role: Annotated[
        list[str] | None,
        typer.Option(
            help="playbook role this user votes as (repeatable; default: compliance for "
            "compliance and admin users)"
        ),
    ] = None,
) -> None:
    """Add a console user; the password is prompted (or FACELOOP_NEW_PASSWORD)."""
    from faceloop.console.users import Role

    try:
        parsed = Role(role)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{role!r}: choose marketer, compliance or admin", param_hint="--role"
        ) from exc
    password = _password(prompt=True)
    try:
        with _store() as store:
            first = not store.users()
            user = store.add_user(username, password, parsed, review_role)
    except FaceloopError as exc:
        raise fail(exc) from exc
    console.print(
        f"added {escape(user.username)} ({user.role.value}"
        + (f", votes as {escape(', '.join(user.review_roles))}" if user.review_roles else "")
        + ")"
    )
    if first:
        # the worker now counts only votes the console signed (docs/console.md)
        console.print(
            "the first console user: from now on review votes count only when cast in the "
            "console or with FACELOOP_API_URL and FACELOOP_API_TOKEN"
        )


def list_users(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List console users with their roles."""
    try:
        with _store() as store:
            users = store.users()
    except FaceloopError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps([u.model_dump(mode="json") for u in users], indent=2))
        return
    if not users:
        console.print("no console users: `faceloop users add NAME --role admin` makes the first")
        return
    table = Table("user", "role", "votes as", "state", "created")
    for u in users:
        table.add_row(
            escape(u.username),
            u.role.value,
            escape(", ".join(u.review_roles)),
            "disabled" if u.disabled else "active",
            u.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


def token(
    username: Annotated[str, typer.Argument(help="whose token")],
    name: Annotated[str, typer.Option(help="what the token is for")] = "cli",
) -> None:
    """Make an API token for a user; it is printed once and only its hash is kept."""
    try:
        with _store() as store:
            secret, row = store.create_token(username, name)
    except FaceloopError as exc:
        raise fail(exc) from exc
    err.print(f"token {row.token_id} ({escape(row.name)}) for {escape(username)}; shown once:")
    typer.echo(secret)


def revoke(token_id: Annotated[str, typer.Argument(help="token id (not the token)")]) -> None:
    """Revoke an API token."""
    try:
        with _store() as store:
            store.revoke_token(token_id)
    except FaceloopError as exc:
        raise fail(exc) from exc
    console.print(f"revoked {escape(token_id)}")


def passwd(username: Annotated[str, typer.Argument(help="whose password")]) -> None:
    """Set a user's password (prompted, or FACELOOP_NEW_PASSWORD); ends their sessions."""
    password = _password(prompt=True)
    try:
        with _store() as store:
            store.set_password(username, password)
    except FaceloopError as exc:
        raise fail(exc) from exc
    console.print(f"password of {escape(username)} set")


def disable(username: Annotated[str, typer.Argument(help="who")]) -> None:
    """Disable a user: logins, sessions and tokens stop working."""
    _set_disabled(username, True)


def enable(username: Annotated[str, typer.Argument(help="who")]) -> None:
    """Enable a disabled user again."""
    _set_disabled(username, False)


def _set_disabled(username: str, disabled: bool) -> None:
    try:
        with _store() as store:
            store.set_disabled(username, disabled)
    except FaceloopError as exc:
        raise fail(exc) from exc
    console.print(f"{escape(username)} {'disabled' if disabled else 'enabled'}")
