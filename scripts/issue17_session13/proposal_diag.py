"""How good faceloop's proposals are, round by round: the true fresh rate (no per-ad noise,
no fatigue) of the faces it proposes and of its KPI model's posterior-mean best face, as a
fraction of the true best face's, on one scenario and seeds. Diagnostics on tuning seeds.

    python scripts/issue17_session13/proposal_diag.py SCENARIO FIRST_SEED SEEDS

ROUNDS sets the campaign's length (default 28, the bench's; session 15 ran 112).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np


def main() -> None:
    from faceloop.connectors.sandbox_platform.scenario import load_scenario, true_rates
    from faceloop.optimization import simulate as sim

    name, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    scenario = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(rounds=int(os.environ.get("ROUNDS", "28"))), scenario)
    conv = cfg.goal.value == "conversions"
    segments = sim.campaign_segments(scenario)

    def rate(face: Any, segment: str, window: int) -> float:
        ctr, cvr = true_rates(scenario, face, segment, 0, window)
        return ctr * (cvr if conv else 1.0)

    kpi = "conversions" if conv else "ctr"
    best = {
        (s, w): rate(sim.best_params(scenario, {s: 1.0}, kpi, w)[0], s, w)
        for s in segments
        for w in range(cfg.rounds)
    }
    proposed: dict[int, list[float]] = {}
    mean_best: dict[int, list[float]] = {}
    ask = sim.Optimizer.ask

    def spy(self: Any, cid: str, rnd: int, *args: Any, models: Any = None, **kw: Any) -> Any:
        out = ask(self, cid, rnd, *args, models=models, **kw)
        for s, m in (models or {}).items():
            if s in segments:
                face = m.best(m.mean)
                mean_best.setdefault(rnd, []).append(rate(face, s, rnd) / best[(s, rnd)])
        for p in out:
            s = p.segment or next(iter(segments))
            proposed.setdefault(rnd, []).append(rate(p.params, s, rnd) / best[(s, rnd)])
        return out

    sim.Optimizer.ask = spy  # type: ignore[method-assign]
    for seed in range(first, first + n):
        sim.run_optuna_loop(scenario, cfg, seed, cfg.sampler, None, "faceloop")
    print("window  proposals(n, mean true rate / best)  posterior-mean best face / best")
    for w in sorted(proposed):
        mb = np.mean(mean_best[w]) if w in mean_best else float("nan")
        print(f"{w:4d}  {len(proposed[w]) / n:5.1f}  {np.mean(proposed[w]):.3f}  {mb:.3f}")


if __name__ == "__main__":
    main()
