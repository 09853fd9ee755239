"""What every CLI module shares: the output consoles and the one way a command fails."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(exc: BaseException, code: int = 2) -> typer.Exit:
    """Print `exc` as the command's error and return the Exit to raise (2: bad input or an
    unreachable service; callers pass 1 for a refusal such as a rejected vote)."""
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code)
