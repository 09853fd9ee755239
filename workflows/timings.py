"""Where a campaign's time went, read from its Temporal histories (docs/benchmarks.md,
"Loop under load").

The server stamps every event, so these are measured, not estimated. A campaign's run is a
chain: a workflow task schedules an activity (or starts a timer), a worker picks it up, it
completes, the next workflow task follows. Its wall time splits into:

- activities: final attempts, started -> closed (the work itself);
- timers: started -> fired (KPI windows, review SLAs: deliberate waits);
- slot wait: an activity scheduled while its single-slot queue (the GPU queue runs one
  batch at a time) executed another campaign's activity: capacity, not orchestration;
- recovery: the time before an activity's final attempt started when it took more than one
  (failed attempts, heartbeat or start-to-close timeouts, retry backoff): what a crash or
  fault costs, which only chaos runs should show;
- orchestration: the rest: workflow tasks and dispatch of activities to a free worker.
  Steps of one campaign may overlap (a round's analysis runs beside the next round's first
  steps): each second is counted once, so orchestration is the wall time covered by none
  of the above.
  Workflow tasks are also reported on their own, with the part of them spent waiting for
  the main worker to pick them up (it runs the main queue's activities in the same process).

The orchestration share is orchestration / (activities + orchestration): of the time a
campaign was being worked on or moved along, the part that was not inside an activity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

Interval = tuple[float, float]


@dataclass
class ActivitySpan:
    campaign_id: str
    activity: str
    task_queue: str
    scheduled: float
    started: float | None = None
    closed: float | None = None
    attempt: int = 1
    outcome: str = "open"


@dataclass
class RunTimeline:
    """One campaign's events, over all its runs (continue-as-new)."""

    campaign_id: str
    start: float = 0.0
    end: float = 0.0
    activities: list[ActivitySpan] = field(default_factory=list)
    timers: list[Interval] = field(default_factory=list)
    workflow_tasks: list[Interval] = field(default_factory=list)
    # the part of each workflow task before a worker picked it up (the worker was busy)
    workflow_task_waits: list[Interval] = field(default_factory=list)


def _ts(event: HistoryEvent) -> float:
    return event.event_time.ToMicroseconds() / 1e6


_ACTIVITY_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "canceled",
}
_WF_TASK_CLOSED = (
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
)


def add_history(timeline: RunTimeline, events: Iterable[HistoryEvent]) -> None:
    acts: dict[int, ActivitySpan] = {}
    timers: dict[int, float] = {}
    wf_tasks: dict[int, float] = {}
    wf_started: dict[int, float] = {}
    for e in events:
        t, kind = _ts(e), e.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            timeline.start = t if not timeline.start else min(timeline.start, t)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = e.activity_task_scheduled_event_attributes
            acts[e.event_id] = ActivitySpan(
                timeline.campaign_id, a.activity_type.name, a.task_queue.name, t
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            s = e.activity_task_started_event_attributes
            acts[s.scheduled_event_id].started = t
            acts[s.scheduled_event_id].attempt = s.attempt
        elif kind in _ACTIVITY_CLOSED:
            attrs = getattr(e, e.WhichOneof("attributes") or "")
            span = acts[attrs.scheduled_event_id]
            span.closed, span.outcome = t, _ACTIVITY_CLOSED[kind]
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timers[e.event_id] = t
        elif kind in (EventType.EVENT_TYPE_TIMER_FIRED, EventType.EVENT_TYPE_TIMER_CANCELED):
            attrs = getattr(e, e.WhichOneof("attributes") or "")
            timeline.timers.append((timers.pop(attrs.started_event_id), t))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            wf_tasks[e.event_id] = t
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            wf_started[e.workflow_task_started_event_attributes.scheduled_event_id] = t
        elif kind in _WF_TASK_CLOSED:
            attrs = getattr(e, e.WhichOneof("attributes") or "")
            scheduled = wf_tasks.pop(attrs.scheduled_event_id, None)
            if scheduled is not None:
                timeline.workflow_tasks.append((scheduled, t))
                started = wf_started.pop(attrs.scheduled_event_id, scheduled)
                timeline.workflow_task_waits.append((scheduled, started))
        timeline.end = max(timeline.end, t)
    timeline.activities.extend(acts.values())


async def fetch_timeline(client: Client, campaign_id: str) -> RunTimeline:
    """The campaign's timeline over every run, following continue-as-new back to the first."""
    timeline = RunTimeline(campaign_id)
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(campaign_id, run_id=run_id).fetch_history()
        add_history(timeline, history.events)
        first = history.events[0].workflow_execution_started_event_attributes
        if not first.continued_execution_run_id:
            return timeline
        run_id = first.continued_execution_run_id


def union_length(intervals: Iterable[Interval]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def clipped(window: Interval, busy: Sequence[Interval]) -> list[Interval]:
    """The parts of `busy` inside `window` (they may overlap each other)."""
    a, b = window
    return [(max(a, x), min(b, y)) for x, y in busy if x < b and y > a]


def overlap(window: Interval, busy: Sequence[Interval]) -> float:
    """Seconds of `window` covered by the union of `busy`."""
    return union_length(clipped(window, busy))


class StageTiming(BaseModel):
    """One activity type (a stage, as faceloop_stage_seconds labels it), over all campaigns."""

    stage: str
    task_queue: str
    count: int
    exec_p50_s: float
    exec_p95_s: float
    wait_p50_s: float
    wait_p95_s: float
    retried: int


class TimeSplit(BaseModel):
    """Seconds summed over campaigns, and per generated variant."""

    wall_s: float
    activities_s: float
    timers_s: float
    slot_wait_s: float
    recovery_s: float
    orchestration_s: float
    workflow_tasks_s: float
    workflow_task_wait_s: float
    variants: int
    per_variant_wall_s: float
    per_variant_orchestration_s: float
    orchestration_share: float


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 3) if xs else 0.0


def stage_timings(timelines: Sequence[RunTimeline]) -> list[StageTiming]:
    by_stage: dict[str, list[ActivitySpan]] = defaultdict(list)
    for tl in timelines:
        for a in tl.activities:
            by_stage[a.activity].append(a)
    out = []
    for stage, spans in by_stage.items():
        done = [s for s in spans if s.started is not None and s.closed is not None]
        out.append(
            StageTiming(
                stage=stage,
                task_queue=spans[0].task_queue,
                count=len(spans),
                exec_p50_s=_pct([s.closed - s.started for s in done], 50),  # type: ignore[operator]
                exec_p95_s=_pct([s.closed - s.started for s in done], 95),  # type: ignore[operator]
                wait_p50_s=_pct([s.started - s.scheduled for s in done], 50),  # type: ignore[operator]
                wait_p95_s=_pct([s.started - s.scheduled for s in done], 95),  # type: ignore[operator]
                retried=sum(1 for s in spans if s.attempt > 1),
            )
        )
    # in the order the loop reaches them: by how far into its campaign a stage first ran
    offset = {
        stage: min(
            a.scheduled - tl.start for tl in timelines for a in tl.activities if a.activity == stage
        )
        for stage in by_stage
    }
    return sorted(out, key=lambda st: (offset[st.stage], st.stage))


def time_split(
    timelines: Sequence[RunTimeline], variants: dict[str, int], single_slot_queues: set[str]
) -> TimeSplit:
    """The split of the module docstring. `variants`: generated variants per campaign;
    `single_slot_queues`: queues whose worker runs one activity at a time."""
    busy: dict[str, list[Interval]] = defaultdict(list)
    for tl in timelines:
        for a in tl.activities:
            if a.task_queue in single_slot_queues and a.started is not None:
                busy[a.task_queue].append((a.started, a.closed or a.started))
    wall = acts = timers = slot = recovery = wf = wf_wait = accounted = 0.0
    for tl in timelines:
        wall += tl.end - tl.start
        running = [(a.started, a.closed) for a in tl.activities if a.started and a.closed]
        acts += union_length(running)
        timers += union_length(tl.timers)
        wf += union_length(tl.workflow_tasks)
        wf_wait += union_length(tl.workflow_task_waits)
        # what is not orchestration, as intervals: a campaign's steps may overlap (a timer
        # or a slot wait beside the previous round's analysis), and each second counts once
        covered: list[Interval] = [*running, *tl.timers]
        for a in tl.activities:
            if a.started is None:
                continue
            waited = 0.0
            if a.task_queue in single_slot_queues:
                others = [
                    iv for iv in busy[a.task_queue] if iv != (a.started, a.closed or a.started)
                ]
                slot_parts = clipped((a.scheduled, a.started), others)
                waited = union_length(slot_parts)
                slot += waited
                covered += slot_parts
            if a.attempt > 1:
                recovery += max(a.started - a.scheduled - waited, 0.0)
                covered.append((a.scheduled, a.started))
        accounted += union_length(covered)
    orchestration = max(wall - accounted, 0.0)
    n = max(sum(variants.get(tl.campaign_id, 0) for tl in timelines), 1)
    return TimeSplit(
        wall_s=round(wall, 3),
        activities_s=round(acts, 3),
        timers_s=round(timers, 3),
        slot_wait_s=round(slot, 3),
        recovery_s=round(recovery, 3),
        orchestration_s=round(orchestration, 3),
        workflow_tasks_s=round(wf, 3),
        workflow_task_wait_s=round(wf_wait, 3),
        variants=sum(variants.values()),
        per_variant_wall_s=round(wall / n, 3),
        per_variant_orchestration_s=round(orchestration / n, 3),
        orchestration_share=round(orchestration / max(acts + orchestration, 1e-9), 4),
    )


__all__ = [
    "RunTimeline",
    "StageTiming",
    "TimeSplit",
    "add_history",
    "clipped",
    "fetch_timeline",
    "stage_timings",
    "time_split",
    "union_length",
]
