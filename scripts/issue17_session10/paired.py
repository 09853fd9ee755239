"""faceloop's KPI per tuning scenario and seed (session 8's paired.py, also keeping the
clicks per window for churn.py), for the paired comparisons of
scripts/issue17_session10/README.md.

Runs the bench's `run_optuna_loop` (faceloop only: no A/B test, random or oracle) on the
tuning scenarios, two processes, and writes {scenario: {seed: [kpi, new creatives,
clicks per window]}} to OUT. The experimental variants are switched by the NOHARM_*
environment variables of experiments.patch (README.md); compare.py (session 8's) prints
the paired differences against a run without them.

    python scripts/issue17_session10/paired.py OUT.json [FIRST_SEED [SEEDS]]
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# $SCENARIOS (comma-separated) replaces the list: session 12 added late_conversions
SCENARIOS = os.environ.get(
    "SCENARIOS", "flat,smooth,segments,drift_fatigue,three_segments,noisy_creatives"
).split(",")


def one(job: tuple[str, int]) -> tuple[str, int, float, int, list[int]]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import simulate as sim
    from faceloop.optimization.simulate import _one_blas_thread

    _one_blas_thread()
    scenario = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), scenario)
    tally = sim.run_optuna_loop(scenario, cfg, seed, cfg.sampler, None, "faceloop")
    kpi = tally.conversions if cfg.goal.value == "conversions" else tally.clicks
    return name, seed, float(kpi), sum(tally.new_by_round), list(tally.clicks_by_round)


def main() -> None:
    out = Path(sys.argv[1])
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    jobs = [(n, s) for n in SCENARIOS for s in range(first, first + seeds)]
    found: dict[str, dict[int, list[object]]] = {}
    with ProcessPoolExecutor(2) as pool:
        for name, seed, kpi, new, by_round in pool.map(one, jobs):
            found.setdefault(name, {})[seed] = [kpi, new, by_round]
    out.write_text(json.dumps(found, indent=1))
    means = {n: round(sum(float(v[0]) for v in d.values()) / len(d)) for n, d in found.items()}
    print(os.environ.get("NOHARM_VARIANT", ""), means)


if __name__ == "__main__":
    main()
