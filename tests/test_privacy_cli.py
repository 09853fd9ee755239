"""`faceloop consent` and `faceloop erase` as a person meets them, without a Temporal server
(tests/workflows/test_erasure.py runs them against one)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from faceloop.cli import app

runner = CliRunner()
EVIDENCE = b"signed consent form"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACELOOP_DATABASE_URL", raising=False)
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    # nothing listens on port 1: "no server" is answered at once
    monkeypatch.setenv("FACELOOP_TEMPORAL_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("FACELOOP_OPERATOR", "dpo")


def consent_file(tmp: Path, **changes: object) -> Path:
    (tmp / "form.pdf").write_bytes(EVIDENCE)
    record: dict[str, object] = {
        "consent_id": "c-1",
        "persona_id": "ada",
        "subject_name": "Ada Example",
        "scope": ["ads"],
        "markets": ["DE", "FR"],
        "expires": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
        "evidence_sha256": hashlib.sha256(EVIDENCE).hexdigest(),
        "evidence": "form.pdf",
        **changes,
    }
    path = tmp / f"{record['consent_id']}.yaml"
    path.write_text(yaml.safe_dump(record))
    return path


def test_consent_add_list_check_and_revoke_without_erasure(tmp_path: Path) -> None:
    added = runner.invoke(app, ["consent", "add", str(consent_file(tmp_path))])
    assert added.exit_code == 0, added.output
    assert "recorded consent c-1 for persona 'ada': ads in DE, FR" in added.output
    listed = json.loads(runner.invoke(app, ["consent", "list", "--json"]).output)
    assert [(c["consent_id"], c["state"], c["subject_name"]) for c in listed] == [
        ("c-1", "live", "Ada Example")
    ]
    ok = runner.invoke(app, ["consent", "check", "ada", "--markets", "de,fr"])
    assert ok.exit_code == 0 and ok.output.startswith("valid: consent c-1 covers 'ads' in DE, FR")
    short = runner.invoke(app, ["consent", "check", "ada", "--markets", "DE,US", "--json"])
    assert short.exit_code == 1
    assert json.loads(short.output)["state"] == "market-not-covered"

    revoked = runner.invoke(
        app, ["consent", "revoke", "c-1", "--reason", "withdrawn", "--no-erase"]
    )
    assert revoked.exit_code == 0, revoked.output
    assert "consent c-1 of persona 'ada' revoked" in revoked.output
    assert "erasure not started (--no-erase)" in revoked.output
    gone = runner.invoke(app, ["consent", "check", "ada"])
    assert gone.exit_code == 1 and gone.output.startswith("revoked: ")
    table = runner.invoke(app, ["consent", "list", "--persona", "ada"], terminal_width=200)
    assert "revoked" in table.output and "Ada Example" in table.output


def test_revoke_says_when_erasure_could_not_start(tmp_path: Path) -> None:
    runner.invoke(app, ["consent", "add", str(consent_file(tmp_path))])
    out = runner.invoke(app, ["consent", "revoke", "c-1", "--reason", "withdrawn"])
    assert out.exit_code == 0, out.output
    assert "erasure NOT started" in out.output and "127.0.0.1:1" in out.output
    assert "faceloop erase --persona ada" in out.output


def test_revoke_does_not_erase_while_another_consent_lives(tmp_path: Path) -> None:
    runner.invoke(app, ["consent", "add", str(consent_file(tmp_path))])
    runner.invoke(app, ["consent", "add", str(consent_file(tmp_path, consent_id="c-2"))])
    out = runner.invoke(app, ["consent", "revoke", "c-1", "--reason", "withdrawn"])
    assert out.exit_code == 0
    assert "still has live consent(s) c-2" in out.output


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"expires": "2020-01-01"}, "expires: consent expired on 2020-01-01"),
        ({"evidence_sha256": "0" * 64}, "evidence_sha256: does not match the sha256"),
        ({"markets": ["germany"]}, "markets:"),
    ],
)
def test_consent_add_refuses_a_bad_record(
    tmp_path: Path, changes: dict[str, object], says: str
) -> None:
    out = runner.invoke(app, ["consent", "add", str(consent_file(tmp_path, **changes))])
    assert out.exit_code == 2 and says in out.output
    assert json.loads(runner.invoke(app, ["consent", "list", "--json"]).output) == []


def test_consent_add_refuses_a_changed_record(tmp_path: Path) -> None:
    runner.invoke(app, ["consent", "add", str(consent_file(tmp_path))])
    out = runner.invoke(app, ["consent", "add", str(consent_file(tmp_path, markets=["US"]))])
    assert out.exit_code == 2 and "markets: consent 'c-1' is already recorded" in out.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["erase"], "give exactly one of --asset ID, --persona ID or --campaign ID"),
        (["erase", "--asset", "a" * 64, "--persona", "x"], "give exactly one of"),
        (["erase", "--persona", "x", "--campaign", "c"], "give exactly one of"),
        (["erase", "--campaign", "c/1"], "campaign id 'c/1' is not an id"),
        (["erase", "--campaign", "c-1"], "no Temporal server reachable at 127.0.0.1:1"),
        (["erase", "--asset", "not-a-hash"], "is not a sha256 hex digest"),
        (["erase", "--persona", "a b"], "is not an id"),
        (["erase", "--persona", "ada"], "no Temporal server reachable at 127.0.0.1:1"),
        (["consent", "revoke", "c-404", "--reason", "x"], "'c-404' is not in the consent"),
    ],
)
def test_erase_and_revoke_errors_name_the_fix(args: list[str], says: str) -> None:
    out = runner.invoke(app, args)
    assert out.exit_code == 2 and says in out.output, out.output
