"""P(the face matters) per window as each segment's fit alone would give it (before
round_models forces 1 ahead of NULL_FROM_WINDOW), faceloop's own trajectory; one line per
seed: the windows' P(face) in the first segment.

    python scripts/issue17_session12/pface_raw.py SCENARIO_OR_YAML FIRST_SEED SEEDS
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def one(job: tuple[str, int]) -> list[float]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import facemodel
    from faceloop.optimization import simulate as sim

    sim._one_blas_thread()
    path = Path(name) if name.endswith(".yaml") else Path("examples/scenarios") / f"{name}.yaml"
    sc = load_scenario(path)
    cfg = sim.for_scenario(sim.BenchConfig(), sc)
    real = facemodel.round_models
    out: list[float] = []

    def traced(*a: Any, **k: Any) -> Any:
        memory, models = real(*a, **k)
        if a[4] >= 0:
            m = models[sorted(models)[0]]
            keep = m._p_face
            m._p_face = None
            out.append(m.face_probability())
            m._p_face = keep
        return memory, models

    facemodel.round_models = traced  # type: ignore[assignment]
    sim.run_optuna_loop(sc, cfg, seed, cfg.sampler, None, "faceloop")
    return out


def main() -> None:
    name, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with ProcessPoolExecutor(2) as pool:
        seeds = range(first, first + n)
        for seed, row in zip(seeds, pool.map(one, [(name, s) for s in seeds]), strict=True):
            print(seed, " ".join(f"{p:.2f}" for p in row[:14]))


if __name__ == "__main__":
    main()
