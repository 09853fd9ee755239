"""How much of each strategy's KPI is lost to fatigue, per window (mean over seeds): the
served-weighted fatigue factor (what the impressions' rate kept of their creative's fresh
rate) and the served fresh rate over the base rate, for faceloop and the oracle.

    python scripts/issue17_session12/fatigue_diag.py SCENARIO FIRST_SEED SEEDS
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def one(job: tuple[str, int]) -> dict[str, list[tuple[float, float]]]:
    name, seed = job
    from faceloop.connectors.sandbox_platform.scenario import fatigue_factor, load_scenario
    from faceloop.optimization import simulate as sim

    sim._one_blas_thread()
    sc = load_scenario(Path("examples/scenarios") / f"{name}.yaml")
    cfg = sim.for_scenario(sim.BenchConfig(), sc)
    rows: dict[str, dict[int, list[tuple[int, float, float]]]] = {}
    deliver = sim.Audience.deliver

    def recording(self: Any, arm: Any, window: int, by_segment: Any, tally: Any, kpi: Any) -> int:
        who = self.campaign_id.split("-")[0]
        n = sum(by_segment.values())
        if n:
            segment = sorted(by_segment)[0]
            ctr, _ = sim.true_rates(
                self.scenario, arm.face, segment, 0, window, asset_id=arm.asset_id
            )
            f = fatigue_factor(self.scenario, arm.delivered + n / 2)
            rows.setdefault(who, {}).setdefault(window, []).append((n, ctr, f))
        return deliver(self, arm, window, by_segment, tally, kpi)

    sim.Audience.deliver = recording  # type: ignore[method-assign]
    sim.run_seed(sc, cfg, seed)
    out: dict[str, list[tuple[float, float]]] = {}
    for who, by_w in rows.items():
        out[who] = []
        for w in sorted(by_w):
            r = by_w[w]
            tot = sum(n for n, _, _ in r)
            fresh = sum(n * c for n, c, _ in r)
            kept = sum(n * c * f for n, c, f in r)
            out[who].append((kept / fresh, fresh / tot / sc.base_ctr))
    return out


def main() -> None:
    name, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with ProcessPoolExecutor(2) as pool:
        runs = list(pool.map(one, [(name, s) for s in range(first, first + n)]))
    for who in ("faceloop", "oracle", "best_fixed"):
        a = np.mean([r[who] for r in runs if who in r], axis=0)
        print(who, "fatigue kept per window:", " ".join(f"{x:.2f}" for x in a[:, 0]))
        print(who, "fresh rate / base      :", " ".join(f"{x:.2f}" for x in a[:, 1]))
        print(
            who, "overall fatigue kept", f"{a[:, 0].mean():.3f}", "fresh", f"{a[:, 1].mean():.3f}"
        )


if __name__ == "__main__":
    main()
