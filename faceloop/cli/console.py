"""What every CLI module shares: the output consoles, the one way a command fails, how a
command runs a coroutine, and how a command group is made."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from faceloop.errors import FaceloopError

if TYPE_CHECKING:
    from faceloop.settings import Settings

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
# for a command that runs another one only to measure it (`faceloop bench demo`)
silent = Console(quiet=True)

T = TypeVar("T")


def print_error(exc: BaseException) -> None:
    """The one way an error reaches the person: `error: <what, where, the fix>` on stderr."""
    err.print(f"[red]error:[/red] {escape(str(exc))}")


def fail(exc: BaseException, code: int = 2) -> typer.Exit:
    """Print `exc` as the command's error and return the Exit to raise (2: bad input or an
    unreachable service; callers pass 1 for a refusal such as a rejected vote)."""
    print_error(exc)
    return typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine: a FaceloopError fails the command, Ctrl-C exits 130."""
    try:
        return asyncio.run(coro)
    except FaceloopError as exc:
        raise fail(exc) from exc
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Ctrl-C, or SIGTERM (which the embedded stack turns into a cancellation)
        err.print("[yellow]interrupted: everything this command started was stopped[/yellow]")
        raise typer.Exit(130) from None


def group(help: str) -> typer.Typer:
    """A command group (`faceloop audit`, `faceloop bench` ...): without a subcommand it
    prints its help."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode="markdown")


def api(
    settings: Settings,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    raw: bool = False,
) -> Any:
    """Call the console's API (FACELOOP_API_URL) as the token's user: the parsed JSON answer,
    or its text with `raw`. Its refusals are the command's error (exit 1 for 403/409, a
    refused action; 2 for anything else)."""
    import httpx

    if settings.api_token is None:
        raise fail(
            FaceloopError(
                "FACELOOP_API_URL is set but FACELOOP_API_TOKEN is not: make one with "
                "`faceloop users token NAME`"
            )
        )
    url = str(settings.api_url).rstrip("/") + path
    headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
    try:
        r = httpx.request(
            method,
            url,
            json=body,
            # an unset option is left out, not sent empty
            params={k: v for k, v in (params or {}).items() if v is not None},
            headers=headers,
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise fail(
            FaceloopError(f"the console at {settings.api_url} is not reachable: {exc}")
        ) from exc
    if r.is_success:
        return r.text if raw else r.json()
    try:
        detail = r.json().get("detail", r.text)
    except ValueError:
        detail = r.text
    raise fail(FaceloopError(f"{r.status_code}: {detail}"), 1 if r.status_code in (403, 409) else 2)
