"""Fidelity enforced: keep an image only when what it shows is what was asked.

The generate stage measures every image it makes with the perception module
(`faceloop.generators.perception`) and compares the reading with the request within the
playbook's `fidelity.tolerance`. An image with a parameter off the request, or with no
face found, is made again with a seed derived from the variant's seed and the try number, up
to `fidelity.max_tries` images; if none matches, the closest one is kept (one with a face
before one without) and its mismatched parameters are marked not rendered. Every variant
carries the outcome (`faceloop.models.Fidelity`): requested vs measured per parameter, the
tries and the perception reading.

Seeds are derived, never drawn, so a retried activity (Temporal) makes the same images and
keeps the same one. Nothing here does I/O; the activity (`generators/activities.py`) stores
the kept images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from faceloop.generators.base import MAX_SEED, GenerationRequest, Generator, Progress
from faceloop.models import FaceParams, Fidelity, ParamShown

if TYPE_CHECKING:
    from faceloop.generators.perception import Perception
    from faceloop.playbooks.schema import FidelitySettings

Perceive = Callable[[np.ndarray], "Perception"]


def try_seed(seed: int, attempt: int) -> int:
    """The seed of try `attempt` (0: the variant's own seed). A hash, not seed + attempt,
    so the re-seeds of one variant never reuse the seed of a neighbouring variant."""
    if attempt == 0:
        return seed
    digest = hashlib.sha256(f"faceloop-reseed:{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & MAX_SEED


def measure(
    requested: FaceParams, seen: Perception, settings: FidelitySettings, tries: int
) -> Fidelity:
    """Requested vs measured for every face parameter of one image (ok None: the parameter
    cannot be measured, or no face was found)."""
    from faceloop.generators.perception import compare

    checks = compare(requested, seen, settings.tolerance)
    params: dict[str, ParamShown] = {}
    for name, value in requested.model_dump().items():
        c = checks.get(name)
        params[name] = (
            ParamShown(requested=value, measured=c.measured, ok=c.ok)
            if c is not None
            else ParamShown(requested=value)
        )
    return Fidelity(
        found=bool(seen.found),
        params=params,
        tries=tries,
        enforced=settings.enforce,
        not_rendered=[],
        perception=seen.to_json(),
    )


def seen_face(
    requested: FaceParams, rgb: np.ndarray, perceive: Perceive, settings: FidelitySettings
) -> tuple[FaceParams, Fidelity]:
    """The face an audience sees in `rgb`, asked for as `requested`: measured parameters as
    measured (`Fidelity.shown`), the rest as requested. The sandbox's measured mode and the
    bench read creatives with this, the same reading the generate stage records."""
    f = measure(requested, perceive(rgb), settings, 1)
    face, _ = f.shown(requested)
    return face, f


def mismatches(f: Fidelity) -> list[str]:
    """The parameters measured off the request (ok False), in FaceParams order."""
    return [name for name, p in f.params.items() if p.ok is False]


@dataclass(frozen=True)
class Rendered:
    """The image kept for one request, the seed that made it, and what it shows."""

    image: np.ndarray
    seed: int
    fidelity: Fidelity


def render(
    generator: Generator,
    requests: Sequence[GenerationRequest],
    perceive: Perceive,
    settings: FidelitySettings,
    progress: Progress | None = None,
) -> list[Rendered]:
    """One kept image per request, in order (see the module docstring).

    Each round of re-seeds is one `generator.generate` call over the requests still off, so
    a GPU backend keeps batching. With `settings.enforce` off every first image is kept and
    only measured. `progress(done, total)` counts images made, re-seeds included.
    """
    n = len(requests)
    tries = settings.max_tries if settings.enforce else 1
    made = 0
    total = n

    def tick(done: int, _total: int) -> None:
        if progress is not None:
            progress(made + done, total)

    # per request: (rank, attempt, image, seed, fidelity) of the best try so far; the rank
    # puts an image without a face last (nothing of it could be judged, so it would
    # otherwise count as matching), then orders by the parameters off the request
    best: list[tuple[tuple[int, int], int, np.ndarray, int, Fidelity] | None] = [None] * n
    pending = list(range(n))
    for attempt in range(tries):
        batch = [
            requests[i].model_copy(update={"seed": try_seed(requests[i].seed, attempt)})
            for i in pending
        ]
        images = generator.generate(batch, progress=tick)
        made += len(batch)
        still: list[int] = []
        for i, req, rgb in zip(pending, batch, images, strict=True):
            f = measure(requests[i].params, perceive(rgb), settings, attempt + 1)
            rank = (0 if f.found else 1, len(mismatches(f)))
            current = best[i]
            # the earliest try wins a tie, so a retried activity keeps the same image
            if current is None or rank < current[0]:
                best[i] = (rank, attempt, rgb, req.seed, f)
            if rank != (0, 0):
                still.append(i)
        pending = still
        if not pending:
            break
        total = made + len(pending)

    out: list[Rendered] = []
    for i, kept in enumerate(best):
        assert kept is not None  # every request was made at least once
        _, _, rgb, seed, f = kept
        used = tries if i in pending else f.tries
        out.append(
            Rendered(
                image=rgb,
                seed=seed,
                fidelity=f.model_copy(update={"tries": used, "not_rendered": mismatches(f)}),
            )
        )
    return out


__all__ = [
    "Perceive",
    "Rendered",
    "measure",
    "mismatches",
    "render",
    "seen_face",
    "try_seed",
]
