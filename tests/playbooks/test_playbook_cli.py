"""`faceloop playbook check|list|schema`, and no campaign starts on an invalid playbook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from faceloop.briefs import load_brief_and_config
from faceloop.cli import app
from faceloop.errors import InputError
from faceloop.playbooks import load_playbook
from faceloop.playbooks.cli import schema_json
from faceloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BRIEF = ROOT / "examples" / "brief.yaml"
runner = CliRunner()

BAD_YAML = """name: bad
escalation: {role: compliance, approvers: 2, on_expiry: deploy}
rules:
  - id: young
    description: typo in a parameter name
    when: {markets_any: [DE, UK], params: {skin_tones: {gte: 3}}}
    then: {require_approvers: 1}
  - id: young
    description: same id again
    then: {block: {reason: not here}, require_approvers: 2}
"""


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FACELOOP_TEMPORAL_ADDRESS", "FACELOOP_DATABASE_URL", "FACELOOP_PLAYBOOK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD_YAML)
    return f


def test_check_reports_every_error_with_its_path_and_exits_1(bad: Path) -> None:
    result = runner.invoke(app, ["playbook", "check", str(bad)])
    assert result.exit_code == 1
    out = result.output
    assert f"{bad} is invalid (5 error(s))" in out
    for line in [
        "escalation: a chain that needs more than one approver must not end in on_expiry: deploy",
        "rules.0.when.markets_any.1: 'UK' is not an ISO 3166-1 alpha-2 country code; did you "
        "mean GB?",
        "rules.0.when.params.skin_tones: unknown parameter 'skin_tones' (did you mean "
        "'skin_tone'?); known: age_band, expression, skin_tone",
        "rules.1.then: block cannot be combined with require_approvers",
        "rules.1.id: duplicate id 'young' (first used at index 0)",
    ]:
        assert line in out, line


def test_check_json_lists_errors_as_path_and_message(bad: Path) -> None:
    result = runner.invoke(app, ["playbook", "check", str(bad), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False and data["summary"] == {}
    paths = [e["path"] for e in data["errors"]]
    assert paths == [
        "escalation",
        "rules.0.when.markets_any.1",
        "rules.0.when.params.skin_tones",
        "rules.1.then",
        "rules.1.id",
    ]


def test_check_a_valid_shipped_playbook_summarises_it() -> None:
    result = runner.invoke(app, ["playbook", "check", "eu"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "playbooks/eu.yaml is valid: playbook 'eu' v1, 7 rule(s), 4 rollback criteria" in out
    assert "approvers: up to 2 (four eyes: four-eyes-persona, four-eyes-spend" in out
    assert "escalation: compliance (24h, 1 approver) -> legal (48h, 1 approver) -> block" in out
    # every rollback signal has a source now (platform counts, faceloop's re-check)
    assert "which no connector reports yet" not in out
    data = json.loads(runner.invoke(app, ["playbook", "check", "eu", "--json"]).stdout)
    assert data["valid"] is True and data["summary"]["max_approvers"] == 2
    assert "DE" in data["summary"]["markets"] and len(data["summary"]["markets"]) == 25
    assert data["warnings"] == []


def test_a_criterion_on_a_signal_without_a_source_is_warned_about(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the check stays for signals added to the schema before any connector reports them
    monkeypatch.setattr(
        "faceloop.playbooks.check.MISSING_SIGNALS", {"complaint_rate": "complaints per ad"}
    )
    data = json.loads(runner.invoke(app, ["playbook", "check", "eu", "--json"]).stdout)
    assert data["valid"] is True
    assert [w["path"] for w in data["warnings"]] == ["rollback.1.metric"]
    assert "complaints per ad, which no connector reports yet" in data["warnings"][0]["message"]


def test_check_warns_about_rules_that_cannot_bind(tmp_path: Path) -> None:
    f = tmp_path / "w.yaml"
    f.write_text(
        "name: w\nrules:\n"
        "  - {id: a, description: x, when: {guardrail: {check: logo, verdict: [block]}},"
        " then: {require_approvers: 1}}\n"
        "  - {id: b, description: x, when: {markets_any: [DE]},"
        " then: {require_consent: {}}}\n"
    )
    data = json.loads(runner.invoke(app, ["playbook", "check", str(f), "--json"]).stdout)
    assert data["valid"] is True
    assert [w["path"] for w in data["warnings"]] == [
        "rules.0.when.guardrail.0.check",
        "rules.1.then.require_consent",
    ]
    assert "no guardrail 'logo' is installed here" in data["warnings"][0]["message"]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("nosuch", "not a file and not a shipped playbook; shipped: default, eu"),
        ("missing/p.yaml", "file not found"),
    ],
)
def test_check_unknown_names_and_missing_files(arg: str, message: str) -> None:
    result = runner.invoke(app, ["playbook", "check", arg])
    assert result.exit_code == 1 and message in result.output


def test_list_and_schema() -> None:
    listed = json.loads(runner.invoke(app, ["playbook", "list", "--json"]).stdout)
    assert list(listed) == ["default", "eu"]
    text = runner.invoke(app, ["playbook", "list"]).stdout
    assert text.startswith("default") and "\neu " in text
    assert runner.invoke(app, ["playbook", "schema"]).stdout == schema_json()


def test_schema_out_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "playbook.schema.json"
    result = runner.invoke(app, ["playbook", "schema", "--out", str(out)])
    assert result.exit_code == 0
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert schema["title"] == "Playbook" and "rules" in schema["properties"]


# --------------------------------------------------------------------------- no invalid start


def _no_server(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Point submit at a server and record any attempt to reach it or start a stack."""
    calls: list[str] = []

    async def connect(settings: Settings, **kwargs: Any) -> Any:
        calls.append("connect")
        raise AssertionError("an invalid playbook must not reach Temporal")

    def embedded_stack(settings: Settings) -> Any:
        calls.append("embedded_stack")
        raise AssertionError("an invalid playbook must not start a stack")

    monkeypatch.setenv("FACELOOP_TEMPORAL_ADDRESS", "127.0.0.1:1")
    monkeypatch.setattr("faceloop.workflows.client.connect", connect)
    monkeypatch.setattr("faceloop.workflows.stack.embedded_stack", embedded_stack)
    return calls


@pytest.mark.parametrize("command", ["submit", "demo"])
def test_submit_and_demo_refuse_a_bad_playbook_before_anything_starts(
    command: str, bad: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _no_server(monkeypatch)
    args = [command, str(BRIEF)] if command == "submit" else [command, "--brief", str(BRIEF)]
    result = runner.invoke(app, [*args, "--playbook", str(bad)])
    assert result.exit_code == 2
    assert f"{bad} is invalid" in result.output and "nothing was started" in result.output
    assert "rules.0.when.params.skin_tones" in result.output
    assert calls == []
    assert not (tmp_path / "home").exists()  # no catalog, no asset store


def test_submit_refuses_a_bad_playbook_from_the_environment(
    bad: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _no_server(monkeypatch)
    monkeypatch.setenv("FACELOOP_PLAYBOOK", str(bad))
    result = runner.invoke(app, ["submit", str(BRIEF)])
    assert result.exit_code == 2 and "rules.1.id: duplicate id 'young'" in result.output
    assert calls == []


def test_submit_accepts_a_shipped_name(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_server(monkeypatch)
    result = runner.invoke(app, ["submit", str(BRIEF), "--playbook", "eu"])
    assert calls == ["connect"]  # validation passed; it went on to the server
    assert result.exit_code != 0


class RecordingClient:
    """A stand-in for temporalio's Client that records what would have been started."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    async def start_workflow(self, *args: Any, **kwargs: Any) -> Any:
        self.started.append((args, kwargs))
        return "handle"


async def test_service_submit_validates_an_edited_playbook_before_the_client(
    tmp_path: Path,
) -> None:
    from faceloop.workflows.client import submit

    brief, config = load_brief_and_config(BRIEF)
    settings = Settings(home=tmp_path / "home")
    client = RecordingClient()
    pb = load_playbook("eu").model_copy(deep=True)
    # edited after loading: assignments are not validated, the submit is
    pb.escalation.then = None
    with pytest.raises(InputError) as exc:
        await submit(client, settings, brief, config, pb)  # type: ignore[arg-type]
    assert "escalation: on_expiry: escalate needs `then`" in str(exc.value)
    assert client.started == []
    ok = await submit(client, settings, brief, config, load_playbook("eu"))  # type: ignore[arg-type]
    assert ok == "handle" and len(client.started) == 1
    assert client.started[0][0][1].playbook == load_playbook("eu")


@pytest.mark.parametrize("sla", [".inf", ".nan", "1e12", "1.0e12", "2592001"])
def test_check_refuses_an_unbounded_review_deadline(tmp_path: Path, sla: str) -> None:
    f = tmp_path / "slow.yaml"
    f.write_text(
        "name: slow\n"
        "escalation:\n"
        "  role: compliance\n  on_expiry: escalate\n"
        f"  then: {{role: legal, sla_seconds: {sla}, on_expiry: block}}\n"
        "rules:\n"
        "  - id: r\n    description: a person decides\n"
        f"    then: {{escalate: {{role: brand, sla_seconds: {sla}}}}}\n"
    )
    result = runner.invoke(app, ["playbook", "check", str(f), "--json"])
    assert result.exit_code == 1
    errors = {e["path"]: e["message"] for e in json.loads(result.stdout)["errors"]}
    assert set(errors) == {"escalation.then.sla_seconds", "rules.0.then.escalate.sla_seconds"}
    assert all(("2592000" in m or "finite" in m) for m in errors.values()), errors
    with pytest.raises(InputError, match=r"escalation\.then\.sla_seconds"):
        load_playbook(f)


def test_a_thirty_day_review_deadline_is_allowed(tmp_path: Path) -> None:
    f = tmp_path / "month.yaml"
    f.write_text("name: month\nescalation: {role: compliance, sla_seconds: 2592000}\n")
    assert load_playbook(f).escalation.sla_seconds == 2592000
