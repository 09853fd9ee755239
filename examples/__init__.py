"""Example briefs and sandbox scenarios, shipped in the wheel as `faceloop.examples` so that
`faceloop demo` works from an installed package too."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_path(*parts: str) -> Path:
    """Path of a shipped example file, e.g. example_path("scenarios", "smooth.yaml")."""
    ref = resources.files(__name__).joinpath(*parts)
    # setuptools installs package data as plain files, so the traversable is a real path
    return Path(str(ref))


__all__ = ["example_path"]
