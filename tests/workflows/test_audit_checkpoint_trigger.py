"""The campaign's finish activity anchors the audit log with a signed checkpoint; a log that
no longer extends the last checkpoint does not fail the campaign, it is recorded."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from faceloop.messages import FinishInput
from faceloop.models import AudienceSegment, Brief, CampaignConfig
from faceloop.optimization.study import Optimizer
from faceloop.storage.catalog import Catalog
from faceloop.storage.checkpoints import CheckpointKeys, Checkpoints
from faceloop.workflows.campaign_activities import CampaignActivities


def test_finish_writes_a_checkpoint_and_records_a_refused_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    keys = tmp_path / "keys"
    checkpoints = Checkpoints(
        tmp_path / "cps",
        CheckpointKeys(keys / "signer.key", keys / "signer-chain.pem", keys / "audit.key"),
    )
    brief = Brief(
        product="Lumen SPF 50",
        message="Everyday sun protection.",
        audience=[AudienceSegment(name="all", share=1.0)],
        markets=["DE"],
        budget_impressions=10_000,
    )
    with Catalog(url) as catalog:
        for cid in ("cmp", "cmp2"):
            catalog.upsert_campaign(cid, brief, CampaignConfig(), "running")
        acts = CampaignActivities(
            catalog, Optimizer(f"sqlite:///{tmp_path / 'optuna.db'}"), checkpoints=checkpoints
        )
        acts._finish(FinishInput(campaign_id="cmp", status="done", round=1))
        newest = checkpoints.newest(catalog)
        assert newest is not None and newest[1].body.seq == 1  # the campaign.done entry

        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM audit_log")
            conn.exec_driver_sql(f"UPDATE audit_head SET seq = 0, hash = '{'0' * 64}'")
        engine.dispose()
        acts._finish(FinishInput(campaign_id="cmp2", status="done", round=1))
        kinds = [e.kind for e in catalog.audit_entries()]
        assert kinds == ["campaign.done", "audit.checkpoint_failed"]
        failed = catalog.audit_entries()[-1].payload["error"]
        assert "no audit checkpoint written" in failed and "rewritten" in failed
