"""`faceloop plan` and `faceloop bench agents`."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from faceloop.briefs import parse_json
from faceloop.cli.console import console, fail
from faceloop.errors import FaceloopError, InputError
from faceloop.models import Brief, FaceParams

# the corpus lives with the tests; an installed wheel has none, so --corpus names one
DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "tests" / "agents" / "injection_corpus.yaml"


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("plan")(plan)
    bench_app.command("agents")(bench_agents_cmd)


def parse_params_list(text: str, brief: Brief | None = None) -> list[FaceParams]:
    """--params: one JSON object or a list of them; missing fields take their defaults.
    Without --params: one variant from the first value of each field of the search space."""
    from faceloop.briefs import parse_model

    if not text.strip():
        if brief is None:
            return [FaceParams()]
        s = brief.search_space
        return [
            FaceParams(
                age_band=s.age_band[0],
                expression=s.expression[0],
                skin_tone=s.skin_tone.low,
                gender_presentation=s.gender_presentation[0],
                lighting=s.lighting[0],
                background=s.background[0],
                framing=s.framing[0],
                style=s.style[0],
            )
        ]
    data = parse_json(text, "--params")
    items = data if isinstance(data, list) else [data]
    if not items:
        raise InputError("--params", ["(root): give at least one FaceParams object"])
    return [parse_model(FaceParams, item, f"--params[{i}]") for i, item in enumerate(items)]


def plan_json(brief: Brief, params: list[FaceParams]) -> dict[str, Any]:
    from faceloop.agents.activities import build_planner

    result = build_planner().plan(brief, [(f"v{i + 1}", p) for i, p in enumerate(params)])
    return {
        "status": result.status,
        "reason": result.reason,
        "variants": [
            {
                "params": v.params.model_dump(),
                "prompt": v.prompt,
                "negative_prompt": v.negative_prompt,
                "disclosure": v.disclosure,
                "written_by": v.written_by,
            }
            for v in result.variants
        ],
        "fallbacks": [f.model_dump() for f in result.fallbacks],
        "hits": [h.model_dump() for h in result.hits],
        "llm_model": result.llm_model,
    }


def load_corpus(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(attack cases, benign cases), each {id, category, expect, brief: Brief}."""
    from faceloop.briefs import parse_model, read_document

    data = read_document(path)
    if not isinstance(data, dict) or "cases" not in data:
        raise InputError(str(path), ["(root): expected a mapping with base, cases and benign"])
    base = data.get("base", {})

    def build(section: str) -> list[dict[str, Any]]:
        out = []
        for i, case in enumerate(data.get(section) or []):
            brief = parse_model(Brief, {**base, **case["brief"]}, f"{path}: {section}.{i}")
            out.append({**case, "brief": brief})
        return out

    return build("cases"), build("benign")


def bench_agents(corpus: Path) -> dict[str, Any]:
    from faceloop.agents.activities import build_planner

    cases, benign = load_corpus(corpus)
    planner = build_planner()
    proposals = [("v1", FaceParams()), ("v2", FaceParams(expression="serious", age_band="45-54"))]
    planner.plan(benign[0]["brief"] if benign else cases[0]["brief"], proposals)  # warm-up
    times: list[float] = []
    stopped, missed = 0, []
    for case in cases:
        t0 = time.perf_counter()
        r = planner.plan(case["brief"], proposals)
        times.append(1000 * (time.perf_counter() - t0))
        if r.status in ("blocked", "escalated"):
            stopped += 1
        else:
            missed.append(case["id"])
    planned, benign_times, llm_written = 0, [], 0
    for case in benign:
        t0 = time.perf_counter()
        r = planner.plan(case["brief"], proposals)
        benign_times.append(1000 * (time.perf_counter() - t0))
        planned += r.status == "planned"
        llm_written += sum(v.written_by == "llm" for v in r.variants)
    return {
        "cases": len(cases),
        "blocked_or_escalated": stopped,
        "rate": round(stopped / len(cases), 4) if cases else None,
        # median over the attack corpus: what stopping one attack brief costs
        "planner_ms": round(statistics.median(times), 3) if times else None,
        "planner_ms_max": round(max(times), 3) if times else None,
        "missed": missed,
        "benign_cases": len(benign),
        "benign_planned": planned,
        "benign_planner_ms": round(statistics.median(benign_times), 3) if benign else None,
        "benign_variants_by_llm": llm_written,
        "variants_per_plan": len(proposals),
        "llm_model": planner.chat.model if planner.chat else None,
    }


def plan(
    brief: Annotated[Path, typer.Argument(help="brief YAML/JSON")],
    params: Annotated[
        str,
        typer.Option(
            help="FaceParams as a JSON object or list of objects; "
            "default: one variant from the brief's search space"
        ),
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Print the prompt plan for a brief without generating anything.

    Uses the LLM at FACELOOP_LLM_BASE_URL when FACELOOP_LLM_MODEL is set, else the
    deterministic planner. Status is planned, blocked or escalated (with the reason).
    """
    from faceloop.briefs import load_brief

    try:
        b = load_brief(brief)
        ps = parse_params_list(params, b)
        out = plan_json(b, ps)
    except FaceloopError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    colour = {"planned": "green", "blocked": "red", "escalated": "yellow"}[out["status"]]
    console.print(f"[{colour}]{escape(str(out['status']))}[/{colour}] {escape(str(out['reason']))}")
    for i, v in enumerate(out["variants"], 1):
        console.print(
            f"[bold]v{escape(str(i))}[/bold] "
            f"({escape(str(v['written_by']))}) {escape(str(v['prompt']))}"
        )
        console.print(f"   [dim]negative:[/dim] {escape(str(v['negative_prompt']))}")
        console.print(f"   [dim]disclosure:[/dim] {escape(str(v['disclosure']))}")
    for f in out["fallbacks"]:
        console.print(
            f"[yellow]fallback[/yellow] {escape(str(f['node']))} "
            f"{escape(str(f['variant_id']))}: {escape(str(f['reason']))}"
        )


def bench_agents_cmd(
    corpus: Annotated[
        Path, typer.Option(help="injection corpus YAML (tests/agents/injection_corpus.yaml)")
    ] = DEFAULT_CORPUS,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Run the planner over the injection and abuse corpus: share stopped, time per plan."""
    if not corpus.exists():
        raise fail(
            FaceloopError(
                f"--corpus {corpus} does not exist; pass the path of "
                "tests/agents/injection_corpus.yaml from a faceloop checkout"
            )
        )
    try:
        out = bench_agents(corpus)
    except FaceloopError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    console.print(
        f"{out['blocked_or_escalated']}/{out['cases']} attack briefs stopped "
        f"({out['rate']:.0%}), {out['benign_planned']}/{out['benign_cases']} benign briefs "
        f"planned, median {out['planner_ms']:.2f} ms per plan"
    )
