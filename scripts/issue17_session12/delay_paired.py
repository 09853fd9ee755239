"""faceloop's KPI on one scenario per seed, with the campaign's assumed conversion delay set
by the DELAY environment variable ("est": the campaign's own estimate, when the code has
one; a number: that many windows), for the paired comparisons of README.md.

    DELAY=0.5 python scripts/issue17_session12/delay_paired.py OUT.json SCENARIO FIRST N
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def one(job: tuple[str, int]) -> tuple[int, float, int]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import simulate as sim
    from faceloop.optimization.simulate import _one_blas_thread

    _one_blas_thread()
    scenario = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), scenario)
    delay = os.environ.get("DELAY", "")
    if delay and delay != "est":
        cfg = dataclasses.replace(cfg, assumed_delay_windows=float(delay))
    elif delay == "est":
        cfg = dataclasses.replace(cfg, assumed_delay_windows=None)
    tally = sim.run_optuna_loop(scenario, cfg, seed, cfg.sampler, None, "faceloop")
    kpi = tally.conversions if cfg.goal.value == "conversions" else tally.clicks
    return seed, float(kpi), sum(tally.new_by_round)


def main() -> None:
    out, name = Path(sys.argv[1]), sys.argv[2]
    first, n = int(sys.argv[3]), int(sys.argv[4])
    found = {}
    with ProcessPoolExecutor(2) as pool:
        for seed, kpi, new in pool.map(one, [(name, s) for s in range(first, first + n)]):
            found[seed] = [kpi, new]
    out.write_text(json.dumps({name: found}, indent=1))
    print(os.environ.get("DELAY", ""), name, round(sum(v[0] for v in found.values()) / n, 1))


if __name__ == "__main__":
    main()
