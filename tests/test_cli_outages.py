"""Server outages give one-line errors: every command that talks to Temporal or to the
catalog's database, with the server's port closed, exits 2 with one `error:` line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceloop.cli import app

ROOT = Path(__file__).resolve().parents[1]
BRIEF = str(ROOT / "examples" / "brief.yaml")
runner = CliRunner()

VOTE = ["--reason", "ok", "--role", "compliance", "--reviewer", "maria"]
TEMPORAL_COMMANDS = [
    ["submit", BRIEF],
    ["escalations"],
    ["approve", "v1", *VOTE],
    ["reject", "v1", *VOTE],
    ["schedule", "c1", "--every", "6h"],
    ["schedule", "c1", "--pause"],
    ["schedules"],
    ["erase", "--persona", "anna"],
]
DATABASE_COMMANDS = [
    ["status"],
    ["status", "c1", "--json"],
    ["report", "c1"],
    ["consent", "list"],
    ["consent", "revoke", "c-1", "--reason", "asked by the subject"],
    ["audit", "verify"],
    ["db", "current"],
    ["db", "upgrade"],
    # a vote without the console first asks the catalog whether console users exist
    ["approve", "v1", *VOTE],
]


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("FACELOOP_DATABASE_URL", "FACELOOP_PLAYBOOK", "FACELOOP_REVIEWER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACELOOP_TEMPORAL_ADDRESS", f"127.0.0.1:{closed_port()}")
    return tmp_path / "home"


def _consent_on_record() -> None:
    """A live consent, so `consent revoke` gets as far as starting the erasure on Temporal."""
    from faceloop.consent import ConsentRecord
    from faceloop.settings import get_settings
    from faceloop.storage.catalog import Catalog

    record = ConsentRecord(
        consent_id="c-1",
        persona_id="anna",
        subject_name="Anna Example",
        scope=["ads"],
        markets=["DE"],
        expires="2099-01-01",
        evidence_sha256="0" * 64,
    )
    with Catalog(get_settings().resolved_database_url) as catalog:
        catalog.record_consent(record, "test")


def _one_error_line(output: str) -> None:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert len(output.strip().splitlines()) == 1, output


@pytest.mark.parametrize("args", TEMPORAL_COMMANDS, ids=" ".join)
def test_temporal_down_is_one_line(home: Path, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    _one_error_line(result.output)
    assert "no Temporal server reachable at 127.0.0.1:" in result.output


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=" ".join)
def test_database_down_is_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv(
        "FACELOOP_DATABASE_URL", f"postgresql://faceloop:pw@127.0.0.1:{closed_port()}/faceloop"
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    _one_error_line(result.output)
    assert "cannot open the catalog at postgresql://faceloop:***@127.0.0.1:" in result.output
    assert "pw@" not in result.output  # the password never reaches the screen


def test_revoking_consent_with_temporal_down_revokes_and_says_the_erasure_did_not_start(
    home: Path,
) -> None:
    # revocation must not wait for Temporal: the record is revoked (campaigns stop at their
    # next consent check) and the person is told how to start the erasure later
    _consent_on_record()
    result = runner.invoke(app, ["consent", "revoke", "c-1", "--reason", "asked by the subject"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "consent c-1 of persona 'anna' revoked" in result.output
    assert "erasure NOT started: no Temporal server reachable" in result.output
    assert "faceloop erase --persona anna" in result.output


def test_status_with_temporal_down_shows_the_catalog_and_says_so(home: Path) -> None:
    from faceloop.models import Brief, CampaignConfig
    from faceloop.settings import get_settings
    from faceloop.storage.catalog import Catalog

    brief = Brief.model_validate(
        {
            "product": "Lumen",
            "message": "Sun care",
            "audience": [{"name": "all"}],
            "markets": ["DE"],
            "budget_impressions": 1000,
        }
    )
    with Catalog(get_settings().resolved_database_url) as catalog:
        catalog.upsert_campaign("lumen-1", brief, CampaignConfig(), "running")
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "warning: statuses are the catalog's last record, not checked with Temporal" in (
        result.output
    )
    assert '"checked_with_temporal": false' in result.output


@pytest.mark.parametrize("args", [["escalations"], ["schedules"], ["submit", BRIEF]], ids=" ".join)
def test_the_process_exits_2_never_134(tmp_path: Path, args: list[str]) -> None:
    # the console script itself, in a process of its own: a Temporal client's threads must
    # not abort the interpreter at exit (temporalio/sdk-python#300) after the error is shown
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELOOP_")} | {
        "FACELOOP_HOME": str(tmp_path / "home"),
        "FACELOOP_TEMPORAL_ADDRESS": f"127.0.0.1:{closed_port()}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "faceloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Fatal Python error" not in proc.stderr
    assert proc.stderr.strip().startswith("error: no Temporal server reachable")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
