"""faceloop's KPI per tuning scenario and seed, for the paired comparisons of
docs/benchmarks.md, "Do no harm, session 8 (issue 17)".

Runs the bench's `run_optuna_loop` (faceloop only: no A/B test, random or oracle) on the
tuning scenarios, two processes, and writes {scenario: {seed: [kpi, new creatives]}} to
OUT. A variant is tried by applying one of the patches beside this file (`git apply`) and
setting NOHARM_VARIANT (A: the value rule sets how many are kept; F: with A, the value
rule credits a new creative with the decay it avoids; B: the same with the calibrated
decay estimate of value_rule_keeps_and_calibrated_decay.patch, credited for half the
best creative's impressions, B2: for all of them; Z: rounds without new creatives;
the settled rule for measured creatives needs none); compare.py prints the paired
differences against a run without a patch.

    python scripts/issue17_session8/paired.py OUT.json [FIRST_SEED [SEEDS]]
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SCENARIOS = ["flat", "smooth", "segments", "drift_fatigue", "three_segments", "noisy_creatives"]


def one(job: tuple[str, int]) -> tuple[str, int, float, int]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import simulate as sim
    from faceloop.optimization.simulate import _one_blas_thread

    _one_blas_thread()
    scenario = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), scenario)
    tally = sim.run_optuna_loop(scenario, cfg, seed, cfg.sampler, None, "faceloop")
    kpi = tally.conversions if cfg.goal.value == "conversions" else tally.clicks
    return name, seed, float(kpi), sum(tally.new_by_round)


def main() -> None:
    out = Path(sys.argv[1])
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    jobs = [(n, s) for n in SCENARIOS for s in range(first, first + seeds)]
    found: dict[str, dict[int, list[float]]] = {}
    with ProcessPoolExecutor(2) as pool:
        for name, seed, kpi, new in pool.map(one, jobs):
            found.setdefault(name, {})[seed] = [kpi, new]
    out.write_text(json.dumps(found, indent=1))
    means = {n: round(sum(v[0] for v in d.values()) / len(d)) for n, d in found.items()}
    print(os.environ.get("NOHARM_VARIANT", ""), means)


if __name__ == "__main__":
    main()
