"""Fixtures for the generator tests: the embedded DCGAN is built once per session."""

from __future__ import annotations

import pytest

from faceloop.generators.base import Generator
from faceloop.generators.registry import get_generator


@pytest.fixture(scope="session")
def dcgan() -> Generator:
    return get_generator("dcgan")
