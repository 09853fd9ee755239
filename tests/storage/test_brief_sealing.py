"""The brief's free text, sealed under the campaign's key in the catalog and the audit log
(issue 12, point 6), on SQLite and PostgreSQL: it reads back while the key lives, reads
"[erased]" once erased, keeps the audit chain intact, and a brief stored in the clear by
an earlier release still loads and can be erased."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update
from temporalio.exceptions import ApplicationError

from faceloop.agents.activities import PlannerActivities
from faceloop.agents.models import PlanFallback, PlanResult
from faceloop.errors import SubjectErasedError
from faceloop.guardrails.prompt_filter import FilterHit
from faceloop.messages import PlanInput, ScheduledRoundInput, StartCampaignInput
from faceloop.models import AudienceSegment, Brief, CampaignConfig
from faceloop.optimization.study import Optimizer
from faceloop.playbooks.schema import load_playbook
from faceloop.storage.catalog import ERASED, Catalog, campaign_subject
from faceloop.storage.keys import SubjectKeyStore
from faceloop.storage.schema import campaigns
from faceloop.workflows.campaign_activities import CampaignActivities

PRODUCT = "Ada's own hand cream"
MESSAGE = "Ada Lovelace-Example swears by it since her accident in Kiel"
TONE = "like Ada talks"
CONSTRAINT = "never show Ada's scar"
AUDIENCE = "Ada's neighbours in Kiel"
FREE_TEXT = (PRODUCT, MESSAGE, TONE, CONSTRAINT, AUDIENCE)


def brief() -> Brief:
    return Brief(
        product=PRODUCT,
        message=MESSAGE,
        tone=TONE,
        constraints=[CONSTRAINT],
        audience=[
            AudienceSegment(name="kiel", description=AUDIENCE, share=0.5),
            AudienceSegment(name="rest", share=0.5),
        ],
        markets=["DE"],
        budget_impressions=1000,
        submitted_by="maria",
    )


def raw_row(catalog: Catalog, cid: str) -> str:
    with catalog._read() as conn:
        stored = conn.execute(
            select(campaigns.c.brief).where(campaigns.c.campaign_id == cid)
        ).scalar_one()
    return json.dumps(stored)


def start(catalog: Catalog, tmp_path: Path, cid: str) -> CampaignActivities:
    """The campaign as the campaign workflow's first activity records it."""
    acts = CampaignActivities(catalog, Optimizer(f"sqlite:///{tmp_path / 'optuna.db'}"))
    acts._start(
        StartCampaignInput(
            campaign_id=cid, brief=brief(), config=CampaignConfig(), playbook=load_playbook()
        )
    )
    return acts


def test_the_brief_text_is_sealed_reads_back_and_reads_erased_once_shredded(
    catalog: Catalog, tmp_path: Path
) -> None:
    acts = start(catalog, tmp_path, "c1")
    row = catalog.get_campaign("c1")
    assert row is not None and row.brief == brief() and row.brief_erased_at is None
    # neither the catalog row nor the audit entry holds the text; the structure stays clear
    (entry,) = [e for e in catalog.audit_entries("c1") if e.kind == "brief.submitted"]
    for stored in (raw_row(catalog, "c1"), json.dumps(entry.payload)):
        assert not [t for t in FREE_TEXT if t in stored], stored
        assert '"kiel"' in stored and '"DE"' in stored and '"maria"' in stored
    assert catalog.open_brief("c1", entry.payload["brief"]) == (brief(), None)
    assert catalog.clear_brief_entries("c1") == []

    # erasure: the row loses the text, the key goes; the audit copy no longer opens
    assert catalog.erase_brief("c1") and not catalog.erase_brief("c1")
    assert SubjectKeyStore(catalog).destroy(campaign_subject("c1"))
    row = catalog.get_campaign("c1")
    assert row is not None and row.brief_erased_at is not None
    b = row.brief
    assert (b.product, b.message, b.tone, b.constraints) == (ERASED, ERASED, ERASED, [])
    assert [s.description for s in b.audience] == [ERASED, ERASED]
    assert (b.markets, b.budget_impressions, [s.name for s in b.audience]) == (
        ["DE"],
        1000,
        ["kiel", "rest"],
    )
    audited, erased_at = catalog.open_brief("c1", entry.payload["brief"])
    assert audited.message == ERASED and erased_at is not None
    assert catalog.verify_audit() == []  # the chain hashed the ciphertext, which is unchanged
    assert [r.campaign_id for r in catalog.list_campaigns()] == ["c1"]
    # nothing new is sealed under an erased campaign, and its scheduled rounds refuse
    with pytest.raises(SubjectErasedError, match="subject erased"):
        catalog.upsert_campaign("c1", brief(), CampaignConfig(), "running")
    with pytest.raises(ApplicationError, match=r"'c1' was erased on .*delete its schedule"):
        acts._next_round_input(ScheduledRoundInput(campaign_id="c1"))


def test_a_key_shredded_before_the_row_was_rewritten_still_reads_erased(
    catalog: Catalog,
) -> None:
    catalog.upsert_campaign("c2", brief(), CampaignConfig(), "running")
    SubjectKeyStore(catalog).destroy(campaign_subject("c2"))
    row = catalog.get_campaign("c2")
    assert row is not None and row.brief.product == ERASED and row.brief_erased_at is not None


def test_a_brief_stored_in_the_clear_by_an_earlier_release_loads_and_erases(
    catalog: Catalog, tmp_path: Path
) -> None:
    start(catalog, tmp_path, "old")
    clear = brief().model_dump(mode="json")
    with catalog._write() as conn:  # as the previous release wrote it
        conn.execute(update(campaigns).where(campaigns.c.campaign_id == "old").values(brief=clear))
    catalog.audit("old", "brief.submitted", "old", "maria", {"brief": clear})
    row = catalog.get_campaign("old")
    assert row is not None and row.brief == brief() and row.brief_erased_at is None
    # the clear audit entry is named: the chain keeps it
    (seq,) = catalog.clear_brief_entries("old")
    assert MESSAGE in json.dumps(next(e for e in catalog.audit_entries() if e.seq == seq).payload)

    assert catalog.erase_brief("old")
    assert not [t for t in FREE_TEXT if t in raw_row(catalog, "old")]
    row = catalog.get_campaign("old")
    assert row is not None and row.brief.message == ERASED and row.brief_erased_at is not None
    assert catalog.verify_audit() == []


def test_the_planner_seals_matched_brief_text_and_llm_reasons_in_its_audit_entries(
    catalog: Catalog,
) -> None:
    acts = PlannerActivities(catalog=catalog)
    inp = PlanInput(campaign_id="c3", brief=brief(), variants=[])
    result = PlanResult(
        status="escalated",
        reason="prompt filter rule person-name matched in message",
        hits=[FilterHit(rule="person-name", action="escalate", field="message", matched=MESSAGE)],
        fallbacks=[PlanFallback(node="extract", attempts=2, reason=f"bad facts: {PRODUCT}")],
    )
    acts._record(inp, result)
    entries = catalog.audit_entries("c3")
    assert [e.kind for e in entries] == ["plan.escalated", "plan.fallback.extract"]
    dumped = json.dumps([e.payload for e in entries])
    assert MESSAGE not in dumped and PRODUCT not in dumped
    escalated, fallback = entries
    assert escalated.payload["hits"] == [
        {"rule": "person-name", "action": "escalate", "field": "message"}
    ]
    assert catalog.open_campaign_data("c3", escalated.payload["matched"], "plan.hits") == [MESSAGE]
    assert PRODUCT in catalog.open_campaign_data("c3", fallback.payload["reason"], "plan.fallback")
    SubjectKeyStore(catalog).destroy(campaign_subject("c3"))
    with pytest.raises(SubjectErasedError):
        catalog.open_campaign_data("c3", escalated.payload["matched"], "plan.hits")
    assert catalog.verify_audit() == []
