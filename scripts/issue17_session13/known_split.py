"""Where faceloop's loop loses against the same loop with the faces known
(`known_faces.py`): the true face effects given to its proposals only, or to its serving
only (allocation, the keep rule and the value of a new test), the other half on the fitted
KPI model. Diagnostics on tuning seeds, not a strategy.

    python scripts/issue17_session13/known_split.py OUT.json FIRST_SEED SEEDS SCENARIO ...

Writes {scenario: {seed: [the goal's KPI per mode]}}, modes as in MODES, and prints the
means. Session 13's second table: MODES=none,propose,early,late.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from known_faces import known_model

# none: faceloop; all: the true faces everywhere; propose / serve: in that half only;
# early / late: in the proposals of windows 0-3 / 4 on only. $MODES picks them (comma-separated)
MODES = tuple(os.environ.get("MODES", "none,all,propose,serve").split(","))
EARLY = 3


def one(job: tuple[str, int]) -> tuple[str, int, list[float]]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import simulate as sim
    from faceloop.optimization.simulate import _one_blas_thread

    _one_blas_thread()
    scenario = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), scenario)
    kpi = cfg.goal.value
    fitted_evidence, fitted_ask = sim.campaign_evidence, sim.Optimizer.ask
    fitted: dict[int, dict[str, Any]] = {}  # id of a known models dict -> the fitted one

    def known(models: dict[str, Any], window: int) -> dict[str, Any]:
        return {s: known_model(m, scenario, s, window, kpi) for s, m in models.items()}

    out = []
    for mode in MODES:

        def evidence(*args: Any, mode: str = mode, **kwargs: Any) -> Any:
            e = fitted_evidence(*args, **kwargs)
            if mode in ("all", "serve"):
                plain = dict(e.models)
                e.models.update(known(plain, e.now + 1))
                fitted[id(e.models)] = plain
            return e

        def ask(
            self: Any,
            cid: str,
            rnd: int,
            *args: Any,
            models: Any = None,
            mode: str = mode,
            **kw: Any,
        ) -> Any:
            told = (
                mode == "propose"
                or (mode == "early" and rnd <= EARLY)
                or (mode == "late" and rnd > EARLY)
            )
            if models is not None and told:
                models = known(models, rnd)
            elif models is not None and mode == "serve":
                models = fitted[id(models)]
            return fitted_ask(self, cid, rnd, *args, models=models, **kw)

        sim.campaign_evidence, sim.Optimizer.ask = evidence, ask  # type: ignore[method-assign]
        try:
            t = sim.run_optuna_loop(scenario, cfg, seed, cfg.sampler, None, "faceloop")
        finally:
            sim.campaign_evidence, sim.Optimizer.ask = fitted_evidence, fitted_ask  # type: ignore[method-assign]
        out.append(float(t.conversions if kpi == "conversions" else t.clicks))
    return name, seed, out


def main() -> None:
    out = Path(sys.argv[1])
    first, seeds = int(sys.argv[2]), int(sys.argv[3])
    jobs = [(n, s) for n in sys.argv[4:] for s in range(first, first + seeds)]
    found: dict[str, dict[int, list[float]]] = {}
    with ProcessPoolExecutor(2) as pool:
        for name, seed, kpis in pool.map(one, jobs):
            found.setdefault(name, {})[seed] = kpis
    out.write_text(json.dumps(found, indent=1))
    print("scenario", *MODES)
    for name, d in found.items():
        means = [sum(v[i] for v in d.values()) / len(d) for i in range(len(MODES))]
        print(f"{name:18s}", *(f"{m:9.1f}" for m in means))


if __name__ == "__main__":
    main()
