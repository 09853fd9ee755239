"""Per window on one scenario, faceloop only: the true CTR served over the base CTR, the
truly best live creative's true CTR over the base, the share of the window on that
creative, the window's largest share and the live creatives (mean over the seeds).

    python scripts/issue17_session11/served_diag.py SCENARIO FIRST_SEED SEEDS

Single-segment scenarios only (a segmented one is read in its first segment).
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def one(job: tuple[str, int]) -> list[tuple[float, ...]]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import load_scenario
    from faceloop.optimization import simulate as sim

    sim._one_blas_thread()
    sc = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), sc)
    rows: dict[int, list[tuple[int, float]]] = {}
    deliver = sim.Audience.deliver

    def recording(self: Any, arm: Any, window: int, by_segment: Any, tally: Any, kpi: Any) -> int:
        segment = sorted(by_segment)[0]
        ctr, _ = sim.true_rates(
            self.scenario, arm.face, segment, arm.delivered, window, asset_id=arm.asset_id
        )
        rows.setdefault(window, []).append((sum(by_segment.values()), ctr))
        return deliver(self, arm, window, by_segment, tally, kpi)

    sim.Audience.deliver = recording  # type: ignore[method-assign]
    sim.run_optuna_loop(sc, cfg, seed, cfg.sampler, None, "faceloop")
    out = []
    for w in sorted(rows):
        r = rows[w]
        total = sum(n for n, _ in r)
        best = max(c for _, c in r)
        out.append(
            (
                sum(n * c for n, c in r) / total / sc.base_ctr,
                best / sc.base_ctr,
                sum(n for n, c in r if c == best) / total,
                max(n for n, _ in r) / total,
                float(len(r)),
            )
        )
    return out


def main() -> None:
    name, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with ProcessPoolExecutor(2) as pool:
        res = np.array(list(pool.map(one, [(name, s) for s in range(first, first + n)])))
    print("window served best_live share_on_best largest_share live")
    for w, row in enumerate(res.mean(axis=0)):
        print(w, *[f"{x:.3f}" for x in row])


if __name__ == "__main__":
    main()
