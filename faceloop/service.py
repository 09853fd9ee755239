"""Submitting and following campaigns: what the CLI, the demo and the tests share."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from faceloop.errors import FaceloopError
from faceloop.models import Brief, CampaignConfig, CampaignState
from faceloop.playbooks.schema import Playbook, load_playbook, revalidated
from faceloop.report import build_report
from faceloop.settings import Settings
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign import CampaignInput, CampaignWorkflow

# a client command waits this long for a Temporal server before saying how to start one
CONNECT_TIMEOUT_S = 5.0


async def reachable_client(settings: Settings) -> Client:
    """A Temporal client for a CLI command, or a FaceloopError that names the address and
    says how to start a server."""
    from faceloop.workflows.worker import connect

    target = settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"
    try:
        return await asyncio.wait_for(connect(settings), CONNECT_TIMEOUT_S)
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
    except RPCError:
        return None
    except Exception as exc:  # the workflow has no state yet (first task not run)
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
    try:
        while not result.done():
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
        from faceloop.optimizer import Optimizer
        from faceloop.workflows.worker import optuna_url

        return build_report(
            catalog,
            AssetStore(settings.resolved_asset_root),
            campaign_id,
            out_dir,
            prompt_only=prompt_only_params(settings.generator),
            # the campaign's study, for the Pareto front of a multi-objective campaign
            optimizer=Optimizer(optuna_url(settings), settings.optuna_sampler),
        )
    finally:
        catalog.close()
