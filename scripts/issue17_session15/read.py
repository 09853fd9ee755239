"""Print faceloop's and faces_known's oracle fractions and the lift per scenario from
`faceloop bench optimize --all --json` outputs (issue 17, session 15)."""

import json
import sys
from pathlib import Path

for path in sys.argv[1:]:
    runs = json.loads(Path(path).read_text())
    print(path)
    for s in runs if isinstance(runs, list) else [runs]:
        st = s["strategies"]
        print(
            f"  {s['scenario']:18s} faceloop {st['faceloop']['oracle_fraction']:.3f} "
            f"faces_known {st['faces_known']['oracle_fraction']:.3f} "
            f"faceloop KPI {st['faceloop']['kpi_mean']:.1f} lift {s['lift_vs_ab']:+.3f}"
        )
