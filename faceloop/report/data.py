"""The report's model: what was tried, what the guardrails said, what ran and what won.

`build_model` reads the catalog and the asset store, copies each asset's thumbnail next to
the report, and returns report.json's content together with the per-round entries the HTML
page and the KPI plot are drawn from. The optimisation sections (estimated regret, Pareto
front) come from faceloop.optimization.report.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from faceloop.cost import Prices, campaign_cost
from faceloop.errors import FaceloopError
from faceloop.models import Decision, Variant
from faceloop.optimization.report import pareto_section, regret_section
from faceloop.optimization.study import Optimizer
from faceloop.report.fidelity import entry_fidelity, fidelity_section
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import AuditEntry, CampaignRow, Catalog

THUMBNAIL_PX = 384
IMAGES_DIR = "images"


def posterior_mean_ctr(clicks: int, impressions: int) -> float:
    """Posterior mean of Beta(1 + clicks, 1 + misses): the CTR estimate the winner is ranked by.

    The uniform prior keeps variants comparable when one has far fewer impressions: no
    variant sits at exactly 0 or 1 after a handful of impressions.
    """
    return (1 + clicks) / (2 + impressions)


@dataclass
class Kpi:
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
class Entry:
    """One variant as seen in one round (a carried-over incumbent appears in several)."""

    variant: Variant
    kpi: Kpi
    carried_over: bool
    image: str | None = None
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


Round = tuple[int, list[Entry]]


@dataclass
class ReportModel:
    """report.json's content (`data`) and what the page shows beyond it."""

    data: dict[str, Any]
    rounds: list[Round]
    audit: list[AuditEntry]
    winner_entry: Entry | None


def build_model(
    catalog: Catalog,
    store: AssetStore,
    campaign: CampaignRow,
    out_dir: Path,
    prompt_only: frozenset[str],
    optimizer: Optimizer | None,
    prices: Prices | None = None,
) -> ReportModel:
    """Read the campaign, write its thumbnails (IMAGES_DIR in out_dir) and the optimisation
    plots, and return the report's model. `prices` turn the measured use into money (the
    defaults of faceloop.cost.Prices without them)."""
    campaign_id = campaign.campaign_id
    (out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)

    variants = catalog.variants(campaign_id)
    by_id = {v.variant_id: v for v in variants}
    per_round: dict[tuple[str, int], Kpi] = {}
    observations = catalog.observations(campaign_id)
    for o in observations:
        per_round.setdefault((o.variant_id, o.round), Kpi()).add(
            o.impressions, o.clicks, o.conversions
        )
    deployed = {d.variant_id for d in catalog.deployments(campaign_id)}
    deployed |= {v.variant_id for v in variants if v.decision is Decision.deploy}

    images: dict[str, str | None] = {}
    missing_images: list[str] = []
    for v in variants:
        if v.asset is not None and v.asset.asset_id not in images:
            images[v.asset.asset_id] = rel = _write_thumbnail(
                store, catalog, campaign_id, v, out_dir
            )
            if rel is None:
                missing_images.append(v.asset.asset_id)

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
                **_kpi_json(total(es)),
                "best_ctr": best_ctr(es),
                "mean_ctr": mean_ctr(es),
                "variants": [_entry_json(e) for e in es],
            }
            for rnd, es in rounds
        ],
        "winner": winner,
        "analysis": analyses,
        "prompt_only_params": sorted(prompt_only),
        # requested vs measured per face parameter (generate stage, playbook fidelity)
        "fidelity": fidelity_section(variants),
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
        # measured use, per 1,000 variants and in money (faceloop/cost.py, docs/cost.md)
        "cost": _cost_json(catalog, campaign, entries, prices or Prices()),
    }
    return ReportModel(
        data=data, rounds=rounds, audit=entries, winner_entry=_winner_entry(rounds, winner)
    )


def total(entries: list[Entry]) -> Kpi:
    out = Kpi()
    for e in entries:
        out.add(e.kpi.impressions, e.kpi.clicks, e.kpi.conversions)
    return out


def ctrs(entries: list[Entry]) -> list[float]:
    return [e.kpi.ctr for e in entries if e.kpi.ctr is not None]


def best_ctr(entries: list[Entry]) -> float | None:
    values = ctrs(entries)
    return max(values) if values else None


def mean_ctr(entries: list[Entry]) -> float | None:
    values = ctrs(entries)
    return sum(values) / len(values) if values else None


def _round_of(subject: str) -> int | None:
    """'<campaign>-r3' -> 3."""
    tail = subject.rsplit("-r", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _rounds(
    variants: list[Variant],
    by_id: dict[str, Variant],
    per_round: dict[tuple[str, int], Kpi],
    images: dict[str, str | None],
) -> list[Round]:
    round_numbers = sorted({v.round for v in variants} | {r for _, r in per_round})
    out: list[Round] = []
    for rnd in round_numbers:
        entries: list[Entry] = []
        seen: set[str] = set()
        # a round shows the variants made in it, then incumbents that ran in it again
        made_here = [v for v in variants if v.round == rnd]
        ran_here = [by_id[vid] for vid, r in per_round if r == rnd and vid in by_id]
        for v in [*made_here, *ran_here]:
            if v.variant_id in seen:
                continue
            seen.add(v.variant_id)
            entries.append(
                Entry(
                    variant=v,
                    kpi=per_round.get((v.variant_id, rnd), Kpi()),
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
    per_round: dict[tuple[str, int], Kpi],
    deployed: set[str],
    recorded: str | None = None,
) -> dict[str, Any] | None:
    """The campaign's own winner (`recorded`: what its KPI model chose, from the
    campaign.done entry) when it is a deployed variant with impressions, so the report and
    `faceloop demo`/`status` name the same one; otherwise, e.g. for a campaign still
    running, the deployed variant with the highest posterior mean CTR."""
    totals: dict[str, Kpi] = {}
    for (vid, _), kpi in per_round.items():
        totals.setdefault(vid, Kpi()).add(kpi.impressions, kpi.clicks, kpi.conversions)
    best: tuple[float, float, int, int] | None = None
    winner: dict[str, Any] | None = None
    for order, v in enumerate(variants):
        seen = totals.get(v.variant_id)
        if v.variant_id not in deployed or seen is None or seen.impressions == 0:
            continue
        mean = posterior_mean_ctr(seen.clicks, seen.impressions)
        # ties: more evidence wins, then the earlier variant, so the winner is stable
        rank = (float(v.variant_id == recorded), mean, seen.impressions, -order)
        if best is None or rank > best:
            best = rank
            winner = {
                "variant_id": v.variant_id,
                "asset_id": v.asset.asset_id if v.asset else None,
                "round": v.round,
                "params": v.params.model_dump(mode="json"),
                "ctr": seen.ctr,
                "posterior_mean_ctr": mean,
                "impressions": seen.impressions,
                "clicks": seen.clicks,
                "conversions": seen.conversions,
                # its per-placement files (docs/export.md): what each ad placement received,
                # and what was refused; the asset ids, not the store paths
                "exports": [e.model_dump(mode="json", exclude={"uri"}) for e in v.exports],
            }
    return winner


def _winner_entry(rounds: list[Round], winner: dict[str, Any] | None) -> Entry | None:
    if winner is None:
        return None
    for _, entries in rounds:
        for e in entries:
            if e.variant.variant_id == winner["variant_id"]:
                return e
    return None


def _write_thumbnail(
    store: AssetStore, catalog: Catalog, campaign_id: str, v: Variant, out_dir: Path
) -> str | None:
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
    # a copy outside the asset store: GDPR erasure must find it (docs/privacy.md), so it is
    # recorded before it is written, not after
    catalog.record_export(out_dir / rel, "thumbnail", campaign_id, v.asset.asset_id)
    thumb.save(out_dir / rel, format="PNG")
    return rel


def _cost_json(
    catalog: Catalog, campaign: CampaignRow, entries: list[AuditEntry], prices: Prices
) -> dict[str, Any]:
    cost = campaign_cost(catalog, campaign.campaign_id, prices, campaign.brief.spend_cap)
    # why the campaign stopped at its cap, as the audit log recorded it
    stop = next((e for e in reversed(entries) if e.kind == "campaign.spend_cap"), None)
    # the rounds the cap sized down: what they planned and what the rest of the cap bought
    sized = [
        {
            k: e.payload.get(k)
            for k in (
                "round",
                "planned_impressions",
                "impressions",
                "per_1000_impressions",
                "price_from",
            )
        }
        for e in entries
        if e.kind == "campaign.spend_cap_sized"
    ]
    # whether the ad platform holds the cap too, as the deploy activity last recorded it
    limit = next((e for e in reversed(entries) if e.kind == "campaign.platform_spend_limit"), None)
    return {
        **cost.model_dump(mode="json"),
        "stopped_reason": str(stop.payload.get("reason", "")) if stop else None,
        "sized_rounds": sized,
        "platform_limit": (
            {k: limit.payload.get(k) for k in ("platform", "held", "limit", "reason")}
            if limit
            else None
        ),
    }


def _kpi_json(kpi: Kpi) -> dict[str, Any]:
    return {
        "impressions": kpi.impressions,
        "clicks": kpi.clicks,
        "conversions": kpi.conversions,
        "ctr": kpi.ctr,
        "cvr": kpi.cvr,
    }


def _entry_json(e: Entry) -> dict[str, Any]:
    v = e.variant
    return {
        "variant_id": v.variant_id,
        "asset_id": v.asset.asset_id if v.asset else None,
        "params": v.params.model_dump(mode="json"),
        "fidelity": entry_fidelity(v),
        "decision": v.decision.value if v.decision else None,
        "decision_reason": v.decision_reason,
        **_kpi_json(e.kpi),
        "prompt": v.prompt,
        "checks": e.checks,
        "carried_over": e.carried_over,
        "image": e.image,
    }
