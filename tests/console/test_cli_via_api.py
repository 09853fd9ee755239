"""`faceloop escalations`, `approve`, `reject`, `audit verify|export`, `erase`, `consent
list|revoke`, `schedule` and `schedules` through the console's API: the token's user acts,
whatever --reviewer or --by says, and the console's refusals are the command's errors.
The console runs under uvicorn on a free 127.0.0.1 port; its Temporal side is the fake of
console_fakes.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from console_fakes import FakeBackend, anna_consent, small_brief
from typer.testing import CliRunner, Result

from faceloop.cli import app as cli
from faceloop.console import Role, create_app, security
from faceloop.console.users import UserStore
from faceloop.models import CampaignConfig
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
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
    brief = small_brief()
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


def _faceloop(url: str, home: Path) -> Callable[..., Result]:
    runner = CliRunner()

    def call(token: str, *args: str) -> Result:
        env = {
            "FACELOOP_HOME": str(home),
            "FACELOOP_API_URL": url,
            "FACELOOP_API_TOKEN": token,
            # the direct paths would need these; through the API they must not be used
            "FACELOOP_TEMPORAL_ADDRESS": "",
        }
        return runner.invoke(cli, list(args), env=env)

    return call


def _people(home: Path, backend: FakeBackend) -> tuple[str, str, str, str]:
    """Tokens of cora (compliance), mara (marketer), max (marketer), and mara's campaign."""
    with UserStore(Settings(home=home).resolved_database_url) as users:
        users.add_user("cora", "correct horse battery", Role.compliance)
        mara = users.add_user("mara", "correct horse battery", Role.marketer)
        users.add_user("max", "correct horse battery", Role.marketer)
        tokens = [users.create_token(n, "cli")[0] for n in ("cora", "mara", "max")]
        brief = small_brief()
        cid = asyncio.run(backend.submit(brief, CampaignConfig(), None))
        users.record_owner(cid, mara)
    return tokens[0], tokens[1], tokens[2], cid


def test_audit_erase_and_consent_from_the_cli_go_through_the_api(
    served: tuple[str, FakeBackend], tmp_path: Path
) -> None:
    url, backend = served
    cora, mara, _, cid = _people(tmp_path, backend)
    catalog_url = Settings(home=tmp_path).resolved_database_url
    with Catalog(catalog_url) as catalog:
        catalog.audit(cid, "test.event", cid, "test", {"n": 1})
        catalog.record_consent(anna_consent(), "cli")
        n_entries = len(catalog.audit_entries())
    faceloop = _faceloop(url, tmp_path)

    # a marketer is refused each of them by the console: exit 1, the 403 on stderr
    for args in (
        ("audit", "verify"),
        ("audit", "export"),
        ("erase", "--persona", "anna"),
        ("consent", "list"),
        ("consent", "revoke", "c-1", "--reason", "no"),
    ):
        refused = faceloop(mara, *args)
        assert refused.exit_code == 1 and "403" in refused.stderr, (args, refused.output)
    assert backend.erasures == []

    verified = faceloop(cora, "audit", "verify", "--json")
    assert verified.exit_code == 0, verified.output
    found = json.loads(verified.stdout)
    assert found["intact"] and found["entries"] == n_entries and found["source"] == url
    out = tmp_path / "export.jsonl"
    exported = faceloop(cora, "audit", "export", "--out", str(out), "--from-seq", "2")
    assert exported.exit_code == 0, exported.output
    seqs = [json.loads(line)["seq"] for line in out.read_text().splitlines()]
    assert seqs == list(range(2, n_entries + 1))
    # the export verifies on its own, with no console and no catalog
    assert faceloop(cora, "audit", "verify", "--file", str(out)).exit_code == 0

    listed = faceloop(cora, "consent", "list", "--persona", "anna", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(c["consent_id"], c["state"]) for c in json.loads(listed.stdout)] == [("c-1", "live")]
    assert json.loads(faceloop(cora, "consent", "list", "--persona", "bob", "--json").stdout) == []

    # --by does not change who acts: the token's user does
    erased = faceloop(cora, "erase", "--campaign", cid, "--by", "someone", "--ticket", "DSR-9")
    assert erased.exit_code == 0, erased.output
    assert "by cora" in erased.stdout
    assert faceloop(cora, "erase", "--campaign", cid, "--wait").exit_code == 2
    revoked = faceloop(cora, "consent", "revoke", "c-1", "--reason", "withdrawn", "--by", "x")
    assert revoked.exit_code == 0, revoked.output
    assert "erase-persona-anna" in revoked.stdout
    assert [(e.kind, e.target, e.requested_by) for e in backend.erasures] == [
        ("campaign", cid, "cora"),
        ("persona", "anna", "cora"),
    ]
    with Catalog(catalog_url) as catalog:
        gone = catalog.get_consent("c-1")
        assert gone is not None and gone.revoked_reason == "withdrawn"
        actors = [e.actor for e in catalog.audit_entries() if e.kind == "consent.revoked"]
    assert actors == ["cora"]


def test_schedules_from_the_cli_go_through_the_api(
    served: tuple[str, FakeBackend], tmp_path: Path
) -> None:
    url, backend = served
    cora, mara, max_, cid = _people(tmp_path, backend)
    faceloop = _faceloop(url, tmp_path)

    # each bad value named by its field; nothing is scheduled
    bad = faceloop(mara, "schedule", cid, "--every", "6x")
    assert bad.exit_code == 2 and "every" in bad.stderr and "6x" in bad.stderr
    bad = faceloop(mara, "schedule", cid, "--every", "6h", "--spend-cap", "500 EUR")
    assert bad.exit_code == 2 and "spend_cap.currency" in bad.stderr
    assert backend.schedule_table == {}
    # someone else's campaign, and compliance creating one: refused
    assert faceloop(max_, "schedule", cid, "--every", "6h").exit_code == 1
    assert faceloop(cora, "schedule", cid, "--every", "6h").exit_code == 1

    made = faceloop(mara, "schedule", cid, "--every", "6h", "--spend-cap", "500 USD")
    assert made.exit_code == 0, made.output
    assert "by mara" in made.stdout and "stops at 500 USD" in made.stdout
    every, cap, paused = backend.schedule_table[cid]
    assert every == timedelta(hours=6) and cap is not None and cap.amount == 500 and not paused

    listed = faceloop(mara, "schedules", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(r["campaign_id"], r["paused"]) for r in json.loads(listed.stdout)] == [(cid, False)]
    assert json.loads(faceloop(max_, "schedules", "--json").stdout) == []

    # compliance may pause (it only stops spending), not resume or delete
    assert faceloop(cora, "schedule", cid, "--pause", "--note", "check").exit_code == 0
    assert backend.schedule_table[cid][2] is True
    refused = faceloop(cora, "schedule", cid, "--resume")
    assert refused.exit_code == 1 and "403" in refused.stderr
    assert faceloop(cora, "schedule", cid, "--delete").exit_code == 1
    assert faceloop(mara, "schedule", cid, "--resume").exit_code == 0
    assert backend.schedule_table[cid][2] is False
    assert faceloop(mara, "schedule", cid, "--delete").exit_code == 0
    assert backend.schedule_table == {}
    gone = faceloop(mara, "schedule", cid, "--pause")
    assert gone.exit_code == 2 and "404" in gone.stderr

    with Catalog(Settings(home=tmp_path).resolved_database_url) as catalog:
        done = [(e.kind, e.actor) for e in catalog.audit_entries(cid) if e.kind.startswith("sch")]
    assert done == [
        ("schedule.set", "mara"),
        ("schedule.paused", "cora"),
        ("schedule.resumed", "mara"),
        ("schedule.deleted", "mara"),
    ]
