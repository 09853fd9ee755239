"""The decay estimate per round (stderr, "decay now=ROUND slope=PER_10000") on `flat` and
`drift_fatigue`, seeds 1000-1001, for docs/benchmarks.md, "Session 8, second attempt". Run
with value_rule_keeps_and_calibrated_decay.patch applied:

    NOHARM_VARIANT=AB NOHARM_TRACE=1 python scripts/issue17_session8/trace_decay.py
"""

from __future__ import annotations

import sys

from paired import one  # type: ignore[import-not-found]

for name in ["flat", "drift_fatigue"]:
    for seed in [1000, 1001]:
        print("==", name, seed, file=sys.stderr)
        print(one((name, seed)))
