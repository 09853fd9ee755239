#!/usr/bin/env python
"""How often a generator shows what it is asked for, with and without the generate stage's
re-seeds (docs/fidelity.md; figures in docs/benchmarks.md).

Draws N face-parameter requests (seeded, uniform over the default search space), renders
each with `faceloop.generators.enforce.render` once with enforcement off (the first image
only) and once with the default playbook's fidelity section (up to 3 images), and prints
per parameter the share of judged images shown as asked, plus tries and not-rendered counts.

    .venv/bin/python scripts/measure_fidelity.py --n 40 --size 64
    .venv/bin/python scripts/measure_fidelity.py --generator dcgan --n 40 --json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from typing import Any

import numpy as np

from faceloop.generators.base import GenerationRequest
from faceloop.generators.enforce import render
from faceloop.generators.perception import perceive
from faceloop.generators.registry import get_generator
from faceloop.models import CATEGORICAL_FIELDS, FaceParams, Fidelity
from faceloop.playbooks.schema import FidelitySettings


def requests(n: int, size: int, seed: int) -> list[GenerationRequest]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        values: dict[str, Any] = {
            k: str(v[rng.integers(len(v))]) for k, v in CATEGORICAL_FIELDS.items()
        }
        values["skin_tone"] = int(rng.integers(1, 11))
        out.append(GenerationRequest(params=FaceParams(**values), seed=10_000 + i, size=size))
    return out


def summary(fidelities: list[Fidelity]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in FaceParams.model_fields:
        ok = sum(1 for f in fidelities if f.params[name].ok is True)
        off = sum(1 for f in fidelities if f.params[name].ok is False)
        params[name] = {"ok": ok, "off": off, "share_ok": ok / (ok + off) if ok + off else None}
    return {
        "images_kept": len(fidelities),
        "faces_found": sum(f.found for f in fidelities),
        "all_as_asked": sum(1 for f in fidelities if not f.not_rendered),
        "tries": dict(sorted(Counter(f.tries for f in fidelities).items())),
        "params": params,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", default="dcgan")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    gen = get_generator(args.generator)
    reqs = requests(args.n, args.size, args.seed)
    out: dict[str, Any] = {"generator": gen.name, "model_version": gen.model_version}
    for label, settings in (
        ("first_image", FidelitySettings(enforce=False)),
        ("enforced", FidelitySettings()),
    ):
        t0 = time.perf_counter()
        kept = render(gen, reqs, perceive, settings)
        out[label] = summary([k.fidelity for k in kept])
        out[label]["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{gen.name} ({gen.model_version}), {args.n} requests at {args.size} px")
    for label in ("first_image", "enforced"):
        s = out[label]
        print(
            f"{label}: {s['all_as_asked']}/{s['images_kept']} show every judged parameter as "
            f"asked, faces {s['faces_found']}, tries {s['tries']}, {s['seconds']} s"
        )
        for name, p in s["params"].items():
            share = "-" if p["share_ok"] is None else f"{p['share_ok']:.2f}"
            print(f"  {name:20s} ok {p['ok']:3d} off {p['off']:3d} share {share}")


if __name__ == "__main__":
    main()
