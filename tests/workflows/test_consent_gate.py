"""Consent gates persona campaigns: the playbook's require_consent in the decide activity,
and the per-round consent check in the workflow (revocation stops new variants)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from faceloop.briefs import load_brief_and_config
from faceloop.consent import ConsentRecord
from faceloop.messages import DecideInput
from faceloop.models import (
    Brief,
    CampaignConfig,
    CheckResult,
    Decision,
    FaceParams,
    GuardrailReport,
    Persona,
    Variant,
    Verdict,
)
from faceloop.optimization import Optimizer
from faceloop.playbooks.schema import load_playbook
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign_activities import CampaignActivities
from faceloop.workflows.client import submit
from faceloop.workflows.worker import Resources, build_workers

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date.today()


def persona_brief(markets: list[str]) -> Brief:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    return brief.model_copy(
        update={
            "markets": markets,
            "persona": Persona(persona_id="anna-k", consent_ref="c-anna-1"),
        }
    )


def consent(markets: list[str], expires: dt.date | None = None) -> ConsentRecord:
    return ConsentRecord(
        consent_id="c-anna-1",
        persona_id="anna-k",
        subject_name="Anna K.",
        scope=["ads"],
        markets=markets,
        expires=expires or TODAY + dt.timedelta(days=90),
        evidence_sha256="ab" * 32,
    )


def guarded(vid: str) -> Variant:
    return Variant(
        variant_id=vid,
        campaign_id="cmp",
        round=0,
        params=FaceParams(age_band="35-44"),
        seed=1,
        report=GuardrailReport(
            asset_id=f"a-{vid}",
            checks=[CheckResult(name="quality", verdict=Verdict.passed, score=0.9)],
        ),
    )


def decide(catalog: Catalog, tmp_path: Path, brief: Brief) -> Variant:
    acts = CampaignActivities(catalog, Optimizer(f"sqlite:///{tmp_path / 'optuna.db'}"))
    out = acts._decide(
        DecideInput(
            campaign_id="cmp",
            round=0,
            playbook=load_playbook("eu"),
            variants=[guarded("v1")],
            brief=brief,
            config=CampaignConfig(),
        )
    )
    return out.variants[0]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, "not in the consent registry"),
        (consent(["FR"]), "DE"),
    ],
)
def test_eu_playbook_blocks_a_persona_without_covering_consent(
    tmp_path: Path, record: ConsentRecord | None, expected: str
) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        if record is not None:
            catalog.record_consent(record, "dpo")
        v = decide(catalog, tmp_path, persona_brief(["DE", "FR"]))
        assert v.decision == Decision.block
        assert "consent required by gdpr-persona-consent, kug-22-persona-de:" in v.decision_reason
        assert expected in v.decision_reason
        entry = catalog.audit_entries("cmp")[-1]
        assert entry.kind == "decision.block" and entry.payload["consent"]["persona_id"] == "anna-k"


def test_eu_playbook_with_valid_consent_waits_for_four_eyes(tmp_path: Path) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        catalog.record_consent(consent(["DE", "FR"]), "dpo")
        v = decide(catalog, tmp_path, persona_brief(["DE", "FR"]))
        assert v.decision == Decision.escalate
        assert "KI-generiertes Bild" in v.disclosure and "Image générée par IA" in v.disclosure
        entry = catalog.audit_entries("cmp")[-1]
        assert entry.payload["approvers"] == 2
        assert "four-eyes-persona" in entry.payload["rules"]
        # revoked: the same variant is blocked at once
        catalog.revoke_consent("c-anna-1", "withdrawn by the subject", "dpo")
        again = decide(catalog, tmp_path, persona_brief(["DE", "FR"]))
        assert again.decision == Decision.block and "revoked" in again.decision_reason


@pytest.mark.slow
async def test_a_campaign_with_a_revoked_persona_makes_nothing(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    pytest.importorskip("diffusers")
    from faceloop.generation import GenerationConfig
    from faceloop.generators.tiny import tiny_pipeline

    # a persona campaign needs a backend that loads the persona's adapter (checked at
    # submit); this one never gets to generate
    model = settings.resolved_home / "tiny-sd15"
    tiny_pipeline("sd15").save_pretrained(model)
    brief = persona_brief(["DE"])
    config = CampaignConfig(
        rounds=1,
        variants_per_round=2,
        incumbents=1,
        kpi_window_seconds=0.5,
        generation=GenerationConfig(backend="diffusers", model=str(model), steps=2),
    )
    with Catalog(settings.resolved_database_url) as catalog:
        catalog.record_consent(consent(["DE"]), "dpo")
        catalog.revoke_consent("c-anna-1", "withdrawn", "dpo")
    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(temporal_env.client, res):
                await stack.enter_async_context(w)
            handle = await submit(
                temporal_env.client, settings, brief, config, load_playbook("default")
            )
            state = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        await res.aclose()
    assert state.stage == "blocked"
    assert state.blocked_reason.startswith("consent: ") and "revoked" in state.blocked_reason
    with Catalog(settings.resolved_database_url) as catalog:
        assert catalog.variants(state.campaign_id) == []
        kinds = [e.kind for e in catalog.audit_entries(state.campaign_id)]
    assert "consent.check_failed" in kinds and kinds[-1] == "campaign.blocked"


def test_any_playbook_blocks_a_persona_whose_consent_was_revoked(tmp_path: Path) -> None:
    # the default playbook has no consent rule: a persona still needs its record
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        catalog.record_consent(consent(["DE"]), "dpo")
        acts = CampaignActivities(catalog, Optimizer(f"sqlite:///{tmp_path / 'optuna.db'}"))
        inp = DecideInput(
            campaign_id="cmp",
            round=0,
            playbook=load_playbook("default"),
            variants=[guarded("v1")],
            brief=persona_brief(["DE"]),
            config=CampaignConfig(),
        )
        assert acts._decide(inp).variants[0].decision == Decision.deploy
        catalog.revoke_consent("c-anna-1", "withdrawn", "dpo")
        blocked = acts._decide(inp).variants[0]
        assert blocked.decision == Decision.block
        assert "consent required: " in blocked.decision_reason
        assert "revoked" in blocked.decision_reason
