"""The browser tests run on the stack tests/workflows sets up: its fixtures (the Temporal dev
server, the sandbox platform, per-test settings) and its fake escalating check are loaded
from there by path, as test directories are not packages here (one definition to keep)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from faceloop.guardrails.base import Guardrail

WORKFLOW_TESTS = Path(__file__).resolve().parents[1] / "workflows"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_stack = _load("faceloop_browser_stack", WORKFLOW_TESTS / "conftest.py")
_review = _load("faceloop_browser_review", WORKFLOW_TESTS / "test_console_review.py")

# re-exported names are what pytest registers as this directory's fixtures
temporal_env = _stack.temporal_env
sandbox_url = _stack.sandbox_url
database_url = _stack.database_url
settings = _stack.settings


@pytest.fixture
def escalate_everything() -> Guardrail:
    """The fake check (a test double) that flags every image for human review."""
    fake: Guardrail = _review.FakeEscalateEverything()
    return fake
