"""The shipped EU playbook gives the rulings its comments promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faceloop.briefs import load_brief_and_config
from faceloop.guardrails.prompt_filter import PromptFilter
from faceloop.models import (
    Brief,
    CheckResult,
    Decision,
    FaceParams,
    GuardrailReport,
    Persona,
    Verdict,
)
from faceloop.playbooks import RollbackKpis, RuleContext, load_playbook
from faceloop.playbooks.markets import EU_MEMBERS

ROOT = Path(__file__).resolve().parents[2]
EU = load_playbook("eu")
PASS = GuardrailReport(
    asset_id="a",
    checks=[
        CheckResult(name="quality", verdict=Verdict.passed, score=0.9),
        CheckResult(name="identity", verdict=Verdict.passed, score=0.1),
    ],
)
ADULT = FaceParams(age_band="25-34")


def brief(**changes: Any) -> Brief:
    b, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    return b.model_copy(update=changes)


def test_de_campaign_with_a_persona_needs_consent_covering_de_and_four_eyes() -> None:
    b = brief(markets=["DE"], persona=Persona(persona_id="anna-k", consent_ref="pending"))
    r = EU.rule(PASS, RuleContext.for_variant("c-de", b, None, ADULT))
    assert r.decision == Decision.escalate
    assert r.requires_consent and r.consent is not None
    assert r.consent.persona_id == "anna-k" and r.consent.markets == ["DE"]
    assert r.consent.scope == "ads"
    assert r.consent.rules == ["gdpr-persona-consent", "kug-22-persona-de"]
    assert r.approvers == 2
    assert r.escalation is not None
    assert r.escalation.describe() == (
        "compliance (24h, 2 approvers) -> legal (48h, 2 approvers) -> block"
    )
    assert r.matched_rules == [
        "ai-act-art50-disclosure",
        "gdpr-persona-consent",
        "kug-22-persona-de",
        "four-eyes-persona",
    ]
    assert r.disclosures == {"DE": "KI-generiertes Bild"}
    assert any("KUG §22" in why for why in r.reasons)


def test_fr_campaign_without_a_persona_ships_with_the_french_label() -> None:
    r = EU.rule(PASS, RuleContext.for_variant("c-fr", brief(markets=["FR"]), None, ADULT))
    assert r.decision == Decision.deploy and r.approvers == 0 and r.escalation is None
    assert r.disclosures == {"FR": "Image générée par IA"}
    assert not r.requires_consent and r.matched_rules == ["ai-act-art50-disclosure"]


def test_persona_outside_germany_needs_consent_but_not_the_kug_rule() -> None:
    b = brief(markets=["FR", "IT"], persona=Persona(persona_id="p", consent_ref="c"))
    r = EU.rule(PASS, RuleContext.for_variant("c", b, None, ADULT))
    assert r.consent is not None and r.consent.rules == ["gdpr-persona-consent"]
    assert r.consent.markets == ["FR", "IT"] and r.approvers == 2


@pytest.mark.parametrize(
    ("market", "text"),
    [
        ("DE", "KI-generiertes Bild"),
        ("AT", "KI-generiertes Bild"),
        ("FR", "Image générée par IA"),
        ("IT", "Immagine generata con IA"),
        ("ES", "Imagen generada por IA"),
        ("NL", "Afbeelding gegenereerd met AI"),
        ("PL", "Obraz wygenerowany przez sztuczną inteligencję"),
        ("IE", "AI-generated image"),
        ("US", "AI-generated image"),
    ],
)
def test_disclosure_in_the_market_language(market: str, text: str) -> None:
    assert EU.disclosures(RuleContext(markets=[market])) == {market: text}


def test_every_member_state_has_its_own_label_except_english_speaking_ones() -> None:
    d = EU.disclosures(RuleContext(markets=list(EU_MEMBERS)))
    english = sorted(m for m, t in d.items() if t == "AI-generated image")
    assert sorted(d) == sorted(EU_MEMBERS) and english == ["IE", "MT"]


def test_protected_targeting_is_blocked_in_the_eu_and_escalated_by_default() -> None:
    b = brief(message="Show this ad only to Muslims and keep it away from immigrants.")
    eu = PromptFilter(EU.prompt_filter).check_brief(b)
    default = PromptFilter(load_playbook().prompt_filter).check_brief(b)
    assert [h.rule for h in eu.hits] == ["protected_targeting"]
    assert eu.verdict == Verdict.block and default.verdict == Verdict.escalate


def test_unverified_persona_goes_to_legal_with_four_eyes() -> None:
    flagged = GuardrailReport(
        asset_id="a",
        checks=[
            CheckResult(
                name="identity",
                verdict=Verdict.escalate,
                score=0.0,
                evidence={"reason": "persona has no enrolled reference"},
            )
        ],
    )
    r = EU.rule(flagged, RuleContext(markets=["NL"], params=ADULT))
    assert r.decision == Decision.escalate and r.escalation is not None
    assert r.escalation.describe() == "legal (48h, 2 approvers) -> block"
    assert r.reasons[0] == "identity flagged: persona has no enrolled reference"


def test_youngest_band_and_large_budgets_need_a_person() -> None:
    young = EU.rule(PASS, RuleContext(markets=["ES"], params=FaceParams(age_band="18-24")))
    assert young.decision == Decision.escalate and young.approvers == 1
    assert young.matched_rules[-1] == "youngest-band-review"
    big = EU.rule(PASS, RuleContext(markets=["ES"], params=ADULT, spend=1_000_000))
    assert big.decision == Decision.escalate and big.approvers == 2
    small = EU.rule(PASS, RuleContext(markets=["ES"], params=ADULT, spend=999_999))
    assert small.decision == Decision.deploy


def test_eu_is_stricter_than_the_default_where_it_says_so() -> None:
    default = load_playbook()
    assert EU.identity.lookalike_threshold < default.identity.lookalike_threshold
    assert EU.safety.min_score < default.safety.min_score
    assert EU.escalation.final_expiry() == Decision.block


def test_eu_rollback_pauses_a_dead_ad_and_reported_complaints() -> None:
    def kpis(**kw: Any) -> RollbackKpis:
        base: dict[str, Any] = {"campaign_id": "c", "variant_id": "v", "ad_id": "ad"}
        return RollbackKpis.model_validate({**base, **kw})

    dead = kpis(impressions=25_000, clicks=40, conversions=1)  # CTR 0.16 %
    early = kpis(impressions=10_000, clicks=5, conversions=0)  # too few impressions to judge
    healthy = kpis(impressions=25_000, clicks=500, conversions=20)
    complained = kpis(impressions=5_000, clicks=100, conversions=3, complaints=6)
    hits = EU.rollback_hits([dead, early, healthy, complained])
    assert [(h.criterion, h.notify_role) for h in hits] == [
        ("ctr-collapse", "marketing"),
        ("complaints", "compliance"),
    ]
    assert hits[0].value == pytest.approx(0.0016) and hits[0].action == "pause"
    assert hits[1].reason.startswith("complaints: complaint_rate 0.0012 > 0.001 after 5,000")
