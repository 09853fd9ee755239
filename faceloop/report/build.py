"""Campaign report: what was tried, what the guardrails said, what ran and what won.

`build_report` writes a folder that opens from disk without a server:

    report.json        machine-readable summary (rounds, variants, KPIs, winner)
    report.html        the same for people, with inline CSS
    kpi_by_round.png   CTR and conversions by round (best and mean variant)
    images/<id>.png    one thumbnail per asset, referenced by relative path

Everything comes from the catalog and the asset store; the report holds no state of its own,
so rebuilding it after more rounds simply gives the newer picture.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from matplotlib.figure import Figure
from PIL import Image

from faceloop.errors import FaceloopError
from faceloop.models import Decision, FaceParams, Variant
from faceloop.optimization import Optimizer
from faceloop.optimization.report import pareto_section, regret_section
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import AuditEntry, Catalog

__all__ = ["build_report", "posterior_mean_ctr"]

THUMBNAIL_PX = 384
PLOT_NAME = "kpi_by_round.png"
IMAGES_DIR = "images"

# the order and labels in which the report shows FaceParams
PARAM_LABELS: dict[str, str] = {
    "age_band": "Age",
    "gender_presentation": "Gender",
    "skin_tone": "Skin tone",
    "expression": "Expression",
    "lighting": "Lighting",
    "background": "Background",
    "framing": "Framing",
    "style": "Style",
}


def posterior_mean_ctr(clicks: int, impressions: int) -> float:
    """Posterior mean of Beta(1 + clicks, 1 + misses): the CTR estimate the winner is ranked by.

    The uniform prior keeps variants comparable when one has far fewer impressions: no
    variant sits at exactly 0 or 1 after a handful of impressions.
    """
    return (1 + clicks) / (2 + impressions)


@dataclass
class _Kpi:
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0

    def add(self, impressions: int, clicks: int, conversions: int) -> None:
        self.impressions += impressions
        self.clicks += clicks
        self.conversions += conversions

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def cvr(self) -> float | None:
        # conversions per click, as ad platforms report it
        return self.conversions / self.clicks if self.clicks else None


@dataclass
class _Entry:
    """One variant as seen in one round (a carried-over incumbent appears in several)."""

    variant: Variant
    kpi: _Kpi
    carried_over: bool
    image: str | None = None
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_report(
    catalog: Catalog,
    store: AssetStore,
    campaign_id: str,
    out_dir: Path,
    prompt_only: frozenset[str] = frozenset(),
    optimizer: Optimizer | None = None,
) -> tuple[Path, Path]:
    """Write report.json and report.html (plus plots and thumbnails) into out_dir.

    `optimizer` reads the campaign's Optuna study for the Pareto front of a multi-objective
    campaign (without it the report says the study was not read).

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
    (out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)

    variants = catalog.variants(campaign_id)
    by_id = {v.variant_id: v for v in variants}
    per_round: dict[tuple[str, int], _Kpi] = {}
    observations = catalog.observations(campaign_id)
    for o in observations:
        per_round.setdefault((o.variant_id, o.round), _Kpi()).add(
            o.impressions, o.clicks, o.conversions
        )
    deployed = {d.variant_id for d in catalog.deployments(campaign_id)}
    deployed |= {v.variant_id for v in variants if v.decision is Decision.deploy}

    images: dict[str, str | None] = {}
    missing_images: list[str] = []
    for v in variants:
        if v.asset is not None and v.asset.asset_id not in images:
            images[v.asset.asset_id] = rel = _write_thumbnail(store, v, out_dir)
            if rel is None:
                missing_images.append(v.asset.asset_id)
            else:
                # a copy outside the asset store: GDPR erasure must find it (docs/privacy.md)
                catalog.record_export(out_dir / rel, "thumbnail", campaign_id, v.asset.asset_id)

    rounds = _rounds(variants, by_id, per_round, images)
    entries = catalog.audit_entries(campaign_id)
    recorded = next(
        (
            str(e.payload["winner"])
            for e in reversed(entries)
            if e.kind.startswith("campaign.") and e.payload.get("winner")
        ),
        None,
    )
    winner = _winner(variants, per_round, deployed, recorded)
    audit_problems = catalog.verify_audit()
    plot = _plot(rounds, out_dir / PLOT_NAME)

    # the analyst's plain-language summary of each round (agents/analyst/, audit log)
    analyses = [
        {
            "round": _round_of(e.subject),
            "text": str(e.payload.get("text", "")),
            "written_by": str(e.payload.get("written_by", "template")),
        }
        for e in entries
        if e.kind == "analysis.round"
    ]
    data: dict[str, Any] = {
        "campaign_id": campaign_id,
        "status": campaign.status,
        "brief": campaign.brief.model_dump(mode="json"),
        "config": campaign.config.model_dump(mode="json"),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": [
            {
                "round": rnd,
                **_kpi_json(_total(es)),
                "best_ctr": _best_ctr(es),
                "mean_ctr": _mean_ctr(es),
                "variants": [_entry_json(e) for e in es],
            }
            for rnd, es in rounds
        ],
        "winner": winner,
        "analysis": analyses,
        "prompt_only_params": sorted(prompt_only),
        "audit_entries": len(entries),
        "audit_intact": not audit_problems,
        "audit_problems": audit_problems,
        "missing_images": missing_images,
        # estimated regret (a live campaign has no truth) and the Pareto front
        "regret": regret_section(observations, campaign.brief.kpi_goal, out_dir),
        "pareto": pareto_section(optimizer, campaign_id, campaign.config, out_dir),
        # live ads a playbook rollback criterion paused: what fired, on what numbers, who
        # was told (from the audit log, so the report shows what the chain proves)
        "rollbacks": [
            {
                "round": e.payload.get("round"),
                "variant_id": e.subject,
                "ad_id": e.payload.get("ad_id", ""),
                "criteria": e.payload.get("criteria", []),
                "reason": e.payload.get("reason", ""),
                "notify_role": e.payload.get("notify_role", ""),
                "by": e.actor,
                "at": e.ts.isoformat(timespec="seconds"),
            }
            for e in entries
            if e.kind == "rollback.paused"
        ],
    }
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    html = _render_html(
        data=data,
        rounds=rounds,
        entries=entries,
        plot=PLOT_NAME if plot else None,
        winner_entry=_winner_entry(rounds, winner),
        prompt_only=prompt_only,
    )
    html_path = out_dir / "report.html"
    html_path.write_text(html, encoding="utf-8")
    # both hold the variants' prompts, so erasing one of them removes the report
    for path in (json_path, html_path):
        catalog.record_export(path, "report", campaign_id)
    return json_path, html_path


# --------------------------------------------------------------------------- data


def _round_of(subject: str) -> int | None:
    """'<campaign>-r3' -> 3."""
    tail = subject.rsplit("-r", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _rounds(
    variants: list[Variant],
    by_id: dict[str, Variant],
    per_round: dict[tuple[str, int], _Kpi],
    images: dict[str, str | None],
) -> list[tuple[int, list[_Entry]]]:
    round_numbers = sorted({v.round for v in variants} | {r for _, r in per_round})
    out: list[tuple[int, list[_Entry]]] = []
    for rnd in round_numbers:
        entries: list[_Entry] = []
        seen: set[str] = set()
        # a round shows the variants made in it, then incumbents that ran in it again
        made_here = [v for v in variants if v.round == rnd]
        ran_here = [by_id[vid] for vid, r in per_round if r == rnd and vid in by_id]
        for v in [*made_here, *ran_here]:
            if v.variant_id in seen:
                continue
            seen.add(v.variant_id)
            entries.append(
                _Entry(
                    variant=v,
                    kpi=per_round.get((v.variant_id, rnd), _Kpi()),
                    carried_over=v.round != rnd,
                    image=images.get(v.asset.asset_id) if v.asset else None,
                    checks={
                        c.name: {"verdict": c.verdict.value, "score": c.score}
                        for c in (v.report.checks if v.report else [])
                    },
                )
            )
        out.append((rnd, entries))
    return out


def _winner(
    variants: list[Variant],
    per_round: dict[tuple[str, int], _Kpi],
    deployed: set[str],
    recorded: str | None = None,
) -> dict[str, Any] | None:
    """The campaign's own winner (`recorded`: what its KPI model chose, from the
    campaign.done entry) when it is a deployed variant with impressions, so the report and
    `faceloop demo`/`status` name the same one; otherwise, e.g. for a campaign still
    running, the deployed variant with the highest posterior mean CTR."""
    totals: dict[str, _Kpi] = {}
    for (vid, _), kpi in per_round.items():
        totals.setdefault(vid, _Kpi()).add(kpi.impressions, kpi.clicks, kpi.conversions)
    best: tuple[float, float, int, int] | None = None
    winner: dict[str, Any] | None = None
    for order, v in enumerate(variants):
        total = totals.get(v.variant_id)
        if v.variant_id not in deployed or total is None or total.impressions == 0:
            continue
        mean = posterior_mean_ctr(total.clicks, total.impressions)
        # ties: more evidence wins, then the earlier variant, so the winner is stable
        rank = (float(v.variant_id == recorded), mean, total.impressions, -order)
        if best is None or rank > best:
            best = rank
            winner = {
                "variant_id": v.variant_id,
                "asset_id": v.asset.asset_id if v.asset else None,
                "round": v.round,
                "params": v.params.model_dump(mode="json"),
                "ctr": total.ctr,
                "posterior_mean_ctr": mean,
                "impressions": total.impressions,
                "clicks": total.clicks,
                "conversions": total.conversions,
            }
    return winner


def _winner_entry(
    rounds: list[tuple[int, list[_Entry]]], winner: dict[str, Any] | None
) -> _Entry | None:
    if winner is None:
        return None
    for _, entries in rounds:
        for e in entries:
            if e.variant.variant_id == winner["variant_id"]:
                return e
    return None


def _write_thumbnail(store: AssetStore, v: Variant, out_dir: Path) -> str | None:
    """Copy the asset as a thumbnail next to the report; None if the store lacks it."""
    assert v.asset is not None
    rel = f"{IMAGES_DIR}/{v.asset.asset_id}.png"
    try:
        data = store.get_bytes(v.asset.uri)
        with Image.open(io.BytesIO(data)) as im:
            thumb = im.convert("RGB")
    except (FaceloopError, OSError):
        # a report of a campaign whose assets were pruned still shows everything else
        return None
    # only shrink: small generator output is scaled up by the browser, not baked in blurry
    thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
    thumb.save(out_dir / rel, format="PNG")
    return rel


def _total(entries: list[_Entry]) -> _Kpi:
    total = _Kpi()
    for e in entries:
        total.add(e.kpi.impressions, e.kpi.clicks, e.kpi.conversions)
    return total


def _ctrs(entries: list[_Entry]) -> list[float]:
    return [e.kpi.ctr for e in entries if e.kpi.ctr is not None]


def _best_ctr(entries: list[_Entry]) -> float | None:
    ctrs = _ctrs(entries)
    return max(ctrs) if ctrs else None


def _mean_ctr(entries: list[_Entry]) -> float | None:
    ctrs = _ctrs(entries)
    return sum(ctrs) / len(ctrs) if ctrs else None


def _kpi_json(kpi: _Kpi) -> dict[str, Any]:
    return {
        "impressions": kpi.impressions,
        "clicks": kpi.clicks,
        "conversions": kpi.conversions,
        "ctr": kpi.ctr,
        "cvr": kpi.cvr,
    }


def _entry_json(e: _Entry) -> dict[str, Any]:
    v = e.variant
    return {
        "variant_id": v.variant_id,
        "asset_id": v.asset.asset_id if v.asset else None,
        "params": v.params.model_dump(mode="json"),
        "decision": v.decision.value if v.decision else None,
        "decision_reason": v.decision_reason,
        **_kpi_json(e.kpi),
        "prompt": v.prompt,
        "checks": e.checks,
        "carried_over": e.carried_over,
        "image": e.image,
    }


# --------------------------------------------------------------------------- plot


def _plot(rounds: list[tuple[int, list[_Entry]]], path: Path) -> Path | None:
    points = [(rnd, es) for rnd, es in rounds if _ctrs(es)]
    if not points:
        path.unlink(missing_ok=True)
        return None
    xs = [rnd for rnd, _ in points]
    best_ctr = [100 * (_best_ctr(es) or 0.0) for _, es in points]
    mean_ctr = [100 * (_mean_ctr(es) or 0.0) for _, es in points]
    observed = [[e.kpi.conversions for e in es if e.kpi.impressions] for _, es in points]
    best_conv = [max(c) for c in observed]
    mean_conv = [sum(c) / len(c) for c in observed]

    # Figure without pyplot: no global backend or state, safe inside a worker process
    fig = Figure(figsize=(10, 3.2), dpi=150, layout="constrained")
    ax_ctr, ax_conv = fig.subplots(1, 2)
    for ax, best, mean, title, unit in (
        (ax_ctr, best_ctr, mean_ctr, "Click-through rate", "CTR (%)"),
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


# --------------------------------------------------------------------------- html


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: int | None) -> str:
    return "–" if x is None else f"{x:,}"


def _params_view(params: FaceParams, prompt_only: frozenset[str]) -> list[dict[str, Any]]:
    values = params.model_dump()
    return [
        {
            "key": key,
            "label": label,
            "value": f"MST {values[key]}"
            if key == "skin_tone"
            else str(values[key]).replace("_", " "),
            "prompt_only": key in prompt_only,
        }
        for key, label in PARAM_LABELS.items()
    ]


def _tile(e: _Entry, winner_id: str | None, prompt_only: frozenset[str]) -> dict[str, Any]:
    """What the template shows of one variant in one round, formatted; keeps logic out of it."""
    v = e.variant
    decision = v.decision.value if v.decision else "pending"
    return {
        "id": v.variant_id,
        "decision": decision,
        "winner": v.variant_id == winner_id,
        "carried_from": v.round if e.carried_over else None,
        "image": e.image,
        "image_note": "erased" if v.erased_at else "image missing" if v.asset else "no image",
        "params": _params_view(v.params, prompt_only),
        "checks": [
            {
                "name": name,
                "verdict": c["verdict"],
                "title": f"{name}: {c['verdict']} ({c['score']:.2f})",
            }
            for name, c in e.checks.items()
        ],
        "reason": "" if decision == "deploy" else v.decision_reason,
        "impressions": _num(e.kpi.impressions),
        "clicks": _num(e.kpi.clicks),
        "conversions": _num(e.kpi.conversions),
        "ctr": _pct(e.kpi.ctr),
        "cvr": _pct(e.kpi.cvr, 1),
    }


def _render_html(
    *,
    data: dict[str, Any],
    rounds: list[tuple[int, list[_Entry]]],
    entries: list[AuditEntry],
    plot: str | None,
    winner_entry: _Entry | None,
    prompt_only: frozenset[str],
) -> str:
    # autoescape: product, message, constraints, ... are user input and must stay text
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    template = env.from_string(_TEMPLATE)

    winner = data["winner"]
    winner_id = winner["variant_id"] if winner else None
    all_entries = [e for _, es in rounds for e in es]
    total = _total(all_entries)
    round_views = [
        {
            "round": rnd,
            "summary": summary,
            "tiles": [_tile(e, winner_id, prompt_only) for e in es],
        }
        for (rnd, es), summary in zip(rounds, data["rounds"], strict=True)
    ]
    stats = [
        (str(len(rounds)), "rounds"),
        (str(len({e.variant.variant_id for e in all_entries})), "variants"),
        (
            str(
                len(
                    {
                        e.variant.variant_id
                        for e in all_entries
                        if e.variant.decision is Decision.deploy
                    }
                )
            ),
            "deployed",
        ),
        (_num(total.impressions), "impressions"),
        (_num(total.clicks), "clicks"),
        (_pct(total.ctr), "overall CTR"),
        (_num(total.conversions), "conversions"),
    ]
    winner_view = None
    if winner is not None:
        winner_view = {
            **winner,
            "image": winner_entry.image if winner_entry else None,
            "prompt": winner_entry.variant.prompt if winner_entry else "",
            "params": _params_view(FaceParams.model_validate(winner["params"]), prompt_only),
        }
    return template.render(
        d=data,
        brief=data["brief"],
        rounds=round_views,
        audit=entries,
        plot=plot,
        winner=winner_view,
        prompt_only=[PARAM_LABELS[p] for p in sorted(prompt_only)],
        stats=stats,
    )


# Kept here rather than in a package template folder so the report is one self-contained
# module; jinja autoescape is on, so nothing in here needs |e.
_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Campaign report · {{ brief.product }}</title>
<style>
  :root {
    --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --card: #fff;
    --accent: #1f6feb; --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9;
    --warn: #9a6700; --warn-bg: #fff8c5; --none-bg: #eef1f4;
    --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  }
  * { box-sizing: border-box; }
  body {
    margin: 0; background: var(--bg); color: var(--fg);
    font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica,
      Arial, sans-serif;
  }
  main { max-width: 1160px; margin: 0 auto; padding: 0 24px 48px; }
  header.top {
    background: linear-gradient(135deg, #0d1b2a 0%, #1b3a5c 100%); color: #fff;
    padding: 32px 0 28px; margin-bottom: 24px;
  }
  header.top .inner { max-width: 1160px; margin: 0 auto; padding: 0 24px; }
  .eyebrow { text-transform: uppercase; letter-spacing: .08em; font-size: 11px; opacity: .7; }
  h1 { margin: 6px 0 8px; font-size: 28px; line-height: 1.2; font-weight: 650; }
  .message { font-size: 16px; opacity: .92; max-width: 820px; margin: 0 0 16px; }
  .meta { display: flex; flex-wrap: wrap; gap: 8px 20px; font-size: 13px; opacity: .9; }
  .meta b { font-weight: 600; opacity: .75; margin-right: 4px; }
  .chip {
    display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
    background: rgba(255,255,255,.14); margin-right: 4px;
  }
  h2 { font-size: 18px; margin: 32px 0 12px; font-weight: 650; }
  h3 { font-size: 15px; margin: 0 0 12px; font-weight: 600; }
  .card {
    background: var(--card); border: 1px solid var(--line); border-radius: 10px;
    padding: 18px 20px; margin-bottom: 16px;
  }
  .card.flush { padding: 0; overflow-x: auto; }
  .stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr)); gap: 12px; }
  .stat {
    background: var(--card); border: 1px solid var(--line); border-radius: 10px;
    padding: 14px 16px;
  }
  .stat .v { font-size: 22px; font-weight: 650; }
  .stat .k { color: var(--muted); font-size: 12px; }
  .note {
    border-left: 4px solid var(--warn); background: var(--warn-bg); border-radius: 6px;
    padding: 10px 14px; margin: 16px 0; font-size: 13px;
  }
  .note.bad { border-color: var(--bad); background: var(--bad-bg); }
  .winner { display: grid; grid-template-columns: 240px 1fr; gap: 24px; align-items: start; }
  .winner img, .winner .noimg { width: 240px; height: 240px; border-radius: 8px; }
  .winner .kpis { display: flex; gap: 28px; margin: 4px 0 16px; flex-wrap: wrap; }
  .winner .kpis .v { font-size: 20px; font-weight: 650; }
  .winner .kpis .k { color: var(--muted); font-size: 12px; }
  dl.params { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
  dl.params dt { color: var(--muted); }
  dl.params dd { margin: 0; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 14px; }
  .tile {
    background: var(--card); border: 1px solid var(--line); border-radius: 10px;
    overflow: hidden; display: flex; flex-direction: column; position: relative;
  }
  .tile.is-winner { border: 2px solid var(--accent); box-shadow: 0 0 0 3px rgba(31,111,235,.12); }
  .tile img, .tile .noimg {
    width: 100%; aspect-ratio: 1 / 1; object-fit: cover; display: block;
    background: var(--none-bg);
  }
  .noimg {
    display: flex; align-items: center; justify-content: center; color: var(--muted);
    font-size: 12px; background: var(--none-bg);
  }
  .tile .body {
    padding: 10px 12px 12px; display: flex; flex-direction: column; gap: 6px; flex: 1;
  }
  .tile .id {
    font: 12px var(--mono); color: var(--muted);
    display: flex; justify-content: space-between; align-items: center;
  }
  .ribbon, .carried {
    position: absolute; top: 8px; color: #fff; font-size: 11px; padding: 2px 8px;
    border-radius: 999px;
  }
  .ribbon { left: 8px; background: var(--accent); font-weight: 600; }
  .carried { right: 8px; background: rgba(13,27,42,.75); }
  .tags { display: flex; flex-wrap: wrap; gap: 4px; }
  .tag { font-size: 11px; padding: 1px 6px; border-radius: 4px; background: var(--none-bg); }
  .tag.po { color: var(--muted); background: transparent; border: 1px dashed var(--line); }
  .badge {
    display: inline-block; font-size: 11px; font-weight: 600; padding: 1px 8px;
    border-radius: 999px; background: var(--none-bg); color: var(--muted);
  }
  .badge.deploy, .dot.pass { background: var(--ok-bg); color: var(--ok); }
  .badge.block, .dot.block { background: var(--bad-bg); color: var(--bad); }
  .badge.escalate, .dot.escalate { background: var(--warn-bg); color: var(--warn); }
  .reason { font-size: 12px; color: var(--muted); }
  .kpirow {
    display: grid; grid-template-columns: repeat(3, 1fr); gap: 4px; margin-top: auto;
    border-top: 1px solid var(--line); padding-top: 6px;
  }
  .kpirow span { font-size: 11px; color: var(--muted); }
  .kpirow b { display: block; font-size: 13px; color: var(--fg); }
  .checks { display: flex; gap: 4px; flex-wrap: wrap; }
  .dot { font-size: 10px; padding: 0 5px; border-radius: 3px; }
  .round-head { display: flex; align-items: baseline; gap: 16px; margin: 28px 0 10px; }
  .round-head h3 { margin: 0; font-size: 16px; }
  .round-head span { color: var(--muted); font-size: 13px; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; }
  th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); }
  th { color: var(--muted); font-weight: 600; font-size: 12px; background: var(--bg); }
  td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
  tr.sub td { background: #f0f4f9; font-weight: 600; }
  .mono { font-family: var(--mono); font-size: 12px; }
  .plot img { width: 100%; height: auto; display: block; }
  .brief-grid { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 32px; }
  .brief-grid ul { margin: 4px 0 8px; padding-left: 18px; }
  footer { color: var(--muted); font-size: 12px; margin-top: 32px; }
  @media (max-width: 720px) { .winner, .brief-grid { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header class="top"><div class="inner">
  <div class="eyebrow">faceloop campaign report · {{ d.campaign_id }}</div>
  <h1>{{ brief.product }}</h1>
  <p class="message">{{ brief.message }}</p>
  <div class="meta">
    <span><b>Status</b><span class="chip">{{ d.status }}</span></span>
    <span><b>Markets</b>
      {%- for m in brief.markets %}<span class="chip">{{ m }}</span>{% endfor %}</span>
    <span><b>Channels</b>{{ brief.channels | join(", ") }}</span>
    <span><b>KPI goal</b>{{ brief.kpi_goal }}</span>
    <span><b>Budget</b>{{ brief.budget_impressions | num }} impressions</span>
    <span><b>Submitted by</b>{{ brief.submitted_by }}</span>
  </div>
</div></header>
<main>

<section class="stats">
{% for value, label in stats %}
  <div class="stat"><div class="v">{{ value }}</div><div class="k">{{ label }}</div></div>
{% endfor %}
</section>

{% if prompt_only %}
{% set one = prompt_only | length == 1 %}
<div class="note"><b>Prompt-only parameters.</b> The generator received
{% for p in prompt_only %}<b>{{ p }}</b>{{ ", " if not loop.last }}{% endfor %}
{{- " " }}only as prompt text and cannot render {{ "it" if one else "them" }}: the images do
not show {{ "this parameter" if one else "these parameters" }}, so KPI differences must not be
attributed to {{ "it" if one else "them" }}. They are marked with a dashed outline below.</div>
{% endif %}
{% if not d.audit_intact %}
<div class="note bad"><b>Audit log check failed.</b>
{% for p in d.audit_problems %}{{ p }}{{ "; " if not loop.last }}{% endfor %}</div>
{% endif %}

<h2>Winner</h2>
{% if winner %}
<div class="card winner">
  <div>
  {% if winner.image %}
    <img src="{{ winner.image }}" alt="winning creative {{ winner.variant_id }}">
  {% else %}
    <div class="noimg">no image</div>
  {% endif %}
  </div>
  <div>
    <h3 class="mono">{{ winner.variant_id }} <span class="badge deploy">winner</span></h3>
    <div class="kpis">
      <div><div class="v">{{ winner.ctr | pct }}</div><div class="k">CTR</div></div>
      <div><div class="v">{{ winner.posterior_mean_ctr | pct }}</div>
        <div class="k">posterior mean CTR</div></div>
      <div><div class="v">{{ winner.impressions | num }}</div>
        <div class="k">impressions</div></div>
      <div><div class="v">{{ winner.clicks | num }}</div><div class="k">clicks</div></div>
      <div><div class="v">{{ winner.conversions | num }}</div>
        <div class="k">conversions</div></div>
    </div>
    <dl class="params">
    {% for p in winner.params %}
      <dt>{{ p.label }}</dt>
      <dd>{{ p.value }}
        {%- if p.prompt_only %} <span class="reason">(prompt only)</span>{% endif %}</dd>
    {% endfor %}
      <dt>Prompt</dt><dd>{{ winner.prompt }}</dd>
      <dt>Round</dt><dd>{{ winner.round }}</dd>
      <dt>Asset</dt><dd class="mono">{{ winner.asset_id }}</dd>
    </dl>
  </div>
</div>
{% else %}
<div class="card">No deployed variant has impressions yet, so there is no winner.</div>
{% endif %}

<h2>KPIs by round</h2>
{% if plot %}
<div class="card plot"><img src="{{ plot }}" alt="CTR and conversions by round"></div>
{% else %}
<div class="card">No KPI observations yet.</div>
{% endif %}

<h2>Regret</h2>
{% if d.regret.plot %}
<div class="card plot">
<img src="{{ d.regret.plot }}" alt="estimated cumulative regret by impressions">
<p class="reason">Estimated: a live campaign has no ground truth, so each impression is
charged the gap between the posterior mean {{ d.regret.kpi }} of its segment's best variant
over the whole campaign and that of the variant it went to. Total after
{{ d.regret.points[-1].impressions | num }} impressions:
{{ "%.0f" | format(d.regret.points[-1].regret) }}
{{ "clicks" if d.regret.kpi == "ctr" else "conversions" }}.</p></div>
{% else %}
<div class="card">No KPI observations yet.</div>
{% endif %}

<h2>Pareto front</h2>
{% if d.pareto.front %}
<div class="card plot"><img src="{{ d.pareto.plot }}" alt="Pareto front of the objectives">
<table>
  <thead><tr><th>Trial</th>{% for o in d.pareto.objectives %}<th class="n">{{ o }}</th>{% endfor %}
    <th>Face</th></tr></thead>
  <tbody>
{% for f in d.pareto.front %}
    <tr><td class="mono">{{ f.trial_number }}</td>
    {% for o in d.pareto.objectives %}
      <td class="n">{{ "%.4g" | format(f["values"][o]) }}</td>
    {% endfor %}
      <td>{{ f.params.expression }}, {{ f.params.age_band }}, MST {{ f.params.skin_tone }},
        {{ f.params.background }}, {{ f.params.lighting }}</td></tr>
{% endfor %}
  </tbody>
</table>
<p class="reason">{{ d.pareto.points | length }} finished trials; the front holds those no
other trial beats on every objective.</p></div>
{% else %}
<div class="card">{{ d.pareto.note }}</div>
{% endif %}

<h2>Rollbacks</h2>
{% if d.rollbacks %}
<div class="card">
<table>
  <thead><tr><th>Round</th><th>Variant</th><th>Criteria</th><th>Why</th><th>Told</th>
    <th>By</th></tr></thead>
  <tbody>
{% for r in d.rollbacks %}
    <tr><td class="n">{{ r.round }}</td><td class="mono">{{ r.variant_id }}</td>
      <td>{{ r.criteria | join(", ") }}</td><td>{{ r.reason }}</td>
      <td>{{ r.notify_role }}</td><td class="mono">{{ r.by }}</td></tr>
{% endfor %}
  </tbody>
</table>
<p class="reason">Each ad was paused in the window whose delivery crossed the playbook's
criterion; the audit entries <code>rollback.paused</code> hold the numbers.</p></div>
{% else %}
<div class="card">No rollback criterion of the playbook fired on a live ad.</div>
{% endif %}

{% if d.analysis %}
<h2>What the analyst saw</h2>
<div class="card">
{% for a in d.analysis %}
<p><strong>Round {{ a.round + 1 if a.round is not none else "?" }}</strong>
<span class="reason">({{ a.written_by }})</span><br>{{ a.text }}</p>
{% endfor %}
</div>
{% endif %}

<h2>Creatives</h2>
{% for r in rounds %}
<div class="round-head"><h3>Round {{ r.round }}</h3>
  <span>{{ r.tiles | length }} variants · best CTR {{ r.summary.best_ctr | pct }}
  · mean {{ r.summary.mean_ctr | pct }}</span></div>
<div class="grid">
{% for t in r.tiles %}
  <div class="tile{{ ' is-winner' if t.winner }}">
  {% if t.winner %}
    <span class="ribbon">winner</span>
  {% endif %}
  {% if t.carried_from is not none %}
    <span class="carried">from round {{ t.carried_from }}</span>
  {% endif %}
  {% if t.image %}
    <img src="{{ t.image }}" alt="creative {{ t.id }}" loading="lazy">
  {% else %}
    <div class="noimg">{{ t.image_note }}</div>
  {% endif %}
    <div class="body">
      <div class="id"><span>{{ t.id }}</span>
        <span class="badge {{ t.decision }}">{{ t.decision }}</span></div>
      <div class="tags">
      {% for p in t.params %}
        <span class="tag{{ ' po' if p.prompt_only }}" title="{{ p.label }}">{{ p.value }}</span>
      {% endfor %}
      </div>
    {% if t.checks %}
      <div class="checks">
      {% for c in t.checks %}
        <span class="dot {{ c.verdict }}" title="{{ c.title }}">{{ c.name }}</span>
      {% endfor %}
      </div>
    {% endif %}
    {% if t.reason %}
      <div class="reason">{{ t.reason }}</div>
    {% endif %}
      <div class="kpirow"><span>impr.<b>{{ t.impressions }}</b></span>
        <span>clicks<b>{{ t.clicks }}</b></span><span>CTR<b>{{ t.ctr }}</b></span></div>
    </div>
  </div>
{% endfor %}
</div>
{% endfor %}

<h2>KPI table</h2>
<div class="card flush">
<table>
  <thead><tr><th>Round</th><th>Variant</th><th>Decision</th><th class="n">Impressions</th>
    <th class="n">Clicks</th><th class="n">CTR</th><th class="n">Conversions</th>
    <th class="n">CVR</th></tr></thead>
  <tbody>
{% for r in rounds %}
  {% set s = r.summary %}
    <tr class="sub"><td>{{ r.round }}</td><td>all ({{ r.tiles | length }})</td><td></td>
      <td class="n">{{ s.impressions | num }}</td><td class="n">{{ s.clicks | num }}</td>
      <td class="n">{{ s.ctr | pct }}</td><td class="n">{{ s.conversions | num }}</td>
      <td class="n">{{ s.cvr | pct(1) }}</td></tr>
  {% for t in r.tiles %}
    <tr><td>{{ r.round }}</td><td class="mono">{{ t.id }}{{ " ★" if t.winner }}</td>
      <td><span class="badge {{ t.decision }}">{{ t.decision }}</span></td>
      <td class="n">{{ t.impressions }}</td><td class="n">{{ t.clicks }}</td>
      <td class="n">{{ t.ctr }}</td><td class="n">{{ t.conversions }}</td>
      <td class="n">{{ t.cvr }}</td></tr>
  {% endfor %}
{% endfor %}
  </tbody>
</table>
</div>
<p class="reason">CTR = clicks / impressions; CVR = conversions / clicks. The winner is the
one the campaign chose when it finished (the best posterior mean of its face-parameter KPI
model, docs/optimization.md); for a campaign without one, the deployed variant with the
highest posterior mean CTR, Beta(1 + clicks, 1 + impressions − clicks), over all rounds.</p>

<h2>Brief</h2>
<div class="card brief-grid">
  <div><b>Audience</b>
    <ul>
    {% for s in brief.audience %}
      <li>{{ s.name }} ({{ "%.0f" | format(100 * s.share) }}%)
        {%- if s.description %}: {{ s.description }}{% endif %}</li>
    {% endfor %}
    </ul>
  </div>
  <div><b>Tone</b><div>{{ brief.tone }}</div>
  {% if brief.constraints %}
    <b>Constraints</b>
    <ul>
    {% for c in brief.constraints %}
      <li>{{ c }}</li>
    {% endfor %}
    </ul>
  {% endif %}
  </div>
</div>

<h2>Audit trail <span class="reason">({{ audit | length }} entries · chain
{{ "intact" if d.audit_intact else "BROKEN" }})</span></h2>
<div class="card flush">
<table>
  <thead><tr><th class="n">#</th><th>Time (UTC)</th><th>Kind</th><th>Subject</th><th>Actor</th>
    <th>Hash</th></tr></thead>
  <tbody>
{% for a in audit %}
    <tr><td class="n">{{ a.seq }}</td>
      <td class="mono">{{ a.ts.strftime("%Y-%m-%d %H:%M:%S") }}</td>
      <td>{{ a.kind }}</td><td class="mono">{{ a.subject }}</td><td>{{ a.actor }}</td>
      <td class="mono" title="{{ a.hash }}">{{ a.hash[:12] }}</td></tr>
{% else %}
    <tr><td colspan="6">No audit entries for this campaign.</td></tr>
{% endfor %}
  </tbody>
</table>
</div>

<footer>Generated {{ d.generated_at }} by faceloop. All images are AI-generated.</footer>
</main>
</body>
</html>
"""
