"""Metrics and traces of worker processes (docs/observability.md).

- Prometheus: a Temporal `Runtime` whose core serves /metrics on 127.0.0.1:`metrics_port`
  (unset: `DEFAULT_METRICS_PORT`; `faceloop worker` turns an unset port into off).
  The SDK's own metrics (task latencies, polls, slots) and faceloop's (below) share it:
  faceloop records through Temporal's metric meters, so activity metrics carry the
  activity's labels and workflow metrics are skipped during replay.
- Traces: temporalio's OpenTelemetry `TracingInterceptor` on the client (workers inherit
  it), exporting to the console or to an OTLP/HTTP endpoint.

faceloop's series (the activity ones are recorded by `MetricsInterceptor`, so no activity
carries metric code of its own; the review-board ones live in workflows/review.py):

    faceloop_stage_seconds{stage, outcome}             histogram, every activity
    faceloop_generation_seconds                        histogram, per image of `generate`
    faceloop_guardrail_verdicts_total{guardrail, verdict}  counter, every check of `guard`
    faceloop_queue_depth{task_queue, kind}             gauge, polled by `faceloop up`/`worker`
    faceloop_escalations_waiting{campaign_id}          gauge (workflows/review.py)
    faceloop_sla_breaches_total{role, on_expiry}       counter (workflows/review.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any, cast

from temporalio import activity
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from faceloop.errors import FaceloopError
from faceloop.settings import Settings

# the endpoint has no authentication: it never listens beyond this machine
METRICS_HOST = "127.0.0.1"

STAGE_SECONDS = "faceloop_stage_seconds"
GENERATION_SECONDS = "faceloop_generation_seconds"
GUARDRAIL_VERDICTS = "faceloop_guardrail_verdicts_total"
QUEUE_DEPTH = "faceloop_queue_depth"
ESCALATIONS_WAITING = "faceloop_escalations_waiting"
SLA_BREACHES = "faceloop_sla_breaches_total"

# Temporal core's default buckets are for milliseconds; these are seconds, from a fast
# catalog write to a long CPU generation batch
SECONDS_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
)  # fmt: skip

# one Runtime per (port) and process: each Runtime would start its own HTTP server, and a
# second one on the same port fails to bind
_runtimes: dict[int, Runtime] = {}


# `faceloop up` and `demo` when FACELOOP_METRICS_PORT is unset (Prometheus exporters' usual)
DEFAULT_METRICS_PORT = 9464


def metrics_port(settings: Settings) -> int:
    """The port metrics are served on; 0: off."""
    return DEFAULT_METRICS_PORT if settings.metrics_port is None else settings.metrics_port


def for_worker_command(settings: Settings) -> Settings:
    """`faceloop worker`'s settings: metrics off unless FACELOOP_METRICS_PORT is set. A host
    runs several workers (one per queue) and a shared default port would stop the second."""
    if settings.metrics_port is None:
        return settings.model_copy(update={"metrics_port": 0})
    return settings


def metrics_address(settings: Settings) -> str | None:
    port = metrics_port(settings)
    if port == 0:
        return None
    return f"{METRICS_HOST}:{port}"


def worker_runtime(settings: Settings) -> Runtime | None:
    """The Runtime of a worker process, serving /metrics; None when metrics are off (the
    SDK's default runtime then applies). Client-only commands never call this, so they never
    compete with a running worker for the port."""
    address = metrics_address(settings)
    if address is None:
        return None
    port = metrics_port(settings)
    if port not in _runtimes:
        try:
            _runtimes[port] = Runtime(
                telemetry=TelemetryConfig(
                    metrics=PrometheusConfig(
                        bind_address=address,
                        histogram_bucket_overrides={
                            STAGE_SECONDS: SECONDS_BUCKETS,
                            GENERATION_SECONDS: SECONDS_BUCKETS,
                        },
                    )
                )
            )
        except Exception as exc:  # the bridge raises its own error type on a bind failure
            raise FaceloopError(
                f"cannot serve metrics on {address} ({exc}): another worker or `faceloop up` "
                "holds the port; set FACELOOP_METRICS_PORT to a free port, or 0 to turn "
                "metrics off"
            ) from exc
    return _runtimes[port]


def client_interceptors(settings: Settings) -> list[Any]:
    """The OpenTelemetry TracingInterceptor when FACELOOP_TRACING is on; installs the
    tracer provider and exporter the first time."""
    if settings.tracing == "off":
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    _install_tracer_provider(settings.tracing)
    return [TracingInterceptor()]


_tracer_installed: str | None = None


class _CurrentStdout:
    """sys.stdout as it is when a span is written: the exporter outlives any redirect made
    after start-up (a console's capture, pytest's), and never writes to a closed stream."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _install_tracer_provider(target: str) -> None:
    global _tracer_installed
    if _tracer_installed is not None:
        return  # OpenTelemetry allows one global provider per process
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError as exc:
        raise FaceloopError(
            f"FACELOOP_TRACING={target!r} needs opentelemetry-sdk: `pip install "
            "opentelemetry-sdk`, or set FACELOOP_TRACING=off"
        ) from exc
    exporter: SpanExporter
    if target == "console":
        exporter = ConsoleSpanExporter(out=cast(IO[str], _CurrentStdout()))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise FaceloopError(
                f"FACELOOP_TRACING={target!r} is an OTLP endpoint, and the OTLP/HTTP exporter "
                "is not installed: `pip install opentelemetry-exporter-otlp-proto-http`, or "
                "set FACELOOP_TRACING=console"
            ) from exc
        exporter = OTLPSpanExporter(endpoint=target)
    provider = TracerProvider(resource=Resource.create({"service.name": "faceloop"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer_installed = target


# --------------------------------------------------------------------------- activities


class MetricsInterceptor(Interceptor):
    """Times every activity by name and reads the outcomes of `generate` and `guard` (or
    `guard_and_decide`, `guard_decide_and_ship`), so the activities themselves stay free of
    metric code."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityMetrics(next)


class _ActivityMetrics(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # the activity's meter: its series carry activity_type, task_queue and namespace
        meter = activity.metric_meter()
        name = activity.info().activity_type
        start = time.monotonic()
        outcome = "error"
        try:
            result = await super().execute_activity(input)
            outcome = "ok"
            return result
        finally:
            elapsed = time.monotonic() - start
            meter.create_histogram_float(
                STAGE_SECONDS, "seconds an activity (a loop stage) took", "s"
            ).record(elapsed, {"stage": name, "outcome": outcome})
            if outcome == "ok":
                _record_outcome(meter, name, input.args, result, elapsed)


def _record_outcome(
    meter: Any, name: str, args: Sequence[Any], result: Any, elapsed: float
) -> None:
    if name == "generate" and args:
        variants = getattr(args[0], "variants", None) or []
        if variants:
            # the generator makes a batch in one call: each image gets the batch's share
            hist = meter.create_histogram_float(
                GENERATION_SECONDS, "seconds of generation per image", "s"
            )
            for _ in variants:
                hist.record(elapsed / len(variants))
    elif name in ("guard", "guard_and_decide", "guard_decide_and_ship"):
        counter = meter.create_counter(
            GUARDRAIL_VERDICTS, "guardrail checks by guardrail and verdict"
        )
        # guard returns the reports; guard_and_decide the decided variants, each with its
        # own; guard_decide_and_ship those decided variants beside what it shipped
        result = getattr(result, "decided", result)
        reports = getattr(result, "reports", None) or [
            v.report for v in getattr(result, "variants", None) or [] if v.report is not None
        ]
        for report in reports:
            for check in report.checks:
                verdict = getattr(check.verdict, "value", check.verdict)
                counter.add(1, {"guardrail": check.name, "verdict": str(verdict)})


# --------------------------------------------------------------------------- queue depth


async def queue_backlog(client: Client, task_queue: str) -> dict[str, int]:
    """Approximate backlog of a task queue per task kind (workflow, activity), from
    DescribeTaskQueue's stats."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    out: dict[str, int] = {}
    for kind, tq_type in (
        ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    ):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=tq_type,
                report_stats=True,
            )
        )
        out[kind] = int(resp.stats.approximate_backlog_count)
    return out


async def poll_queue_depth(
    client: Client, runtime: Runtime, task_queues: Iterable[str], interval: float = 15.0
) -> None:
    """Set faceloop_queue_depth every `interval` seconds until cancelled. A failed poll
    (server restarting) skips one reading; the gauge keeps its last value."""
    gauge = runtime.metric_meter.create_gauge(
        QUEUE_DEPTH, "approximate tasks waiting in a task queue"
    )
    queues = list(task_queues)
    while True:
        for q in queues:
            with contextlib.suppress(Exception):
                for kind, n in (await queue_backlog(client, q)).items():
                    gauge.set(n, {"task_queue": q, "kind": kind})
        await asyncio.sleep(interval)
