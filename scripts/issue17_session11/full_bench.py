"""Every strategy of the bench (`simulate.run_seed`) on tuning scenarios, with the
campaign's places, incumbents or floor overridden by PLACES, INCUMBENTS, FLOOR; prints
faceloop's KPI, the A/B test's, the oracle's, the oracle fraction, the lift and the new
creatives per campaign, and writes {scenario: {seed: [KPI per strategy, faceloop's clicks
per window, its new creatives]}} to OUT.

    python scripts/issue17_session11/full_bench.py OUT.json FIRST_SEED SEEDS SCENARIO,...
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def config(scenario: Any) -> Any:
    from faceloop.optimization import simulate as sim

    cfg = sim.for_scenario(sim.BenchConfig(), scenario)
    names = {"PLACES": "variants_per_round", "INCUMBENTS": "incumbents"}
    update: dict[str, float] = {f: int(os.environ[e]) for e, f in names.items() if e in os.environ}
    if "FLOOR" in os.environ:
        update["exploration_floor"] = float(os.environ["FLOOR"])
    if not update:
        return cfg
    return dataclasses.replace(cfg, campaign=cfg.campaign.model_copy(update=update))


def one(job: tuple[str, int]) -> tuple[str, int, dict[str, float], list[int], int]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import simulate as sim

    sim._one_blas_thread()
    sc = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = config(sc)
    runs = sim.run_seed(sc, cfg, seed)
    conversions = cfg.goal.value == "conversions"
    kpi = {s: float(t.conversions if conversions else t.clicks) for s, t in runs.items()}
    faceloop = runs["faceloop"]
    return name, seed, kpi, faceloop.clicks_by_round, sum(faceloop.new_by_round)


def main() -> None:
    out, first, n, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    jobs = [(name, s) for name in names.split(",") for s in range(first, first + n)]
    found: dict[str, dict[int, list[Any]]] = {}
    with ProcessPoolExecutor(2) as pool:
        for name, seed, kpi, by_round, new in pool.map(one, jobs):
            found.setdefault(name, {})[seed] = [kpi, by_round, new]
    Path(out).write_text(json.dumps(found))
    for name, runs in found.items():
        f, a, o = (
            np.array([v[0][s] for v in runs.values()]) for s in ("faceloop", "ab_test", "oracle")
        )
        new = np.mean([v[2] for v in runs.values()])
        print(
            f"{name:18s} faceloop {f.mean():9.1f} ab {a.mean():9.1f} oracle {o.mean():9.1f} "
            f"frac {f.mean() / o.mean():.3f} lift {f.mean() / a.mean() - 1:+.3f} new {new:.0f}"
        )


if __name__ == "__main__":
    main()
