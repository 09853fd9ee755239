"""How close to the bench's oracle a campaign can come when it knows the faces exactly:
faceloop's loop with every segment's KPI model replaced, each round, by the scenario's true
face effects for the window about to be served (`known_model`), so what is left to learn
is each creative's own effect (the per-ad noise), fatigue and the conversion delay. A
reference for issue 17's target "oracle fraction >= 0.90": the bench's oracle also knows
every creative's own effect and serves the truly best live one from its first impression.

Not a strategy of the bench and not a bound in the strict sense (a learner may still find
lucky creatives faster than this one); a measured yardstick, run once per scenario at the
published seeds (0-19), against the oracle of the same seeds.

    python scripts/issue17_session13/known_faces.py OUT.json [FIRST_SEED [SEEDS]] [SCENARIO ...]

Writes {scenario: {seed: [known_faces KPI, oracle KPI, faceloop KPI]}} and prints the
fractions.
"""

from __future__ import annotations

import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ALL_SCENARIOS = sorted(p.stem for p in Path("examples/scenarios").glob("*.yaml"))


def known_model(base: Any, scenario: Any, segment: str, window: int, kpi: str) -> Any:
    """`base` (the segment's fitted FaceModel, for its features and its counts' sampling
    variances) with the true effects of `segment` in `window` as its posterior, without
    doubt, and the true spread of the creatives' own effects."""
    from faceloop.connectors.sandbox_platform.scenario import _layers, _logit
    from faceloop.optimization.facemodel import FIELDS

    layers = _layers(scenario, segment, window)
    steps = ["ctr", "cvr"] if kpi == "conversions" else ["ctr"]
    mean = np.zeros(base.n_features)
    for f in FIELDS:
        for i, v in enumerate(base.values[f]):
            mean[base.offsets[f] + i] = sum(
                getattr(layer, step).of(f, v) for layer in layers for step in steps
            )
    intercept = _logit(scenario.base_ctr) + sum(layer.ctr.intercept for layer in layers)
    if kpi == "conversions":
        cvr = _logit(scenario.base_cvr) + sum(layer.cvr.intercept for layer in layers)
        # logit(ctr x cvr), not the sum of the two logits, at the base rates
        both = 1.0 / (1.0 + math.exp(-intercept)) / (1.0 + math.exp(-cvr))
        intercept = _logit(both)
    mean[-1] = intercept
    model = base.__class__.__new__(base.__class__)
    model.__dict__.update(base.__dict__)
    model.mean = mean
    model.cov = 1e-10 * np.eye(base.n_features)
    model._chol = np.sqrt(1e-10) * np.eye(base.n_features)
    model.creative_var = max(len(steps) * scenario.noise.ad_sd**2, 1e-4)
    model._null, model._p_face = None, 1.0
    return model


def one(job: tuple[str, int]) -> tuple[str, int, float, float, float]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import simulate as sim
    from faceloop.optimization.simulate import _one_blas_thread

    _one_blas_thread()
    scenario = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), scenario)
    kpi = cfg.goal.value
    fitted = sim.campaign_evidence

    def known(*args: Any, **kwargs: Any) -> Any:
        evidence = fitted(*args, **kwargs)
        for segment in list(evidence.models):
            evidence.models[segment] = known_model(
                evidence.models[segment], scenario, segment, evidence.now + 1, kpi
            )
        return evidence

    def total(t: Any) -> float:
        return float(t.conversions if kpi == "conversions" else t.clicks)

    # the bench's own runs of this seed: its oracle is the one the published fraction uses
    runs = sim.run_seed(scenario, cfg, seed)
    sim.campaign_evidence = known
    try:
        tally = sim.run_optuna_loop(scenario, cfg, seed, cfg.sampler, None, "faceloop")
    finally:
        sim.campaign_evidence = fitted
    return name, seed, total(tally), total(runs["oracle"]), total(runs["faceloop"])


def main() -> None:
    out = Path(sys.argv[1])
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    names = sys.argv[4:] or ALL_SCENARIOS
    jobs = [(n, s) for n in names for s in range(first, first + seeds)]
    found: dict[str, dict[int, list[float]]] = {}
    with ProcessPoolExecutor(2) as pool:
        for name, seed, known, oracle, plain in pool.map(one, jobs):
            found.setdefault(name, {})[seed] = [known, oracle, plain]
    out.write_text(json.dumps(found, indent=1))
    print("scenario  known_faces/oracle  faceloop/oracle")
    for name, d in found.items():
        k, o, p = (sum(v[i] for v in d.values()) for i in range(3))
        print(f"{name:22s} {k / o:.3f}  {p / o:.3f}")


if __name__ == "__main__":
    main()
