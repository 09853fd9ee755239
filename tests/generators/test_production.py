"""The production path on the GPU worker, with a tiny random SD 1.5 pipeline saved to a local
folder: one generator per config (LRU), hashes recorded, LoRA / ControlNet / aspect ratio
honoured, and a persona adapter loaded only while consent holds."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from temporalio.exceptions import ApplicationError

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from faceloop.consent import ConsentRecord
from faceloop.errors import GenerationError
from faceloop.generation import ControlNetConfig, GenerationConfig, LoraRef
from faceloop.generators.activities import GeneratorActivities
from faceloop.generators.base import GenerationRequest
from faceloop.generators.diffusion import DiffusersGenerator
from faceloop.generators.persona import (
    ADAPTER_FILE,
    StoredAdapter,
    TrainResult,
    store_adapter,
    train_persona_lora,
)
from faceloop.generators.production import ProductionPath, source_hash
from faceloop.generators.registry import get_generator
from faceloop.generators.tiny import tiny_pipeline
from faceloop.messages import GenerateInput
from faceloop.models import FaceParams, Persona, Variant
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog
from faceloop.storage.keys import SubjectKeyStore

STEPS = 2


def _faces(n: int = 3, size: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = np.zeros((size, size, 3), np.uint8)
    base[16:48, 20:44] = (200, 160, 130)
    return [
        np.clip(base + rng.integers(0, 20, base.shape), 0, 255).astype(np.uint8) for _ in range(n)
    ]


def consent(markets: list[str] | None = None) -> ConsentRecord:
    return ConsentRecord(
        consent_id="c-ada-1",
        persona_id="ada",
        subject_name="Ada Example",
        scope=["persona_training", "ads"],
        markets=markets or ["DE"],
        expires=dt.date.today() + dt.timedelta(days=90),
        evidence_sha256="ab" * 32,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny-sd15")
    tiny_pipeline("sd15").save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A style LoRA as a plain .safetensors file (a few training steps on the tiny UNet)."""
    out = tmp_path_factory.mktemp("brand-lora")
    result = train_persona_lora(
        tiny_pipeline("sd15"), _faces(), consent(), steps=3, rank=4, lr=3e-2, out_dir=out
    )
    return result.adapter_dir / ADAPTER_FILE


def variant(i: int, prompt: str = "a smiling adult") -> Variant:
    return Variant(
        variant_id=f"cmp-r0-t{i}",
        campaign_id="cmp",
        round=0,
        params=FaceParams(),
        seed=100 + i,
        prompt=prompt,
    )


def path_for(model_dir: Path, tmp_path: Path, **kw: Any) -> tuple[ProductionPath, Catalog]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    default = GenerationConfig(backend="diffusers", model=str(model_dir), steps=STEPS)
    store = AssetStore(tmp_path / "assets")
    return ProductionPath(
        get_generator("dcgan"), default, store=store, catalog=catalog, **kw
    ), catalog


def test_one_generator_per_config_least_recently_used_out(model_dir: Path, tmp_path: Path) -> None:
    path, catalog = path_for(model_dir, tmp_path, capacity=1)
    with path.open(GenerationConfig(), campaign_id="a") as run:
        first = run.generator
        assert run.model_version == f"diffusers:{model_dir}@{source_hash(str(model_dir))}"
    # the shape is per request: the same pipeline serves every aspect ratio
    with path.open(GenerationConfig(aspect_ratio="4:5"), campaign_id="a") as run:
        assert run.generator is first and run.aspect_ratio == "4:5"
    with path.open(GenerationConfig(steps=3), campaign_id="a") as run:
        assert run.generator is not first
    with path.open(GenerationConfig(), campaign_id="a") as run:
        assert run.generator is not first  # evicted at capacity 1, built again
    # no config: the worker's default generator, as before configs travelled (a persona
    # campaign of that time too: no adapter, as it was made then)
    with path.open(None, campaign_id="a") as run:
        assert run.generator.name == "dcgan"
    ada = Persona(persona_id="ada", consent_ref="c-ada-1")
    with path.open(None, campaign_id="a", persona=ada) as run:
        assert run.generator.name == "dcgan" and run.adapter is None
    catalog.close()


def test_the_model_hash_covers_every_weight_file(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    for f in model_dir.rglob("*"):
        if f.is_file():
            (copy / f.relative_to(model_dir)).parent.mkdir(parents=True, exist_ok=True)
            (copy / f.relative_to(model_dir)).write_bytes(f.read_bytes())
    assert source_hash(str(copy)) == source_hash(str(model_dir))
    weights = next(copy.glob("unet/*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert source_hash(str(copy)) != source_hash(str(model_dir))
    assert source_hash("acme/model", "f" * 40) == f"rev:{'f' * 40}"
    with pytest.raises(GenerationError, match="neither a local path nor pinned"):
        source_hash("acme/model")


@pytest.mark.slow
def test_loras_aspect_ratio_and_controlnet_are_honoured(
    model_dir: Path, lora_file: Path, tmp_path: Path
) -> None:
    from diffusers import ControlNetModel

    path, catalog = path_for(model_dir, tmp_path)
    req = GenerationRequest(params=FaceParams(), seed=3, size=64, prompt="a face")
    with path.open(GenerationConfig(), campaign_id="c") as run:
        (plain,) = run.generator.generate([req])
    styled = GenerationConfig(loras=[LoraRef(source=str(lora_file), name="brand", weight=0.5)])
    with path.open(styled, campaign_id="c") as run:
        assert isinstance(run.generator, DiffusersGenerator)
        assert run.generator.loras["brand"].weight == 0.5
        digest = hashlib.sha256(lora_file.read_bytes()).hexdigest()
        assert run.model_version.endswith(f"+lora[brand@0.5:sha256:{digest}]")
        (with_lora,) = run.generator.generate([req])
    assert not np.array_equal(plain, with_lora)

    with path.open(GenerationConfig(aspect_ratio="9:16"), campaign_id="c") as run:
        (tall,) = run.generator.generate(
            [req.model_copy(update={"aspect_ratio": run.aspect_ratio})]
        )
    assert tall.shape == (88, 48, 3)

    import torch

    unet = DiffusersGenerator(str(model_dir), device="cpu").pipeline.unet
    net = ControlNetModel.from_unet(unet)
    # a new ControlNet's output convolutions are zero (it starts as a no-op); random ones
    # stand in for trained weights, so the pose reaches the pixels
    torch.manual_seed(0)
    for block in [*net.controlnet_down_blocks, net.controlnet_mid_block]:
        torch.nn.init.normal_(block.weight, std=0.5)
    net_dir = tmp_path / "controlnet"
    net.save_pretrained(net_dir)
    posed = GenerationConfig(
        controlnet=ControlNetConfig(model=str(net_dir), pose_template="headshot-front")
    )
    with path.open(posed, campaign_id="c") as run:
        assert f"+controlnet[{net_dir}@sha256:" in run.model_version
        assert ";pose=headshot-front@1]" in run.model_version
        (pose_img,) = run.generator.generate([req])
    assert pose_img.shape == (64, 64, 3) and not np.array_equal(pose_img, plain)
    catalog.close()


@pytest.fixture(scope="module")
def trained(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A persona adapter trained once on the saved pipeline (its clear file is copied for
    each test, because storing it scrubs the file)."""
    base = DiffusersGenerator(str(model_dir), device="cpu").pipeline
    out = tmp_path_factory.mktemp("persona")
    return train_persona_lora(
        base, _faces(), consent(), steps=5, rank=4, lr=3e-2, seed=0, out_dir=out
    )


@pytest.fixture
def persona_world(
    model_dir: Path, trained: TrainResult, tmp_path: Path
) -> tuple[GeneratorActivities, Catalog, str]:
    """A consented persona with its adapter sealed in the store; the activities of a GPU
    worker whose default path is the saved pipeline."""
    path, catalog = path_for(model_dir, tmp_path)
    catalog.record_consent(consent(), "dpo")
    assert path.store is not None
    copy = tmp_path / "adapter"
    copy.mkdir()
    (copy / ADAPTER_FILE).write_bytes((trained.adapter_dir / ADAPTER_FILE).read_bytes())
    result = TrainResult(
        trained.losses, trained.loss_before, trained.loss_after, copy, trained.meta
    )
    stored: StoredAdapter = store_adapter(path.store, result, SubjectKeyStore(catalog))
    acts = GeneratorActivities(get_generator("dcgan"), path.store, catalog, production=path)
    return acts, catalog, stored.asset_id


def generate_input(persona: bool = True, **kw: Any) -> GenerateInput:
    return GenerateInput(
        campaign_id="cmp",
        round=0,
        size=64,
        variants=[variant(0), variant(1)],
        generation=GenerationConfig(**kw),
        persona=Persona(persona_id="ada", consent_ref="c-ada-1") if persona else None,
        markets=["DE"],
    )


@pytest.mark.slow
def test_a_persona_batch_loads_the_adapter_and_unloads_it(
    persona_world: tuple[GeneratorActivities, Catalog, str], model_dir: Path
) -> None:
    acts, catalog, adapter_id = persona_world
    out = acts._generate(generate_input(), lambda d, t: None, "run:1")
    for v in out.variants:
        assert v.asset is not None
        assert v.asset.model_version.endswith(f"+persona[ada:adapter={adapter_id}@1]")
    # the fidelity re-seeds may add variant.fidelity entries after it
    (entry,) = [e for e in catalog.audit_entries("cmp") if e.kind == "generate.persona_adapter"]
    assert entry.payload["adapter_id"] == adapter_id
    assert entry.payload["granted_by"] == ["c-ada-1"]

    # the same seed and the same prompt (with the adapter's trained phrase) on the base
    # pipeline without the adapter gives other pixels: the adapter made the difference
    fresh = DiffusersGenerator(str(model_dir), steps=STEPS, device="cpu")
    v0 = out.variants[0]
    assert v0.asset is not None
    req = GenerationRequest(
        params=v0.params, seed=v0.asset.seed, size=64, prompt=f"a photo of sks person, {v0.prompt}"
    )
    (without,) = fresh.generate([req])
    stored = acts.store.get_image(v0.asset.uri)
    assert np.abs(stored.astype(int) - without.astype(int)).max() > 8

    # unloaded afterwards: the cached pipeline makes the base pixels again
    with acts.production.open(GenerationConfig(), campaign_id="cmp") as run:
        assert isinstance(run.generator, DiffusersGenerator) and not run.generator.loras
        (again,) = run.generator.generate([req])
    assert np.abs(again.astype(int) - without.astype(int)).max() <= 1


@pytest.mark.slow
def test_a_withdrawn_consent_refuses_the_batch(
    persona_world: tuple[GeneratorActivities, Catalog, str],
) -> None:
    acts, catalog, adapter_id = persona_world
    catalog.revoke_consent("c-ada-1", "withdrawn by the subject", "dpo")
    with pytest.raises(ApplicationError) as err:
        acts._generate(generate_input(), lambda d, t: None, "run:2")
    assert err.value.type == "ConsentRefused" and err.value.non_retryable
    assert "revoked" in str(err.value) and "adapter was not loaded" in str(err.value)
    assert catalog.variants("cmp") == []
    entry = catalog.audit_entries("cmp")[-1]
    assert entry.kind == "generate.consent_refused" and entry.payload["adapter_id"] == adapter_id


@pytest.mark.slow
def test_a_persona_needs_an_adapter_and_a_backend_that_loads_it(
    persona_world: tuple[GeneratorActivities, Catalog, str],
) -> None:
    acts, _, _ = persona_world
    inp = generate_input()
    wrong = inp.model_copy(
        update={"persona": Persona(persona_id="ada", consent_ref="c-ada-1", adapter="0" * 64)}
    )
    with pytest.raises(ApplicationError, match=r"brief\.persona\.adapter: no adapter 0000"):
        acts._generate(wrong, lambda d, t: None)
    with pytest.raises(ApplicationError, match="cannot load the persona's LoRA adapter"):
        acts._generate(generate_input(backend="dcgan"), lambda d, t: None)
