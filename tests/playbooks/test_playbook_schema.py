"""The playbook schema: backward compatible, shipped playbooks by name, every error with its
path, escalation chains that cannot loop or lapse, and a JSON Schema that cannot drift."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.contrib.pydantic import pydantic_data_converter

from faceloop.errors import InputError
from faceloop.models import Decision
from faceloop.playbooks import Escalation, Playbook, load_playbook, shipped_playbooks
from faceloop.playbooks.cli import schema_json
from faceloop.playbooks.schema import playbook_problems, revalidated

ROOT = Path(__file__).resolve().parents[2]


def _problems(doc: dict[str, Any]) -> dict[str, str]:
    pb, problems = playbook_problems(doc)
    assert pb is None, "expected the playbook to be refused"
    return dict(problems)


def _rule(when: dict[str, Any] | None = None, then: Any = None, rid: str = "r") -> dict[str, Any]:
    rule: dict[str, Any] = {"id": rid, "description": "test rule"}
    if when is not None:
        rule["when"] = when
    rule["then"] = then if then is not None else {"require_approvers": 1}
    return rule


# --------------------------------------------------------------------------- loading


def test_shipped_playbooks_load_by_name_and_list() -> None:
    shipped = shipped_playbooks()
    assert list(shipped) == ["default", "eu"]
    assert "AI Act Art. 50" in shipped["eu"]
    assert load_playbook("default") == load_playbook() == load_playbook(None)
    eu = load_playbook("eu")
    assert eu.name == "eu" and len(eu.rules) == 7 and len(eu.rollback) == 4
    assert load_playbook(Path("eu")).name == "eu"  # FACELOOP_PLAYBOOK=eu arrives as a Path


def test_a_file_wins_over_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "eu").write_text("name: local-eu\n")
    monkeypatch.chdir(tmp_path)
    assert load_playbook("eu").name == "local-eu"


def test_unknown_name_and_missing_file_say_what_exists(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="shipped: default, eu"):
        load_playbook("eu-strict")
    with pytest.raises(InputError, match="file not found"):
        load_playbook(tmp_path / "nope.yaml")


def test_old_playbooks_still_load_with_the_old_meaning(tmp_path: Path) -> None:
    f = tmp_path / "old.yaml"
    f.write_text(
        "name: old\nescalation: {role: review, sla_seconds: 60, on_expiry: deploy}\n"
        "on_escalate: block\n"
    )
    pb = load_playbook(f)
    assert pb.rules == [] and pb.rollback == []
    assert pb.escalation == Escalation(role="review", sla_seconds=60, on_expiry=Decision.deploy)
    assert pb.escalation.approvers == 1 and pb.escalation.then is None


def test_default_playbook_is_the_old_default_plus_the_disclosure_rule() -> None:
    pb = load_playbook()
    assert [r.id for r in pb.rules] == ["ai-disclosure"]
    assert pb.escalation.describe() == "compliance (24h, 1 approver) -> block"
    assert pb.quality.min_face_score == 0.6 and pb.identity.lookalike_threshold == 0.5


@pytest.mark.parametrize("name", ["default", "eu"])
def test_playbooks_survive_the_temporal_data_converter(name: str) -> None:
    pb = load_playbook(name)
    conv = pydantic_data_converter.payload_converter
    (back,) = conv.from_payloads(conv.to_payloads([pb]), [Playbook])
    assert back == pb
    assert revalidated(pb) == pb


# --------------------------------------------------------------------------- errors with paths

BAD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "param typo",
        {"rules": [_rule({"params": {"skin_tones": {"gte": 3}}})]},
        "rules.0.when.params.skin_tones",
        "unknown parameter 'skin_tones' (did you mean 'skin_tone'?); known: age_band",
    ),
    (
        "bounds on a categorical parameter",
        {"rules": [_rule({"params": {"age_band": {"gte": 2}}})]},
        "rules.0.when.params.age_band.gte",
        "'age_band' is categorical",
    ),
    (
        "value a parameter cannot take",
        {"rules": [_rule({"params": {"expression": ["smile", "grin"]}})]},
        "rules.0.when.params.expression.in.1",
        "'grin' is not a valid expression; allowed: neutral, smile",
    ),
    (
        "skin tone off the Monk scale",
        {"rules": [_rule({"params": {"skin_tone": 11}})]},
        "rules.0.when.params.skin_tone.eq",
        "11 is not a valid skin_tone",
    ),
    (
        "UK is not ISO",
        {"rules": [_rule({"markets_any": ["DE", "UK"]})]},
        "rules.0.when.markets_any.1",
        "'UK' is not an ISO 3166-1 alpha-2 country code; did you mean GB?",
    ),
    (
        "EL is the EU's code for Greece, not ISO's",
        {"rules": [_rule(then={"require_disclosure": {"texts": {"EL": "x"}}})]},
        "rules.0.then.require_disclosure.texts.EL",
        "did you mean GR?",
    ),
    (
        "unknown channel",
        {"rules": [_rule({"channels_any": ["facebook"]})]},
        "rules.0.when.channels_any.0",
        "'meta'",
    ),
    (
        "duplicate rule ids",
        {"rules": [_rule(rid="same"), _rule(rid="other"), _rule(rid="same")]},
        "rules.2.id",
        "duplicate id 'same' (first used at index 0)",
    ),
    (
        "bad rule id",
        {"rules": [_rule(rid="Four Eyes")]},
        "rules.0.id",
        "'Four Eyes' is not a valid id",
    ),
    (
        "block combined with other actions",
        {"rules": [_rule(then={"block": {"reason": "no"}, "require_approvers": 2})]},
        "rules.0.then",
        "block cannot be combined with require_approvers",
    ),
    (
        "no action",
        {"rules": [_rule(then={})]},
        "rules.0.then",
        "give at least one action",
    ),
    (
        "guardrail matcher that says nothing",
        {"rules": [_rule({"guardrail": {"check": "identity"}})]},
        "rules.0.when.guardrail.0",
        "give verdict, score_gte or score_lte for check 'identity'",
    ),
    (
        "escalate without a next level",
        {"escalation": {"on_expiry": "escalate"}},
        "escalation",
        "needs `then`",
    ),
    (
        "a next level that is never reached",
        {"escalation": {"on_expiry": "block", "then": {"role": "legal"}}},
        "escalation",
        "`then` is only followed when on_expiry is escalate",
    ),
    (
        "a chain that loops back to a role",
        {
            "escalation": {
                "role": "compliance",
                "on_expiry": "escalate",
                "then": {
                    "role": "legal",
                    "on_expiry": "escalate",
                    "then": {"role": "compliance", "on_expiry": "block"},
                },
            }
        },
        "escalation",
        "role 'compliance' comes back at level 3 (compliance -> legal -> compliance)",
    ),
    (
        "four eyes lapsing into deploy",
        {"escalation": {"approvers": 2, "on_expiry": "deploy"}},
        "escalation",
        "must not end in on_expiry: deploy",
    ),
    (
        "a rule's four eyes on a chain that deploys on expiry",
        {
            "escalation": {"on_expiry": "deploy"},
            "rules": [_rule(then={"require_approvers": 2})],
        },
        "rules.0.then",
        "needs 2 approvers but the playbook's escalation chain ends in on_expiry: deploy",
    ),
    (
        "a rate above 1",
        {"rollback": [{"id": "c", "metric": "ctr", "op": "lt", "threshold": 2}]},
        "rollback.0",
        "ctr is a rate in [0, 1]",
    ),
    (
        "a metric nobody measures",
        {"rollback": [{"id": "c", "metric": "likes", "op": "gt", "threshold": 0.5}]},
        "rollback.0.metric",
        "'complaint_rate'",
    ),
    (
        "duplicate rollback ids",
        {
            "rollback": [
                {"id": "c", "metric": "ctr", "op": "lt", "threshold": 0.01},
                {"id": "c", "metric": "cvr", "op": "lt", "threshold": 0.01},
            ]
        },
        "rollback.1.id",
        "duplicate id 'c'",
    ),
    (
        "unknown field",
        {"rules": [_rule({"market": ["DE"]})]},
        "rules.0.when.market",
        "unknown field",
    ),
]


@pytest.mark.parametrize(("case", "doc", "path", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_playbooks_name_the_path_and_the_fix(
    case: str, doc: dict[str, Any], path: str, message: str
) -> None:
    problems = _problems({"name": "bad", **doc})
    assert path in problems, problems
    assert message in problems[path]


def test_a_chain_deeper_than_five_levels_is_refused() -> None:
    level: dict[str, Any] = {"role": "r6", "on_expiry": "block"}
    for i in range(5, 0, -1):
        level = {"role": f"r{i}", "on_expiry": "escalate", "then": level}
    problems = _problems({"name": "deep", "escalation": level})
    assert "6 levels; at most 5" in problems["escalation"]
    # five levels are fine
    assert Escalation.model_validate(level["then"]).describe().count("->") == 5


def test_a_yaml_alias_loop_is_an_error_not_a_hang() -> None:
    doc = yaml.safe_load("name: x\nescalation: &e {role: a, on_expiry: escalate, then: *e}\n")
    problems = _problems(doc)
    assert "YAML alias loop" in problems["escalation.then"]


def test_every_error_is_reported_in_one_pass(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        """name: bad
quality: {min_face_score: 3}
escalation: {approvers: 2, on_expiry: deploy}
rules:
  - {id: a, description: x, when: {markets_any: [UK]}, then: {require_approvers: 1}}
  - {id: a, description: x, then: {require_approvers: 9}}
rollback:
  - {id: c, metric: ctr, op: lt, threshold: 0}
"""
    )
    with pytest.raises(InputError) as exc:
        load_playbook(f)
    text = str(exc.value)
    for path in [
        "quality.min_face_score",
        "escalation:",
        "rules.0.when.markets_any.0",
        "rules.1.then.require_approvers",
        "rules.1.id: duplicate id 'a'",  # found on the raw list though rule 1 is invalid
        "rollback.0: op lt with threshold 0 never fires",
    ]:
        assert path in text, path
    assert len(exc.value.problems) == 6


def test_param_shorthands_and_the_in_alias_round_trip() -> None:
    pb = Playbook.model_validate(
        {
            "name": "p",
            "rules": [
                _rule(
                    {"params": {"age_band": "18-24", "lighting": ["soft", "studio"]}},
                    rid="a",
                ),
                _rule({"params": {"skin_tone": {"gte": 7, "lte": 10}}}, rid="b"),
            ],
        }
    )
    params = pb.rules[0].when.params
    assert params is not None and params["age_band"].eq == "18-24"
    assert params["lighting"].in_ == ["soft", "studio"]
    dumped = pb.model_dump(mode="json")
    assert dumped["rules"][0]["when"]["params"]["lighting"]["in"] == ["soft", "studio"]
    assert Playbook.model_validate(dumped) == pb


# --------------------------------------------------------------------------- JSON Schema, docs


def test_committed_json_schema_matches_the_code() -> None:
    committed = (ROOT / "docs" / "playbook.schema.json").read_text(encoding="utf-8")
    assert committed == schema_json(), (
        "docs/playbook.schema.json is stale: run "
        "`faceloop playbook schema --out docs/playbook.schema.json`"
    )


def test_governance_doc_names_every_schema_field() -> None:
    schema = json.loads(schema_json())
    doc = (ROOT / "docs" / "governance.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z_0-9]+)`", doc))
    fields = set(schema["properties"])
    for d in schema["$defs"].values():
        fields |= set(d.get("properties", {}))
        for alt in d.get("anyOf", []):
            fields |= set(alt.get("properties", {}))
    missing = sorted(fields - named)
    assert not missing, f"docs/governance.md does not describe: {missing}"


def test_yaml_examples_in_the_governance_doc_are_valid_playbook_parts() -> None:
    doc = (ROOT / "docs" / "governance.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        part = yaml.safe_load(block)
        pb, problems = playbook_problems({"name": "doc", **part})
        assert pb is not None, (block, problems)
