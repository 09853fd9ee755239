"""GDPR erasure on the real dev server and a real sandbox platform process (issue 7, point 5).

A campaign's worth of persona data is built with the real parts: consent in the registry,
the persona's embedding in the encrypted gallery, a sealed LoRA adapter, generated images
and their signed copies in the asset store, ads on the sandbox platform, a report with
thumbnails. Revoking the consent from the CLI starts ErasureWorkflow; afterwards every byte
on disk (data dir, report folder, sandbox state) is scanned for slices of the images, the
embedding's float32 bytes, the subject key, the prompts, the subject's name and the free
text of the persona campaign's brief. The same scan runs before the erasure and must find
them, so a scan that sees nothing cannot pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker
from typer.testing import CliRunner, Result

from faceloop.briefs import load_brief_and_config
from faceloop.cli import app
from faceloop.connectors.base import AdSpec
from faceloop.connectors.sandbox import SandboxConnector
from faceloop.consent import ConsentRecord, ConsentState
from faceloop.erasure import ErasureInput, ErasureReport
from faceloop.errors import FaceloopError, SubjectErasedError
from faceloop.generators.persona import ADAPTER_FILE, TrainResult, open_adapter, store_adapter
from faceloop.guardrails.identity import Gallery, new_identity_key
from faceloop.guardrails.provenance import Ledger
from faceloop.guardrails.settings import GuardrailSettings
from faceloop.messages import StartCampaignInput
from faceloop.models import (
    Asset,
    AudienceSegment,
    CampaignConfig,
    CheckResult,
    Decision,
    FaceParams,
    GuardrailReport,
    Persona,
    Variant,
    Verdict,
)
from faceloop.optimization.study import Optimizer
from faceloop.playbooks.schema import load_playbook
from faceloop.report import build_report
from faceloop.settings import Settings, settings_env
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import ERASED, Catalog
from faceloop.storage.keys import SubjectKeyStore
from faceloop.workflows.campaign_activities import CampaignActivities
from faceloop.workflows.client import start_erasure
from faceloop.workflows.erasure import ErasureWorkflow
from faceloop.workflows.erasure_activities import ErasureActivities
from faceloop.workflows.worker import Resources, build_workers

ROOT = Path(__file__).resolve().parents[2]
PERSONA = "ada"
SUBJECT_NAME = "Ada Lovelace-Example"
PROMPT_MARK = "ada-marker-7f3c"
# the persona campaign's brief in the marketer's words: every free-text field names Ada
BRIEF_TEXT = {
    "brief product": "Ada Lovelace-Example signature hand cream 91c2",
    "brief message": "Ada Lovelace-Example trusts it since her accident in Kiel 91c2",
    "brief tone": "as Ada Lovelace-Example talks 91c2",
    "brief constraint": "never show the scar on Ada's left hand 91c2",
    "brief audience": "neighbours of Ada Lovelace-Example in Kiel 91c2",
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def sandbox(
    tmp_path: Path, start_sandbox: Callable[[Path], contextlib.AbstractContextManager[str]]
) -> Iterator[tuple[str, Path]]:
    """A sandbox platform process of this test, so its state file can be scanned."""
    state = tmp_path / "sandbox" / "sandbox.db"
    with start_sandbox(state) as url:
        yield url, state


@pytest.fixture
def esettings(settings: Settings, sandbox: tuple[str, Path]) -> Settings:
    return settings.model_copy(
        update={"sandbox_url": sandbox[0], "identity_key": SecretStr(new_identity_key())}
    )


def env_of(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings_env(settings)}


# --------------------------------------------------------------------------- the data


@dataclass
class World:
    persona_campaign: str
    control_campaign: str
    persona_assets: list[str]
    control_assets: list[str]
    adapter_id: str
    embedding: np.ndarray
    subject_key: bytes
    needles: dict[str, bytes] = field(default_factory=dict)
    control_needles: dict[str, bytes] = field(default_factory=dict)
    sealed_adapter: bytes = b""
    persona_ads: list[str] = field(default_factory=list)
    control_ads: list[str] = field(default_factory=list)
    scan_roots: list[Path] = field(default_factory=list)


def _slice(data: bytes, n: int = 48) -> bytes:
    mid = len(data) // 2
    return data[mid : mid + n]


async def build_world(settings: Settings, tmp: Path, sandbox_state: Path) -> World:
    catalog = Catalog(settings.resolved_database_url)
    store = AssetStore(settings.resolved_asset_root)
    keys = SubjectKeyStore(catalog)
    gs = GuardrailSettings(settings)
    rng = np.random.default_rng(7)
    try:
        consent = ConsentRecord(
            consent_id="c-ada",
            persona_id=PERSONA,
            subject_name=SUBJECT_NAME,
            scope=["ads", "persona_training"],
            markets=["DE", "FR", "NL"],
            expires=dt.date.today() + dt.timedelta(days=365),
            evidence_sha256="e" * 64,
        )
        catalog.record_consent(consent, "dpo")

        # the persona's reference embedding, sealed under its key in the encrypted gallery
        emb = rng.normal(size=128).astype(np.float32)
        emb /= np.linalg.norm(emb)
        gallery = Gallery(gs.gallery_path, gs.identity_key_value(), subject_keys=keys)
        gallery.enroll("someone-real", [rng.normal(size=128).astype(np.float32)], "real")
        gallery.enroll(PERSONA, [emb], "persona")

        # a persona LoRA adapter, sealed in the asset store
        from safetensors.numpy import save_file

        adapter_dir = tmp / "train-out"
        adapter_dir.mkdir()
        save_file(
            {"unet.down.lora_A.weight": rng.normal(size=(64, 64)).astype(np.float32)},
            str(adapter_dir / ADAPTER_FILE),
        )
        clear_adapter = (adapter_dir / ADAPTER_FILE).read_bytes()
        stored = store_adapter(
            store,
            TrainResult(
                losses=[1.0],
                loss_before=1.0,
                loss_after=0.9,
                adapter_dir=adapter_dir,
                meta={"kind": "persona_lora", "persona_id": PERSONA, "consent_id": "c-ada"},
            ),
            keys,
        )

        brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
        persona_brief = brief.model_copy(
            update={
                "persona": Persona(persona_id=PERSONA, consent_ref="c-ada"),
                "product": BRIEF_TEXT["brief product"],
                "message": BRIEF_TEXT["brief message"],
                "tone": BRIEF_TEXT["brief tone"],
                "constraints": [BRIEF_TEXT["brief constraint"]],
                "audience": [
                    AudienceSegment(
                        name=s.name, share=s.share, description=BRIEF_TEXT["brief audience"]
                    )
                    for s in brief.audience
                ],
            }
        )
        config = CampaignConfig(rounds=1, variants_per_round=3, incumbents=1)
        pc, cc = f"persona-{uuid.uuid4().hex[:6]}", f"control-{uuid.uuid4().hex[:6]}"
        # recorded as the campaign workflow's first activity records them: the catalog row
        # and the brief.submitted audit entry
        starter = CampaignActivities(catalog, Optimizer(f"sqlite:///{tmp / 'optuna-world.db'}"))
        for cid, b in ((pc, persona_brief), (cc, brief)):
            starter._start(
                StartCampaignInput(
                    campaign_id=cid, brief=b, config=config, playbook=load_playbook()
                )
            )
        ledger = Ledger(gs.ledger_path)
        sandbox = SandboxConnector(settings.resolved_sandbox_url)
        world = World(pc, cc, [], [], stored.asset_id, emb, catalog.subject_key(PERSONA) or b"")
        world.sealed_adapter = store.get_bytes(stored.uri)
        try:
            for cid, n, deployed in ((pc, 3, 2), (cc, 1, 1)):
                cbrief = persona_brief if cid == pc else brief
                await sandbox.ensure_campaign(cid, cbrief.audience)
                for i in range(n):
                    vid = f"{cid}-r0-v{i}"
                    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                    raw_id, _ = store.put_image(rgb)
                    signed_id, signed_uri = store.put_image(rgb ^ 1)  # the "signed" copy
                    link = {"asset_id": raw_id, "signed_asset_id": signed_id, "variant_id": vid}
                    ledger.record({**link, "campaign_id": cid, "payload": "0" * 8})
                    ids = [raw_id, signed_id]
                    (world.persona_assets if cid == pc else world.control_assets).extend(ids)
                    v = Variant(
                        variant_id=vid,
                        campaign_id=cid,
                        round=0,
                        trial_number=i,
                        params=FaceParams(skin_tone=1 + i),
                        seed=i,
                        prompt=f"studio portrait, {PROMPT_MARK if cid == pc else 'generic'} {i}",
                        negative_prompt="blurry",
                        disclosure="AI-generated image",
                        asset=Asset(
                            asset_id=signed_id,
                            uri=signed_uri,
                            width=64,
                            height=64,
                            generator="dcgan",
                            model_version="v1",
                            seed=i,
                        ),
                        report=GuardrailReport(
                            asset_id=raw_id,
                            checks=[
                                CheckResult(
                                    name="identity",
                                    verdict=Verdict.passed,
                                    score=0.1,
                                    evidence={"persona_similarity": 0.8},
                                )
                            ],
                        ),
                        decision=Decision.deploy,
                        decision_reason="approved",
                    )
                    if i < deployed:
                        ad = await sandbox.deploy(
                            AdSpec(
                                campaign_id=cid,
                                variant_id=vid,
                                asset_id=signed_id,
                                creative_uri=signed_uri,
                                params=v.params,
                                headline=cbrief.message,
                                disclosure=v.disclosure,
                            )
                        )
                        catalog.record_deployment(vid, signed_id, ad.ad_id, "sandbox", cid)
                        v = v.model_copy(update={"ad_id": ad.ad_id, "live": True})
                        (world.persona_ads if cid == pc else world.control_ads).append(ad.ad_id)
                    catalog.upsert_variant(v)
        finally:
            await sandbox.aclose()
        out = tmp / "out"
        build_report(catalog, store, pc, out / "persona")
        build_report(catalog, store, cc, out / "control")

        def needles(assets: list[str], report_dir: Path) -> dict[str, bytes]:
            found = {}
            for a in assets:
                (path,) = store.files_of(a)
                found[f"asset {a[:8]}"] = _slice(path.read_bytes())
            for thumb in sorted((report_dir / "images").glob("*.png")):
                found[f"thumbnail {thumb.name[:8]}"] = _slice(thumb.read_bytes())
            return found

        world.needles = needles(world.persona_assets, out / "persona")
        world.needles |= {
            "embedding float32": emb.tobytes(),
            "embedding first 8 floats": emb[:8].tobytes(),
            "subject key": world.subject_key,
            "adapter (sealed)": _slice(world.sealed_adapter),
            "adapter (clear)": _slice(clear_adapter),
            "prompt": PROMPT_MARK.encode(),
            "subject name": SUBJECT_NAME.encode(),
            "creative uri": store.path_of(
                catalog.get_variant(f"{pc}-r0-v0").asset.uri  # type: ignore[union-attr]
            ).name.encode(),
            **{name: text.encode() for name, text in BRIEF_TEXT.items()},
        }
        world.control_needles = needles(world.control_assets, out / "control")
        world.scan_roots = [settings.resolved_home, out, sandbox_state.parent]
        return world
    finally:
        catalog.close()


def scan(roots: list[Path], needles: dict[str, bytes]) -> dict[str, list[str]]:
    """Which needles occur in which files, reading every byte of every file under roots."""
    hits: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            for name, needle in needles.items():
                if needle in data:
                    hits.setdefault(name, []).append(str(path.relative_to(root.parent)))
    return hits


# --------------------------------------------------------------------------- tests


async def test_after_erasure_no_byte_of_the_persona_can_be_read_back(
    temporal_env: WorkflowEnvironment,
    esettings: Settings,
    sandbox: tuple[str, Path],
    tmp_path: Path,
) -> None:
    world = await build_world(esettings, tmp_path, sandbox[1])
    gs = GuardrailSettings(esettings)
    backup = tmp_path / "backup"  # copies made before the erasure, outside the scanned roots
    backup.mkdir()
    shutil.copy(gs.gallery_path, backup / "gallery.enc")

    # the scan sees what is there: every slice is found before the erasure, except what
    # was never stored in the clear (the embedding's float32 bytes, the clear adapter)
    before = scan(world.scan_roots, world.needles)
    never_clear = {"embedding float32", "embedding first 8 floats", "adapter (clear)"}
    assert set(world.needles) - set(before) == never_clear, before
    assert any("faceloop.db" in f for f in before["subject key"]), before["subject key"]
    assert any("sandbox.db" in f for f in before["creative uri"]), before["creative uri"]
    # the brief's text is in the exported report (and the ad's copy), never in the catalog:
    # its row and its brief.submitted audit entry hold it sealed under the campaign's key
    for name in BRIEF_TEXT:
        assert any("report.json" in f for f in before[name]), before[name]
        assert not any("faceloop.db" in f for f in before[name]), before[name]
    assert any("sandbox.db" in f for f in before["brief message"]), before["brief message"]
    catalog = Catalog(esettings.resolved_database_url)
    keys = SubjectKeyStore(catalog)
    assert Gallery(gs.gallery_path, gs.identity_key_value(), keys).similarity_to(
        world.embedding, PERSONA
    ) == pytest.approx(1.0, abs=1e-5)

    runner = CliRunner()
    env = env_of(esettings)

    async def cli(*args: str) -> Result:
        # the CLI runs its own event loop: give it a thread
        return await asyncio.to_thread(runner.invoke, app, list(args), env=env)

    res = Resources.open(esettings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(temporal_env.client, res, queues=["main"]):
                await stack.enter_async_context(w)
            t0 = time.monotonic()
            revoked = await cli(
                "consent", "revoke", "c-ada", "--reason", "subject withdrew consent",
                "--by", "dpo", "--ticket", "DSR-1", "--wait", "--json",
            )  # fmt: skip
            wall = time.monotonic() - t0
            assert revoked.exit_code == 0, revoked.output
            out = json.loads(revoked.stdout)
            assert out["erasure"]["workflow_id"] == f"erase-persona-{PERSONA}"
            report = ErasureReport.model_validate(out["erasure"]["report"])

            again = await cli("erase", "--persona", PERSONA, "--wait", "--json", "--by", "dpo")
            assert again.exit_code == 0, again.output
            second = ErasureReport.model_validate_json(again.stdout)
            table = await cli("erase", "--persona", PERSONA, "--wait")
            assert table.exit_code == 0 and "nothing left to remove" in table.stdout
            # every run of the persona's erasure replays on the workflow code (determinism)
            client, query = temporal_env.client, f"WorkflowId = 'erase-persona-{PERSONA}'"
            for _ in range(50):  # visibility is eventually consistent
                runs = [wf.run_id async for wf in client.list_workflows(query)]
                if len(runs) == 3:
                    break
                await asyncio.sleep(0.1)
            assert len(runs) == 3
            replayer = Replayer(workflows=[ErasureWorkflow], data_converter=pydantic_data_converter)
            for run_id in runs:
                handle = client.get_workflow_handle(f"erase-persona-{PERSONA}", run_id=run_id)
                await replayer.replay_workflow(await handle.fetch_history())
    finally:
        await res.aclose()

    removed = {s.store: s.removed for s in report.stores}
    assert removed == {
        "ads:sandbox": 2,
        "asset_store": 7,  # 3 images + 3 signed copies + the adapter
        "exports": 5,  # 3 thumbnails + report.json + report.html
        "catalog": 5,  # 3 variants + 1 consent record + 1 brief
        "key_store": 2,  # the persona's key and its campaign's
        "gallery": 1,
        "catalog_on_disk": 0,
    }, report.stores
    assert report.incomplete == [] and report.campaign_ids == [world.persona_campaign]
    assert sorted(next(s for s in report.stores if s.store == "asset_store").ids) == sorted(
        [*world.persona_assets, world.adapter_id]
    )
    assert 0 < report.duration_s < wall
    # idempotent: the second run finds everything gone and removes nothing
    assert second.removed == 0 and second.incomplete == []
    assert {s.store for s in second.stores} == set(removed)

    # no byte left: not in the asset store, the report folder, the catalog file or its WAL,
    # the gallery, the key store, the sandbox platform's state file
    after = scan(world.scan_roots, world.needles)
    assert after == {}, after
    # ... while the other campaign's data is untouched (the scan still finds it)
    assert set(scan(world.scan_roots, world.control_needles)) == set(world.control_needles)

    # decrypt attempts fail: on the live gallery (entry gone) and on copies made before
    live = Gallery(gs.gallery_path, gs.identity_key_value(), keys)
    assert live.names("persona") == [] and live.names("real") == ["someone-real"]
    old = Gallery(backup / "gallery.enc", gs.identity_key_value(), keys)
    assert old.names("persona") == [PERSONA]
    with pytest.raises(SubjectErasedError, match="subject erased"):
        old.similarity_to(world.embedding, PERSONA)
    with pytest.raises(SubjectErasedError, match="subject erased"):
        keys.open(PERSONA, world.sealed_adapter, "lora")
    store = AssetStore(esettings.resolved_asset_root)
    assert store.files_of(world.adapter_id) == []
    with pytest.raises(FaceloopError):
        open_adapter(store, f"file://{store.root}/{world.adapter_id[:2]}/x.safetensors.enc", keys)

    # the catalog keeps ids and hashes, and says what happened
    variants = catalog.variants(world.persona_campaign)
    assert len(variants) == 3 and all(v.erased_at and not v.prompt for v in variants)
    assert all(v.asset and v.asset.asset_id in world.persona_assets for v in variants)
    assert all(v.erased_at is None for v in catalog.variants(world.control_campaign))
    # the brief reads as erased; the control campaign's reads as written
    erased = catalog.get_campaign(world.persona_campaign)
    assert erased is not None and erased.brief_erased_at is not None
    assert (erased.brief.product, erased.brief.message) == (ERASED, ERASED)
    assert erased.brief.markets == ["DE", "FR", "NL"]
    control = catalog.get_campaign(world.control_campaign)
    assert control is not None and control.brief_erased_at is None
    assert control.brief.product == "Lumen Daily SPF 50 moisturiser"
    (c,) = catalog.consents(PERSONA)
    assert c.subject_name == "" and c.revoked_reason == "subject withdrew consent"
    assert catalog.consent_status(PERSONA, ["DE"]).state is ConsentState.revoked
    assert catalog.verify_audit() == []
    kinds = [e.kind for e in catalog.audit_entries()]
    assert kinds.count("erasure.started") == 3 and kinds.count("erasure.completed") == 3
    done = next(e for e in catalog.audit_entries() if e.kind == "erasure.completed")
    assert done.subject == f"persona:{PERSONA}" and done.actor == "dpo"
    assert done.payload["ticket"] == "DSR-1"
    assert done.payload["stores"]["asset_store"]["removed"] == 7
    assert "ids" not in done.payload["stores"]["exports"]  # paths are not audit material
    assert SUBJECT_NAME not in json.dumps([e.payload for e in catalog.audit_entries()])
    catalog.close()

    # status and report say so: the product reads "[erased]", nothing crashes
    status = await cli("status", world.persona_campaign, "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)[0]["product"] == ERASED
    rebuilt = await cli("report", world.persona_campaign, "--out", str(tmp_path / "after"))
    assert rebuilt.exit_code == 0, rebuilt.output
    data = json.loads((tmp_path / "after" / "report.json").read_text())
    assert data["brief"]["product"] == ERASED and data["brief"]["message"] == ERASED

    async with SandboxConnector(esettings.resolved_sandbox_url) as conn:
        ads = await conn.list_ads(world.persona_campaign)
        assert {a.ad_id: a.status for a in ads} == dict.fromkeys(world.persona_ads, "removed")
        control = await conn.list_ads(world.control_campaign)
        assert [a.status for a in control] == ["active"]


async def test_a_second_request_attaches_to_the_running_erasure(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    """No worker polls this queue, so the first erasure stays running while the second
    request comes in: it attaches instead of starting a duplicate."""
    client = temporal_env.client
    inp = ErasureInput(kind="asset", target=uuid.uuid4().hex * 2, requested_by="dpo")
    first, attached = await start_erasure(client, settings, inp)
    assert not attached and first.id == f"erase-asset-{inp.target}"
    second, attached = await start_erasure(client, settings, inp)
    assert attached and second.result_run_id == first.result_run_id
    desc = await first.describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING
    await first.terminate("test done")


class CrashOnce(ErasureActivities):
    """Real erasure activities whose file step dies once, after it removed one file and
    before the next, as a worker crash mid-step would (a test double for the crash only)."""

    crashes = 0
    removed = 0

    def _delete_asset(self, asset_id: str) -> list[str]:
        if type(self).removed == 1 and type(self).crashes == 0:
            type(self).crashes += 1
            raise RuntimeError("worker died while deleting files")
        gone = super()._delete_asset(asset_id)
        type(self).removed += bool(gone)
        return gone


async def test_a_crash_mid_step_resumes_and_finishes_the_job(
    temporal_env: WorkflowEnvironment,
    esettings: Settings,
    sandbox: tuple[str, Path],
    tmp_path: Path,
) -> None:
    world = await build_world(esettings, tmp_path, sandbox[1])
    control = world.control_assets[0]  # erase one asset of the control campaign
    client = temporal_env.client
    queue = f"erase-{uuid.uuid4().hex[:8]}"
    res = Resources.open(esettings)
    acts = CrashOnce.from_settings(esettings, res.catalog, res.store, res.connector)
    try:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[ErasureWorkflow],
            activities=acts.activities(),
        ):
            handle = await client.start_workflow(
                ErasureWorkflow.run,
                ErasureInput(kind="asset", target=control, requested_by="dpo"),
                id=f"erase-asset-{control}-{uuid.uuid4().hex[:4]}",
                task_queue=queue,
            )
            report = await asyncio.wait_for(handle.result(), timeout=120)
            history = await handle.fetch_history()
    finally:
        await res.aclose()
    assert CrashOnce.crashes == 1
    files = next(s for s in report.stores if s.store == "asset_store")
    # the unsigned image and its signed copy: one removed before the crash, one after it,
    # and the resumed attempt reports both (from the crashed attempt's last heartbeat)
    assert sorted(files.ids) == sorted(world.control_assets) and files.removed == 2
    assert AssetStore(esettings.resolved_asset_root).files_of(control) == []
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert max(attempts) == 2
    assert {s.store: s.removed for s in report.stores}["ads:sandbox"] == 1
    assert {s.store: s.removed for s in report.stores}["catalog"] == 1
    assert "key_store" not in {s.store for s in report.stores}  # an asset has no subject key
    # and the history replays on the workflow code (determinism)
    replayer = Replayer(workflows=[ErasureWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


async def test_a_campaign_erasure_takes_the_campaign_whole_and_nothing_else(
    temporal_env: WorkflowEnvironment,
    esettings: Settings,
    sandbox: tuple[str, Path],
    tmp_path: Path,
) -> None:
    """`faceloop erase --campaign` on the control campaign: its brief's text, variants,
    images and ads go and its key is shredded; the persona and its campaign stay."""
    world = await build_world(esettings, tmp_path, sandbox[1])
    cid = world.control_campaign
    env = env_of(esettings)
    res = Resources.open(esettings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(temporal_env.client, res, queues=["main"]):
                await stack.enter_async_context(w)
            done = await asyncio.to_thread(
                CliRunner().invoke,
                app,
                ["erase", "--campaign", cid, "--wait", "--json", "--ticket", "DSR-2"],
                env=env,
            )
            assert done.exit_code == 0, done.output
            report = ErasureReport.model_validate_json(done.stdout)
            handle = temporal_env.client.get_workflow_handle(f"erase-campaign-{cid}")
            history = await handle.fetch_history()
            unknown = await asyncio.to_thread(
                CliRunner().invoke,
                app,
                ["erase", "--campaign", "no-such-campaign", "--wait"],
                env=env,
            )
    finally:
        await res.aclose()
    removed = {s.store: s.removed for s in report.stores}
    assert removed == {
        "ads:sandbox": 1,
        "asset_store": 2,  # the image and its signed copy
        "exports": 3,  # a thumbnail + report.json + report.html
        "catalog": 2,  # 1 variant + 1 brief
        "key_store": 1,
        "catalog_on_disk": 0,
    }, report.stores
    assert next(s for s in report.stores if s.store == "key_store").ids == [f"campaign:{cid}"]
    assert report.incomplete == [] and report.campaign_ids == [cid]
    catalog = Catalog(esettings.resolved_database_url)
    try:
        row = catalog.get_campaign(cid)
        assert row is not None and row.brief.product == ERASED and row.brief_erased_at
        kept = catalog.get_campaign(world.persona_campaign)
        assert kept is not None and kept.brief.product == BRIEF_TEXT["brief product"]
        assert catalog.subject_key(PERSONA) == world.subject_key
        assert all(v.erased_at is None for v in catalog.variants(world.persona_campaign))
        assert catalog.verify_audit() == []
        done_entry = next(e for e in catalog.audit_entries() if e.kind == "erasure.completed")
        assert done_entry.subject == f"campaign:{cid}"
    finally:
        catalog.close()
    assert set(scan(world.scan_roots, world.control_needles)) == set()
    assert set(scan(world.scan_roots, world.needles)) >= set(BRIEF_TEXT)
    # an unknown id is refused, not recorded as erased
    assert unknown.exit_code == 2 and "'no-such-campaign' is not in the catalog" in unknown.output
    replayer = Replayer(workflows=[ErasureWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
