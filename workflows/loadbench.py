"""`faceloop bench loop`: N concurrent campaigns x rounds x variants on the embedded stack,
with one worker process per task queue (main, gpu, cpu), as a deployment runs them;
`split_main=True` runs the main queue's workflow tasks and activities in two processes
(`--queues workflows`, `--queues main-activities`).

It reports variants per minute, p50/p95 per stage and the orchestration share of each
variant's time, all read from the campaigns' Temporal histories (workflows/timings.py).
With `chaos`, workflows/chaos.py breaks things while the campaigns run and the result
says whether every campaign still ended with a clear outcome, no ad was created twice, no
asset was lost and the audit chain verifies (docs/benchmarks.md, "Loop under chaos").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from faceloop.models import CampaignConfig, CampaignState
from faceloop.playbooks.schema import Playbook
from faceloop.settings import Settings, settings_env
from faceloop.storage.catalog import Catalog
from faceloop.workflows.chaos import (
    ChaosPlan,
    ChaosReport,
    Invariants,
    chaos_loop,
    check_invariants,
)
from faceloop.workflows.stack import Child, EmbeddedStack
from faceloop.workflows.timings import (
    StageTiming,
    TimeSplit,
    fetch_timeline,
    stage_timings,
    time_split,
)
from faceloop.workflows.worker import Queue

Progress = Callable[[str], None]


class LoopBenchConfig(BaseModel):
    campaigns: int = Field(default=4, ge=1, le=200)
    rounds: int = Field(default=2, ge=1, le=20)
    variants: int = Field(default=4, ge=2, le=64, description="variants per round")
    kpi_window_seconds: float = Field(default=2.0, ge=0.5, le=3600)
    # no reviewer takes part: a flagged variant waits this long, then the playbook's
    # on_expiry applies (the shipped default waits a day)
    review_sla_seconds: float = Field(default=5.0, ge=1.0)
    timeout_seconds: float = Field(default=900.0, gt=0)
    seed: int = 0
    # workflow tasks in a process of their own, away from the main queue's CPU-heavy
    # activities: measured, it did not lower the orchestration share but raised it (each
    # main activity then goes through the server instead of eager dispatch in the workflow's
    # own worker; docs/benchmarks.md), so off by default
    split_main: bool = False
    chaos: ChaosPlan | None = None


class CampaignOutcome(BaseModel):
    campaign_id: str
    # done / blocked: the workflow's own end; failed: it raised; unfinished: out of time
    status: str
    reason: str
    variants: int


class LoopBenchResult(BaseModel):
    config: LoopBenchConfig
    cpu_count: int | None
    load_average_1m: float
    startup_s: float
    wall_s: float
    variants: int
    variants_per_minute: float
    stages: list[StageTiming]
    split: TimeSplit
    campaigns: list[CampaignOutcome]
    chaos: ChaosReport | None = None
    invariants: Invariants | None = None


def with_review_sla(playbook: Playbook, seconds: float) -> Playbook:
    """The playbook with every review level's SLA cut to `seconds` (runs without reviewers:
    the demo, benches); every chain, or an EU chain would wait days for legal."""
    playbook = playbook.model_copy(deep=True)
    chains = [playbook.escalation, *(r.then.escalate for r in playbook.rules)]
    for level in (lv for c in chains if c for lv in c.levels()):
        level.sla_seconds = min(level.sla_seconds, seconds)
    return playbook


class WorkerPool:
    """One `faceloop worker --queues Q` process per queue, each in its own process group."""

    def __init__(self, settings: Settings, logs: Path, split_main: bool = False) -> None:
        env = {**os.environ, **settings_env(settings)}
        # several processes on one machine: one metrics port each would collide; the bench
        # reads Temporal's histories instead
        env["FACELOOP_METRICS_PORT"] = "0"
        self.env = env
        self.logs = logs
        self.queues: tuple[Queue, ...] = (
            ("workflows", "main-activities", "gpu", "cpu") if split_main else ("main", "gpu", "cpu")
        )
        self.workers: dict[Queue, Child] = {}
        self.restarts = 0

    def start(self, queue: Queue) -> Child:
        child = Child(
            f"{queue} worker",
            [sys.executable, "-m", "faceloop.cli", "worker", "--queues", queue],
            self.logs / f"worker-{queue}.log",
            env=self.env,
        )
        self.workers[queue] = child
        return child

    def start_all(self) -> None:
        for q in self.queues:
            self.start(q)

    def kill_and_restart(self, queue: Queue) -> tuple[int, int]:
        """SIGKILL the queue's worker (no handler runs, no activity finishes), then start a
        new one; returns (killed pid, new pid)."""
        old = self.workers[queue]
        pid = old.proc.pid
        old.kill()
        self.restarts += 1
        return pid, self.start(queue).proc.pid

    def dead(self) -> list[str]:
        return [f"{c.name}:\n{c.tail()}" for c in self.workers.values() if not c.alive()]

    def stop(self) -> None:
        for child in self.workers.values():
            child.stop()


async def wait_for_pollers(client: Client, settings: Settings, timeout: float) -> None:
    """Until every queue has a poller: the timings start with the workers ready."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    wanted = [
        (settings.task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        (settings.task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
        (settings.gpu_task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
        (settings.cpu_task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    ]
    deadline = time.monotonic() + timeout
    while wanted:
        queue, kind = wanted[0]
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=kind,
            )
        )
        if resp.pollers:
            wanted.pop(0)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"no worker polls {queue} after {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def _outcome(handle: WorkflowHandle[Any, CampaignState], deadline: float) -> tuple[str, str]:
    """(status, reason) of one campaign; a server that is restarting is waited for."""
    while True:
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "unfinished", "did not end within the bench's timeout"
            state = await asyncio.wait_for(handle.result(), remaining)
        except TimeoutError:
            return "unfinished", "did not end within the bench's timeout"
        except WorkflowFailureError as exc:
            cause: BaseException | None = exc.cause
            chain = []
            while cause is not None:
                chain.append(str(cause))
                cause = cause.__cause__
            return "failed", " <- ".join(c for c in chain if c) or "failed without a message"
        except RPCError:
            # the server is down for a moment (chaos restarts it): ask again
            await asyncio.sleep(1.0)
            continue
        if state.stage == "done":
            return "done", ""
        return str(state.stage), state.blocked_reason or "ended without a reason"


async def run_loop_bench(
    settings: Settings,
    brief_path: Path,
    bench: LoopBenchConfig,
    progress: Progress,
) -> LoopBenchResult:
    """Run the bench on a fresh embedded stack in `settings`' data dir (its catalog already
    at head). Everything started is stopped before this returns."""
    from faceloop.briefs import load_brief_and_config
    from faceloop.playbooks.schema import load_playbook
    from faceloop.workflows.client import connect, submit

    brief, config = load_brief_and_config(brief_path)
    config = CampaignConfig.model_validate(
        {
            **config.model_dump(),
            "rounds": bench.rounds,
            "variants_per_round": bench.variants,
            "incumbents": min(config.incumbents, bench.variants - 1),
            "kpi_window_seconds": bench.kpi_window_seconds,
        }
    )
    playbook = with_review_sla(load_playbook(settings.playbook), bench.review_sla_seconds)
    chaos = bench.chaos
    flag = settings.resolved_home / "chaos" / "disk-full.flag"
    if chaos is not None:
        flag.parent.mkdir(parents=True, exist_ok=True)
        settings = settings.model_copy(update={"fault_disk_full_flag": flag})
    stack = EmbeddedStack(
        settings,
        fresh_ports=True,
        sandbox_fault_rate=chaos.fault_rate if chaos else 0.0,
        sandbox_fault_seed=bench.seed,
    )
    t_start = time.monotonic()
    await stack.start()
    pool: WorkerPool | None = None
    try:
        effective = stack.effective_settings()
        client = await connect(effective, stack.temporal_address)
        pool = WorkerPool(effective, stack.logs, split_main=bench.split_main)
        pool.start_all()
        progress(
            f"stack up: temporal {stack.temporal_address}, sandbox {stack.sandbox_url}; "
            f"waiting for the {', '.join(pool.queues)} workers"
        )
        try:
            await wait_for_pollers(client, effective, timeout=180)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n" + "\n".join(pool.dead())) from exc
        startup = time.monotonic() - t_start
        progress(f"workers ready after {startup:.1f}s; submitting {bench.campaigns} campaigns")
        run_tag = uuid.uuid4().hex[:6]
        t0 = time.monotonic()
        handles = await asyncio.gather(
            *(
                submit(
                    client,
                    effective,
                    brief,
                    config,
                    playbook,
                    campaign_id=f"bench-{run_tag}-{i:03d}",
                )
                for i in range(bench.campaigns)
            )
        )
        deadline = t0 + bench.timeout_seconds
        stop_chaos = asyncio.Event()
        chaos_task = (
            asyncio.ensure_future(
                chaos_loop(
                    chaos, stack, pool, flag, random.Random(bench.seed), stop_chaos, progress
                )
            )
            if chaos is not None
            else None
        )

        async def one(h: WorkflowHandle[Any, CampaignState]) -> tuple[str, str]:
            out = await _outcome(h, deadline)
            done = sum(1 for f in pending if f.done()) + 1
            progress(f"{time.monotonic() - t0:6.1f}s {h.id}: {out[0]} ({done}/{len(handles)})")
            return out

        pending = [asyncio.ensure_future(one(h)) for h in handles]
        outcomes = await asyncio.gather(*pending)
        wall = time.monotonic() - t0
        report: ChaosReport | None = None
        if chaos_task is not None:
            stop_chaos.set()
            report = await chaos_task
        for status, h in zip(outcomes, handles, strict=True):
            if status[0] == "unfinished":
                with contextlib.suppress(RPCError):
                    await h.terminate("faceloop bench loop: timeout")
        ids = [h.id for h in handles]
        with Catalog(effective.resolved_database_url) as catalog:
            made = {
                cid: sum(1 for v in catalog.variants(cid) if v.asset is not None) for cid in ids
            }
        timelines = [await fetch_timeline(client, cid) for cid in ids]
        invariants = (
            check_invariants(effective, ids, stack.settings.resolved_home / "sandbox.db")
            if chaos is not None
            else None
        )
    finally:
        if pool is not None:
            pool.stop()
        stack.stop()
    variants = sum(made.values())
    return LoopBenchResult(
        config=bench,
        cpu_count=os.cpu_count(),
        load_average_1m=round(os.getloadavg()[0], 2),
        startup_s=round(startup, 2),
        wall_s=round(wall, 2),
        variants=variants,
        variants_per_minute=round(variants / (wall / 60), 2),
        stages=stage_timings(timelines),
        split=time_split(timelines, made, single_slot_queues={effective.gpu_task_queue}),
        campaigns=[
            CampaignOutcome(campaign_id=cid, status=s, reason=r, variants=made[cid])
            for cid, (s, r) in zip(ids, outcomes, strict=True)
        ],
        chaos=report,
        invariants=invariants,
    )


__all__ = [
    "CampaignOutcome",
    "LoopBenchConfig",
    "LoopBenchResult",
    "WorkerPool",
    "run_loop_bench",
    "with_review_sla",
]
