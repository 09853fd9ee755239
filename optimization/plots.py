"""Plots shared by the campaign report and `faceloop bench optimize`: cumulative regret
curves and the Pareto front of a multi-objective study.

Figures are built without pyplot (no global backend or state), so they are safe inside a
worker process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

# one colour per strategy, the campaign's own line first
_COLORS = ("#1f6feb", "#cf222e", "#8c959f", "#1a7f37", "#9a6700", "#8250df")


def _style(fig: Figure) -> None:
    for ax in fig.axes:
        ax.grid(axis="y", color="#d0d7de", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(colors="#57606a")


def regret_plot(
    curves: Mapping[str, Sequence[float]],
    impressions_per_round: Sequence[float],
    path: Path,
    *,
    title: str,
    estimated: bool,
    unit: str = "clicks",
) -> Path:
    """Cumulative regret (clicks or conversions short of the best face) against cumulative
    impressions, one line per curve. `estimated`: measured against the campaign's own
    posterior best (a live campaign has no truth), and the axis says so."""
    xs = []
    total = 0.0
    for n in impressions_per_round:
        total += n
        xs.append(total)
    fig = Figure(figsize=(7.5, 3.6), dpi=150, layout="constrained")
    ax = fig.subplots()
    for (name, ys), color in zip(curves.items(), _COLORS * 4, strict=False):
        ax.plot(
            xs[: len(ys)], list(ys), marker="o", markersize=3, linewidth=2, color=color, label=name
        )
    ax.set_title(title, fontsize=11, loc="left", color="#1f2328")
    ax.set_xlabel("cumulative impressions", color="#57606a")
    ax.set_ylabel(
        f"estimated regret ({unit} vs posterior best)"
        if estimated
        else f"regret ({unit} short of the oracle)",
        color="#57606a",
    )
    ax.set_ylim(bottom=min(0.0, *(min(ys) for ys in curves.values() if ys)))
    if len(curves) > 1:
        ax.legend(frameon=False, fontsize=9)
    _style(fig)
    fig.savefig(path, format="png", facecolor="white")
    return path


def pareto_plot(
    points: Sequence[Mapping[str, float]],
    front: Sequence[Mapping[str, float]],
    objectives: Sequence[str],
    path: Path,
) -> Path:
    """Every finished trial (grey) and the Pareto front (blue, joined) on the first two
    objectives."""
    x_name, y_name = objectives[0], objectives[1]
    fig = Figure(figsize=(5.5, 3.8), dpi=150, layout="constrained")
    ax = fig.subplots()
    ax.scatter(
        [p[x_name] for p in points],
        [p[y_name] for p in points],
        s=14,
        color="#8c959f",
        label="trials",
    )
    ordered = sorted(front, key=lambda p: p[x_name])
    ax.plot(
        [p[x_name] for p in ordered],
        [p[y_name] for p in ordered],
        marker="o",
        color="#1f6feb",
        linewidth=1.8,
        label="Pareto front",
    )
    ax.set_xlabel(x_name, color="#57606a")
    ax.set_ylabel(y_name, color="#57606a")
    ax.set_title("Pareto front", fontsize=11, loc="left", color="#1f2328")
    ax.legend(frameon=False, fontsize=9)
    _style(fig)
    fig.savefig(path, format="png", facecolor="white")
    return path


__all__ = ["pareto_plot", "regret_plot"]
