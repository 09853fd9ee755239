"""P(face) per window of one campaign, with the face model's effective number of
determined effects (gamma, at the fitted and at the prior's scale) and its creatives:
how the null model was selected on `smooth` seed 1025 (tuning seeds 1016-1031).

    python scripts/issue17_session10/pface_trace.py SCENARIO SEED
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from faceloop.connectors.sandbox_platform.scenario import load_scenario
from faceloop.optimization import facemodel as fm
from faceloop.optimization import simulate as sim


def gamma(m: fm.FaceModel) -> float:
    g = 0.0
    for f, var in m.effect_vars.items():
        o, k = m.offsets[f], len(m.values[f])
        unit = m._unit[o : o + k, o : o + k]
        g += max(k - float(np.sum(unit * m.cov[o : o + k, o : o + k])) / var, 0.0)
    return g


def gamma_at_prior(m: fm.FaceModel) -> float:
    """The same at every field's variance EFFECT_SD**2."""
    w = 1.0 / (m._var + m.creative_var)
    p0 = m._unit / fm.EFFECT_SD**2
    p0[-1, -1] = 1.0
    cov = np.linalg.inv(p0 + m._x.T @ (w[:, None] * m._x))
    return float(m.n_features - 1 - np.trace(p0[:-1, :-1] @ cov[:-1, :-1]))


def main() -> None:
    name, seed = sys.argv[1], int(sys.argv[2])
    orig = sim.campaign_evidence
    rows: list[tuple[Any, ...]] = []

    def spy(*a: Any, **k: Any) -> Any:
        ev = orig(*a, **k)
        for s, m in ev.models.items():
            if len(m._y):
                p = round(m.face_probability(), 3)
                rows.append(
                    (ev.now, s, p, round(gamma(m), 1), round(gamma_at_prior(m), 1), len(m._y))
                )
        return ev

    sim.campaign_evidence = spy  # type: ignore[assignment]
    sc = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), sc)
    sim.run_optuna_loop(sc, cfg, seed, cfg.sampler, None, "faceloop")
    print("window segment P(face) gamma gamma_at_EFFECT_SD creatives")
    for r in rows:
        print(*r)


if __name__ == "__main__":
    main()
