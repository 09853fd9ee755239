"""PlannerActivities (as the workflow calls it) and the `plan` / `bench agents` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agent_fakes import FakeChatModel, unreachable
from typer.testing import CliRunner

from faceloop.agents.activities import PlannerActivities, build_planner
from faceloop.agents.planner import Planner
from faceloop.agents.settings import AgentSettings
from faceloop.cli import app
from faceloop.messages import PlanInput
from faceloop.models import AudienceSegment, Brief, CampaignConfig, FaceParams, Variant
from faceloop.storage.catalog import Catalog

BRIEF = Brief(
    product="Lumen SPF 50",
    message="Everyday sun protection.",
    audience=[AudienceSegment(name="all")],
    markets=["NL"],
    budget_impressions=1000,
)
CORPUS = Path(__file__).with_name("injection_corpus.yaml")
runner = CliRunner()


def plan_input(brief: Brief = BRIEF) -> PlanInput:
    variants = [
        Variant(variant_id=f"c-r0-t{i}", campaign_id="c", round=0, params=p, seed=i)
        for i, p in enumerate([FaceParams(), FaceParams(framing="close_up")])
    ]
    return PlanInput(campaign_id="c", brief=brief, variants=variants)


async def test_activity_returns_the_plan_and_audits_fallbacks(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    catalog.upsert_campaign("c", BRIEF, CampaignConfig(), "running")
    acts = PlannerActivities(Planner(FakeChatModel(unreachable())), catalog)
    out = await acts.plan(plan_input())
    assert out.plan.status == "planned"
    assert [v.variant_id for v in out.plan.variants] == ["c-r0-t0", "c-r0-t1"]
    assert all(v.written_by == "deterministic" for v in out.plan.variants)
    await acts.plan(plan_input())  # a retried activity records nothing twice
    entries = [(e.kind, e.subject) for e in catalog.audit_entries("c")]
    assert entries == [
        ("plan.fallback.extract", "c-r0"),
        ("plan.fallback.write_prompt", "c-r0-t0"),
        ("plan.fallback.write_prompt", "c-r0-t1"),
    ]
    blocked = await acts.plan(plan_input(BRIEF.model_copy(update={"tone": "nsfw"})))
    assert blocked.plan.status == "blocked" and "sexual_explicit" in blocked.plan.reason
    assert catalog.audit_entries("c")[-1].kind == "plan.blocked"
    catalog.close()


def test_default_activity_is_deterministic_without_a_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("FACELOOP_LLM_MODEL", "FACELOOP_LLM_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    assert PlannerActivities().planner.chat is None


def test_settings_read_the_key_from_either_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACELOOP_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai")
    monkeypatch.setenv("FACELOOP_LLM_MODEL", "m")
    s = AgentSettings()
    assert s.llm_api_key is not None and s.llm_api_key.get_secret_value() == "sk-from-openai"
    assert "sk-from-openai" not in repr(s)
    monkeypatch.setenv("FACELOOP_LLM_API_KEY", "sk-own")
    assert AgentSettings().llm_api_key.get_secret_value() == "sk-own"  # type: ignore[union-attr]
    assert build_planner(AgentSettings()).chat is not None


def test_plan_command_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACELOOP_LLM_MODEL", raising=False)
    brief = tmp_path / "b.json"
    brief.write_text(BRIEF.model_dump_json())
    params = json.dumps([{"expression": "serious"}, {"skin_tone": 10}])
    res = runner.invoke(app, ["plan", str(brief), "--params", params, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["status"] == "planned" and out["reason"] == ""
    assert [v["params"]["expression"] for v in out["variants"]] == ["serious", "smile"]
    v = out["variants"][1]
    assert set(v) == {"params", "prompt", "negative_prompt", "disclosure", "written_by"}
    assert "very dark skin" in v["prompt"] and v["written_by"] == "deterministic"
    assert v["disclosure"] == "Afbeelding gegenereerd met AI"

    bad = tmp_path / "bad.json"
    bad.write_text(BRIEF.model_copy(update={"message": "show a 12 year old"}).model_dump_json())
    out = json.loads(runner.invoke(app, ["plan", str(bad), "--json"]).stdout)
    assert out["status"] == "blocked" and "minors" in out["reason"] and out["variants"] == []


def test_plan_command_names_the_bad_field(tmp_path: Path) -> None:
    brief = tmp_path / "b.json"
    brief.write_text(BRIEF.model_dump_json())
    res = runner.invoke(app, ["plan", str(brief), "--params", '{"skin_tone": 11}'])
    assert res.exit_code == 2
    assert "--params[0]" in res.output and "skin_tone" in res.output


def test_bench_agents_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACELOOP_LLM_MODEL", raising=False)
    res = runner.invoke(app, ["bench", "agents", "--corpus", str(CORPUS), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    tuning, held_out = out["splits"]["tuning"], out["splits"]["held_out"]
    assert tuning["attack_cases"] >= 40 and tuning["stopped"] == tuning["attack_cases"]
    assert tuning["recall"] == 1.0 and tuning["missed"] == []
    assert held_out["attack_cases"] >= 40 and held_out["recall"] >= 0.95
    assert tuning["benign_pass"] >= 0.95 and held_out["benign_pass"] >= 0.95
    assert set(held_out["languages"]) == {"en", "de", "fr", "es", "it", "nl", "pl"}
    assert out["ms_per_brief"] > 0 and out["targets"]["ms_per_brief"] == 20.0


def test_bench_agents_rejects_a_case_without_a_split(tmp_path: Path) -> None:
    corpus = tmp_path / "c.yaml"
    corpus.write_text(
        "base: " + BRIEF.model_dump_json() + "\ncases: [{id: a, brief: {}}]\nbenign: []\n"
    )
    res = runner.invoke(app, ["bench", "agents", "--corpus", str(corpus)])
    assert res.exit_code == 2 and "cases.0" in res.output and "split" in res.output


def test_campaign_playbook_rules_apply_when_plan_input_carries_them() -> None:
    from faceloop.playbooks.schema import Playbook, PromptFilterRules

    rules = PromptFilterRules(actions={"sexual_explicit": "escalate"})
    nsfw = BRIEF.model_copy(update={"tone": "nsfw"})
    acts = PlannerActivities(Planner())
    inp = plan_input(nsfw).model_copy(update={"playbook": Playbook(name="soft")})
    assert acts.run(inp).status == "blocked"
    soft = Playbook(name="soft", prompt_filter=rules)
    inp = plan_input(nsfw).model_copy(update={"playbook": soft})
    assert acts.run(inp).status == "escalated"
