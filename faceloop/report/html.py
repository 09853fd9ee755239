"""report.html: the report's model rendered with templates/report.html.j2.

The functions here format numbers and shape each variant into what one tile shows, so the
template holds layout and no logic beyond loops and conditions.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from faceloop.models import Decision, FaceParams, Variant
from faceloop.report.data import Entry, ReportModel, total

TEMPLATE = "report.html.j2"

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


def render_html(model: ReportModel, plot: str | None, prompt_only: frozenset[str]) -> str:
    """The page for `model`; `plot` is the KPI plot's path relative to the page, if drawn."""
    data = model.data
    winner = data["winner"]
    winner_id = winner["variant_id"] if winner else None
    all_entries = [e for _, es in model.rounds for e in es]
    overall = total(all_entries)
    round_views = [
        {
            "round": rnd,
            "summary": summary,
            "tiles": [_tile(e, winner_id, prompt_only) for e in es],
        }
        for (rnd, es), summary in zip(model.rounds, data["rounds"], strict=True)
    ]
    deployed = {e.variant.variant_id for e in all_entries if e.variant.decision is Decision.deploy}
    stats = [
        (str(len(model.rounds)), "rounds"),
        (str(len({e.variant.variant_id for e in all_entries})), "variants"),
        (str(len(deployed)), "deployed"),
        (_num(overall.impressions), "impressions"),
        (_num(overall.clicks), "clicks"),
        (_pct(overall.ctr), "overall CTR"),
        (_num(overall.conversions), "conversions"),
    ]
    winner_view = None
    if winner is not None:
        shown = model.winner_entry
        winner_view = {
            **winner,
            "image": shown.image if shown else None,
            "prompt": shown.variant.prompt if shown else "",
            "params": _params_view(
                FaceParams.model_validate(winner["params"]),
                prompt_only,
                shown.variant if shown else None,
            ),
            "fidelity": _fidelity_view(shown.variant) if shown else "not measured",
        }
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            d=data,
            brief=data["brief"],
            rounds=round_views,
            audit=model.audit,
            plot=plot,
            winner=winner_view,
            prompt_only=[PARAM_LABELS[p] for p in sorted(prompt_only)],
            fidelity_rows=[
                {"key": k, "label": PARAM_LABELS[k], **data["fidelity"]["params"][k]}
                for k in PARAM_LABELS
            ],
            stats=stats,
        )
    )


@cache
def _environment() -> Environment:
    # autoescape: product, message, constraints, ... are user input and must stay text;
    # StrictUndefined: a misspelt field in the template fails the report instead of
    # rendering as an empty cell
    env = Environment(
        loader=PackageLoader("faceloop.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    return env


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: int | None) -> str:
    return "–" if x is None else f"{x:,}"


def _params_view(
    params: FaceParams, prompt_only: frozenset[str], variant: Variant | None = None
) -> list[dict[str, Any]]:
    """The requested parameters, formatted; with `variant`, each one its image was measured
    to show otherwise carries what it shows (`shows`)."""
    values = params.model_dump()
    measured = variant.fidelity.params if variant and variant.fidelity else {}
    return [
        {
            "key": key,
            "label": label,
            "value": _value(key, values[key]),
            "prompt_only": key in prompt_only,
            "shows": _value(key, measured[key].measured)
            if key in measured and measured[key].ok is False
            else None,
        }
        for key, label in PARAM_LABELS.items()
    ]


def _value(key: str, value: Any) -> str:
    return f"MST {value}" if key == "skin_tone" else str(value).replace("_", " ")


def _tile(e: Entry, winner_id: str | None, prompt_only: frozenset[str]) -> dict[str, Any]:
    """What the template shows of one variant in one round, formatted."""
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
        "fidelity": _fidelity_view(v),
        "impressions": _num(e.kpi.impressions),
        "clicks": _num(e.kpi.clicks),
        "conversions": _num(e.kpi.conversions),
        "ctr": _pct(e.kpi.ctr),
        "cvr": _pct(e.kpi.cvr, 1),
    }


def _fidelity_view(v: Variant) -> str:
    """One line: what the image shows where it differs from the request, and its tries."""
    f = v.fidelity
    if f is None:
        return "not measured"
    if not f.found:
        return f"no face measured · {f.tries} {'try' if f.tries == 1 else 'tries'}"
    off = [
        f"{PARAM_LABELS.get(k, k)} {p.measured} (asked {p.requested})"
        for k, p in f.params.items()
        if p.ok is False
    ]
    parts = [("shows " + ", ".join(off)) if off else "as asked"]
    parts.append(f"{f.tries} {'try' if f.tries == 1 else 'tries'}")
    if f.not_rendered:
        parts.append("not rendered: " + ", ".join(f.not_rendered))
    return " · ".join(parts)
