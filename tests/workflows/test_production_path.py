"""A persona campaign on the real Temporal dev server whose production path (a brief's
`campaign.generation`) is a tiny random SD 1.5 pipeline in a local folder: the generate
step loads the persona's sealed adapter, and the pixels prove it; a withdrawn consent
refuses the batch and blocks the campaign."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from temporalio.testing import WorkflowEnvironment

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from faceloop.briefs import load_brief_and_config
from faceloop.consent import ConsentRecord
from faceloop.generation import GenerationConfig
from faceloop.generators.base import GenerationRequest
from faceloop.generators.diffusion import DiffusersGenerator
from faceloop.generators.persona import (
    ADAPTER_FILE,
    TrainResult,
    open_adapter,
    store_adapter,
    train_persona_lora,
)
from faceloop.generators.production import source_hash
from faceloop.generators.tiny import tiny_pipeline
from faceloop.guardrails.identity import IdentityGuardrail
from faceloop.models import Brief, CampaignConfig, CampaignState, Persona
from faceloop.playbooks.schema import load_playbook
from faceloop.settings import Settings
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog
from faceloop.storage.keys import SubjectKeyStore
from faceloop.workflows.client import submit
from faceloop.workflows.worker import Resources, build_workers

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STEPS = 2
TOKEN_PROMPT = "a photo of sks person"  # what train_persona_lora teaches the adapter


def record(consent_id: str, scope: list[str]) -> ConsentRecord:
    return ConsentRecord(
        consent_id=consent_id,
        persona_id="ada",
        subject_name="Ada Example",
        scope=scope,
        markets=["DE"],
        expires=dt.date.today() + dt.timedelta(days=90),
        evidence_sha256="cd" * 32,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny-sd15")
    tiny_pipeline("sd15").save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def trained(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    rng = np.random.default_rng(0)
    face = np.zeros((64, 64, 3), np.uint8)
    face[16:48, 20:44] = (200, 160, 130)
    images = [np.clip(face + rng.integers(0, 20, face.shape), 0, 255).astype(np.uint8)] * 3
    pipe = DiffusersGenerator(str(model_dir), device="cpu").pipeline
    out = tmp_path_factory.mktemp("adapter")
    train = record("c-ada-train", ["persona_training"])
    return train_persona_lora(pipe, images, train, steps=5, rank=4, lr=3e-2, out_dir=out)


def store_trained(settings: Settings, trained: TrainResult, catalog: Catalog) -> str:
    """Seal a copy of the trained adapter into this test's asset store; its asset id."""
    copy = settings.resolved_home / "adapter-out"
    copy.mkdir(parents=True)
    (copy / ADAPTER_FILE).write_bytes((trained.adapter_dir / ADAPTER_FILE).read_bytes())
    result = TrainResult(
        trained.losses, trained.loss_before, trained.loss_after, copy, trained.meta
    )
    store = AssetStore(settings.resolved_asset_root)
    return store_adapter(store, result, SubjectKeyStore(catalog)).asset_id


def persona_brief() -> Brief:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    return brief.model_copy(
        update={"markets": ["DE"], "persona": Persona(persona_id="ada", consent_ref="c-ada-ads")}
    )


def persona_config(model_dir: Path) -> CampaignConfig:
    # the deployment default stays the embedded DCGAN: the brief picks the diffusers path
    return CampaignConfig(
        rounds=1,
        variants_per_round=2,
        incumbents=1,
        kpi_window_seconds=0.5,
        image_size=64,
        generation=GenerationConfig(backend="diffusers", model=str(model_dir), steps=STEPS),
    )


async def run_campaign(
    env: WorkflowEnvironment, settings: Settings, brief: Brief, config: CampaignConfig
) -> CampaignState:
    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            # the identity guardrail alone: it is the check that compares with the persona
            workers = build_workers(env.client, res, guardrails=lambda pb: [IdentityGuardrail()])
            for w in workers:
                await stack.enter_async_context(w)
            # the fixture's playbook: flagged variants wait 3 s for a reviewer, not a day
            playbook = load_playbook(settings.playbook)
            handle = await submit(env.client, settings, brief, config, playbook)
            return await asyncio.wait_for(handle.result(), timeout=300)
    finally:
        await res.aclose()


async def test_a_persona_campaign_generates_with_its_adapter(
    temporal_env: WorkflowEnvironment, settings: Settings, model_dir: Path, trained: TrainResult
) -> None:
    with Catalog(settings.resolved_database_url) as catalog:
        catalog.record_consent(record("c-ada-train", ["persona_training"]), "dpo")
        catalog.record_consent(record("c-ada-ads", ["ads"]), "dpo")
        adapter_id = store_trained(settings, trained, catalog)

    state = await run_campaign(temporal_env, settings, persona_brief(), persona_config(model_dir))
    assert state.stage == "done", state.blocked_reason
    assert state.config.generation is not None and state.config.generation.backend == "diffusers"

    store = AssetStore(settings.resolved_asset_root)
    with Catalog(settings.resolved_database_url) as catalog:
        variants = catalog.variants(state.campaign_id)
        audit = catalog.audit_entries(state.campaign_id)
        keys = SubjectKeyStore(catalog)
        weights = open_adapter(store, f"{store.root.as_uri()}/{adapter_id[:2]}/{adapter_id}"
                               ".safetensors.enc", keys)  # fmt: skip
    assert len(variants) == 2
    model_hash = source_hash(str(model_dir))
    for v in variants:
        assert v.asset is not None
        assert v.asset.model_version == (
            f"diffusers:{model_dir}@{model_hash}+persona[ada:adapter={adapter_id}@1]"
        )
    loaded = [e for e in audit if e.kind == "generate.persona_adapter"]
    assert len(loaded) == 1 and loaded[0].payload["adapter_id"] == adapter_id
    assert loaded[0].payload["trained_under"] == "c-ada-train"
    assert loaded[0].payload["granted_by"] == ["c-ada-ads"]

    # the identity guardrail checked each image against the persona (noise images have no
    # face, and the persona has no enrolled reference here: it says so and escalates)
    for v in variants:
        assert v.report is not None
        (identity,) = [c for c in v.report.checks if c.name == "identity"]
        assert identity.evidence["persona_id"] == "ada"
        assert "persona 'ada' has no enrolled reference" in str(identity.evidence["reason"])

    # the pixels: the same seed and prompt on the same folder without the adapter differ;
    # with the adapter (opened from the store like the worker did) they match
    v = variants[0]
    assert v.asset is not None
    got = store.get_image(v.asset.uri)
    req = GenerationRequest(
        params=v.params, seed=v.asset.seed, size=64, prompt=f"{TOKEN_PROMPT}, {v.prompt}"
    )
    gen = DiffusersGenerator(str(model_dir), steps=STEPS, device="cpu")
    (without,) = gen.generate([req])
    gen.load_lora("persona-ada", weights)
    (with_adapter,) = gen.generate([req])
    assert np.abs(got.astype(int) - without.astype(int)).max() > 8
    assert np.abs(got.astype(int) - with_adapter.astype(int)).max() <= 1


async def test_a_withdrawn_adapter_consent_blocks_at_generate(
    temporal_env: WorkflowEnvironment, settings: Settings, model_dir: Path, trained: TrainResult
) -> None:
    # the ads consent the round's check reads is valid; the consent the adapter was trained
    # under is withdrawn: the generate step refuses, non-retryable, and the campaign blocks
    with Catalog(settings.resolved_database_url) as catalog:
        catalog.record_consent(record("c-ada-train", ["persona_training"]), "dpo")
        catalog.record_consent(record("c-ada-ads", ["ads"]), "dpo")
        adapter_id = store_trained(settings, trained, catalog)
        catalog.revoke_consent("c-ada-train", "withdrawn from training", "dpo")

    state = await run_campaign(temporal_env, settings, persona_brief(), persona_config(model_dir))
    assert state.stage == "blocked"
    assert state.blocked_reason.startswith("consent: persona 'ada': consent c-ada-train")
    assert "adapter was not loaded" in state.blocked_reason
    with Catalog(settings.resolved_database_url) as catalog:
        # proposed and planned, never generated: no variant has an image
        assert all(v.asset is None for v in catalog.variants(state.campaign_id))
        kinds = [e.kind for e in catalog.audit_entries(state.campaign_id)]
        refused = [
            e for e in catalog.audit_entries(state.campaign_id)
            if e.kind == "generate.consent_refused"
        ]  # fmt: skip
    assert "generate.persona_adapter" not in kinds and kinds[-1] == "campaign.blocked"
    assert len(refused) == 1 and refused[0].payload["adapter_id"] == adapter_id
