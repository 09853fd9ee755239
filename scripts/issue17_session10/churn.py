"""New creatives per campaign (mean over seeds) and the paired KPI difference by campaign
half (windows 0-13, 14-27) per tuning scenario, variant against before.

    python scripts/issue17_session10/churn.py BEFORE.json VARIANT.json [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    before = json.loads(Path(sys.argv[1]).read_text())
    for path in sys.argv[2:]:
        variant = json.loads(Path(path).read_text())
        print(Path(path).stem)
        for name, runs in variant.items():
            seeds = sorted(runs)
            nb = np.mean([before[name][s][1] for s in seeds])
            nv = np.mean([runs[s][1] for s in seeds])
            line = f"  {name:16s} new {nb:6.1f} -> {nv:6.1f}"
            if len(runs[seeds[0]]) > 2 and len(before[name][seeds[0]]) > 2:
                for lo, hi in ((0, 14), (14, 28)):
                    b = np.array([sum(before[name][s][2][lo:hi]) for s in seeds])
                    x = np.array([sum(runs[s][2][lo:hi]) for s in seeds])
                    d = (x - b) / b.mean()
                    se = d.std(ddof=1) / np.sqrt(len(d))
                    line += f" | w{lo}-{hi - 1} {100 * d.mean():+.1f}% +-{100 * se:.1f}"
            print(line)


if __name__ == "__main__":
    main()
