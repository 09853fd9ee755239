"""Where faceloop's impressions go (mean over seeds, per window): the share on creatives in
their first window and their fresh rate (the KPI's: CTR, or conversions per impression)
over the base, the rest's rate, the best live creative's and the best older one's, and
how many creatives were new; single-segment scenarios. SCENARIO is a shipped scenario's
name or a YAML path.

    python scripts/issue17_session12/serve_split.py SCENARIO FIRST_SEED SEEDS [SAMPLER]
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
    sc = load_scenario(
        Path(name) if name.endswith(".yaml") else Path("examples/scenarios") / f"{name}.yaml"
    )
    cfg = sim.for_scenario(sim.BenchConfig(), sc)
    rows: dict[int, list[tuple[int, float, bool]]] = {}
    first: dict[str, int] = {}
    deliver = sim.Audience.deliver

    def recording(self: Any, arm: Any, window: int, by_segment: Any, tally: Any, kpi: Any) -> int:
        n = sum(by_segment.values())
        first.setdefault(arm.asset_id, window)
        segment = sorted(by_segment)[0] if by_segment else "all"
        ctr, cvr = sim.true_rates(
            self.scenario, arm.face, segment, 0, window, asset_id=arm.asset_id
        )
        rate = ctr * (cvr if kpi == "conversions" else 1.0)
        rows.setdefault(window, []).append((n, rate, first[arm.asset_id] == window))
        return deliver(self, arm, window, by_segment, tally, kpi)

    sim.Audience.deliver = recording  # type: ignore[method-assign]
    sampler = sys.argv[4] if len(sys.argv) > 4 else cfg.sampler
    sim.run_optuna_loop(sc, cfg, seed, sampler, None, "faceloop")
    base = sc.base_ctr * (sc.base_cvr if cfg.goal.value == "conversions" else 1.0)
    out = []
    for w in sorted(rows):
        r = rows[w]
        tot = sum(n for n, _, _ in r)
        new = [(n, c) for n, c, f in r if f]
        old = [(n, c) for n, c, f in r if not f]
        ns = sum(n for n, _ in new)
        os_ = sum(n for n, _ in old)
        out.append(
            (
                ns / tot,
                (sum(n * c for n, c in new) / ns if ns else np.nan) / base,
                (sum(n * c for n, c in old) / os_ if os_ else np.nan) / base,
                max(c for _, c, _ in r) / base,
                max((c for _, c, f in r if not f), default=np.nan) / base,
                float(len(new)),
            )
        )
    return out


def main() -> None:
    name, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.argv = sys.argv[:5]
    with ProcessPoolExecutor(2) as pool:
        runs = np.array(list(pool.map(one, [(name, s) for s in range(first, first + n)])))
    a = np.nanmean(runs, axis=0)
    print("window new_share new_rate old_rate best_live best_old n_new")
    for w, row in enumerate(a):
        print(w, " ".join(f"{x:.3f}" for x in row))


if __name__ == "__main__":
    main()
