"""`faceloop escalations`, `approve` and `reject` through the console's API: the token's
user votes, whatever --reviewer says, and the console's refusals are the command's errors.
The console runs under uvicorn on a free 127.0.0.1 port; its Temporal side is the fake of
console_fakes.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from console_fakes import FakeBackend
from typer.testing import CliRunner, Result

from faceloop.cli import app as cli
from faceloop.console import Role, create_app, security
from faceloop.console.users import UserStore
from faceloop.models import Brief, CampaignConfig
from faceloop.settings import Settings
from faceloop.votes import VoteVerifier
from faceloop.workflows.stack import free_port


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, FakeBackend]]:
    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))
    settings = Settings(home=tmp_path)
    backend = FakeBackend(settings.resolved_database_url)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, backend=backend), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", backend
    finally:
        server.should_exit = True
        thread.join(10)


def test_votes_from_the_cli_are_cast_as_the_tokens_user(
    served: tuple[str, FakeBackend], tmp_path: Path
) -> None:
    url, backend = served
    with UserStore(Settings(home=tmp_path).resolved_database_url) as users:
        users.add_user("cora", "correct horse battery", Role.compliance)
        users.add_user("mara", "correct horse battery", Role.marketer)
        cora, _ = users.create_token("cora", "cli")
        mara, _ = users.create_token("mara", "cli")
    brief = Brief(
        product="Lumen",
        message="m",
        audience=[{"name": "all", "share": 1.0}],
        markets=["DE"],
        budget_impressions=1000,
        submitted_by="mara",
    )
    cid = asyncio.run(backend.submit(brief, CampaignConfig(), None))
    variant = backend.escalate(cid, approvers=1)
    runner = CliRunner()

    def faceloop(token: str, *args: str) -> Result:
        env = {"FACELOOP_HOME": str(tmp_path), "FACELOOP_API_URL": url, "FACELOOP_API_TOKEN": token}
        return runner.invoke(cli, list(args), env=env)

    listed = faceloop(cora, "escalations", "--json")
    assert listed.exit_code == 0, listed.output
    assert [p["variant_id"] for p in json.loads(listed.stdout)] == [variant]
    refused = faceloop(mara, "approve", variant, "--reason", "mine")
    assert refused.exit_code == 1 and "403" in refused.stderr
    # --reviewer does not change who votes: the token's user does
    ok = faceloop(cora, "reject", variant, "--reason", "too close", "--reviewer", "someone")
    assert ok.exit_code == 0, ok.output
    assert "cora (compliance)" in ok.stdout
    assert [(v.reviewer, v.decision.value) for v in backend.votes] == [("cora", "block")]
    # signed by the console for cora: a worker with the data dir's public key accepts it
    assert VoteVerifier.open(tmp_path).problem(backend.votes[0], datetime.now(UTC)) is None
