"""Rule evaluation: each matcher, each action, precedence and the effective escalation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faceloop.agents.planner import disclosure_for
from faceloop.briefs import load_brief_and_config
from faceloop.models import CheckResult, Decision, FaceParams, GuardrailReport, Verdict
from faceloop.playbooks import Playbook, RuleContext, load_playbook

ROOT = Path(__file__).resolve().parents[2]


def report(**checks: tuple[str, float]) -> GuardrailReport:
    """check name -> (verdict, score)"""
    return GuardrailReport(
        asset_id="a",
        checks=[
            CheckResult(name=n, verdict=Verdict(v), score=s, evidence={"reason": f"{n} says so"})
            for n, (v, s) in checks.items()
        ],
    )


PASS = report(quality=("pass", 0.9), safety=("pass", 0.0), identity=("pass", 0.1))


def playbook(*rules: dict[str, Any], **fields: Any) -> Playbook:
    return Playbook.model_validate(
        {
            "name": "t",
            "rules": [
                {"id": r.get("id", f"r{i}"), "description": r.get("description", f"rule {i}"), **r}
                for i, r in enumerate(rules)
            ],
            **fields,
        }
    )


def ctx(**kw: Any) -> RuleContext:
    base: dict[str, Any] = {"campaign_id": "c1", "markets": ["DE"], "params": FaceParams()}
    return RuleContext.model_validate({**base, **kw})


ESCALATE = {"then": {"require_approvers": 1}}


def fires(pb: Playbook, rep: GuardrailReport, c: RuleContext) -> bool:
    return pb.rule(rep, c).matched_rules == ["r0"]


# --------------------------------------------------------------------------- matchers


def test_guardrail_verdict_and_score_matchers() -> None:
    by_verdict = playbook(
        {"when": {"guardrail": {"check": "identity", "verdict": ["escalate"]}}, **ESCALATE}
    )
    assert fires(by_verdict, report(identity=("escalate", 0.3)), ctx())
    assert not fires(by_verdict, report(identity=("pass", 0.3)), ctx())
    assert not fires(by_verdict, report(quality=("escalate", 0.3)), ctx())  # other check
    by_score = playbook(
        {
            "when": {"guardrail": [{"check": "safety", "score_gte": 0.3, "score_lte": 0.6}]},
            **ESCALATE,
        }
    )
    assert fires(by_score, report(safety=("pass", 0.3)), ctx())
    assert fires(by_score, report(safety=("pass", 0.6)), ctx())
    assert not fires(by_score, report(safety=("pass", 0.29)), ctx())
    assert not fires(by_score, report(safety=("pass", 0.61)), ctx())
    both = playbook(
        {
            "when": {
                "guardrail": [
                    {"check": "safety", "score_gte": 0.3},
                    {"check": "quality", "verdict": ["pass"]},
                ]
            },
            **ESCALATE,
        }
    )
    assert fires(both, report(safety=("pass", 0.5), quality=("pass", 0.9)), ctx())
    assert not fires(both, report(safety=("pass", 0.5), quality=("escalate", 0.9)), ctx())


def test_market_channel_persona_and_spend_matchers() -> None:
    markets = playbook({"when": {"markets_any": ["DE", "AT"]}, **ESCALATE})
    assert fires(markets, PASS, ctx(markets=["FR", "AT"]))
    assert not fires(markets, PASS, ctx(markets=["FR", "US"]))
    channels = playbook({"when": {"channels_any": ["tiktok"]}, **ESCALATE})
    assert fires(channels, PASS, ctx(channels=["meta", "tiktok"]))
    assert fires(channels, PASS, ctx(channels=["sandbox"], connector="tiktok"))  # where ads go
    assert not fires(channels, PASS, ctx(channels=["meta"], connector="sandbox"))
    persona = playbook({"when": {"persona": True}, **ESCALATE})
    assert fires(persona, PASS, ctx(persona_id="p-1"))
    assert not fires(persona, PASS, ctx())
    no_persona = playbook({"when": {"persona": False}, **ESCALATE})
    assert fires(no_persona, PASS, ctx()) and not fires(no_persona, PASS, ctx(persona_id="p"))
    spend = playbook({"when": {"spend_gte": 500_000}, **ESCALATE})
    assert fires(spend, PASS, ctx(spend=500_000))
    assert not fires(spend, PASS, ctx(spend=499_999))


def test_param_matchers_equality_lists_and_bounds() -> None:
    pb = playbook(
        {
            "when": {
                "params": {
                    "age_band": "18-24",
                    "lighting": ["soft", "studio"],
                    "skin_tone": {"gte": 3, "lte": 6},
                }
            },
            **ESCALATE,
        }
    )
    hit = FaceParams(age_band="18-24", lighting="studio", skin_tone=3)
    assert fires(pb, PASS, ctx(params=hit))
    changes: list[dict[str, Any]] = [
        {"age_band": "25-34"},
        {"lighting": "dramatic"},
        {"skin_tone": 2},
        {"skin_tone": 7},
    ]
    for change in changes:
        assert not fires(pb, PASS, ctx(params=hit.model_copy(update=change))), change
    assert not fires(pb, PASS, ctx(params=None))  # no parameters known: no match


def test_all_matchers_must_hold_and_an_empty_condition_always_holds() -> None:
    pb = playbook({"when": {"markets_any": ["DE"], "persona": True}, **ESCALATE})
    assert fires(pb, PASS, ctx(persona_id="p"))
    assert not fires(pb, PASS, ctx(markets=["FR"], persona_id="p"))
    assert fires(playbook(ESCALATE), PASS, ctx(markets=[]))


# --------------------------------------------------------------------------- actions


def test_block_action_blocks_with_its_reason() -> None:
    pb = playbook(
        {
            "id": "no-tiktok",
            "when": {"channels_any": ["tiktok"]},
            "then": {"block": {"reason": "not on this channel"}},
        }
    )
    r = pb.rule(PASS, ctx(channels=["tiktok"]))
    assert r.decision == Decision.block and r.escalation is None and r.approvers == 0
    assert r.reasons == [
        "all checks passed",
        "rule no-tiktok: rule 0 (block: not on this channel)",
    ]


def test_escalate_action_sets_the_chain_of_the_first_matching_rule() -> None:
    legal = {"role": "legal", "sla_seconds": 3600, "approvers": 1, "on_expiry": "block"}
    board = {"role": "board", "sla_seconds": 60, "approvers": 3, "on_expiry": "block"}
    pb = playbook({"then": {"escalate": legal}}, {"then": {"escalate": board}})
    r = pb.rule(PASS, ctx())
    assert r.decision == Decision.escalate
    assert r.escalation is not None and r.escalation.role == "legal"
    # approvers: the most any matched rule asks for, on every level of the chain
    assert r.approvers == 3 and r.escalation.approvers == 3
    assert r.matched_rules == ["r0", "r1"]


def test_require_approvers_turns_deploy_into_escalate_on_the_default_chain() -> None:
    pb = playbook(
        {"then": {"require_approvers": 2}},
        escalation={
            "role": "compliance",
            "approvers": 1,
            "on_expiry": "escalate",
            "then": {"role": "legal", "on_expiry": "block"},
        },
    )
    r = pb.rule(PASS, ctx())
    assert r.decision == Decision.escalate and r.approvers == 2
    assert r.escalation is not None
    assert [lv.approvers for lv in r.escalation.levels()] == [2, 2]
    assert r.escalation.describe() == (
        "compliance (24h, 2 approvers) -> legal (24h, 2 approvers) -> block"
    )
    assert pb.escalation.approvers == 1  # the playbook itself is not changed


def test_guardrail_escalation_alone_uses_the_playbook_chain() -> None:
    pb = playbook(escalation={"role": "compliance", "approvers": 2, "on_expiry": "block"})
    r = pb.rule(report(quality=("escalate", 0.7)), ctx())
    assert r.decision == Decision.escalate and r.approvers == 2
    assert r.reasons == ["quality flagged: quality says so"]


def test_disclosures_per_market_with_fallback_and_joined_across_rules() -> None:
    pb = playbook(
        {
            "then": {
                "require_disclosure": {
                    "text": "AI-generated image",
                    "texts": {"DE": "KI-generiertes Bild"},
                }
            }
        },
        {
            "when": {"markets_any": ["FR"]},
            "then": {"require_disclosure": {"texts": {"FR": "Image générée par IA"}}},
        },
        {"then": {"require_disclosure": {"texts": {"DE": "KI-generiertes Bild"}}}},  # same text
    )
    r = pb.rule(PASS, ctx(markets=["FR", "DE", "US"]))
    assert r.decision == Decision.deploy
    assert r.disclosures == {
        "FR": "AI-generated image / Image générée par IA",
        "DE": "KI-generiertes Bild",
        "US": "AI-generated image",
    }
    # each text once, in market order: what goes on the ad
    assert r.disclosure_text() == (
        "AI-generated image / Image générée par IA / KI-generiertes Bild"
    )
    only_texts = playbook({"then": {"require_disclosure": {"texts": {"DE": "x"}}}})
    assert only_texts.rule(PASS, ctx(markets=["FR"])).disclosures == {}


def test_require_consent_binds_only_a_persona_and_covers_the_markets() -> None:
    pb = playbook(
        {"id": "gdpr", "when": {"persona": True}, "then": {"require_consent": {"scope": "ads"}}},
        {
            "id": "kug",
            "when": {"markets_any": ["DE"]},
            "then": {"require_consent": {"cover_markets": True}},
        },
    )
    r = pb.rule(PASS, ctx(markets=["DE", "FR"], persona_id="p-7"))
    assert r.requires_consent and r.consent is not None
    assert r.consent.persona_id == "p-7" and r.consent.scope == "ads"
    assert r.consent.markets == ["DE", "FR"] and r.consent.rules == ["gdpr", "kug"]
    assert r.decision == Decision.deploy  # consent is checked against the registry, not here
    without = pb.rule(PASS, ctx(markets=["DE"]))
    assert not without.requires_consent and without.consent is None
    assert without.matched_rules == ["kug"]


# --------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("guard", "rule_then", "expected"),
    [
        (("pass", 0.9), None, Decision.deploy),
        (("pass", 0.9), {"require_approvers": 1}, Decision.escalate),
        (("pass", 0.9), {"block": {"reason": "no"}}, Decision.block),
        (("escalate", 0.9), None, Decision.escalate),
        (("escalate", 0.9), {"block": {"reason": "no"}}, Decision.block),
        (("block", 0.9), {"require_approvers": 2}, Decision.block),
        (("block", 0.9), {"require_disclosure": {"text": "AI"}}, Decision.block),
    ],
)
def test_block_beats_escalate_beats_deploy(
    guard: tuple[str, float], rule_then: dict[str, Any] | None, expected: Decision
) -> None:
    pb = playbook(*([{"then": rule_then}] if rule_then else []))
    r = pb.rule(report(quality=guard), ctx())
    assert r.decision == expected
    assert (r.escalation is not None) == (expected == Decision.escalate)
    assert (r.approvers > 0) == (expected == Decision.escalate)


def test_on_escalate_block_turns_flags_into_blocks() -> None:
    pb = playbook(on_escalate="block")
    assert pb.rule(report(quality=("escalate", 0.5)), ctx()).decision == Decision.block


def test_two_rules_cannot_combine_into_four_eyes_that_lapse_into_deploy() -> None:
    # each rule is valid alone: a deploy-on-expiry chain from one, four eyes from the other
    pb = playbook(
        {"then": {"escalate": {"role": "ops", "on_expiry": "deploy"}}},
        {"then": {"require_approvers": 2, "escalate": {"role": "legal", "approvers": 2}}},
    )
    r = pb.rule(PASS, ctx())
    assert r.escalation is not None and r.escalation.role == "ops"
    assert r.approvers == 2 and r.escalation.final_expiry() == Decision.block
    assert "an expired SLA blocks instead of deploying" in r.reasons[-1]


def test_without_context_only_guardrail_verdicts_count_and_decide_keeps_its_shape() -> None:
    pb = playbook({"then": {"block": {"reason": "always"}}})
    assert pb.rule(PASS, None).decision == Decision.deploy
    assert pb.decide(PASS) == (Decision.deploy, "all checks passed")
    d, why = pb.decide(report(quality=("block", 0.1), identity=("escalate", 0.4)))
    assert d == Decision.block
    assert why == "quality blocked: quality says so; identity flagged: identity says so"
    assert pb.decide(PASS, ctx()) == (
        Decision.block,
        "all checks passed; rule r0: rule 0 (block: always)",
    )


# --------------------------------------------------------------------------- context, default


def test_context_from_a_brief() -> None:
    brief, config = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    c = RuleContext.for_variant("c-1", brief, config, FaceParams(age_band="18-24"))
    assert c.markets == ["DE", "FR", "NL"] and [ch.value for ch in c.channels] == ["sandbox"]
    assert c.connector == "sandbox" and c.persona_id is None and c.spend == 180_000
    assert c.params is not None and c.params.age_band == "18-24"


@pytest.mark.parametrize(
    "markets", [["DE"], ["DE", "AT"], ["FR", "NL", "US"], ["US", "ES", "IT", "GB"], ["JP"]]
)
def test_default_playbook_discloses_what_the_planner_writes(markets: list[str]) -> None:
    pb = load_playbook()
    r = pb.rule(PASS, ctx(markets=markets))
    assert r.decision == Decision.deploy and r.matched_rules == ["ai-disclosure"]
    assert r.disclosure_text() == disclosure_for(markets)
    assert pb.disclosures(ctx(markets=markets)) == r.disclosures
