"""The production path on the GPU worker: the generator a campaign's GenerationConfig names,
built once per config (LRU), and the persona adapter a persona campaign loads for its batch.

What made each image is recorded in its asset's `model_version`, e.g.

    diffusers:/models/sdxl@sha256:9c1e...+lora[brand@0.8:sha256:41aa...]
        +controlnet[/models/openpose@sha256:77b0...;pose=headshot-front@1]
        +persona[ada:adapter=5f2c...@1]

a local model, LoRA or ControlNet by the sha256 of its files (hashed once per build), a hub
one by its pinned revision; a persona adapter by its asset id, which is the sha256 of the
sealed file in the asset store, whose sidecar names the consent it was trained under.

A persona adapter is used only while consent holds: right before the batch, the catalog is
asked again (the workflow asked at the start of the round, but a revocation can land in
between); a refusal raises ConsentRefusedError, which the activity turns non-retryable.
The adapter is opened under the persona's subject key in memory, loaded (peft), used for
the batch and deleted from the pipeline afterwards, also when generation fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceloop.consent import ADS_SCOPE, ConsentState
from faceloop.errors import FaceloopError, GenerationError, InputError
from faceloop.generation import (
    AspectRatio,
    GenerationConfig,
    generation_problems,
    is_hub_id,
    resolve_generation,
)
from faceloop.models import Brief, CampaignConfig, FaceParams, Persona

from .base import Generator
from .registry import GENERATORS, generator_names, get_generator

if TYPE_CHECKING:
    from faceloop.playbooks.schema import Playbook
    from faceloop.settings import Settings
    from faceloop.storage.assets import AssetStore
    from faceloop.storage.catalog import Catalog

__all__ = [
    "AdapterUse",
    "ConsentRefusedError",
    "ProductionPath",
    "Run",
    "campaign_generation",
    "check_generation",
    "source_hash",
]

DEFAULT_CAPACITY = 2  # SDXL in fp16 is ~7 GB: two pipelines fit an 80 GB card with room


class ConsentRefusedError(FaceloopError):
    """The persona's consent does not (any longer) allow its use: nothing was generated."""


# --------------------------------------------------------------------------- submit check


def capabilities(backend: str) -> tuple[bool, frozenset[str], bool]:
    """(loads adapters, aspect ratios, takes a named model) read from the backend's class,
    without building it (a plugin factory that is not a class: the safe defaults)."""
    target = GENERATORS.load(backend)
    return (
        bool(getattr(target, "LOADS_ADAPTERS", False)),
        frozenset(getattr(target, "ASPECT_RATIOS", frozenset({"1:1"}))),
        bool(getattr(target, "NAMED_MODEL", False)),
    )


def check_generation(config: GenerationConfig, *, persona: bool = False) -> list[str]:
    """Every problem of a resolved config, 'field: what; fix', including local paths that
    do not exist here (submit runs where the GPU workers' model folders are mounted too)."""
    if config.backend is None:
        return ["backend: not set; set generation.backend or FACELOOP_GENERATOR"]
    if config.backend not in generator_names():
        return [
            f"backend: unknown generator {config.backend!r}; use one of "
            f"{', '.join(generator_names())} (or install a plugin that registers it)"
        ]
    adapters, shapes, named = capabilities(config.backend)
    problems = generation_problems(
        config, loads_adapters=adapters, aspect_ratios=shapes, named_model=named, persona=persona
    )
    if config.model is not None and not is_hub_id(config.model):
        folder = Path(config.model).expanduser()
        if not (folder / "model_index.json").is_file():
            problems.append(
                f"model: {folder} is not a diffusers pipeline folder (no model_index.json); "
                "point it at one (save_pretrained output) or at a hub id"
            )
    for i, lora in enumerate(config.loras or []):
        if not is_hub_id(lora.source) and not Path(lora.source).expanduser().exists():
            problems.append(
                f"loras.{i}.source: {lora.source} does not exist; give a .safetensors file or "
                "a folder holding pytorch_lora_weights.safetensors"
            )
    cn = config.controlnet
    if cn is not None:
        if not is_hub_id(cn.model) and not (Path(cn.model).expanduser() / "config.json").is_file():
            problems.append(
                f"controlnet.model: {cn.model} is not a ControlNet folder (no config.json); "
                "point it at one or at a hub id"
            )
        if cn.pose_image is not None and not Path(cn.pose_image).expanduser().is_file():
            problems.append(
                f"controlnet.pose_image: {cn.pose_image} is not a file; give a PNG/JPEG pose "
                "map or use pose_template"
            )
    return problems


def campaign_generation(
    settings: Settings, brief: Brief, config: CampaignConfig, playbook: Playbook | None = None
) -> CampaignConfig:
    """The campaign config with its production path resolved (the brief's
    `campaign.generation` over the deployment's settings) and checked, also against the
    playbook's `generation` policy; InputError naming each bad field and its fix, before
    anything starts."""
    resolved = settings.generation_for(config.generation)
    problems = check_generation(resolved, persona=brief.persona is not None)
    if playbook is not None:
        problems += playbook.generation.problems(resolved.backend, resolved.model)
    if problems:
        raise InputError(
            "the production path (the brief's campaign.generation over the FACELOOP_GENERATOR "
            "/ FACELOOP_GENERATION_FILE settings)",
            [f"campaign.generation.{p}" for p in problems],
        )
    return config.model_copy(update={"generation": resolved})


# --------------------------------------------------------------------------- hashes


_hash_cache: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def source_hash(source: str, revision: str | None = None) -> str:
    """'sha256:<hex>' of a local file, or of a folder's files (relative path and content
    hash of each, sorted, hidden files skipped); 'rev:<commit>' for a hub id."""
    path = Path(source).expanduser()
    if path.is_file():
        return f"sha256:{_file_sha256(path)}"
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = f.relative_to(path)
            if any(part.startswith(".") for part in rel.parts):
                continue  # .cache / .git of a hub download: not the weights
            h.update(f"{rel.as_posix()}\0{_file_sha256(f)}\n".encode())
        return f"sha256:{h.hexdigest()}"
    if revision is None:
        raise GenerationError(
            f"{source!r} is neither a local path nor pinned to a hub revision; give a local "
            "path or a revision, so the image records which weights made it"
        )
    return f"rev:{revision}"


# --------------------------------------------------------------------------- the path


@dataclass(frozen=True)
class AdapterUse:
    """A persona adapter loaded for one batch, as recorded with every image it made."""

    persona_id: str
    adapter_id: str  # asset id: sha256 of the sealed file
    trained_under: str  # the consent id in the adapter's sidecar
    granted_by: list[str]  # the consent ids that allowed this use, checked just now
    prompt: str  # the phrase the adapter was trained on ("a photo of sks person")
    weight: float

    @property
    def tag(self) -> str:
        return f"persona[{self.persona_id}:adapter={self.adapter_id}@{self.weight:g}]"


@dataclass
class Run:
    """What one generate activity uses: the generator, the shape, what to record."""

    generator: Generator
    model_version: str
    aspect_ratio: AspectRatio = "1:1"
    adapter: AdapterUse | None = None

    def prompt(self, prompt: str, params: FaceParams) -> str:
        """A persona batch leads each prompt with the adapter's trained phrase (the
        parameters' description stands in for a prompt the plan left empty)."""
        if self.adapter is None or not self.adapter.prompt:
            return prompt
        if not prompt:
            from .diffusion import face_prompt

            prompt = face_prompt(params)[0]
        return f"{self.adapter.prompt}, {prompt}"


@dataclass
class _Built:
    generator: Generator
    model_version: str


@dataclass
class ProductionPath:
    """Builds (and caches, least recently used first out) one generator per config.

    `default` serves inputs that carry no config (campaigns started before configs
    travelled, direct callers); `default_config` fills a config's unset fields.
    Persona campaigns need `store` and `catalog` (adapters, consent, subject keys).
    """

    default: Generator
    default_config: GenerationConfig
    store: AssetStore | None = None
    catalog: Catalog | None = None
    capacity: int = DEFAULT_CAPACITY
    _cache: OrderedDict[str, _Built] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def open(
        self,
        config: GenerationConfig | None,
        *,
        campaign_id: str,
        persona: Persona | None = None,
        markets: Sequence[str] = (),
        audit_key: str | None = None,
    ) -> Iterator[Run]:
        """The generator for the batch, with the persona's adapter loaded for its duration.

        `audit_key` makes the audit entries of a retried attempt land once (the activity
        passes its run and activity id)."""
        with self._lock:  # the GPU worker runs one batch at a time; this keeps it so
            if config is None:
                # a campaign started before production paths travelled (submit now always
                # resolves one): made as it was then, by the default, with no adapter
                yield Run(self.default, self.default.model_version)
                return
            resolved = resolve_generation(self.default_config, config)
            built = self._get(resolved)
            run = Run(built.generator, built.model_version, resolved.shape)
            if persona is None:
                yield run
                return
            weight = 1.0 if resolved.persona_weight is None else resolved.persona_weight
            with self._persona(
                built.generator, persona, markets, campaign_id, weight, audit_key
            ) as use:
                run.adapter = use
                run.model_version = f"{built.model_version}+{use.tag}"
                yield run

    def _get(self, config: GenerationConfig) -> _Built:
        key = config.cache_key()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        built = self._build(config)
        self._cache[key] = built
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
            _free_device_memory()
        return built

    def _build(self, config: GenerationConfig) -> _Built:
        problems = check_generation(config)
        if problems:
            lines = "\n".join(f"  - generation.{p}" for p in problems)
            raise GenerationError(f"the campaign's generation config does not fit:\n{lines}")
        assert config.backend is not None
        _, _, named = capabilities(config.backend)
        if not named:
            # backends with shipped weights are built once per process by the registry
            gen = get_generator(config.backend)
            return _Built(gen, gen.model_version)
        if config.backend != "diffusers":
            raise GenerationError(
                f"backend {config.backend!r} declares NAMED_MODEL but only the diffusers "
                "backend is built from a GenerationConfig here; use backend: diffusers"
            )
        return self._build_diffusers(config)

    def _build_diffusers(self, config: GenerationConfig) -> _Built:
        from .diffusion import DiffusersGenerator

        assert config.model is not None
        version = f"diffusers:{config.model}@{source_hash(config.model, config.revision)}"
        cn = config.controlnet
        pose = None
        pose_tag = ""
        if cn is not None:
            from .poses import load_pose_image, template_pose

            if cn.pose_template is not None:
                pose, pose_tag = template_pose(cn.pose_template), cn.pose_template
            else:
                assert cn.pose_image is not None
                pose = load_pose_image(cn.pose_image)
                pose_tag = f"image:{source_hash(cn.pose_image)}"
            cn_hash = source_hash(cn.model, cn.revision)
            cn_tag = f"+controlnet[{cn.model}@{cn_hash};pose={pose_tag}@{cn.scale:g}]"
        gen = DiffusersGenerator(
            config.model,
            steps=config.steps,
            guidance_scale=5.0 if config.guidance_scale is None else config.guidance_scale,
            revision=config.revision,
            controlnet=cn.model if cn is not None else None,
            controlnet_revision=cn.revision if cn is not None else None,
            controlnet_scale=cn.scale if cn is not None else 1.0,
            pose_image=pose,
        )
        tags = []
        for lora in config.loras or []:
            gen.load_lora(lora.adapter_name, lora.source, lora.weight, revision=lora.revision)
            tags.append(
                f"{lora.adapter_name}@{lora.weight:g}:{source_hash(lora.source, lora.revision)}"
            )
        if tags:
            version += f"+lora[{','.join(tags)}]"
        if cn is not None:
            version += cn_tag
        return _Built(gen, version)

    # ------------------------------------------------------------------ persona

    @contextlib.contextmanager
    def _persona(
        self,
        gen: Generator,
        persona: Persona,
        markets: Sequence[str],
        campaign_id: str,
        weight: float,
        audit_key: str | None,
    ) -> Iterator[AdapterUse]:
        from .diffusion import DiffusersGenerator

        if self.store is None or self.catalog is None:
            raise GenerationError(
                "a persona campaign needs the asset store and catalog on the GPU worker "
                "(ProductionPath(store=..., catalog=...)); build the worker with both"
            )
        if not isinstance(gen, DiffusersGenerator):
            raise GenerationError(
                f"persona {persona.persona_id!r}: the {gen.name} backend cannot load the "
                "persona's LoRA adapter; set generation.backend: diffusers"
            )
        meta = self._adapter_meta(persona)
        granted = self._consent(persona, markets, campaign_id, meta, audit_key)
        from faceloop.storage.keys import SubjectKeyStore

        from .persona import open_adapter

        use = AdapterUse(
            persona_id=persona.persona_id,
            adapter_id=str(meta["asset_id"]),
            trained_under=str(meta.get("consent_id", "")),
            granted_by=granted,
            prompt=str(meta.get("prompt") or ""),
            weight=weight,
        )
        name = f"persona-{persona.persona_id}"
        weights = open_adapter(self.store, str(meta["uri"]), SubjectKeyStore(self.catalog))
        try:
            gen.load_lora(name, weights, weight)
        finally:
            weights.clear()  # the clear tensors live only inside the pipeline from here on
        try:
            self.catalog.audit(
                campaign_id,
                "generate.persona_adapter",
                persona.persona_id,
                "generator",
                {
                    "persona_id": use.persona_id,
                    "adapter_id": use.adapter_id,
                    "trained_under": use.trained_under,
                    "granted_by": use.granted_by,
                    "weight": use.weight,
                },
                key=f"persona-adapter:{audit_key}" if audit_key else None,
            )
            yield use
        finally:
            gen.unload_lora(name)
            _free_device_memory()

    def _adapter_meta(self, persona: Persona) -> dict[str, Any]:
        from .persona import find_adapters

        assert self.store is not None
        found = find_adapters(self.store, persona.persona_id)
        if persona.adapter is not None:
            chosen = [m for m in found if m["asset_id"] == persona.adapter]
            if not chosen:
                raise GenerationError(
                    f"brief.persona.adapter: no adapter {persona.adapter} of persona "
                    f"{persona.persona_id!r} in the asset store (found: "
                    f"{', '.join(m['asset_id'] for m in found) or 'none'}); fix the id"
                )
            return chosen[0]
        if not found:
            raise GenerationError(
                f"persona {persona.persona_id!r} has no LoRA adapter in the asset store; "
                "train one with `faceloop persona train` first"
            )
        if len(found) > 1:
            same = [m for m in found if m.get("consent_id") == persona.consent_ref]
            if len(same) != 1:
                raise GenerationError(
                    f"persona {persona.persona_id!r} has {len(found)} adapters "
                    f"({', '.join(m['asset_id'] for m in found)}); set brief.persona.adapter "
                    "to the one to use"
                )
            return same[0]
        return found[0]

    def _consent(
        self,
        persona: Persona,
        markets: Sequence[str],
        campaign_id: str,
        meta: dict[str, Any],
        audit_key: str | None,
    ) -> list[str]:
        """The consent ids that allow the use now; ConsentRefusedError (audited) otherwise."""
        assert self.catalog is not None
        now = dt.datetime.now(dt.UTC)
        status = self.catalog.consent_status(
            persona.persona_id,
            list(markets),
            now,
            scope=ADS_SCOPE,
            consent_ref=persona.consent_ref,
        )
        reason = "" if status.ok else status.reason
        trained_under = meta.get("consent_id")
        if not reason and trained_under and trained_under not in status.consent_ids:
            # the adapter holds the likeness under its own (training) consent: withdrawn,
            # the adapter must not be used even if an ads consent still runs
            trained = self.catalog.consent_status(
                persona.persona_id, [], now, scope="persona_training", consent_ref=trained_under
            )
            if trained.state is ConsentState.revoked:
                reason = trained.reason
        if reason:
            self.catalog.audit(
                campaign_id,
                "generate.consent_refused",
                persona.persona_id,
                "generator",
                {"persona_id": persona.persona_id, "adapter_id": meta.get("asset_id"),
                 "reason": reason},
                key=f"consent-refused:{audit_key}" if audit_key else None,
            )  # fmt: skip
            raise ConsentRefusedError(
                f"persona {persona.persona_id!r}: {reason}; its adapter was not loaded and "
                "nothing was generated"
            )
        return list(status.consent_ids)


def _free_device_memory() -> None:
    """Give a dropped pipeline's or adapter's CUDA memory back (only if torch is loaded)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
