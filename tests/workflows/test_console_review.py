"""The console against a real campaign on the dev server: a brief submitted through the API
waits for reviewers, compliance users vote through the API as themselves, and the campaign
goes on with what they decided; votes sent to Temporal past the console do not count."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from argon2 import PasswordHasher
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from faceloop.console import Role, create_app, security
from faceloop.console.users import UserStore
from faceloop.guardrails.base import GuardContext, Guardrail
from faceloop.messages import ReviewInput
from faceloop.models import CampaignState, CheckResult, Decision, Verdict
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.votes import VoteSigner
from faceloop.workflows.campaign import CampaignWorkflow
from faceloop.workflows.client import ReviewRefused, cast_review
from faceloop.workflows.worker import Resources, build_workers

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
pytestmark = [pytest.mark.slow]


class FakeEscalateEverything(Guardrail):
    """A fake check (test double) that flags every image for human review."""

    name = "fake_flag"

    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        return CheckResult(
            name=self.name, verdict=Verdict.escalate, score=0.5, evidence={"reason": "test flag"}
        )


async def test_compliance_approves_through_the_console_and_the_campaign_goes_on(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))
    # four eyes, and time enough for the votes
    assert settings.playbook is not None
    data = yaml.safe_load(settings.playbook.read_text())
    data["escalation"] = {"role": "compliance", "sla_seconds": 900, "approvers": 2}
    playbook = tmp_path / "four-eyes.yaml"
    playbook.write_text(yaml.safe_dump(data))
    settings = settings.model_copy(update={"playbook": playbook})
    with UserStore(settings.resolved_database_url) as users:
        for name, role in (("ada", Role.admin), ("mara", Role.marketer)):
            users.add_user(name, PASSWORD, role)
        for name in ("cora", "carl"):
            users.add_user(name, PASSWORD, Role.compliance)
    brief = yaml.safe_load((ROOT / "examples" / "brief.yaml").read_text())
    brief["campaign"] = {
        "rounds": 1,
        "variants_per_round": 2,
        "incumbents": 1,
        "kpi_window_seconds": 0.5,
    }

    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)

    async def as_user(name: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
        client = httpx.AsyncClient(transport=transport, base_url="http://console")
        r = await client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return client, {"X-CSRF-Token": r.json()["csrf_token"]}

    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(
                temporal_env.client, res, guardrails=lambda pb: [FakeEscalateEverything()]
            ):
                await stack.enter_async_context(w)
            ada, ada_h = await as_user("ada")
            made = await ada.post("/api/v1/briefs", json=brief, headers=ada_h)
            assert made.status_code == 201, made.text
            cid = made.json()["campaign_id"]
            assert made.json()["submitted_by"] == "ada"

            cora, cora_h = await as_user("cora")
            waiting: list[dict[str, Any]] = []
            for _ in range(300):
                waiting = (await cora.get("/api/v1/escalations")).json()
                if len(waiting) == 2:
                    break
                await asyncio.sleep(0.2)
            assert [(p["submitted_by"], p["approvers_required"]) for p in waiting] == [
                ("ada", 2)
            ] * 2
            first, second = (p["variant_id"] for p in waiting)

            # the submitter, an admin who may otherwise review, cannot vote on it
            own = await ada.post(
                f"/api/v1/escalations/{first}/approve", json={"reason": "mine"}, headers=ada_h
            )
            assert own.status_code == 403
            mara, mara_h = await as_user("mara")
            assert (await mara.get(f"/api/v1/campaigns/{cid}")).status_code == 403
            said = await mara.post(
                f"/api/v1/escalations/{first}/approve", json={"reason": "x"}, headers=mara_h
            )
            assert said.status_code == 403

            ok = await cora.post(
                f"/api/v1/escalations/{first}/approve",
                json={"reason": "generic face"},
                headers=cora_h,
            )
            assert ok.status_code == 200 and "approval 1/2" in ok.json()["answer"], ok.text

            # votes sent straight to Temporal, past the console, do not count: a typed name,
            # a signed vote altered after signing, and cora's own signed vote a second time
            # (four eyes on identities: the console's 409 is not what stops it)
            typed = ReviewInput(
                campaign_id=cid,
                variant_id=first,
                decision=Decision.deploy,
                reviewer="carl",
                reason="forged",
                role="compliance",
            )
            with pytest.raises(ReviewRefused, match="not signed by the console"):
                await cast_review(temporal_env.client, typed)
            signer = VoteSigner.open(settings.resolved_home)
            as_cora = typed.model_copy(update={"reviewer": "cora"})
            altered = signer.sign(as_cora, datetime.now(UTC)).model_copy(
                update={"reviewer": "carl"}
            )
            with pytest.raises(ReviewRefused, match="does not match its content"):
                await cast_review(temporal_env.client, altered)
            with pytest.raises(ReviewRefused, match="already voted"):
                await cast_review(temporal_env.client, signer.sign(as_cora, datetime.now(UTC)))

            again = await cora.post(
                f"/api/v1/escalations/{first}/approve", json={"reason": "sure"}, headers=cora_h
            )
            assert again.status_code == 409
            carl, carl_h = await as_user("carl")
            # carl's signed approval twice at once, sent past the console: both may pass the
            # update's validator while the other is being checked; the board checks again
            # after the check, so one counts and the other is refused, never both
            copy = signer.sign(typed.model_copy(update={"reason": "agreed"}), datetime.now(UTC))
            answers: list[object] = await asyncio.gather(
                cast_review(temporal_env.client, copy),
                cast_review(temporal_env.client, signer.sign(copy, datetime.now(UTC))),
                return_exceptions=True,
            )
            counted = [a for a in answers if isinstance(a, str)]
            turned_down = [a for a in answers if isinstance(a, ReviewRefused)]
            assert len(counted) == 1 and len(turned_down) == 1, answers
            assert f"{first}: deploy" in counted[0], counted
            no = await carl.post(
                f"/api/v1/escalations/{second}/reject",
                json={"reason": "off-brand"},
                headers=carl_h,
            )
            assert no.status_code == 200 and f"{second}: block" in no.json()["answer"], no.text
            handle = temporal_env.client.get_workflow_handle(cid, result_type=CampaignState)
            final = await asyncio.wait_for(handle.result(), timeout=120)
            assert final.stage == "done"
            # refused and counted votes (each checked by an activity) replay as they ran
            await Replayer(
                workflows=[CampaignWorkflow], data_converter=pydantic_data_converter
            ).replay_workflow(await handle.fetch_history())
            for c in (ada, cora, carl, mara):
                await c.aclose()
    finally:
        await res.aclose()

    with Catalog(settings.resolved_database_url) as catalog:
        decided = {v.variant_id: v.decision for v in catalog.variants(cid)}
        entries = catalog.audit_entries(cid)
    votes = [
        (e.kind, e.actor, e.payload.get("identity"))
        for e in entries
        if e.kind.startswith("review.vote") and e.kind != "review.vote.refused"
    ]
    refused = [
        (e.payload["claimed_reviewer"], e.payload["signed"])
        for e in entries
        if e.kind == "review.vote.refused"
    ]
    assert (decided[first], decided[second]) == ("deploy", "block")
    assert votes == [
        ("review.vote.approve", "cora", "signed"),
        ("review.vote.approve", "carl", "signed"),
        ("review.vote.reject", "carl", "signed"),
    ]
    # the forged and the altered vote; the second vote by cora never reached the check
    assert refused == [("carl", False), ("carl", True)]
