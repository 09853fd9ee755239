"""The `faceloop` command line: one Typer app; each subpackage registers its commands.

`app` is resolved on first access: the domain CLIs import `faceloop.cli.console`, and an
eager import of the app here would register them while they are still half-imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    app: typer.Typer

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from faceloop.cli.main import app

        return app
    raise AttributeError(f"module 'faceloop.cli' has no attribute {name!r}")
