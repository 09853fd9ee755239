"""The report's own plot: CTR and conversions by round, best and mean variant.

The regret curve and the Pareto scatter belong to the learn stage
(faceloop.optimization.plots); this one only reads the report's per-round entries.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from faceloop.report.data import Round, best_ctr, ctrs, mean_ctr

PLOT_NAME = "kpi_by_round.png"


def kpi_plot(rounds: list[Round], path: Path) -> Path | None:
    """Draw the plot at path; without any observed CTR remove a stale one and return None."""
    points = [(rnd, es) for rnd, es in rounds if ctrs(es)]
    if not points:
        path.unlink(missing_ok=True)
        return None
    xs = [rnd for rnd, _ in points]
    best_ctrs = [100 * (best_ctr(es) or 0.0) for _, es in points]
    mean_ctrs = [100 * (mean_ctr(es) or 0.0) for _, es in points]
    observed = [[e.kpi.conversions for e in es if e.kpi.impressions] for _, es in points]
    best_conv = [max(c) for c in observed]
    mean_conv = [sum(c) / len(c) for c in observed]

    # Figure without pyplot: no global backend or state, safe inside a worker process
    fig = Figure(figsize=(10, 3.2), dpi=150, layout="constrained")
    ax_ctr, ax_conv = fig.subplots(1, 2)
    for ax, best, mean, title, unit in (
        (ax_ctr, best_ctrs, mean_ctrs, "Click-through rate", "CTR (%)"),
        (ax_conv, best_conv, mean_conv, "Conversions per variant", "conversions"),
    ):
        ax.plot(xs, best, marker="o", color="#1f6feb", linewidth=2.2, label="best variant")
        ax.plot(xs, mean, marker="o", color="#8c959f", linewidth=1.8, linestyle="--", label="mean")
        ax.set_title(title, fontsize=11, loc="left", color="#1f2328")
        ax.set_xlabel("round", color="#57606a")
        ax.set_ylabel(unit, color="#57606a")
        ax.set_xticks(xs)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", color="#d0d7de", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(colors="#57606a")
        ax.legend(frameon=False, fontsize=9)
    fig.savefig(path, format="png", facecolor="white")
    return path
