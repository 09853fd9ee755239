"""The campaign commands: `faceloop demo`, `up`, `worker`, `submit`, `status`, `report`,
`schedule`, `schedules`, `config` and `bench demo`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from faceloop.cli.console import api, console, err, fail, run, silent
from faceloop.cli.db import upgrade_catalog
from faceloop.errors import FaceloopError, InputError
from faceloop.models import CampaignState, Variant
from faceloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from rich.console import Console
    from temporalio.client import Client

    from faceloop.models import Brief, CampaignConfig
    from faceloop.playbooks.schema import Playbook
    from faceloop.workflows.worker import Queue


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("up")(up)
    app.command("worker")(worker)
    app.command("submit")(submit)
    app.command("status")(status)
    app.command("report")(report)
    app.command("schedule")(schedule)
    app.command("schedules")(list_schedules)
    app.command("config")(config)
    bench_app.command("demo")(bench_demo)


PLAYBOOK_HELP = (
    "governance playbook: a YAML/JSON file or a shipped name (`faceloop playbook list`); "
    "default: FACELOOP_PLAYBOOK, else the shipped default"
)


def _progress_printer(con: Console) -> Callable[[CampaignState], None]:
    t0 = time.monotonic()

    def show(state: CampaignState) -> None:
        last = state.history[-1] if state.history else None
        counts = ""
        if last is not None:
            decided = [v.decision.value for v in last.variants if v.decision]
            counts = (
                f" | round {last.round + 1}: {decided.count('deploy')} deployed, "
                f"{decided.count('block')} blocked, "
                f"{int(sum(last.allocation.values())):,} impressions"
            )
        if state.winner is not None:
            w = state.winner
            if state.brief.kpi_goal == "conversions":
                rate = 1000 * w.conversions / max(w.impressions, 1)
                counts += f" | best so far {rate:.2f} conversions per 1k impressions"
            else:
                counts += f" | best so far {w.clicks / max(w.impressions, 1):.2%} CTR"
        con.print(
            f"[dim]{time.monotonic() - t0:6.1f}s[/dim] "
            f"round {state.round + 1}/{state.config.rounds} [bold]{state.stage}[/bold]{counts}"
        )

    return show


def _not_shown(v: Variant) -> str:
    """What the winner asked for and its image does not show (measured, docs/fidelity.md):
    the params above are the request, so a marketer must not read them as the face."""
    if v.fidelity is None or not v.fidelity.not_rendered:
        return ""
    parts = []
    for name in v.fidelity.not_rendered:
        shown = v.fidelity.params.get(name)
        seen = shown.measured if shown is not None and shown.measured is not None else "?"
        parts.append(f"{name} (image shows {seen})")
    return "; not shown in its image: " + ", ".join(parts)


def demo(
    brief: Annotated[
        Path | None, typer.Option(help="brief YAML/JSON; default: the shipped examples/brief.yaml")
    ] = None,
    out: Annotated[Path, typer.Option(help="where report.html and report.json go")] = Path(
        "faceloop-out"
    ),
    rounds: Annotated[int | None, typer.Option(help="override the brief's rounds")] = None,
    variants: Annotated[int | None, typer.Option(help="override variants per round")] = None,
    review_sla: Annotated[
        float,
        typer.Option(
            help="seconds a flagged variant waits for a reviewer before the playbook's "
            "on_expiry applies (the demo has no reviewer; the playbook's SLA is a day)"
        ),
    ] = 10.0,
    playbook: Annotated[str | None, typer.Option(help=PLAYBOOK_HELP)] = None,
    audience_sees: Annotated[
        str | None,
        typer.Option(
            help="what the sandbox's simulated audience reacts to: declared (the face "
            "parameters each ad declares) or measured (those the perception module reads in "
            "its image); default: FACELOOP_SANDBOX_AUDIENCE_SEES, else the scenario's"
        ),
    ] = None,
) -> None:
    """Run a whole campaign on an embedded stack started for it, then write the report.

    Starts the Temporal dev server, the sandbox ad platform and a worker on 127.0.0.1, runs
    the brief, writes report.html and report.json, and stops everything it started (also on
    Ctrl-C).
    """
    from faceloop.briefs import load_brief_and_config
    from faceloop.examples import example_path
    from faceloop.playbooks.schema import load_playbook

    settings = get_settings()
    if audience_sees is not None:
        if audience_sees not in ("declared", "measured"):
            raise fail(
                FaceloopError(
                    f"--audience-sees must be declared or measured, got {audience_sees!r}"
                )
            )
        if settings.sandbox_url is not None:
            raise fail(
                FaceloopError(
                    "--audience-sees sets the sandbox the demo starts, but FACELOOP_SANDBOX_URL "
                    "names a running one: start that one with --audience-sees, or unset the URL"
                )
            )
        settings = settings.model_copy(update={"sandbox_audience_sees": audience_sees})
    try:
        b, config = load_brief_and_config(brief or example_path("brief.yaml"))
        # validated before the stack starts: a campaign never starts on an invalid playbook
        pb = load_playbook(playbook or settings.playbook)
    except FaceloopError as exc:
        raise fail(exc) from exc
    try:
        config = _with_overrides(config, rounds=rounds, variants_per_round=variants)
    except FaceloopError as exc:
        raise fail(exc) from exc
    upgrade_catalog(settings)
    run(_demo(settings, b, config, out, console, review_sla, pb))


def _with_overrides(config: CampaignConfig, **overrides: int | None) -> CampaignConfig:
    """The brief's campaign settings with the options given on the command line, validated
    together (e.g. --variants must leave room beside the brief's incumbents)."""
    from pydantic import ValidationError

    from faceloop.models import CampaignConfig

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return CampaignConfig.model_validate({**config.model_dump(), **given})
    except ValidationError as exc:
        flags = ", ".join(f"--{k.split('_')[0]} {v}" for k, v in given.items())
        raise InputError.from_validation(
            f"the brief's campaign settings with {flags}", exc
        ) from None


async def _demo(
    settings: Settings,
    brief: Brief,
    config: CampaignConfig,
    out: Path,
    con: Console,
    review_sla: float = 10.0,
    playbook: Playbook | None = None,
) -> CampaignState:
    from faceloop.playbooks.schema import load_playbook
    from faceloop.workflows.client import follow, submit, write_report
    from faceloop.workflows.loadbench import with_review_sla
    from faceloop.workflows.stack import embedded_stack
    from faceloop.workflows.worker import Resources, build_workers

    con.print(f"[bold]faceloop demo[/bold]: data dir {escape(str(settings.resolved_home))}")
    async with embedded_stack(settings) as (stack, client):
        con.print(
            f"temporal {stack.temporal_address} | sandbox {stack.sandbox_url} | worker in-process"
        )
        if settings.sandbox_audience_sees is not None:
            con.print(f"sandbox audience sees {settings.sandbox_audience_sees} face parameters")
        res = Resources.open(stack.effective_settings())
        workers = build_workers(client, res)
        try:
            async with contextlib.AsyncExitStack() as es:
                for worker in workers:
                    await es.enter_async_context(worker)
                playbook = playbook or load_playbook(settings.playbook)
                if review_sla < playbook.escalation.sla_seconds:
                    playbook = with_review_sla(playbook, review_sla)
                    con.print(
                        f"flagged variants wait {review_sla:.0f}s for a reviewer, then "
                        f"{playbook.escalation.on_expiry.value} (playbook {playbook.name!r})"
                    )
                handle = await submit(client, res.settings, brief, config, playbook)
                con.print(f"campaign [bold]{escape(str(handle.id))}[/bold] submitted")
                state = await follow(handle, _progress_printer(con))
        finally:
            await res.aclose()
    json_path, html_path = write_report(settings, state.campaign_id, out)
    if state.winner is not None:
        w = state.winner
        con.print(
            f"[green]winner[/green] {w.variant_id}: "
            f"{w.clicks}/{w.impressions} clicks, params {w.params.model_dump()}"
            f"{_not_shown(w)}"
        )
    con.print(f"report: {escape(str(html_path))}\n        {escape(str(json_path))}")
    return state


QUEUES_HELP = (
    "queues to serve: main,gpu,cpu; `main` is `workflows` (workflow tasks) + "
    "`main-activities`, which can run in separate processes"
)


def up(
    queues: Annotated[str, typer.Option(help=QUEUES_HELP)] = "main,gpu,cpu",
    api_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="port of the web console and HTTP API (default FACELOOP_CONSOLE_PORT, 8780; "
            "0: do not serve it)",
        ),
    ] = None,
) -> None:
    """Start the embedded stack, a worker and the web console in the foreground until Ctrl-C."""
    settings = get_settings()
    if api_port is not None:
        settings = settings.model_copy(update={"console_port": api_port})
    qs = _parse_queues(queues)
    upgrade_catalog(settings)
    run(_up(settings, qs))


def _parse_queues(text: str) -> list[Queue]:
    from faceloop.workflows.worker import QUEUE_CHOICES

    names = [q.strip() for q in text.split(",") if q.strip()]
    qs = [q for q in QUEUE_CHOICES if q in names]
    bad = [q for q in names if q not in QUEUE_CHOICES]
    if bad or not qs:
        raise typer.BadParameter(
            f"unknown queue(s) {bad}; choose from {', '.join(QUEUE_CHOICES)}",
            param_hint="--queues",
        )
    return qs


async def _up(settings: Settings, queues: list[Queue]) -> None:
    from faceloop.workflows.stack import embedded_stack

    async with embedded_stack(settings, web_ui=True) as (stack, client):
        ui = stack.temporal_ui_url
        console.print(
            f"temporal {stack.temporal_address} | sandbox {stack.sandbox_url} | "
            f"data {settings.resolved_home}\n"
            + (f"temporal web UI {ui}\n" if ui else "")
            + (
                f"console http://{settings.console_host}:{settings.console_port} "
                "(users: `faceloop users add NAME --role admin`)\n"
                if settings.console_port
                else ""
            )
            + f"{_metrics_line(stack.settings)}\n"
            + f"submit from another shell with:\n"
            f"  FACELOOP_HOME={settings.resolved_home} "
            f"FACELOOP_TEMPORAL_ADDRESS={stack.temporal_address} faceloop submit BRIEF --wait\n"
            "Ctrl-C stops everything."
        )
        effective = stack.effective_settings()
        serving = [_serve_workers(effective, client, queues)]
        if settings.console_port:
            serving.append(_serve_console(effective, ui))
        await asyncio.gather(*serving)


async def _serve_console(settings: Settings, temporal_ui: str | None) -> None:
    """The web console and HTTP API in this process, until the stack stops."""
    import uvicorn

    from faceloop.console import create_app
    from faceloop.console.app import notifier_for

    class EmbeddedServer(uvicorn.Server):
        # Ctrl-C and SIGTERM belong to the stack (it cancels this task and then stops what
        # it started); uvicorn's own handlers would swallow the first Ctrl-C
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    app = create_app(settings, temporal_ui_url=temporal_ui)
    # lifespan off: its task outlives a cancelled serve() and logs a traceback at Ctrl-C;
    # what the lifespan would close is closed below
    config = uvicorn.Config(
        app,
        host=settings.console_host,
        port=settings.console_port,
        log_level="warning",
        lifespan="off",
    )
    server = EmbeddedServer(config)
    serving = asyncio.ensure_future(server.serve())
    notifier = notifier_for(app)
    notifying = asyncio.ensure_future(notifier.run()) if notifier.enabled else None
    try:
        # shielded: a cancelled stack lets uvicorn finish its requests and its lifespan
        # (a cancelled serve() logs a traceback) before this task ends
        await asyncio.shield(serving)
    finally:
        if notifying is not None:
            notifying.cancel()
        server.should_exit = True
        try:
            await serving
        finally:
            app.state.console.users.close()
            app.state.catalog.close()


def _metrics_line(settings: Settings) -> str:
    from faceloop.workflows.telemetry import metrics_address

    address = metrics_address(settings)
    metrics = f"metrics http://{address}/metrics" if address else "metrics off"
    return f"{metrics} | tracing {escape(settings.tracing)}"


async def _serve_workers(settings: Settings, client: Client, queues: list[Queue]) -> None:
    from faceloop.workflows.telemetry import poll_queue_depth, worker_runtime
    from faceloop.workflows.worker import Resources, build_workers

    res = Resources.open(settings)
    runtime = worker_runtime(settings)
    task_queues = {
        "main": settings.task_queue,
        "workflows": settings.task_queue,
        "main-activities": settings.task_queue,
        "gpu": settings.gpu_task_queue,
        "cpu": settings.cpu_task_queue,
    }
    polled = sorted({task_queues[q] for q in queues})
    depth = (
        asyncio.ensure_future(poll_queue_depth(client, runtime, polled))
        if runtime is not None
        else None
    )
    try:
        workers = build_workers(client, res, queues)
        await asyncio.gather(*(w.run() for w in workers))
    finally:
        if depth is not None:
            depth.cancel()
        await res.aclose()


def worker(
    queues: Annotated[str, typer.Option(help=QUEUES_HELP)] = "main,gpu,cpu",
) -> None:
    """Run a worker against FACELOOP_TEMPORAL_ADDRESS (GPU machines: --queues gpu).

    Serves Prometheus metrics only when FACELOOP_METRICS_PORT is set (one port per worker
    on a host)."""
    settings = get_settings()
    if not settings.temporal_address:
        raise fail(
            FaceloopError(
                "FACELOOP_TEMPORAL_ADDRESS is not set: a worker joins a running server (start "
                "one with `faceloop up`)"
            )
        )
    qs = _parse_queues(queues)
    from faceloop.workflows.telemetry import for_worker_command

    # no default metrics port: several workers run on one host (docs/observability.md)
    settings = for_worker_command(settings)
    upgrade_catalog(settings)

    async def main() -> None:
        from faceloop.workflows.client import reachable_client

        client = await reachable_client(settings, worker_process=True)
        console.print(
            f"worker on {escape(str(settings.temporal_address))}, queues {escape(str(qs))} | "
            f"{_metrics_line(settings)}"
        )
        await _serve_workers(settings, client, qs)

    run(main())


def _require_server(settings: Settings) -> None:
    if not settings.temporal_address:
        raise fail(
            FaceloopError(
                "FACELOOP_TEMPORAL_ADDRESS is not set: start the stack with `faceloop up` (it "
                "prints the address) or use `faceloop demo`"
            )
        )


def submit(
    brief: Annotated[Path, typer.Argument(help="brief YAML/JSON")],
    wait: Annotated[bool, typer.Option(help="follow progress until the campaign ends")] = False,
    playbook: Annotated[str | None, typer.Option(help=PLAYBOOK_HELP)] = None,
) -> None:
    """Validate a brief and start its campaign on the running stack."""
    from faceloop.briefs import load_brief_and_config
    from faceloop.generators.production import campaign_generation
    from faceloop.playbooks.schema import load_playbook

    settings = get_settings()
    try:
        b, config = load_brief_and_config(brief)
        pb = load_playbook(playbook or settings.playbook)
        # the production path is checked before the server is looked for: a bad config
        # is the brief author's to fix, whatever state the stack is in
        config = campaign_generation(settings, b, config, pb)
    except FaceloopError as exc:
        raise fail(exc) from exc
    _require_server(settings)

    async def main() -> None:
        from faceloop.workflows.client import follow, reachable_client
        from faceloop.workflows.client import submit as do_submit

        client = await reachable_client(settings)
        handle = await do_submit(client, settings, b, config, pb)
        console.print(f"campaign [bold]{escape(str(handle.id))}[/bold] submitted")
        if wait:
            await follow(handle, _progress_printer(console))

    run(main())


def status(
    campaign: Annotated[str | None, typer.Argument(help="campaign id; omit to list all")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show campaigns: status, round and variant count.

    The catalog says what each campaign last recorded; a campaign whose workflow failed, was
    terminated, timed out or was cancelled never records that, so every campaign still
    open in the catalog is looked up on Temporal and shown as Temporal has it, with the
    reason (and the catalog is corrected). When Temporal cannot be reached, the catalog's
    statuses are shown and the command says so.
    """
    from faceloop.storage.catalog import Catalog

    settings = get_settings()
    try:
        with Catalog(settings.resolved_database_url) as catalog:
            rows = (
                catalog.list_campaigns() if campaign is None else [catalog.get_campaign(campaign)]
            )
            if campaign is not None and rows[0] is None:
                raise fail(FaceloopError(f"no campaign {campaign!r} in the catalog"))
            data: list[dict[str, Any]] = [
                {
                    "campaign_id": r.campaign_id,
                    "product": r.brief.product,
                    "status": r.status,
                    "reason": "",
                    "round": r.round,
                    "rounds": r.config.rounds,
                    "variants": len(catalog.variants(r.campaign_id)),
                    "updated_at": r.updated_at.isoformat(),
                }
                for r in rows
                if r is not None
            ]
            open_ids = [d["campaign_id"] for d in data if d["status"] not in FINISHED]
            unreachable: FaceloopError | None = None
            closed: dict[str, tuple[str, str]] = {}
            if open_ids:
                try:
                    closed = asyncio.run(_closed_on_temporal(settings, open_ids))
                except FaceloopError as exc:
                    unreachable = exc
            for d in data:
                if d["campaign_id"] in closed:
                    recorded = d["status"]
                    d["status"], d["reason"] = closed[d["campaign_id"]]
                    if d["status"] != recorded:
                        # the workflow will never record it: its last word is Temporal's
                        catalog.set_campaign_status(d["campaign_id"], d["status"])
    except FaceloopError as exc:
        raise fail(exc) from exc
    if unreachable is not None:
        err.print(
            f"[yellow]warning:[/yellow] statuses are the catalog's last record, not checked "
            f"with Temporal: {escape(str(unreachable))}"
        )
    for d in data:
        # finished campaigns recorded their own end; open ones are asked of Temporal
        d["checked_with_temporal"] = unreachable is None and d["campaign_id"] in open_ids
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table("product", "status", "round", "variants", "updated")
    table.add_column("campaign", no_wrap=True)
    for d in data:
        shown = str(d["status"]) + (f": {d['reason']}" if d["reason"] else "")
        table.add_row(
            escape(str(d["product"])),
            escape(shown),
            f"{int(d['round']) + 1}/{d['rounds']}",
            str(d["variants"]),
            str(d["updated_at"])[:16].replace("T", " "),
            escape(str(d["campaign_id"])),
        )
    console.print(table)


# statuses a campaign's workflow records itself when it ends (CampaignActivities.finish)
FINISHED = frozenset({"done", "blocked", "stopped"})


async def _closed_on_temporal(
    settings: Settings, campaign_ids: list[str]
) -> dict[str, tuple[str, str]]:
    """Campaign id -> (status, reason) for each campaign whose workflow ended without
    recording it: failed, terminated, timed_out or canceled. FaceloopError when Temporal is
    not reachable."""
    from temporalio.client import WorkflowExecutionStatus, WorkflowHistoryEventFilterType
    from temporalio.service import RPCError, RPCStatusCode

    from faceloop.workflows.client import reachable_client

    client = await reachable_client(settings)
    ended = {
        WorkflowExecutionStatus.FAILED: "failed",
        WorkflowExecutionStatus.TERMINATED: "terminated",
        WorkflowExecutionStatus.TIMED_OUT: "timed_out",
        WorkflowExecutionStatus.CANCELED: "canceled",
    }
    out: dict[str, tuple[str, str]] = {}
    for cid in campaign_ids:
        handle = client.get_workflow_handle(cid)
        try:
            described = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue  # past Temporal's retention, or started on another server
            raise FaceloopError(f"Temporal could not describe campaign {cid!r}: {exc}") from exc
        if described.status not in ended:
            continue
        reason = ""
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        ):
            if event.HasField("workflow_execution_terminated_event_attributes"):
                reason = event.workflow_execution_terminated_event_attributes.reason
            elif event.HasField("workflow_execution_failed_event_attributes"):
                reason = event.workflow_execution_failed_event_attributes.failure.message
            elif event.HasField("workflow_execution_timed_out_event_attributes"):
                reason = "the workflow ran past its execution timeout"
        out[cid] = (ended[described.status], reason)
    return out


def report(
    campaign: Annotated[str, typer.Argument(help="campaign id")],
    out: Annotated[Path, typer.Option(help="output folder")] = Path("faceloop-out"),
) -> None:
    """Write report.html and report.json for a campaign from the catalog."""
    from faceloop.workflows.client import write_report

    settings = get_settings()
    try:
        json_path, html_path = write_report(settings, campaign, out)
    except FaceloopError as exc:
        raise fail(exc) from exc
    console.print(f"report: {escape(str(html_path))}\n        {escape(str(json_path))}")


def schedule(
    campaign: Annotated[str, typer.Argument(help="campaign id (see `faceloop status`)")],
    every: Annotated[
        str | None, typer.Option(help="run an optimisation round this often: 6h, 30m, 1d")
    ] = None,
    pause: Annotated[bool, typer.Option("--pause", help="stop firing until resumed")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="fire again")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="remove the schedule")] = False,
    note: Annotated[str, typer.Option(help="why (kept on the schedule)")] = "",
    spend_cap: Annotated[
        str | None,
        typer.Option(
            help="with --every: stop at this campaign spend, e.g. '500 USD' (docs/cost.md)"
        ),
    ] = None,
) -> None:
    """Run optimisation rounds on a live campaign on a Temporal Schedule.

    `--every 6h` creates the schedule (or changes its interval); `--pause`, `--resume` and
    `--delete` act on it; `faceloop schedules` lists them. Each firing runs one round (propose,
    generate, guard, decide, deploy, observe, learn) on the campaign's live incumbents.
    With `--spend-cap`, the round that finds the campaign's spend at the cap stops the
    campaign (ads paused) and pauses the schedule. With FACELOOP_API_URL and
    FACELOOP_API_TOKEN set, the console does it as the token's user (a marketer for their
    own campaigns, an admin for any; compliance may pause) and audits it.
    """
    from faceloop.cost import parse_spend_cap
    from faceloop.workflows import client as schedules

    chosen = [
        flag
        for flag, on in (
            ("--every", every),
            ("--pause", pause),
            ("--resume", resume),
            ("--delete", delete),
        )
        if on
    ]
    if len(chosen) != 1:
        raise fail(FaceloopError("give exactly one of --every, --pause, --resume, --delete"))
    if spend_cap is not None and not every:
        raise fail(FaceloopError("--spend-cap goes with --every (the schedule it caps)"))
    try:
        cap = parse_spend_cap(spend_cap, "--spend-cap") if spend_cap is not None else None
    except FaceloopError as exc:
        raise fail(exc) from exc
    settings = get_settings()
    if settings.api_url:
        _schedule_via_api(settings, campaign, every, spend_cap, pause, resume, note)
        return
    _require_server(settings)

    async def main() -> None:
        client = await schedules.reachable_client(settings)
        if every:
            interval = schedules.parse_every(every)
            sid = await schedules.create_or_update_schedule(
                client, settings, campaign, interval, spend_cap=cap
            )
            capped = f", stops at {cap.amount:g} {cap.currency}" if cap else ""
            console.print(
                f"schedule [bold]{escape(str(sid))}[/bold]: a round every "
                f"{escape(str(interval))}{escape(capped)}"
            )
        elif pause or resume:
            await schedules.set_schedule_paused(client, campaign, pause, note or "via faceloop cli")
            console.print(
                f"schedule for {escape(str(campaign))} "
                f"{escape(str('paused' if pause else 'resumed'))}"
            )
        else:
            await schedules.delete_schedule(client, campaign)
            console.print(f"schedule for {escape(str(campaign))} deleted")

    run(main())


def _schedule_via_api(
    settings: Settings,
    campaign: str,
    every: str | None,
    spend_cap: str | None,
    pause: bool,
    resume: bool,
    note: str,
) -> None:
    """The console acts on the schedule as the token's user, and its audit entry says so."""
    if every:
        body = {"campaign_id": campaign, "every": every, "spend_cap": spend_cap}
        done = api(settings, "POST", "/api/v1/schedules", body)
        cap = done["spend_cap"]
        capped = f", stops at {cap['amount']:g} {cap['currency']}" if cap else ""
        console.print(
            f"schedule [bold]{escape(done['schedule_id'])}[/bold]: a round every "
            f"{escape(done['every'])}{escape(capped)} (by {escape(done['by'])})"
        )
    elif pause or resume:
        verb = "pause" if pause else "resume"
        done = api(settings, "POST", f"/api/v1/schedules/{campaign}/{verb}", {"note": note})
        console.print(
            f"schedule for {escape(campaign)} {escape(done['action'])} (by {escape(done['by'])})"
        )
    else:
        done = api(settings, "DELETE", f"/api/v1/schedules/{campaign}")
        console.print(f"schedule for {escape(campaign)} deleted (by {escape(done['by'])})")


def list_schedules(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List the optimisation schedules on the running server (through the console's API
    when FACELOOP_API_URL is set: a marketer sees their own campaigns')."""
    import dataclasses

    from faceloop.workflows import client as schedules

    settings = get_settings()
    if settings.api_url:
        got = api(settings, "GET", "/api/v1/schedules")
        rows = [schedules.ScheduleRow(**r) for r in got]
    else:
        _require_server(settings)

        async def main() -> list[schedules.ScheduleRow]:
            return await schedules.list_schedules(await schedules.reachable_client(settings))

        rows = run(main())
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return
    table = Table("campaign", "every", "paused", "rounds fired", "next run")
    for r in rows:
        table.add_row(r.campaign_id, r.every, str(r.paused), str(r.actions), r.next_run[:19])
    console.print(table)


def config(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Print the effective settings, where each came from, and what it does."""
    rows = get_settings().effective()
    if as_json:
        typer.echo(json.dumps({r[0]: {"value": r[1], "source": r[2]} for r in rows}, indent=2))
        return
    for name, value, source, help_text in rows:
        shown = "(unset)" if value == "None" else value
        console.print(
            f"[bold]{escape(str(name))}[/bold]={escape(str(shown))}  "
            f"[dim]({escape(str(source))}) {escape(str(help_text))}[/dim]"
        )


def bench_demo(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Time `faceloop demo` end to end (3 rounds of 6 variants) in a fresh data dir.

    Reports wall seconds from stack start to report written, the campaign's own seconds,
    and peak resident memory of this process (the worker runs in-process).
    """
    import resource
    import tempfile

    from faceloop.briefs import load_brief_and_config
    from faceloop.examples import example_path

    brief, config = load_brief_and_config(example_path("brief.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home")
        t0 = time.perf_counter()
        state = run(_demo(settings, brief, config, Path(tmp) / "out", silent))
        wall = time.perf_counter() - t0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "rounds": config.rounds,
        "variants_per_round": config.variants_per_round,
        "kpi_window_seconds": config.kpi_window_seconds,
        "wall_seconds": round(wall, 2),
        "peak_rss_mib": round(rss_mib, 1),
        "status": state.stage,
        "cpu_count": os.cpu_count(),
    }
    typer.echo(json.dumps(result, indent=None if as_json else 2))
