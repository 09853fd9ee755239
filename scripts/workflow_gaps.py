"""The orchestration gaps of one recorded campaign history, one line each: how long the
campaign waited between one activity (or timer) ending and the next starting, and the
workflow tasks inside that gap. docs/benchmarks.md, "Session 10".

    .venv/bin/python scripts/workflow_gaps.py tests/workflows/histories/guard-ship-run0.json
"""

from __future__ import annotations

import sys
from pathlib import Path

from temporalio.client import WorkflowHistory

from faceloop.workflows.timings import Interval, RunTimeline, add_history


def _merged(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def main(path: Path) -> None:
    tl = RunTimeline(path.stem)
    add_history(tl, WorkflowHistory.from_json(path.stem, path.read_text()).events)
    running = [(a.started, a.closed) for a in tl.activities if a.started and a.closed]
    covered = _merged([*running, *tl.timers])
    gaps: list[Interval] = []
    at = tl.start
    for s, e in covered:
        if s > at:
            gaps.append((at, s))
        at = max(at, e)
    if tl.end > at:
        gaps.append((at, tl.end))

    def ending(t: float) -> list[str]:
        acts = [a.activity for a in tl.activities if a.closed and abs(a.closed - t) < 1e-6]
        return acts + ["timer" for _, e in tl.timers if abs(e - t) < 1e-6] or ["start"]

    def starting(t: float) -> list[str]:
        acts = [a.activity for a in tl.activities if a.started and abs(a.started - t) < 1e-6]
        return acts + ["timer" for s, _ in tl.timers if abs(s - t) < 1e-6] or ["end"]

    for g0, g1 in gaps:
        tasks = [w for w in tl.workflow_tasks if w[0] >= g0 - 1e-6 and w[1] <= g1 + 1e-6]
        ms = ", ".join(f"{(b - a) * 1000:.1f}" for a, b in tasks)
        print(
            f"{(g1 - g0) * 1000:7.1f} ms  {'+'.join(ending(g0))} -> {'+'.join(starting(g1))}"
            f"  ({len(tasks)} workflow task(s): {ms} ms)"
        )
    total = sum(g1 - g0 for g0, g1 in gaps)
    print(f"{total:.3f} s in {len(gaps)} gaps; wall {tl.end - tl.start:.2f} s")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
