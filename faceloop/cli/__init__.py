"""The `faceloop` command line: one Typer app; each subpackage registers its commands."""

from faceloop.cli.main import app

__all__ = ["app"]
