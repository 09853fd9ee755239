"""What a campaign's own data can say about the faces: the KPI model's posterior sd of
each attribute value's effect at the campaign's last round, against the spread of the
scenario's true effects (their sd over the values the search space holds, per field).
Where the posterior sd is as large as the true effects, no learner can tell the faces
apart from the campaign's counts. Diagnostics on tuning seeds.

    python scripts/issue17_session13/effect_se.py SCENARIO FIRST_SEED SEEDS
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np


def main() -> None:
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import simulate as sim
    from faceloop.optimization.facemodel import FIELDS

    name, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    scenario = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), scenario)
    steps = ["ctr", "cvr"] if cfg.goal.value == "conversions" else ["ctr"]
    last: dict[str, Any] = {}
    ask = sim.Optimizer.ask

    def spy(self: Any, cid: str, rnd: int, *args: Any, models: Any = None, **kw: Any) -> Any:
        last.update(models or {})
        return ask(self, cid, rnd, *args, models=models, **kw)

    sim.Optimizer.ask = spy  # type: ignore[method-assign]
    post: dict[str, list[float]] = {f: [] for f in FIELDS}
    for seed in range(first, first + n):
        last.clear()
        sim.run_optuna_loop(scenario, cfg, seed, cfg.sampler, None, "faceloop")
        for m in last.values():
            sd = np.sqrt(np.diag(m.cov))
            for f in FIELDS:
                o, k = m.offsets[f], len(m.values[f])
                post[f].append(float(np.median(sd[o : o + k])))
    model = next(iter(last.values()))
    print("field          true effects' sd   posterior sd (median value, last round)")
    for f in FIELDS:
        true = [sum(getattr(scenario.effects, s).of(f, v) for s in steps) for v in model.values[f]]
        print(f"{f:14s} {np.std(true):8.3f}          {np.mean(post[f]):8.3f}")


if __name__ == "__main__":
    main()
