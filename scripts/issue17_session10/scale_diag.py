"""The fitted effect scale per tuning scenario, per estimator, on one fixed trajectory.

Runs the bench's faceloop loop (the code as it is) on each tuning scenario and seed, keeps
the per-segment evidence after windows 3, 8, 14 and 20, and refits each segment's
FaceModel on that history with each effect-variance estimator (`facemodel._POOL`: field =
shipped per-field MacKay, global = one pooled scale, hier = per field shrunk toward the
pooled scale). Prints per estimator: the largest and median field sd, the pooled sd, the
predicted face spread (the best face's logit over the average face's under the posterior
mean), how many new creatives the value rule wants, d (the best live creative's logit
over the best face's) and s (a new creative's sd). Needs experiments.patch applied (on
the commit before this session's change, 5288640); NOHARM_POOL_WEIGHT sets the pooled
scale's prior weight (2 if unset), NOHARM_PASSES the fixed-point passes.

    git apply scripts/issue17_session10/experiments.patch
    NOHARM_POOL_WEIGHT=0.1 python scripts/issue17_session10/scale_diag.py 1000 1001
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SCENARIOS = ["flat", "smooth", "segments", "drift_fatigue", "three_segments", "noisy_creatives"]
ROUNDS = (3, 8, 14, 20)
MODES = ("field", "global", "hier")


def one(
    job: tuple[str, int],
) -> list[tuple[str, int, int, str, float, float, float, float, int, float, float]]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import facemodel as fm
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
    rows = []
    free = max(cfg.campaign.variants_per_round - 1 - cfg.campaign.incumbents, 0)
    for rnd, ev in sorted(kept.items()):
        window = _window_impressions(ev)  # type: ignore[arg-type]
        for seg, model in ev.models.items():  # type: ignore[attr-defined]
            arms = ev.arms.get(seg, [])  # type: ignore[attr-defined]
            for mode in MODES:
                fm._POOL = mode
                m = _refit(model)
                sds = np.sqrt(np.array(list(m.effect_vars.values())))
                spread = 0.0
                for f in fm.FIELDS:
                    o, k = m.offsets[f], len(m.values[f])
                    e = m.mean[o : o + k]
                    spread += float(e.max() - e.mean())
                best = max(posterior_mean(arms, m).values()) if arms else m.pooled
                worth = new_creatives_worth(
                    m, best, window.get(seg, 0.0), cfg.rounds - rnd - 1, free, 7
                )
                face = m.best(m.mean)
                x = m.features(face)
                bp = min(max(best, 1e-9), 1 - 1e-9)
                d = float(np.log(bp / (1 - bp)) - x @ m.mean)
                s2 = float(x @ m.cov @ x) + m.creative_var
                rows.append(
                    (
                        name,
                        seed,
                        rnd,
                        f"{seg}:{mode}",
                        float(sds.max()),
                        float(np.median(sds)),
                        float(np.sqrt(getattr(m, "effect_scale", np.nan))),
                        spread,
                        worth,
                        d,
                        float(np.sqrt(s2)),
                    )
                )
            fm._POOL = "field"
    return rows


def _refit(model):  # type: ignore[no-untyped-def]
    """The model refitted on its own data with the estimator `facemodel._POOL` selects
    (the same passes as FaceModel.__init__)."""
    import copy

    from faceloop.optimization import facemodel as fm

    m = copy.copy(model)
    m.effect_vars = dict.fromkeys(fm.FIELDS, fm.EFFECT_SD**2)
    m.creative_var = fm.CREATIVE_SD**2
    m._fit()
    for _ in range(fm.EFFECT_PASSES):
        m.creative_var = m._creative_var_estimate()
        m.effect_vars = m._effect_var_estimate()
        m._fit()
    return m


def main() -> None:
    seeds = [int(s) for s in sys.argv[1:]] or [1000, 1001]
    jobs = [(n, s) for n in SCENARIOS for s in seeds]
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(one, jobs))
    print(
        "scenario mode window | max field sd | median field sd | pooled sd | spread |"
        " worth | d = best live - best face (logit) | s = new creative's sd"
    )
    agg: dict[tuple[str, str, int], list[tuple[float, ...]]] = {}
    for rows in results:
        for name, _seed, rnd, sm, mx, med, pooled, spread, worth, d, s in rows:
            mode = sm.split(":")[-1]
            agg.setdefault((name, mode, rnd), []).append((mx, med, pooled, spread, worth, d, s))
    for (name, mode, rnd), vals in sorted(agg.items()):
        a = np.array(vals)
        print(
            f"{name:16s} {mode:6s} w{rnd:<2d} maxsd {a[:, 0].mean():.3f} medsd {a[:, 1].mean():.3f}"
            f" pooled {np.nanmean(a[:, 2]):.3f} spread {a[:, 3].mean():.3f}"
            f" worth {a[:, 4].mean():.1f}"
            f" d {a[:, 5].mean():+.3f} s {a[:, 6].mean():.3f}"
        )


if __name__ == "__main__":
    main()
