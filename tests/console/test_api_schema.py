"""Schemathesis against the console's OpenAPI spec: generated requests to every operation,
as an admin with an API token (so every route is reachable), find no 5xx and no response
that breaks the spec's schema. The Temporal side is the fake of console_fakes.py.

The app is built when the module loads (schemathesis reads the spec at collection), on a
data dir of its own that is removed at exit; `from_fixture` would avoid that but fails on
pytest 9 (it reads the removed `Function._nodeid`).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from console_fakes import FakeBackend
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from faceloop.console import Role, create_app
from faceloop.console.users import UserStore
from faceloop.settings import Settings

pytestmark = [pytest.mark.slow]

_HOME = Path(tempfile.mkdtemp(prefix="faceloop-schemathesis-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
_SETTINGS = Settings(home=_HOME)
with UserStore(_SETTINGS.resolved_database_url) as _users:
    _users.add_user("ada", "correct horse battery", Role.admin)
    TOKEN, _ = _users.create_token("ada", "schemathesis")
APP = create_app(_SETTINGS, backend=FakeBackend(_SETTINGS.resolved_database_url))
schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_answer_matches_the_spec(case: Any) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
