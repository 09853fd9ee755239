"""The CLI as a person meets it: help on every command, clear errors, nothing half-done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from faceloop.cli import app

runner = CliRunner()


def command_paths() -> list[tuple[str, ...]]:
    """Every command of `faceloop`, subcommands of groups included; () is `faceloop`."""
    paths: list[tuple[str, ...]] = []

    def walk(cmd: typer.core.TyperCommand | TyperGroup, path: tuple[str, ...]) -> None:
        paths.append(path)
        if isinstance(cmd, TyperGroup):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))  # type: ignore[arg-type]

    walk(typer.main.get_command(app), ())  # type: ignore[arg-type]
    return paths


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FACELOOP_TEMPORAL_ADDRESS", "FACELOOP_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))


def test_the_walk_reaches_subcommands() -> None:
    paths = command_paths()
    assert {("demo",), ("bench", "optimize"), ("playbook", "check"), ("consent", "add")} <= set(
        paths
    )


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(("faceloop", *p)))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    assert (cmd.help or "").strip(), f"`faceloop {' '.join(path)}` has no help text"
    # the help text is what the person sees, not only what the code declares
    first_words = " ".join(cmd.help.split()[:3]).replace("`", "")  # type: ignore[union-attr]
    assert first_words in " ".join(result.output.split()), result.output


def test_config_shows_effective_values_and_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACELOOP_GENERATOR", "dcgan")
    data = json.loads(runner.invoke(app, ["config", "--json"]).output)
    assert data["FACELOOP_GENERATOR"] == {"value": "dcgan", "source": "env"}
    assert data["FACELOOP_OPTUNA_SAMPLER"]["source"] == "default"


def test_submit_rejects_a_bad_brief_with_paths_before_touching_a_server(tmp_path: Path) -> None:
    bad = tmp_path / "b.yaml"
    bad.write_text("product: x\nmarkets: [de]\nbudget_impressions: 0\n")
    result = runner.invoke(app, ["submit", str(bad)])
    assert result.exit_code == 2
    for path in ("message", "audience", "markets.0", "budget_impressions"):
        assert path in result.output
    assert "nothing was started" in result.output
    assert not (tmp_path / "home").exists()


def test_demo_options_are_validated_with_the_brief_before_anything_starts(tmp_path: Path) -> None:
    # the example brief keeps 2 incumbents: 2 variants a round would leave no new proposal
    result = runner.invoke(app, ["demo", "--variants", "2", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--variants 2" in result.output and "incumbents (2)" in result.output
    assert "raise variants_per_round" in result.output and "nothing was started" in result.output
    result = runner.invoke(app, ["demo", "--rounds", "0"])
    assert result.exit_code == 2 and "rounds" in result.output
    assert not (tmp_path / "home").exists() and not (tmp_path / "out").exists()


def test_submit_without_a_server_says_how_to_start_one() -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "brief.yaml"
    result = runner.invoke(app, ["submit", str(example)])
    assert result.exit_code == 2 and "faceloop up" in result.output


def test_status_and_report_on_an_empty_catalog() -> None:
    assert json.loads(runner.invoke(app, ["status", "--json"]).output) == []
    result = runner.invoke(app, ["report", "no-such-campaign"])
    assert result.exit_code == 2 and "not in the catalog" in result.output


def test_worker_rejects_unknown_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACELOOP_TEMPORAL_ADDRESS", "127.0.0.1:1")
    result = runner.invoke(app, ["worker", "--queues", "gpu,tpu"])
    assert result.exit_code == 2 and "tpu" in result.output


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--first-seed", "-1"], "--first-seed"),
        (["--qualities", "95,101"], "--qualities"),
        (["--faces", "0"], "--faces"),
    ],
)
def test_bench_export_refuses_bad_options_naming_them(args: list[str], field: str) -> None:
    """Refused before any face is generated: exit 2 and the option's name."""
    result = runner.invoke(app, ["bench", "export", *args])
    assert result.exit_code == 2
    assert field in result.output
