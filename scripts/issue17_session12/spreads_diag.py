"""The KPI model's fitted spreads per window on one scenario (faceloop, one seed): the
creative effect's sd, the largest field effect sd, P(face), and the creatives fitted.

    python scripts/issue17_session12/spreads_diag.py SCENARIO SEED
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any


def main() -> None:
    name, seed = sys.argv[1], int(sys.argv[2])
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import facemodel
    from faceloop.optimization import simulate as sim

    sc = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), sc)
    real = facemodel.round_models

    def traced(*args: Any, **kw: Any) -> Any:
        memory, models = real(*args, **kw)
        now = args[4]
        for s, m in models.items():
            print(
                f"w{now:2d} {s} creatives {len(m._y):3d} "
                f"creative_sd {math.sqrt(m.creative_var):.3f} "
                f"effect_sd max {math.sqrt(m.effect_var):.3f} "
                f"P(face) {m.face_probability():.2f} memory {memory}"
            )
        return memory, models

    facemodel.round_models = traced  # type: ignore[assignment]
    sim.round_models = traced  # type: ignore[attr-defined]
    sim.run_optuna_loop(sc, cfg, seed, cfg.sampler, None, "faceloop")


if __name__ == "__main__":
    main()
