"""Blocked and escalated variants on the real dev server: what the playbook decides is what
happens, reviewers vote through the `review` update, and the SLA timer closes the rest."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from faceloop.briefs import load_brief_and_config
from faceloop.cli import app
from faceloop.connectors.base import AdDeployment
from faceloop.guardrails.base import GuardContext, Guardrail
from faceloop.models import CampaignConfig, CampaignState, CheckResult, Decision, Verdict
from faceloop.optimization import Optimizer
from faceloop.playbooks.schema import Escalation, Playbook, RollbackCriterion, load_playbook
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign import CampaignWorkflow, ReviewInput
from faceloop.workflows.client import submit, write_report
from faceloop.workflows.worker import Resources, build_workers, optuna_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]


class FakeEscalateEverything(Guardrail):
    """A fake check (test double) that flags every image for human review."""

    name = "fake_flag"

    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        return CheckResult(
            name=self.name, verdict=Verdict.escalate, score=0.5, evidence={"reason": "test flag"}
        )


async def test_every_variant_blocked_is_told_failed_and_nothing_deploys(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    strict = load_playbook().model_copy(deep=True)
    strict.quality.min_face_score = 1.0  # no detection scores 1.0: everything is blocked
    config = CampaignConfig(rounds=1, variants_per_round=3, incumbents=1, kpi_window_seconds=0.5)
    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(temporal_env.client, res):
                await stack.enter_async_context(w)
            handle = await submit(temporal_env.client, settings, brief, config, strict)
            state = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        await res.aclose()
    assert state.stage == "done" and state.winner is None
    with Catalog(settings.resolved_database_url) as catalog:
        variants = catalog.variants(state.campaign_id)
        assert [v.decision for v in variants] == [Decision.block] * 3
        assert all("quality blocked" in v.decision_reason for v in variants)
        assert catalog.deployments(state.campaign_id) == []
    trials = Optimizer(optuna_url(settings)).trials(state.campaign_id)
    assert [t.state for t in trials] == [TrialState.FAIL] * 3


async def test_escalations_wait_for_four_eyes_and_the_sla_chain(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    playbook: Playbook = load_playbook().model_copy(deep=True)
    # four eyes at compliance for 20 s, then legal gets 2 s, then it does not ship
    playbook.escalation = Escalation(
        role="compliance",
        sla_seconds=20,
        approvers=2,
        on_expiry=Decision.escalate,
        then=Escalation(role="legal", sla_seconds=2, on_expiry=Decision.block),
    )
    config = CampaignConfig(rounds=1, variants_per_round=3, incumbents=1, kpi_window_seconds=0.5)
    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(
                temporal_env.client, res, guardrails=lambda pb: [FakeEscalateEverything()]
            ):
                await stack.enter_async_context(w)
            handle = await submit(temporal_env.client, settings, brief, config, playbook)
            pending = []
            for _ in range(300):
                pending = await handle.query(CampaignWorkflow.escalations)
                if len(pending) == 3:
                    break
                await asyncio.sleep(0.1)
            assert len(pending) == 3
            assert {(p.role, p.approvers_required, p.on_expiry) for p in pending} == {
                ("compliance", 2, "escalate")
            }
            assert all(p.flagged.startswith("fake_flag flagged: test flag") for p in pending)
            first, second, third = (p.variant_id for p in pending)

            def vote(
                vid: str,
                decision: Decision,
                reviewer: str,
                reason: str = "ok",
                role: str | None = "compliance",
            ) -> ReviewInput:
                return ReviewInput(
                    campaign_id=handle.id,
                    variant_id=vid,
                    decision=decision,
                    reviewer=reviewer,
                    reason=reason,
                    role=role,
                )

            async def refused(v: ReviewInput, why: str) -> None:
                with pytest.raises(WorkflowUpdateFailedError) as info:
                    await handle.execute_update(CampaignWorkflow.review, v)
                assert why in str(info.value.cause)

            await refused(vote(first, Decision.deploy, brief.submitted_by), "cannot review it")
            # the submitter under another spelling is still the submitter
            shouted = f" {brief.submitted_by.upper()} "
            await refused(vote(first, Decision.deploy, shouted), "cannot review it")
            await refused(vote(first, Decision.deploy, "rita", role=None), "--role compliance")
            await refused(vote(first, Decision.deploy, "rita", role="legal"), "not 'legal'")
            await refused(vote(first, Decision.deploy, "rita", reason=" "), "needs a reason")
            said = await handle.execute_update(
                CampaignWorkflow.review, vote(first, Decision.deploy, "rita")
            )
            assert "approval 1/2" in said
            await refused(vote(first, Decision.deploy, "Rita"), "already voted")
            said = await handle.execute_update(
                CampaignWorkflow.review, vote(first, Decision.deploy, "omar")
            )
            assert said.startswith(f"{first}: deploy")
            await refused(vote(first, Decision.block, "lena"), "already decided")
            await handle.execute_update(
                CampaignWorkflow.review, vote(second, Decision.block, "omar", "off-brand")
            )
            # nobody reviews the third: compliance's SLA escalates it to legal, whose SLA
            # blocks it
            state = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        await res.aclose()
    with Catalog(settings.resolved_database_url) as catalog:
        by_id = {v.variant_id: v for v in catalog.variants(state.campaign_id)}
        assert by_id[first].decision == Decision.deploy
        assert "approved by rita, omar" in by_id[first].decision_reason
        assert by_id[second].decision == Decision.block
        assert by_id[third].decision == Decision.block
        assert "no decision by legal within 2s" in by_id[third].decision_reason
        assert [d.variant_id for d in catalog.deployments(state.campaign_id)] == [first]
        entries = catalog.audit_entries(state.campaign_id)
        kinds = Counter(e.kind for e in entries)
        deciders = {e.subject: e.actor for e in entries if e.kind in REVIEW_OUTCOMES}
        escalated = [e for e in entries if e.kind == "review.escalated"]
        assert catalog.verify_audit() == []
    assert kinds["decision.escalate"] == 3
    assert kinds["review.vote.approve"] == 2 and kinds["review.vote.reject"] == 1
    assert kinds["review.approve"] == 1 and kinds["review.reject"] == 2
    assert deciders == {first: "omar", second: "omar", third: "sla-timer"}
    assert [(e.subject, e.payload["role"]) for e in escalated] == [(third, "legal")]


REVIEW_OUTCOMES = {"review.approve", "review.reject"}


async def test_reviewers_work_from_the_cli(
    temporal_env: WorkflowEnvironment, settings: Settings, settings_env: dict[str, str]
) -> None:
    """`faceloop escalations`, `approve` and `reject` against a campaign that waits, then
    `faceloop audit verify/export` over what the votes wrote."""
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    playbook: Playbook = load_playbook().model_copy(deep=True)
    playbook.escalation = Escalation(role="compliance", sla_seconds=60, approvers=2)
    config = CampaignConfig(rounds=1, variants_per_round=2, incumbents=1, kpi_window_seconds=0.5)
    runner = CliRunner()

    async def cli(*args: str) -> Result:
        # the CLI runs its own event loop: give it a thread
        return await asyncio.to_thread(runner.invoke, app, list(args), env=settings_env)

    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(
                temporal_env.client, res, guardrails=lambda pb: [FakeEscalateEverything()]
            ):
                await stack.enter_async_context(w)
            handle = await submit(temporal_env.client, settings, brief, config, playbook)
            listed: list[dict[str, object]] = []
            for _ in range(300):
                out = await cli("escalations", "--campaign", handle.id, "--json")
                assert out.exit_code == 0, out.output
                listed = json.loads(out.stdout)
                if len(listed) == 2:
                    break
                await asyncio.sleep(0.2)
            assert [(p["role"], p["approvers_required"]) for p in listed] == [("compliance", 2)] * 2
            first, second = (str(p["variant_id"]) for p in listed)

            table = await cli("escalations", "--campaign", handle.id)
            assert first in table.stdout and "0/2" in table.stdout

            role = ("--role", "compliance")
            no_role = await cli("approve", first, "--reviewer", "rita", "--reason", "fine")
            assert no_role.exit_code == 1 and "--role compliance" in no_role.stderr
            ok = await cli(
                "approve", first, *role, "--reviewer", "rita", "--reason", "generic face"
            )
            assert ok.exit_code == 0 and "approval 1/2" in ok.stdout
            again = await cli("approve", first, *role, "--reviewer", "RITA", "--reason", "sure")
            assert again.exit_code == 1 and "already voted" in again.stderr
            own = await cli(
                "approve", first, *role, "--reviewer", brief.submitted_by, "--reason", "x"
            )
            assert own.exit_code == 1 and "cannot review it" in own.stderr
            no_reason = await cli("reject", second, *role, "--reviewer", "omar")
            assert no_reason.exit_code == 2 and "--reason is required" in no_reason.stderr
            ok = await cli("approve", first, *role, "--reviewer", "omar", "--reason", "agreed")
            assert ok.exit_code == 0 and f"{first}: deploy" in ok.stdout
            ok = await cli("reject", second, *role, "--reviewer", "omar", "--reason", "off-brand")
            assert ok.exit_code == 0 and f"{second}: block" in ok.stdout
            gone = await cli("approve", second, *role, "--reviewer", "lena", "--reason", "late")
            assert gone.exit_code == 1 and "not waiting" in gone.stderr
            await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        await res.aclose()

    verified = await cli("audit", "verify", "--json")
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assert report["intact"] and report["entries"] >= 8
    export = settings.home / "audit.jsonl"
    assert (await cli("audit", "export", "--out", str(export))).exit_code == 0
    lines = export.read_text().splitlines()
    assert len(lines) == report["entries"]
    assert json.loads(lines[-1])["hash"] == report["last_hash"]
    assert (await cli("audit", "verify", "--file", str(export))).exit_code == 0

    # an edited export is caught, and the entry is named
    rows = [json.loads(line) for line in lines]
    vote = next(r for r in rows if r["kind"] == "review.vote.approve")
    vote["actor"] = "mallory"
    export.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tampered = await cli("audit", "verify", "--file", str(export))
    assert tampered.exit_code == 1
    assert f"audit entry seq {vote['seq']}: content does not match its hash" in tampered.stderr


async def run_unguarded(
    temporal_env: WorkflowEnvironment, settings: Settings, playbook: Playbook, rounds: int
) -> tuple[CampaignState, dict[str, AdDeployment]]:
    """The example brief, 2 variants a round, no guardrails (every face ships), under
    `playbook`; the final state and the campaign's ads at the sandbox."""
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    config = CampaignConfig(
        rounds=rounds, variants_per_round=2, incumbents=1, kpi_window_seconds=0.5
    )
    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(temporal_env.client, res, guardrails=lambda pb: []):
                await stack.enter_async_context(w)
            handle = await submit(temporal_env.client, settings, brief, config, playbook)
            state = await asyncio.wait_for(handle.result(), timeout=180)
        ads = {a.ad_id: a for a in await res.connector("sandbox").list_ads(state.campaign_id)}
    finally:
        await res.aclose()
    return state, ads


async def test_a_rollback_criterion_pauses_live_ads_within_the_window(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    playbook: Playbook = load_playbook().model_copy(deep=True)
    # a criterion every ad meets after its first window: CTR under 90 %
    playbook.rollback = [
        RollbackCriterion(
            id="ctr-floor",
            metric="ctr",
            op="lt",
            threshold=0.9,
            min_impressions=1,
            notify_role="brand-safety",
        )
    ]
    state, ads = await run_unguarded(temporal_env, settings, playbook, rounds=2)
    # both rounds' ads were paused in the window that showed them, none carried over
    assert len(state.rollbacks) == 4
    assert {r.round for r in state.rollbacks} == {0, 1}
    assert all(
        r.criteria == ["ctr-floor"] and r.notify_role == "brand-safety" for r in state.rollbacks
    )
    assert all("ctr-floor: ctr" in r.reason and "< 0.9" in r.reason for r in state.rollbacks)
    assert state.live == [] and state.winner is None
    assert len(ads) == 4 and all(a.status == "paused" for a in ads.values())
    with Catalog(settings.resolved_database_url) as catalog:
        entries = catalog.audit_entries(state.campaign_id)
        assert catalog.verify_audit() == []
    rolled = [e for e in entries if e.kind == "rollback.paused"]
    assert sorted(e.subject for e in rolled) == sorted(r.variant_id for r in state.rollbacks)
    assert all(e.payload["signals"][0]["metric"] == "ctr" for e in rolled)
    paused = [e for e in entries if e.kind == "ad.paused"]
    assert {e.actor for e in paused} == {"playbook:default"}


async def test_a_rollback_on_hides_pauses_ads_and_raises_it_to_compliance(
    temporal_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    """The sandbox reports hides per ad (smooth.yaml's feedback: 0.2% of impressions and
    up); a criterion at 0.05% fires on every ad after its first window."""
    playbook: Playbook = load_playbook().model_copy(deep=True)
    playbook.rollback = [
        RollbackCriterion(
            id="hidden",
            metric="negative_feedback_rate",
            op="gt",
            threshold=0.0005,
            min_impressions=1000,
            notify_role="compliance",
        )
    ]
    state, ads = await run_unguarded(temporal_env, settings, playbook, rounds=1)
    assert len(state.rollbacks) == 2 and state.live == []
    assert all(r.criteria == ["hidden"] and r.notify_role == "compliance" for r in state.rollbacks)
    assert all(
        "negative_feedback_rate" in r.reason and "> 0.0005" in r.reason for r in state.rollbacks
    )
    assert len(ads) == 2 and all(a.status == "paused" for a in ads.values())
    with Catalog(settings.resolved_database_url) as catalog:
        observed = catalog.observations(state.campaign_id)
        entries = catalog.audit_entries(state.campaign_id)
    # the window's hides were recorded with the clicks, and they are what fired
    assert observed and all(o.negative_feedback is not None for o in observed)
    rolled = [e for e in entries if e.kind == "rollback.paused"]
    assert len(rolled) == 2
    for e in rolled:
        (signal,) = e.payload["signals"]
        hides = sum(o.negative_feedback or 0 for o in observed if o.variant_id == e.subject)
        shown = sum(o.impressions for o in observed if o.variant_id == e.subject)
        assert signal["metric"] == "negative_feedback_rate"
        assert signal["value"] == pytest.approx(hides / shown) and signal["value"] > 0.0005
    # the campaign report shows the compliance reviewer what fired, why, and who was told
    json_path, html_path = write_report(settings, state.campaign_id, tmp_path / "report")
    shown = json.loads(json_path.read_text())["rollbacks"]
    assert sorted(r["variant_id"] for r in shown) == sorted(e.subject for e in rolled)
    assert all(r["criteria"] == ["hidden"] and r["notify_role"] == "compliance" for r in shown)
    html = html_path.read_text()
    assert "<h2>Rollbacks</h2>" in html and "negative_feedback_rate" in html
