"""`faceloop bench fidelity`: is what is asked what is shown, per parameter and value?

For every measurable face parameter and each of its values, N images are generated with
that value and every other parameter drawn at random, then perceived
(generators/perception.py) and judged with `shown`. Per value: the share shown, and the
confusion row (what was measured instead). For skin tone also the share of Monk 1-3 that
measure light and of Monk 8-10 that measure dark, which the issue's target is stated in.

Seeds come from two disjoint ranges. Any rendering change of a generator is tuned on the
TUNING range only; the HELDOUT range is the verdict, on faces never looked at while tuning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from faceloop.models import CATEGORICAL_FIELDS, FaceParams

from .base import GenerationRequest, Generator
from .perception import (
    MEASURABLE,
    NOT_MEASURABLE,
    UNMEASURABLE_VALUES,
    FidelityTolerance,
    perceive,
    shown,
)

SEED_SETS: dict[str, int] = {"tuning": 100_000, "heldout": 900_000}
TARGET_SHARE = 0.9  # of Monk 1-3 measured light, and of Monk 8-10 measured dark
# a fixed order, so the JSON and the tables read the same every run
PARAM_ORDER = (
    "skin_tone",
    "expression",
    "background",
    "framing",
    "lighting",
    "gender_presentation",
)


def param_values(param: str) -> tuple[str | int, ...]:
    if param == "skin_tone":
        return tuple(range(1, 11))
    return CATEGORICAL_FIELDS[param]


def requests_for(
    param: str, value: str | int, n: int, first_seed: int, size: int
) -> list[GenerationRequest]:
    """n requests with param=value and every other parameter drawn from its whole domain,
    reproducibly from the seed, so a value is judged across all the company it keeps."""
    out = []
    for i in range(n):
        seed = first_seed + i
        rng = np.random.default_rng([seed, PARAM_ORDER.index(param)])
        fields: dict[str, Any] = {
            k: str(rng.choice(list(v))) for k, v in CATEGORICAL_FIELDS.items() if k != param
        }
        if param != "skin_tone":
            fields["skin_tone"] = int(rng.integers(1, 11))
        fields[param] = value
        out.append(GenerationRequest(params=FaceParams(**fields), seed=seed, size=size))
    return out


def bench_fidelity(
    gen: Generator,
    images: int,
    seed_sets: Sequence[str],
    size: int = 256,
    tol: FidelityTolerance | None = None,
    params: Sequence[str] = PARAM_ORDER,
    on_image: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The fidelity table per seed set; `on_image` is called once per image perceived."""
    tol = tol or FidelityTolerance()
    report: dict[str, Any] = {
        "generator": gen.name,
        "model_version": gen.model_version,
        "images_per_setting": images,
        "size": size,
        "tolerance": tol.model_dump(),
        "not_measurable": NOT_MEASURABLE,
        "unmeasurable_values": {k: sorted(v) for k, v in UNMEASURABLE_VALUES.items()},
        "seed_sets": {},
    }
    for name in seed_sets:
        first = SEED_SETS[name]
        table: dict[str, Any] = {}
        for param in params:
            rows: dict[str, Any] = {}
            for value in param_values(param):
                reqs = requests_for(param, value, images, first, size)
                rows[str(value)] = _row(gen, reqs, param, value, tol, on_image)
            judged = sum(r["judged"] for r in rows.values())
            ok = sum(r["shown"] for r in rows.values())
            table[param] = {
                "share_shown": round(ok / judged, 4) if judged else None,
                "values": rows,
            }
        table["skin_bands"] = _skin_bands(table.get("skin_tone"))
        report["seed_sets"][name] = table
    report["target"] = _target(report)
    return report


def _row(
    gen: Generator,
    reqs: list[GenerationRequest],
    param: str,
    value: str | int,
    tol: FidelityTolerance,
    on_image: Callable[[], None] | None,
) -> dict[str, Any]:
    measured: Counter[str] = Counter()
    bands: Counter[str] = Counter()
    found = judged = ok = 0
    # one request at a time: a generator's output never depends on its batch (the contract)
    for req in reqs:
        (img,) = gen.generate([req])
        seen = perceive(img, gender=param == "gender_presentation")
        if on_image is not None:
            on_image()
        if not seen.found:
            measured["(no face)"] += 1
            continue
        found += 1
        got = seen.value(param)
        measured[str(got)] += 1
        if seen.skin_band is not None:
            bands[seen.skin_band] += 1
        verdict = shown(param, value, got, tol)
        if verdict is not None:
            judged += 1
            ok += int(verdict)
    row: dict[str, Any] = {
        "n": len(reqs),
        "found": found,
        "judged": judged,
        "shown": ok,
        "share_shown": round(ok / judged, 4) if judged else None,
        "measured": dict(sorted(measured.items())),
    }
    if param == "skin_tone":
        row["bands"] = dict(sorted(bands.items()))
    return row


def _skin_bands(skin: dict[str, Any] | None) -> dict[str, Any] | None:
    """Share of Monk 1-3 requests measured light and of Monk 8-10 measured dark (of faces)."""
    if skin is None:
        return None

    def share(tones: range, band: str) -> float | None:
        hit = sum(skin["values"][str(t)]["bands"].get(band, 0) for t in tones)
        total = sum(sum(skin["values"][str(t)]["bands"].values()) for t in tones)
        return round(hit / total, 4) if total else None

    return {
        "light_of_monk_1_3": share(range(1, 4), "light"),
        "dark_of_monk_8_10": share(range(8, 11), "dark"),
    }


def _target(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's target, judged on held-out seeds when they were run, else on tuning."""
    sets = report["seed_sets"]
    name = "heldout" if "heldout" in sets else next(iter(sets), None)
    bands = sets[name]["skin_bands"] if name else None
    if not bands:
        return {"judged_on": None, "met": None}
    light, dark = bands["light_of_monk_1_3"], bands["dark_of_monk_8_10"]
    met = light is not None and dark is not None and light >= TARGET_SHARE and dark >= TARGET_SHARE
    return {"judged_on": name, "share": TARGET_SHARE, "light": light, "dark": dark, "met": met}


def total_images(images: int, seed_sets: Sequence[str], params: Sequence[str] = PARAM_ORDER) -> int:
    return images * len(seed_sets) * sum(len(param_values(p)) for p in params if p in MEASURABLE)
