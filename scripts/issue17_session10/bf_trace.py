"""The log Bayes factor (face model against the null model, the committed formula) per
window on the face model's own trajectory (FACE_PRIOR set so close to 1 that the null
model is never selected: the code of 5288640's decisions), per tuning scenario and seed.
Prints, per scenario and window, the lowest and highest log Bayes factor over the seeds:
what a rule on it could separate.

    python scripts/issue17_session10/bf_trace.py OUT.json FIRST_SEED SEEDS
"""

from __future__ import annotations

import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

SCENARIOS = ["flat", "smooth", "segments", "drift_fatigue", "three_segments", "noisy_creatives"]
PRIOR = 1.0 - 1e-12


def one(job: tuple[str, int]) -> tuple[str, int, list[tuple[int, str, float]]]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import facemodel as fm
    from faceloop.optimization import simulate as sim
    from faceloop.optimization.simulate import _one_blas_thread

    _one_blas_thread()
    fm.FACE_PRIOR = PRIOR
    prior_odds = math.log(PRIOR / (1.0 - PRIOR))
    orig = sim.campaign_evidence
    rows: list[tuple[int, str, float]] = []

    def spy(*a: Any, **k: Any) -> Any:
        ev = orig(*a, **k)
        for s, m in ev.models.items():
            if len(m._y):
                p = min(max(m.face_probability(), 1e-300), 1.0 - 1e-16)
                rows.append((ev.now, s, math.log(p / (1.0 - p)) - prior_odds))
        return ev

    sim.campaign_evidence = spy  # type: ignore[assignment]
    sc = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), sc)
    sim.run_optuna_loop(sc, cfg, seed, cfg.sampler, None, "faceloop")
    return name, seed, rows


def main() -> None:
    out = Path(sys.argv[1])
    first, seeds = int(sys.argv[2]), int(sys.argv[3])
    jobs = [(n, s) for n in SCENARIOS for s in range(first, first + seeds)]
    found: dict[str, dict[int, list[tuple[int, str, float]]]] = {}
    with ProcessPoolExecutor(2) as pool:
        for name, seed, rows in pool.map(one, jobs):
            found.setdefault(name, {})[seed] = rows
    out.write_text(json.dumps(found))
    for name, runs in found.items():
        by_w: dict[int, list[float]] = {}
        for rows in runs.values():
            for w, _s, bf in rows:
                by_w.setdefault(w, []).append(bf)
        cells = [f"w{w}:{min(v):.0f}/{max(v):.0f}" for w, v in sorted(by_w.items())]
        print(name, " ".join(cells))


if __name__ == "__main__":
    main()
