"""`faceloop audit verify|checkpoint` as an auditor meets them: the newest checkpoint in the
data dir is used and named; a cut tail, a deleted log and an edited checkpoint exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from faceloop.cli import app
from faceloop.storage.catalog import Catalog

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("FACELOOP_DATABASE_URL", raising=False)
    monkeypatch.delenv("FACELOOP_AUDIT_TSA_URL", raising=False)
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fill(home: Path, n: int) -> None:
    with Catalog(f"sqlite:///{home / 'faceloop.db'}") as catalog:
        for i in range(n):
            catalog.audit("cmp-1", "decision", f"v{i}", "workflow", {"i": i})


def test_verify_without_a_checkpoint_works_as_before_and_says_so(home: Path) -> None:
    fill(home, 3)
    out = runner.invoke(app, ["audit", "verify"])
    assert out.exit_code == 0, out.output
    assert "audit log intact: 3 entries (catalog), last seq 3" in out.output
    assert "no signed checkpoint of this catalog yet" in out.output
    as_json = json.loads(runner.invoke(app, ["audit", "verify", "--json"]).stdout)
    assert (as_json["intact"], as_json["entries"], as_json["checkpoint"]) == (True, 3, None)


def test_a_cut_tail_is_found_against_the_newest_checkpoint(home: Path, tmp_path: Path) -> None:
    fill(home, 4)
    made = runner.invoke(app, ["audit", "checkpoint", "--out", str(tmp_path / "worm.json")])
    assert made.exit_code == 0, made.output
    assert "checkpoint of seq 4 (4 entries" in made.output
    assert "signed by the audit key" in made.output
    assert (tmp_path / "worm.json").exists()
    [kept] = (home / "audit-checkpoints").glob("*.json")

    engine = sa.create_engine(f"sqlite:///{home / 'faceloop.db'}")
    with engine.begin() as conn:
        third = conn.exec_driver_sql("SELECT hash FROM audit_log WHERE seq = 2").scalar_one()
        conn.exec_driver_sql("DELETE FROM audit_log WHERE seq > 2")
        conn.exec_driver_sql(f"UPDATE audit_head SET seq = 2, hash = '{third}'")
    engine.dispose()

    out = runner.invoke(app, ["audit", "verify"])
    assert out.exit_code == 1
    assert f"checked against {kept}" in out.output.replace("\n", "")
    assert "entries 3..4 were cut off the end" in out.output
    explicit = runner.invoke(
        app, ["audit", "verify", "--checkpoint", str(tmp_path / "worm.json"), "--json"]
    )
    assert explicit.exit_code == 1
    assert "cut off the end" in json.loads(explicit.stdout)["problems"][0]
    # and no new checkpoint signs the cut log
    again = runner.invoke(app, ["audit", "checkpoint"])
    assert again.exit_code == 2 and "no audit checkpoint written" in again.output


def test_a_deleted_log_file_is_found(home: Path, tmp_path: Path) -> None:
    fill(home, 2)
    assert runner.invoke(app, ["audit", "checkpoint"]).exit_code == 0
    for f in home.glob("faceloop.db*"):
        f.unlink()
    out = runner.invoke(app, ["audit", "verify"])
    assert out.exit_code == 1
    assert "the audit log is empty but the checkpoint" in out.output


def test_an_edited_checkpoint_is_refused(home: Path, tmp_path: Path) -> None:
    fill(home, 3)
    out_file = tmp_path / "cp.json"
    assert runner.invoke(app, ["audit", "checkpoint", "--out", str(out_file)]).exit_code == 0
    doc = json.loads(out_file.read_text())
    doc["body"]["entries"] = 99
    out_file.write_text(json.dumps(doc))
    out = runner.invoke(app, ["audit", "verify", "--checkpoint", str(out_file)])
    assert out.exit_code == 1
    assert "tampered: audit checkpoint" in out.output.replace("\n", " ")
    assert "signature does not match its content" in out.output.replace("\n", " ")


def test_an_export_is_checked_against_a_checkpoint(home: Path, tmp_path: Path) -> None:
    fill(home, 3)
    cp = tmp_path / "cp.json"
    assert runner.invoke(app, ["audit", "checkpoint", "--out", str(cp)]).exit_code == 0
    export = tmp_path / "audit.jsonl"
    assert runner.invoke(app, ["audit", "export", "--out", str(export)]).exit_code == 0
    ok = runner.invoke(app, ["audit", "verify", "--file", str(export), "--checkpoint", str(cp)])
    assert ok.exit_code == 0, ok.output
    # an export with its last entry dropped still chains, but not up to the checkpoint
    export.write_text("".join(export.read_text().splitlines(keepends=True)[:2]))
    cut = runner.invoke(app, ["audit", "verify", "--file", str(export), "--checkpoint", str(cp)])
    assert cut.exit_code == 1 and "entries 3..3 were cut off the end" in cut.output
