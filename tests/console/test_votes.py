"""Signed votes (faceloop/votes.py) and the worker's check of who cast one
(ReviewActivities._check), without Temporal: forged, altered, stale and foreign-key votes
are refused once console users exist, and each refusal is an audit entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from faceloop.cli import app as cli
from faceloop.console import Role, security
from faceloop.console.users import UserStore
from faceloop.messages import ReviewInput
from faceloop.models import Decision
from faceloop.settings import Settings
from faceloop.votes import MAX_AGE, VoteSigner, VoteVerifier, key_paths
from faceloop.workflows.review_activities import ReviewActivities

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def vote(reviewer: str = "cora", **kw: object) -> ReviewInput:
    base: dict[str, object] = {
        "campaign_id": "c1",
        "variant_id": "c1-r0-t0",
        "decision": Decision.deploy,
        "reviewer": reviewer,
        "reason": "generic face",
        "role": "compliance",
    }
    return ReviewInput.model_validate(base | kw)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UserStore:
    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))
    return UserStore(Settings(home=tmp_path).resolved_database_url)


def test_a_signed_vote_verifies_and_any_change_breaks_it(tmp_path: Path) -> None:
    signer = VoteSigner.open(tmp_path)
    private, public = key_paths(tmp_path)
    assert private.stat().st_mode & 0o077 == 0  # the private key is owner-only
    verifier = VoteVerifier.open(tmp_path)
    signed = signer.sign(vote(), NOW)
    # as the worker gets it: through JSON (the data converter)
    arrived = ReviewInput.model_validate_json(signed.model_dump_json())
    assert verifier.problem(arrived, NOW + timedelta(seconds=3)) is None
    for field, value in (
        ("reviewer", "carl"),
        ("decision", Decision.block),
        ("variant_id", "c1-r0-t1"),
        ("campaign_id", "c2"),
        ("role", "legal"),
        ("reason", "other"),
    ):
        altered = arrived.model_copy(update={field: value})
        assert "does not match" in str(verifier.problem(altered, NOW)), field
    assert "not signed" in str(verifier.problem(vote(), NOW))
    # a key from another data dir: signatures by it are not this console's
    foreign = VoteSigner.open(tmp_path / "elsewhere").sign(vote(), NOW)
    assert "not this console's key" in str(verifier.problem(foreign, NOW))
    # a vote held back, or one from the future
    assert "more than" in str(verifier.problem(signed, NOW + MAX_AGE + timedelta(seconds=1)))
    assert "future" in str(verifier.problem(signed, NOW - timedelta(hours=1)))
    # reopening keeps the key (and its .pub): earlier votes still verify
    assert VoteSigner.open(tmp_path).key_id == signer.key_id
    assert public.read_bytes() == key_paths(tmp_path)[1].read_bytes()


def test_a_worker_without_the_public_key_refuses_and_picks_it_up_once_made(
    tmp_path: Path,
) -> None:
    verifier = VoteVerifier.open(tmp_path)  # the worker started before the console
    signed = VoteSigner.open(tmp_path / "other").sign(vote(), NOW)
    assert "no vote-signing public key" in str(verifier.problem(signed, NOW))
    signed = VoteSigner.open(tmp_path).sign(vote(), NOW)
    assert verifier.problem(signed, NOW) is None


def test_without_console_users_an_unsigned_vote_counts_as_unverified(
    store: UserStore, tmp_path: Path
) -> None:
    check = ReviewActivities(store, VoteVerifier.open(tmp_path))._check(vote(), NOW)
    assert (check.ok, check.identity) == (True, "unverified")


def test_with_console_users_only_a_vote_the_console_signed_counts(
    store: UserStore, tmp_path: Path
) -> None:
    store.add_user("cora", "correct horse battery", Role.compliance)
    store.add_user("lars", "correct horse battery", Role.compliance, review_roles=["legal"])
    signer = VoteSigner.open(tmp_path)
    activities = ReviewActivities(store, VoteVerifier.open(tmp_path))
    now = datetime.now(UTC)

    forged = activities._verify(vote("cora"), "k1")  # typed name, no signature
    assert not forged.ok and "not signed by the console" in forged.reason
    ok = activities._verify(signer.sign(vote("CORA "), now), "k2")  # canonical form
    assert (ok.ok, ok.identity) == (True, "signed")
    # signed, but for a role the user does not vote as, or for someone who is no user
    wrong_role = activities._verify(signer.sign(vote("lars"), now), "k3")
    assert not wrong_role.ok and "does not vote as role 'compliance'" in wrong_role.reason
    nobody = activities._verify(signer.sign(vote("mallory"), now), "k4")
    assert not nobody.ok and "not an active console user" in nobody.reason
    store.set_disabled("cora", True)
    gone = activities._verify(signer.sign(vote("cora"), now), "k5")
    assert not gone.ok and "not an active console user" in gone.reason

    refused = [e for e in store.audit_entries("c1") if e.kind == "review.vote.refused"]
    assert [(e.payload["claimed_reviewer"], e.payload["signed"]) for e in refused] == [
        ("cora", False),
        ("lars", True),
        ("mallory", True),
        ("cora", True),
    ]
    # a retried activity writes its refusal once
    activities._verify(vote("cora"), "k1")
    assert len([e for e in store.audit_entries("c1") if e.kind == "review.vote.refused"]) == 4


def test_the_cli_without_the_console_refuses_to_vote_once_users_exist(
    store: UserStore, tmp_path: Path
) -> None:
    env = {
        "FACELOOP_HOME": str(tmp_path),
        "FACELOOP_API_URL": None,
        "FACELOOP_NEW_PASSWORD": "correct horse battery",
    }
    runner = CliRunner()
    added = runner.invoke(cli, ["users", "add", "cora", "--role", "compliance"], env=env)
    assert added.exit_code == 0, added.output
    assert "first console user" in added.stdout  # says that votes change from now on
    again = runner.invoke(cli, ["users", "add", "carl", "--role", "compliance"], env=env)
    assert again.exit_code == 0 and "first console user" not in again.stdout, again.output
    result = runner.invoke(
        cli,
        ["approve", "c1-r0-t0", "--reason", "ok", "--role", "compliance", "--reviewer", "cora"],
        env=env,
    )
    assert result.exit_code == 1, result.output
    assert "FACELOOP_API_URL" in result.stderr and "FACELOOP_API_TOKEN" in result.stderr
