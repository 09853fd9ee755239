"""Campaign report: what was tried, what the guardrails said, what ran and what won.

`build_report` writes a folder that opens from disk without a server:

    report.json        machine-readable summary (rounds, variants, KPIs, winner)
    report.html        the same for people, with inline CSS
    kpi_by_round.png   CTR and conversions by round (best and mean variant)
    regret.png         estimated cumulative regret (faceloop.optimization.report)
    pareto.png         the Pareto front of a multi-objective campaign
    images/<id>.png    one thumbnail per asset, referenced by relative path

Everything comes from the catalog and the asset store; the report holds no state of its own,
so rebuilding it after more rounds simply gives the newer picture. data.py builds the model
(report.json), plots.py draws the KPI plot, html.py renders templates/report.html.j2.
"""

from __future__ import annotations

import json
from pathlib import Path

from faceloop.cost import Prices
from faceloop.errors import FaceloopError
from faceloop.models import FaceParams
from faceloop.optimization.study import Optimizer
from faceloop.report.data import build_model
from faceloop.report.html import render_html
from faceloop.report.plots import PLOT_NAME, kpi_plot
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog

__all__ = ["build_report"]


def build_report(
    catalog: Catalog,
    store: AssetStore,
    campaign_id: str,
    out_dir: Path,
    prompt_only: frozenset[str] = frozenset(),
    optimizer: Optimizer | None = None,
    prices: Prices | None = None,
) -> tuple[Path, Path]:
    """Write report.json and report.html (plus plots and thumbnails) into out_dir.

    `optimizer` reads the campaign's Optuna study for the Pareto front of a multi-objective
    campaign (without it the report says the study was not read). `prices` (the settings'
    price_* and cost_currency) turn the measured use into money (docs/cost.md).

    `prompt_only` names the FaceParams fields the generator only received as prompt text and
    cannot render (the embedded generator ignores e.g. lighting); the report says so, so
    nobody reads a KPI difference into a parameter the images never showed.
    """
    unknown = sorted(prompt_only - set(FaceParams.model_fields))
    if unknown:
        raise FaceloopError(
            f"prompt_only names {unknown}, which are not face parameters; "
            f"use any of {sorted(FaceParams.model_fields)}"
        )
    campaign = catalog.get_campaign(campaign_id)
    if campaign is None:
        raise FaceloopError(
            f"campaign {campaign_id!r} is not in the catalog at {catalog.url}; "
            "check the id with `faceloop list` (or the console)"
        )
    out_dir = Path(out_dir)
    model = build_model(catalog, store, campaign, out_dir, prompt_only, optimizer, prices)
    plot = kpi_plot(model.rounds, out_dir / PLOT_NAME)

    json_path = out_dir / "report.json"
    html_path = out_dir / "report.html"
    # both hold the variants' prompts, so erasing one of them removes the report; recorded
    # before they are written, so a report killed half-way is found too
    for path in (json_path, html_path):
        catalog.record_export(path, "report", campaign_id)
    json_path.write_text(
        json.dumps(model.data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    html_path.write_text(
        render_html(model, PLOT_NAME if plot else None, prompt_only), encoding="utf-8"
    )
    return json_path, html_path
