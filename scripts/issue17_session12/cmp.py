"""Paired difference of per-seed result files ({scenario: {seed: [kpi, ...]}}, the format of
session 10's paired.py and of delay_paired.py): each file's mean KPI, and the mean per-seed
difference as a share of the first file's mean, +- its standard error.

    python scripts/issue17_session12/cmp.py BEFORE.json VARIANT.json [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

base = json.loads(Path(sys.argv[1]).read_text())
for path in sys.argv[2:]:
    var = json.loads(Path(path).read_text())
    for name, seeds in base.items():
        if name not in var:
            continue
        common = sorted(set(seeds) & set(var[name]))
        a = np.array([seeds[s][0] for s in common])
        b = np.array([var[name][s][0] for s in common])
        d = (b - a) / a.mean()
        print(
            f"{path}: {name} {a.mean():.1f} -> {b.mean():.1f}  "
            f"{100 * d.mean():+.1f}% +-{100 * d.std(ddof=1) / np.sqrt(len(d)):.1f} ({len(d)} seeds)"
        )
