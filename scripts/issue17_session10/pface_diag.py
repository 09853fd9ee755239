"""P(the face matters) per tuning scenario and window, on the loop's own trajectory:
`FaceModel.face_probability` (marginal likelihood of the fitted face model against the
model where every face predicts the pooled rate), plus both models' creative sd and the
new creatives each would want (`learn.new_creatives_worth`).

Written against experiments.patch (NOHARM_FACE_PRIOR, 0.5 if unset: the figures in the
README); on the committed code it runs as is at FACE_PRIOR 0.99. SCENARIOS (env) picks
scenarios.

    python scripts/issue17_session10/pface_diag.py [SEEDS...]
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SCENARIOS = os.environ.get(
    "SCENARIOS", "flat smooth segments drift_fatigue three_segments noisy_creatives"
).split()
ROUNDS = tuple(range(28))


def one(job: tuple[str, int]) -> list[tuple[str, int, int, float, float, float, int, int]]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import simulate as sim
    from faceloop.optimization.allocation import posterior_mean
    from faceloop.optimization.learn import _window_impressions, new_creatives_worth
    from faceloop.optimization.simulate import _one_blas_thread

    _one_blas_thread()
    scenario = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), scenario)
    kept: dict[int, object] = {}
    orig = sim.campaign_evidence

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        ev = orig(*a, **k)
        if ev.now in ROUNDS:
            kept[ev.now] = ev
        return ev

    sim.campaign_evidence = spy  # type: ignore[assignment]
    sim.run_optuna_loop(scenario, cfg, seed, cfg.sampler, None, "faceloop")
    sim.campaign_evidence = orig  # type: ignore[assignment]
    free = max(cfg.campaign.variants_per_round - 1 - cfg.campaign.incumbents, 0)
    rows = []
    for rnd, ev in sorted(kept.items()):
        window = _window_impressions(ev)  # type: ignore[arg-type]
        for seg, model in ev.models.items():  # type: ignore[attr-defined]
            arms = ev.arms.get(seg, [])  # type: ignore[attr-defined]
            if not arms:
                continue
            null = model.null_model()
            left = cfg.rounds - rnd - 1
            wf = new_creatives_worth(
                model,
                max(posterior_mean(arms, model).values()),
                window.get(seg, 0.0),
                left,
                free,
                7,
            )
            wn = new_creatives_worth(
                null, max(posterior_mean(arms, null).values()), window.get(seg, 0.0), left, free, 7
            )
            rows.append(
                (
                    name,
                    seed,
                    rnd,
                    model.face_probability(),
                    math.sqrt(model.creative_var),
                    math.sqrt(null.creative_var),
                    wf,
                    wn,
                )
            )
    return rows


def main() -> None:
    seeds = [int(s) for s in sys.argv[1:]] or [1000, 1001]
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(one, [(n, s) for n in SCENARIOS for s in seeds]))
    agg: dict[tuple[str, int], list[tuple[float, ...]]] = {}
    for rows in results:
        for name, _seed, rnd, pf, cf, cn, wf, wn in rows:
            agg.setdefault((name, rnd), []).append((pf, cf, cn, wf, wn))
    print("scenario window | P(face) mean, min | creative sd face, null | worth face, null")
    for (name, rnd), vals in sorted(agg.items()):
        a = np.array(vals)
        print(
            f"{name:16s} w{rnd:<2d} P(face) {a[:, 0].mean():.3f} min {a[:, 0].min():.3f}"
            f" | csd {a[:, 1].mean():.3f} {a[:, 2].mean():.3f}"
            f" | worth {a[:, 3].mean():.1f} {a[:, 4].mean():.1f}"
        )


if __name__ == "__main__":
    main()
