"""Prometheus metrics and tracing settings of worker processes, scraped from a real worker
on the real Temporal dev server (docs/observability.md)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from faceloop.briefs import load_brief_and_config
from faceloop.errors import FaceloopError
from faceloop.models import CampaignConfig
from faceloop.playbooks.schema import Escalation
from faceloop.settings import Settings
from faceloop.workflows.client import connect, submit
from faceloop.workflows.review import ReviewBoard
from faceloop.workflows.stack import free_port, port_open
from faceloop.workflows.telemetry import (
    client_interceptors,
    for_worker_command,
    metrics_address,
    poll_queue_depth,
    queue_backlog,
    worker_runtime,
)
from faceloop.workflows.worker import Resources, build_workers

ROOT = Path(__file__).resolve().parents[2]

Sample = tuple[dict[str, str], float]


def samples(text: str, name: str) -> list[Sample]:
    """Every sample of series `name` in a Prometheus text exposition: (labels, value)."""
    out = []
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
            out.append((labels, float(m.group(2))))
    return out


async def scrape(port: int) -> str:
    async with httpx.AsyncClient() as http:
        resp = await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    resp.raise_for_status()
    return resp.text


@pytest.fixture
def metrics_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_port": free_port()})


@workflow.defn(sandboxed=False)
class BoardMetricsWorkflow:
    """Drives a ReviewBoard inside a real workflow: two plans wait, one misses its SLA."""

    @workflow.run
    async def run(self, campaign_id: str) -> int:
        board = ReviewBoard(submitted_by="submitter")
        now = workflow.now()
        board.open_plan(campaign_id, 0, "flagged", Escalation(sla_seconds=1), now)
        board.open_plan(campaign_id, 1, "flagged", Escalation(sla_seconds=3600), now)
        return len(board.expire(now + timedelta(seconds=2)))


def test_metrics_bind_loopback_only(metrics_settings: Settings) -> None:
    port = metrics_settings.metrics_port
    assert metrics_address(metrics_settings) == f"127.0.0.1:{port}"
    assert worker_runtime(metrics_settings) is not None
    assert port_open(port, "127.0.0.1")
    # any other address of this machine must not answer
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # UDP: picks the outgoing interface, sends nothing
        own = s.getsockname()[0]
    if own.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    assert not port_open(port, own)


def test_metrics_port_defaults() -> None:
    # `faceloop up` and `demo`: 9464 unless set; `faceloop worker`: off unless set, so
    # several workers on one host never collide on a default
    unset = Settings(metrics_port=None)
    assert metrics_address(unset) == "127.0.0.1:9464"
    assert metrics_address(for_worker_command(unset)) is None
    chosen = Settings(metrics_port=9500)
    assert metrics_address(for_worker_command(chosen)) == "127.0.0.1:9500"
    assert metrics_address(for_worker_command(Settings(metrics_port=0))) is None


def test_metrics_off_and_port_in_use(settings: Settings) -> None:
    assert metrics_address(settings.model_copy(update={"metrics_port": 0})) is None
    assert worker_runtime(settings.model_copy(update={"metrics_port": 0})) is None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        with pytest.raises(FaceloopError, match="FACELOOP_METRICS_PORT"):
            worker_runtime(settings.model_copy(update={"metrics_port": busy}))


def test_tracing_setting() -> None:
    with pytest.raises(ValidationError, match="FACELOOP_TRACING"):
        Settings(tracing="jaeger")
    assert client_interceptors(Settings(tracing="off")) == []
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        with pytest.raises(FaceloopError, match="opentelemetry-exporter-otlp-proto-http"):
            client_interceptors(Settings(tracing="http://127.0.0.1:4318/v1/traces"))


@pytest.mark.slow  # a real round: generation and every guardrail, ~20 s on a shared CPU
async def test_campaign_round_metrics_scraped(metrics_settings: Settings) -> None:
    s = metrics_settings
    client = await connect(s, worker_process=True)
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    config = CampaignConfig(rounds=1, variants_per_round=2, incumbents=0, kpi_window_seconds=0.5)
    res = Resources.open(s)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(client, res):
                await stack.enter_async_context(w)
            handle = await submit(client, s, brief, config)
            await asyncio.wait_for(handle.result(), timeout=120)
            text = await scrape(s.metrics_port)
    finally:
        await res.aclose()

    stages = {
        labels["stage"]
        for labels, n in samples(text, "faceloop_stage_seconds_count")
        if labels.get("task_queue") in (s.task_queue, s.gpu_task_queue, s.cpu_task_queue) and n
    }
    # propose and plan run as one activity, and guard, decide, sign and export as another
    # (workflows/campaign.py, propose-and-plan-in-one, guard-decide-and-ship-in-one)
    assert {
        "start_campaign",
        "propose_and_plan",
        "generate",
        "guard_decide_and_ship",
        "finish",
    } <= stages
    gen = [
        n
        for labels, n in samples(text, "faceloop_generation_seconds_count")
        if labels.get("task_queue") == s.gpu_task_queue
    ]
    assert gen == [2.0]  # one sample per image of the round
    verdicts = [
        (labels, n)
        for labels, n in samples(text, "faceloop_guardrail_verdicts_total")
        if labels.get("task_queue") == s.cpu_task_queue
    ]
    assert verdicts, "no guardrail verdicts recorded"
    assert all(labels["verdict"] in {"pass", "escalate", "block"} for labels, _ in verdicts)
    # each of the two images got a verdict from every guardrail
    per_guardrail: dict[str, float] = {}
    for labels, n in verdicts:
        per_guardrail[labels["guardrail"]] = per_guardrail.get(labels["guardrail"], 0) + n
    assert set(per_guardrail.values()) == {2.0}


async def test_review_board_metrics_scraped(metrics_settings: Settings) -> None:
    s = metrics_settings
    client = await connect(s, worker_process=True)
    board_queue = f"board-{uuid.uuid4().hex[:8]}"
    cid = f"board-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=board_queue, workflows=[BoardMetricsWorkflow]):
        breaches = await client.execute_workflow(
            BoardMetricsWorkflow.run, cid, id=cid, task_queue=board_queue
        )
    assert breaches == 1
    text = await scrape(s.metrics_port)
    waiting = [
        n
        for labels, n in samples(text, "faceloop_escalations_waiting")
        if labels.get("campaign_id") == cid
    ]
    assert waiting == [1.0]  # plan 1 still waits after plan 0 expired
    breached = [
        (labels["role"], labels["on_expiry"], n)
        for labels, n in samples(text, "faceloop_sla_breaches_total")
        if labels.get("task_queue") == board_queue
    ]
    assert breached == [("compliance", "block", 1.0)]


async def test_queue_depth_gauge(metrics_settings: Settings, temporal_env: object) -> None:
    s = metrics_settings
    client: Client = await connect(s, worker_process=True)
    runtime = worker_runtime(s)
    assert runtime is not None
    queue = f"idle-{uuid.uuid4().hex[:8]}"
    # two workflows on a queue nobody serves: two workflow tasks wait
    for i in range(2):
        await client.start_workflow(
            "NobodyServesThis",
            id=f"{queue}-{i}",
            task_queue=queue,
            run_timeout=timedelta(minutes=1),
        )
    depth: dict[str, int] = {}
    for _ in range(50):  # the server's stats lag the enqueue a little
        depth = await queue_backlog(client, queue)
        if depth["workflow"] >= 2:
            break
        await asyncio.sleep(0.2)
    assert depth == {"workflow": 2, "activity": 0}
    poll = asyncio.ensure_future(poll_queue_depth(client, runtime, [queue], interval=0.1))
    try:
        await asyncio.sleep(0.5)
        text = await scrape(s.metrics_port)
    finally:
        poll.cancel()
    got = {
        labels["kind"]: n
        for labels, n in samples(text, "faceloop_queue_depth")
        if labels.get("task_queue") == queue
    }
    assert got == {"workflow": 2.0, "activity": 0.0}


async def test_console_tracing_spans(metrics_settings: Settings) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from temporalio.contrib.opentelemetry import TracingInterceptor

    s = metrics_settings.model_copy(update={"tracing": "console"})
    assert [type(i) for i in client_interceptors(s)] == [TracingInterceptor]
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # installed by client_interceptors
    # the console exporter writes to the process's stdout, which pytest's capture owns;
    # a second exporter on the same provider sees the same spans
    seen = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(seen))
    client = await connect(s, worker_process=True)
    queue = f"traced-{uuid.uuid4().hex[:8]}"
    cid = f"traced-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[BoardMetricsWorkflow]):
        await client.execute_workflow(BoardMetricsWorkflow.run, cid, id=cid, task_queue=queue)
    provider.force_flush()  # the console copies now, into this test's captured output
    names = {span.name for span in seen.get_finished_spans()}
    # the client's start and the worker's run of the same workflow
    assert {"StartWorkflow:BoardMetricsWorkflow", "RunWorkflow:BoardMetricsWorkflow"} <= names
