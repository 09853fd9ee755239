"""Paired differences of faceloop's KPI, variant against before, per tuning scenario: the
mean over seeds of (variant - before) / mean(before), +- its standard error.

    python scripts/issue17_session10/compare.py BEFORE.json VARIANT.json [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from paired import SCENARIOS  # type: ignore[import-not-found]


def main() -> None:
    before = json.loads(Path(sys.argv[1]).read_text())
    for path in sys.argv[2:]:
        variant = json.loads(Path(path).read_text())
        cells = [Path(path).stem]
        for name in SCENARIOS:
            seeds = sorted(before[name])
            b = np.array([before[name][s][0] for s in seeds])
            x = np.array([variant[name][s][0] for s in seeds])
            d = (x - b) / b.mean()
            se = d.std(ddof=1) / np.sqrt(len(d))
            cells.append(f"{100 * d.mean():+.1f}% +-{100 * se:.1f} ({x.mean():.0f})")
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
