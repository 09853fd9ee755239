"""The Temporal client side of faceloop: connect, submit and follow campaigns, query their
status, list and vote on escalations, manage optimisation schedules and start erasures.

The CLI, the demo, the console and the tests share these; nothing here runs inside a
workflow. Reviews: campaigns hold their escalations in workflow state (CampaignWorkflow's
`escalations` query and `review` update), so this asks Temporal, not the catalog: the
workflow is the one place that decides, and its update validator is the one place that
refuses a vote.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    TLSConfig,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from faceloop.connectors.channels import check_channels
from faceloop.cost import Prices, check_cap_currency
from faceloop.erasure import ErasureInput, ErasureReport, erasure_workflow_id
from faceloop.errors import FaceloopError, InputError
from faceloop.generators.production import campaign_generation
from faceloop.messages import PendingEscalation, ReviewInput, ScheduledRoundInput
from faceloop.models import Brief, CampaignConfig, CampaignState, SpendCap
from faceloop.playbooks.schema import Playbook, load_playbook, revalidated
from faceloop.report import build_report
from faceloop.settings import Settings
from faceloop.storage.assets import open_asset_store
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign import CampaignInput, CampaignWorkflow
from faceloop.workflows.erasure import ErasureWorkflow
from faceloop.workflows.scheduled import OptimizationRoundWorkflow


def temporal_tls(settings: Settings) -> TLSConfig | bool:
    """The `tls=` of Client.connect: False, True (system roots), or the CA / mTLS material
    named by the settings (docs/deploy.md)."""
    if not settings.temporal_tls_enabled:
        return False
    files = (settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key)
    if not any(files) and settings.temporal_tls_server_name is None:
        return True
    ca, cert, key = (p.expanduser().read_bytes() if p else None for p in files)
    return TLSConfig(
        server_root_ca_cert=ca,
        client_cert=cert,
        client_private_key=key,
        domain=settings.temporal_tls_server_name,
    )


async def connect(
    settings: Settings, address: str | None = None, *, worker_process: bool = False
) -> Client:
    """`worker_process`: the client of a process that runs workers (`faceloop up`, `worker`,
    `demo`); it gets the Runtime that serves Prometheus metrics (workers use their client's
    runtime). Other commands use the SDK's default runtime and never bind the metrics port."""
    from faceloop.workflows.telemetry import client_interceptors, worker_runtime

    target = address or settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"
    key = settings.temporal_api_key
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        api_key=key.get_secret_value() if key else None,
        tls=temporal_tls(settings),
        data_converter=pydantic_data_converter,
        # OpenTelemetry spans on client calls; workers built on this client inherit it
        interceptors=client_interceptors(settings),
        runtime=worker_runtime(settings) if worker_process else None,
    )


# a client command waits this long for a Temporal server before saying how to start one
CONNECT_TIMEOUT_S = 5.0


async def reachable_client(settings: Settings, *, worker_process: bool = False) -> Client:
    """A Temporal client for a CLI command, or a FaceloopError that names the address and
    says how to start a server."""
    target = settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"
    try:
        return await asyncio.wait_for(
            connect(settings, worker_process=worker_process), CONNECT_TIMEOUT_S
        )
    except (RuntimeError, OSError, TimeoutError) as exc:
        raise FaceloopError(
            f"no Temporal server reachable at {target} ({type(exc).__name__}); start the stack "
            "with `faceloop up` and set FACELOOP_TEMPORAL_ADDRESS to the address it prints"
        ) from exc


def new_campaign_id(brief: Brief) -> str:
    slug = (
        re.sub(r"[^a-z0-9]+", "-", brief.product.lower()).strip("-")[:24].strip("-") or "campaign"
    )
    return f"{slug}-{uuid.uuid4().hex[:8]}"


async def submit(
    client: Client,
    settings: Settings,
    brief: Brief,
    config: CampaignConfig,
    playbook: Playbook | None = None,
    campaign_id: str | None = None,
) -> WorkflowHandle[CampaignWorkflow, CampaignState]:
    # A playbook object may have been edited after loading (the demo shortens SLAs): it is
    # validated again here, before anything reaches Temporal, so no campaign starts on an
    # invalid one.
    playbook = revalidated(playbook) if playbook else load_playbook(settings.playbook)
    # a cap in a currency the deployment does not count in could never be compared
    check_cap_currency(brief.spend_cap, settings.cost_currency, "brief", "spend_cap.currency")
    # a channel the deployment cannot serve stops the campaign here, before it starts
    await check_channels(brief, config, settings)
    # so does a production path its GPU workers would refuse; the resolved path (settings'
    # default + the brief's campaign.generation) is what travels with the campaign
    config = campaign_generation(settings, brief, config, playbook)
    cid = campaign_id or new_campaign_id(brief)
    inp = CampaignInput(
        campaign_id=cid,
        brief=brief,
        config=config,
        playbook=playbook,
        gpu_task_queue=settings.gpu_task_queue,
        cpu_task_queue=settings.cpu_task_queue,
    )
    return await client.start_workflow(
        CampaignWorkflow.run, inp, id=cid, task_queue=settings.task_queue
    )


async def query_status(
    handle: WorkflowHandle[CampaignWorkflow, CampaignState],
) -> CampaignState | None:
    try:
        return await handle.query(CampaignWorkflow.status)
    except Exception as exc:
        # Ctrl-C cancels the command's task; an RPC that surfaces that as its own error
        # must not turn the interrupt into "no state yet" and keep the command running
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError from exc
        if isinstance(exc, RPCError):
            return None
        # the workflow has no state yet (first task not run)
        if "not started" in str(exc).lower() or "NotStarted" in str(exc):
            return None
        raise


async def follow(
    handle: WorkflowHandle[CampaignWorkflow, CampaignState],
    on_progress: Callable[[CampaignState], Awaitable[None] | None],
    interval: float = 0.5,
) -> CampaignState:
    """Wait for the campaign, calling on_progress whenever the round or stage changes."""
    result = asyncio.ensure_future(handle.result())
    last: tuple[int, str] | None = None
    task = asyncio.current_task()
    try:
        while not result.done():
            # Ctrl-C cancels this task. A call inside that swallows the CancelledError
            # must not turn the interrupt into "keep following": the request stays
            # counted on the task
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            state = await query_status(handle)
            if state is not None and (state.round, state.stage) != last:
                last = (state.round, state.stage)
                out = on_progress(state)
                if asyncio.iscoroutine(out):
                    await out
            await asyncio.wait({result}, timeout=interval)
        final = result.result()
    finally:
        if not result.done():
            result.cancel()
    on_progress(final)
    return final


def write_report(settings: Settings, campaign_id: str, out_dir: Path) -> tuple[Path, Path]:
    from faceloop.generators.registry import prompt_only_params

    catalog = Catalog(settings.resolved_database_url)
    try:
        if catalog.get_campaign(campaign_id) is None:
            raise FaceloopError(
                f"campaign {campaign_id!r} is not in the catalog at "
                f"{settings.resolved_database_url}: check the id with `faceloop status`"
            )
        from faceloop.optimization import Optimizer
        from faceloop.workflows.worker import optuna_url

        return build_report(
            catalog,
            open_asset_store(settings),
            campaign_id,
            out_dir,
            prompt_only=prompt_only_params(settings.generator),
            # the campaign's study, for the Pareto front of a multi-objective campaign
            optimizer=Optimizer(optuna_url(settings), settings.optuna_sampler),
            prices=Prices.from_settings(settings),
        )
    finally:
        catalog.close()


# --------------------------------------------------------------------------- reviews

# scheduled rounds run CampaignWorkflow as a child with its own id, so list by type
RUNNING_CAMPAIGNS = 'WorkflowType = "CampaignWorkflow" AND ExecutionStatus = "Running"'


class ReviewRefused(FaceloopError):
    """The campaign refused the vote (self-approval, second vote, already decided ...)."""


async def list_escalations(
    client: Client, campaign_id: str | None = None
) -> list[PendingEscalation]:
    """Every escalated variant waiting for a reviewer, oldest deadline first."""
    out: list[PendingEscalation] = []
    async for wf in client.list_workflows(RUNNING_CAMPAIGNS):
        if campaign_id is not None and not (
            wf.id == campaign_id or wf.id.startswith(f"{campaign_id}-round-")
        ):
            continue
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        try:
            out.extend(await handle.query(CampaignWorkflow.escalations))
        except RPCError:
            # the run ended (continue-as-new, finished) between listing and querying
            continue
    return sorted(out, key=lambda p: (p.deadline, p.variant_id))


async def cast_review(client: Client, vote: ReviewInput) -> str:
    """Send a vote to the campaign that waits for it; the campaign's answer comes back."""
    waiting = [
        p
        for p in await list_escalations(client)
        if p.variant_id == vote.variant_id and vote.campaign_id in ("", p.campaign_id)
    ]
    if not waiting:
        raise ReviewRefused(
            f"variant {vote.variant_id} is not waiting for a review in any running campaign; "
            "`faceloop escalations` lists what waits"
        )
    target = waiting[0]
    if not vote.campaign_id:
        # an unsigned vote names its variant only; a signed one already names (and signed)
        # its campaign, and is left as it is
        vote = vote.model_copy(update={"campaign_id": target.campaign_id})
    handle = client.get_workflow_handle(target.workflow_id)
    try:
        return await handle.execute_update(CampaignWorkflow.review, vote)
    except WorkflowUpdateFailedError as exc:
        reason = str(exc.cause) if exc.cause is not None else str(exc)
        raise ReviewRefused(f"vote on {vote.variant_id} refused: {reason}") from exc


# --------------------------------------------------------------------------- schedules

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# a schedule firing faster than this would overlap its own KPI windows
MIN_EVERY = timedelta(seconds=1)


def parse_every(text: str) -> timedelta:
    """'6h', '30m', '1d', '90s', '1h30m' -> timedelta."""
    parts = re.findall(r"(\d+)\s*([smhd])", text.strip().lower())
    if not parts or re.sub(r"\s|\d+[smhd]", "", text.strip().lower()):
        raise InputError("--every", [f"{text!r} is not a duration: use e.g. 6h, 30m, 1d, 1h30m"])
    every = timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    if every < MIN_EVERY:
        raise InputError("--every", [f"{text!r} is shorter than {MIN_EVERY}"])
    return every


def schedule_id(campaign_id: str) -> str:
    return f"optimise-{campaign_id}"


async def create_or_update_schedule(
    client: Client,
    settings: Settings,
    campaign_id: str,
    every: timedelta,
    spend_cap: SpendCap | None = None,
) -> str:
    """Create the campaign's schedule, or change its interval (and cap) if it exists.
    With `spend_cap`, the schedule stops (pauses) once the campaign's spend reaches it."""
    check_cap_currency(spend_cap, settings.cost_currency, "--spend-cap", "currency")
    sid = schedule_id(campaign_id)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            OptimizationRoundWorkflow.run,
            ScheduledRoundInput(
                campaign_id=campaign_id,
                gpu_task_queue=settings.gpu_task_queue,
                cpu_task_queue=settings.cpu_task_queue,
                spend_cap=spend_cap,
                schedule_id=sid if spend_cap is not None else None,
            ),
            id=f"{campaign_id}-scheduled",
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # a round still running when the next one is due: skip, never stack rounds
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"optimisation rounds for {campaign_id} every {every}"),
    )
    try:
        await client.create_schedule(sid, schedule)
    except ScheduleAlreadyRunningError:

        async def change(inp: ScheduleUpdateInput) -> ScheduleUpdate:
            current = inp.description.schedule
            current.spec = schedule.spec
            current.action = schedule.action
            return ScheduleUpdate(schedule=current)

        await client.get_schedule_handle(sid).update(change)
    return sid


@dataclass
class ScheduleRow:
    campaign_id: str
    schedule_id: str
    paused: bool
    every: str
    actions: int
    next_run: str


async def list_schedules(client: Client) -> list[ScheduleRow]:
    rows = []
    async for item in await client.list_schedules():
        if not item.id.startswith("optimise-"):
            continue
        desc = await client.get_schedule_handle(item.id).describe()
        spec = desc.schedule.spec
        every = str(spec.intervals[0].every) if spec.intervals else "?"
        nxt = desc.info.next_action_times[0].isoformat() if desc.info.next_action_times else ""
        rows.append(
            ScheduleRow(
                campaign_id=item.id.removeprefix("optimise-"),
                schedule_id=item.id,
                paused=desc.schedule.state.paused,
                every=every,
                actions=desc.info.num_actions,
                next_run=nxt,
            )
        )
    return rows


async def set_schedule_paused(client: Client, campaign_id: str, paused: bool, note: str) -> None:
    handle = client.get_schedule_handle(schedule_id(campaign_id))
    try:
        if paused:
            await handle.pause(note=note)
        else:
            await handle.unpause(note=note)
    except RPCError as exc:
        raise FaceloopError(
            f"no schedule for campaign {campaign_id!r} ({exc.message}): create it with "
            f"`faceloop schedule {campaign_id} --every 6h`"
        ) from exc


async def delete_schedule(client: Client, campaign_id: str) -> None:
    try:
        await client.get_schedule_handle(schedule_id(campaign_id)).delete()
    except RPCError as exc:
        raise FaceloopError(f"no schedule for campaign {campaign_id!r} ({exc.message})") from exc


# --------------------------------------------------------------------------- erasure


async def start_erasure(
    client: Client, settings: Settings, inp: ErasureInput
) -> tuple[WorkflowHandle[ErasureWorkflow, ErasureReport], bool]:
    """Start the erasure, or attach to the one running for the same subject.

    Returns the handle and whether it attached to a running erasure. A finished erasure
    of the same subject does not block a new run (it finds nothing left and says so).
    """
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
    from temporalio.service import RPCError

    wid = erasure_workflow_id(inp.kind, inp.target)
    try:
        desc = await client.get_workflow_handle(wid).describe()
        running = desc.status == WorkflowExecutionStatus.RUNNING
    except RPCError:
        running = False  # never started
    handle = await client.start_workflow(
        ErasureWorkflow.run,
        inp,
        id=wid,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    return handle, running
