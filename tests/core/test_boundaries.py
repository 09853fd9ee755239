"""Bad input at the boundaries that are not the brief: playbook regexes, review votes,
consent records, playbook and scenario free text, and the payloads they end up in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from faceloop.cli import app
from faceloop.guardrails.prompt_filter import PromptFilter
from faceloop.models import Verdict
from faceloop.playbooks.schema import PromptFilterRules

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FACELOOP_TEMPORAL_ADDRESS", "FACELOOP_DATABASE_URL", "FACELOOP_PLAYBOOK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))


# --------------------------------------------------------------------------- playbook regexes


def test_a_catastrophic_playbook_regex_cannot_hang_the_filter() -> None:
    # Python's re needs ~2**n steps for `(a+)+$` on n a's followed by a non-match; at 50k
    # characters that is forever. RE2 is linear: the whole filter runs well under a second.
    f = PromptFilter(PromptFilterRules(extra_patterns={"injection": [r"(a+)+$"]}))
    text = "a" * 50_000 + "!"
    start = time.perf_counter()
    hits = f.check_text(text, "message")
    assert time.perf_counter() - start < 1.0
    assert "injection" not in {h.rule for h in hits}
    # and it still matches what it should
    assert f.check_prompt("aaaa").verdict == Verdict.escalate


def test_playbook_patterns_match_case_insensitively_across_lines() -> None:
    f = PromptFilter(PromptFilterRules(extra_patterns={"injection": [r"make.me"]}))
    assert f.check_prompt("MAKE\nME a sandwich").verdict == Verdict.escalate


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(sand)wich \1", "invalid escape sequence"),
        (r"(?<!no )sandwich", "invalid perl operator"),
        (r"sandwich(?=s)", "invalid perl operator"),
    ],
)
def test_a_pattern_re2_cannot_run_in_linear_time_is_refused_with_its_path(
    tmp_path: Path, pattern: str, reason: str
) -> None:
    pb = tmp_path / "pb.yaml"
    pb.write_text(
        f"name: regex\nprompt_filter:\n  extra_patterns:\n    injection: ['ok', '{pattern}']\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["playbook", "check", str(pb)])
    assert result.exit_code == 1, result.output
    assert "prompt_filter.extra_patterns.injection.1:" in result.output
    assert reason in result.output
    assert "Traceback" not in result.output


def test_playbook_patterns_are_bounded() -> None:
    with pytest.raises(ValidationError, match=r"extra_patterns\.injection\.0"):
        PromptFilterRules(extra_patterns={"injection": ["x" * 501]})
    with pytest.raises(ValidationError, match=r"extra_patterns\.injection"):
        PromptFilterRules(extra_patterns={"injection": ["x"] * 51})
    with pytest.raises(ValidationError, match=r"extra_patterns\.injection\.0"):
        PromptFilterRules(extra_patterns={"injection": [""]})


# --------------------------------------------------------------------------- control characters


def _locs(err: ValidationError) -> set[str]:
    return {".".join(map(str, e["loc"])) for e in err.errors()}


REVIEW = {
    "campaign_id": "lumen-1a2b3c4d",
    "variant_id": "lumen-1a2b3c4d-r0-t3",
    "decision": "deploy",
    "reviewer": "maria",
    "reason": "fine",
    "role": "compliance",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reviewer", "maria\nschmidt"),  # a forged second line in the audit log
        ("reviewer", "maria\x1b[2J"),
        ("reason", "ok\x00"),
        ("reason", "ok\x85"),
        ("role", "compliance\r"),
        ("campaign_id", "lumen\x00"),
    ],
)
def test_review_votes_refuse_control_characters(field: str, value: str) -> None:
    from faceloop.messages import ReviewInput

    with pytest.raises(ValidationError, match="control character") as err:
        ReviewInput.model_validate({**REVIEW, field: value})
    assert field in _locs(err.value)


def test_review_reason_keeps_line_breaks_and_is_bounded() -> None:
    from faceloop.messages import ReviewInput

    assert ReviewInput.model_validate({**REVIEW, "reason": "a\n\tb"}).reason == "a\n\tb"
    with pytest.raises(ValidationError, match="reason"):
        ReviewInput.model_validate({**REVIEW, "reason": "r" * 2001})
    with pytest.raises(ValidationError, match="role"):
        ReviewInput.model_validate({**REVIEW, "role": "r" * 65})


CONSENT = {
    "consent_id": "c-1",
    "persona_id": "anna",
    "subject_name": "Anna Example",
    "scope": ["ads"],
    "markets": ["DE"],
    "expires": "2099-01-01",
    "evidence_sha256": "0" * 64,
}


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [
        ("subject_name", "Anna\x1b]0;pwned\x07", "subject_name"),
        ("subject_name", "Anna\nExample", "subject_name"),
        ("consent_id", "c-1\x00", "consent_id"),
        ("scope", ["ads", "so\ncial"], "scope.1"),
    ],
)
def test_consent_records_refuse_control_characters(field: str, value: object, loc: str) -> None:
    from faceloop.consent import ConsentRecord

    with pytest.raises(ValidationError, match="control character") as err:
        ConsentRecord.model_validate({**CONSENT, field: value})
    assert loc in _locs(err.value)


def test_consent_revocation_reason_is_checked_before_it_is_stored() -> None:
    from faceloop.consent import check_revocation_reason
    from faceloop.errors import InputError

    assert check_revocation_reason("asked by\nthe subject") == "asked by\nthe subject"
    for bad, why in [("x\x00", "control character"), ("r" * 2001, "2000"), ("  ", "empty")]:
        with pytest.raises(InputError, match=why):
            check_revocation_reason(bad)


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"name": "eu\nrm -rf"}, "name"),
        ({"escalation": {"role": "legal\x1b[31m"}}, "escalation.role"),
        (
            {"rules": [{"id": "r", "description": "why\x00", "then": {"require_approvers": 1}}]},
            "rules.0.description",
        ),
        (
            {
                "rules": [
                    {
                        "id": "r",
                        "description": "label",
                        "then": {"require_disclosure": {"texts": {"DE": "KI\x9b-generiert"}}},
                    }
                ]
            },
            "rules.0.then.require_disclosure.texts.DE",
        ),
        (
            {
                "rollback": [
                    {
                        "id": "r",
                        "metric": "ctr",
                        "op": "lt",
                        "threshold": 0.01,
                        "notify_role": "x\ny",
                    }
                ]
            },
            "rollback.0.notify_role",
        ),
        ({"safety": {"block_labels": ["A\x00"]}}, "safety.block_labels.0"),
        (
            {"prompt_filter": {"real_people": ["Erika\x1bMustermann"]}},
            "prompt_filter.real_people.0",
        ),
    ],
)
def test_playbook_text_refuses_control_characters_with_its_path(
    patch: dict[str, object], path: str
) -> None:
    from faceloop.playbooks.schema import playbook_problems

    playbook, problems = playbook_problems({"name": "p", **patch})
    assert playbook is None
    assert any(p == path and "control character" in m for p, m in problems), problems


def test_scenario_names_refuse_control_characters() -> None:
    from faceloop.connectors.sandbox_platform.scenario import Scenario

    base = {"name": "s", "seed": 1, "base_ctr": 0.01, "base_cvr": 0.1}
    for field, value in [("name", "s\nfake"), ("description", "d\x1b[2J")]:
        with pytest.raises(ValidationError, match="control character") as err:
            Scenario.model_validate({**base, field: value})
        assert field in _locs(err.value)


# --------------------------------------------------------------------------- payload sizes

TEMPORAL_WARNS_AT = 2 * 1024 * 1024
WIDE = "😀"  # 4 bytes in UTF-8: the most bytes a character can cost in a JSON payload


def _payload_bytes(value: object) -> int:
    from temporalio.contrib.pydantic import pydantic_data_converter

    payloads = pydantic_data_converter.payload_converter.to_payloads([value])
    return sum(len(p.data) for p in payloads)


def _max_brief() -> dict[str, object]:
    return {
        "product": WIDE * 200,
        "message": WIDE * 1000,
        "tone": WIDE * 200,
        "audience": [
            {"name": f"s{i}", "description": WIDE * 500, "share": 0.05} for i in range(20)
        ],
        "markets": ["DE"] * 250,
        "constraints": [WIDE * 500] * 50,
        "submitted_by": WIDE * 128,
        "budget_impressions": 1000,
    }


def _rule(i: int) -> dict[str, object]:
    return {
        "id": f"rule-{i}",
        "description": WIDE * 500,
        "when": {"markets_any": ["DE", "FR"]},
        "then": {"block": {"reason": WIDE * 500}},
    }


def test_the_largest_playbook_and_campaign_input_stay_below_temporals_warning() -> None:
    from faceloop.messages import CampaignInput
    from faceloop.models import Brief, CampaignConfig
    from faceloop.playbooks.schema import MAX_PLAYBOOK_BYTES, Playbook, playbook_problems

    # as many wide rules as the size cap lets through: the largest valid playbook
    rules = [_rule(i) for i in range(200)]
    _, problems = playbook_problems({"name": WIDE * 128, "rules": rules})
    assert any("over the 524,288 byte limit" in m for _, m in problems), problems
    size = [
        len(Playbook.model_validate({"name": "p", "rules": rules[:n]}).model_dump_json().encode())
        for n in (1, 2)
    ]
    del rules[MAX_PLAYBOOK_BYTES // (size[1] - size[0]) + 1 :]
    while True:
        playbook, _ = playbook_problems({"name": WIDE * 128, "rules": rules})
        if playbook is not None:
            break
        rules.pop()
    assert isinstance(playbook, Playbook)
    pb_bytes = len(playbook.model_dump_json().encode())
    assert MAX_PLAYBOOK_BYTES - 5_000 < pb_bytes <= MAX_PLAYBOOK_BYTES

    inp = CampaignInput(
        campaign_id="c" * 1000,
        brief=Brief.model_validate(_max_brief()),
        config=CampaignConfig(connector=WIDE * 64),
        playbook=playbook,
        approved_plan_findings=[],
    )
    assert _payload_bytes(inp) < TEMPORAL_WARNS_AT // 2


def test_the_largest_review_vote_is_small() -> None:
    from faceloop.messages import ReviewInput

    vote = ReviewInput(
        campaign_id="c" * 1000,
        variant_id="v" * 1100,
        decision="deploy",
        reviewer=WIDE * 128,
        reason=WIDE * 2000,
        role=WIDE * 64,
    )
    assert _payload_bytes(vote) < 16_000
    with pytest.raises(ValidationError):
        ReviewInput.model_validate({**vote.model_dump(), "campaign_id": "c" * 1001})
