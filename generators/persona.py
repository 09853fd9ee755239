"""Persona LoRA training (DreamBooth-style) for a consented person, with peft.

Nothing trains without a valid consent record: a small YAML/JSON file naming the persona,
the subject, the scope and markets of use, an expiry date and the sha256 of the signed
evidence. The trained adapter is sealed under the persona's subject key (so erasing the
persona crypto-shreds it, faceloop/storage/keys.py) and goes into the asset store by
content hash, with a metadata sidecar (`<asset>.safetensors.enc.json`) that carries the
consent id, so every image made with the adapter traces back to the consent that allowed
it. `open_adapter` gives the weights back, in memory only, for `DiffusersGenerator.load_lora`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# the consent model and loader live with the consent registry; imported here because
# training is where consent was first checked, and callers import them from here
from faceloop.consent import ConsentRecord, load_consent
from faceloop.errors import FaceloopError, GenerationError, InputError
from faceloop.storage.assets import AssetStore, scrub_file

if TYPE_CHECKING:
    from faceloop.storage.keys import SubjectKeyStore

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ADAPTER_FILE = "pytorch_lora_weights.safetensors"  # the name diffusers' loader looks for
SEALED_SUFFIX = ".safetensors.enc"  # a sealed adapter in the asset store
SEAL_PURPOSE = "lora"  # the associated data of the subject-key cipher

__all__ = [
    "ConsentRecord",
    "StoredAdapter",
    "TrainResult",
    "find_adapters",
    "load_adapter_meta",
    "load_consent",
    "load_images",
    "open_adapter",
    "store_adapter",
    "train_persona_lora",
]


def load_images(folder: str | Path, size: int) -> list[np.ndarray]:
    """Every image in the folder, centre-cropped square and resized to size x size RGB."""
    from PIL import Image, ImageOps

    folder = Path(folder)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(
            f"images folder {folder}",
            [f"(folder): no {'/'.join(IMAGE_SUFFIXES)} files; add 3-20 photos of the subject"],
        )
    out = []
    for f in files:
        with Image.open(f) as im:
            fitted = ImageOps.fit(im.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
            out.append(np.asarray(fitted))
    return out


@dataclass
class TrainResult:
    losses: list[float]
    loss_before: float  # held-out-noise loss on the training images, before training
    loss_after: float
    adapter_dir: Path
    meta: dict[str, Any] = field(default_factory=dict)


def _conditioning(pipe: Any, prompt: str, n: int, size: int, device: Any) -> dict[str, Any]:
    """Text conditioning for the UNet, for SD 1.5 or SDXL (pooled text + time ids)."""
    import torch

    if "XL" in type(pipe).__name__:
        embeds, _, pooled, _ = pipe.encode_prompt(
            prompt, device=device, num_images_per_prompt=n, do_classifier_free_guidance=False
        )
        time_ids = torch.tensor([[size, size, 0, 0, size, size]] * n, dtype=embeds.dtype)
        return {
            "encoder_hidden_states": embeds,
            "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids.to(device)},
        }
    embeds, _ = pipe.encode_prompt(prompt, device, n, False)
    return {"encoder_hidden_states": embeds}


def train_persona_lora(
    pipe: Any,
    images: list[np.ndarray],
    consent: ConsentRecord,
    *,
    steps: int = 200,
    rank: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    token: str = "sks",
    out_dir: Path | None = None,
) -> TrainResult:
    """DreamBooth-style LoRA: teach the UNet "a photo of <token> person" from the images.

    Only the LoRA matrices on the UNet's attention projections train; text encoders and VAE
    stay frozen. The loss before/after is measured on a fixed set of noises and timesteps,
    so "the loss falls" is a comparison on the same draws, not on fresh noise.
    """
    import torch
    from peft import LoraConfig, get_peft_model_state_dict

    if not images:
        raise GenerationError("no training images")
    size = images[0].shape[0]
    if any(img.shape != (size, size, 3) for img in images) or size % 8:
        raise GenerationError("training images must share one square size, a multiple of 8")
    device = pipe.unet.device
    prompt = f"a photo of {token} person"
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for part in (pipe.unet, pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)):
        if part is not None:
            part.requires_grad_(False)
    pipe.unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                   target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )  # fmt: skip
    params = [p for p in pipe.unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        latents = pipe.vae.encode(pixels.to(device)).latent_dist.sample(gen)
        latents = latents * pipe.vae.config.scaling_factor
        cond = _conditioning(pipe, prompt, len(images), size, device)
    sched = pipe.scheduler
    alphas = sched.alphas_cumprod.to(device)
    n_train = sched.config.num_train_timesteps

    def loss_on(noise: Any, t: Any) -> Any:
        a = alphas[t].sqrt().view(-1, 1, 1, 1)
        s = (1 - alphas[t]).sqrt().view(-1, 1, 1, 1)
        pred = pipe.unet(a * latents + s * noise, t, **cond).sample
        return torch.nn.functional.mse_loss(pred.float(), noise.float())

    # fixed draws for the before/after comparison
    n = len(images)
    eval_draws = [
        (torch.randn(latents.shape, generator=gen), torch.randint(0, n_train, (n,), generator=gen))
        for _ in range(4)
    ]

    def eval_loss() -> float:
        with torch.no_grad():
            return float(
                np.mean([float(loss_on(nz.to(device), t.to(device))) for nz, t in eval_draws])
            )

    before = eval_loss()
    pipe.unet.train()
    losses = []
    for _ in range(steps):
        noise = torch.randn(latents.shape, generator=gen).to(device)
        t = torch.randint(0, n_train, (len(images),), generator=gen).to(device)
        loss = loss_on(noise, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    pipe.unet.eval()
    after = eval_loss()
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix=f"persona-{consent.persona_id}-"))
    state = get_peft_model_state_dict(pipe.unet)
    type(pipe).save_lora_weights(out_dir, unet_lora_layers=state, weight_name=ADAPTER_FILE)
    meta = {
        "kind": "persona_lora",
        "consent_id": consent.consent_id,
        "persona_id": consent.persona_id,
        "scope": consent.scope,
        "markets": consent.markets,
        "consent_expires": consent.expires.isoformat(),
        "evidence_sha256": consent.evidence_sha256,
        "token": token,
        "prompt": prompt,
        "base_pipeline": type(pipe).__name__,
        "steps": steps,
        "rank": rank,
        "lr": lr,
        "images": len(images),
        "size": size,
        "loss_before": before,
        "loss_after": after,
    }
    return TrainResult(losses, before, after, out_dir, meta)


@dataclass(frozen=True)
class StoredAdapter:
    asset_id: str
    uri: str
    meta_uri: str
    meta: dict[str, Any]


def store_adapter(store: AssetStore, result: TrainResult, keys: SubjectKeyStore) -> StoredAdapter:
    """Seal the adapter under the persona's key, put it into the asset store and write its
    metadata sidecar beside it.

    The clear weights file that training wrote is overwritten and removed afterwards: a
    clear copy left in a temp folder would survive the persona's erasure.
    """
    clear_path = result.adapter_dir / ADAPTER_FILE
    persona_id = str(result.meta["persona_id"])
    sealed = keys.seal(persona_id, clear_path.read_bytes(), SEAL_PURPOSE)
    asset_id, uri = store.put_bytes(sealed, SEALED_SUFFIX)
    meta = {**result.meta, "asset_id": asset_id, "sealed_for": persona_id}
    text = json.dumps(meta, indent=1, sort_keys=True) + "\n"
    meta_uri = store.put_sidecar(uri, ".json", text.encode())
    scrub_file(clear_path)
    return StoredAdapter(asset_id, uri, meta_uri, meta)


def open_adapter(store: AssetStore, uri: str, keys: SubjectKeyStore) -> dict[str, Any]:
    """The adapter's weights (a torch state dict, in memory) for
    `DiffusersGenerator.load_lora(name, weights)`; SubjectErasedError once erased."""
    from safetensors.torch import load as load_safetensors

    meta = load_adapter_meta(store, uri)
    clear = keys.open(str(meta["persona_id"]), store.get_bytes(uri), SEAL_PURPOSE)
    return dict(load_safetensors(clear))


def load_adapter_meta(store: AssetStore, uri: str) -> dict[str, Any]:
    """The sidecar of a stored adapter; GenerationError when it has none (no consent trail)."""
    meta_uri = store.sidecar_uri(uri, ".json")
    if not store.exists(meta_uri):
        raise GenerationError(
            f"adapter {uri} has no metadata sidecar, so no consent trail; retrain it with "
            "`faceloop persona train`"
        )
    meta: dict[str, Any] = json.loads(store.get_bytes(meta_uri))
    return meta


def find_adapters(store: AssetStore, persona_id: str) -> list[dict[str, Any]]:
    """The sidecars of every stored adapter of the persona, by asset id (a persona campaign
    picks one of these: generators/production.py)."""
    found: dict[str, dict[str, Any]] = {}
    for sidecar in store.uris_ending(f"{SEALED_SUFFIX}.json"):
        try:
            meta = json.loads(store.get_bytes(sidecar))
        except (FaceloopError, ValueError):
            continue
        if (
            isinstance(meta, dict)
            and meta.get("kind") == "persona_lora"
            and meta.get("persona_id") == persona_id
            and meta.get("asset_id")
        ):
            # the sealed file beside the sidecar
            found[str(meta["asset_id"])] = {**meta, "uri": sidecar.removesuffix(".json")}
    return [found[k] for k in sorted(found)]
