"""ErasureWorkflow: carry out one GDPR erasure (Art. 17) everywhere, and record it.

Orchestration only; the steps are activities in workflows/erasure_activities.py,
each safe to repeat. The workflow id is `erase-<kind>-<id>` (faceloop.erasure), so a second
request for the same subject attaches to the running erasure instead of racing it. A
worker crash mid-way resumes at the step that was running: Temporal retries it, and it
removes what is still there.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from faceloop.erasure import (
        ErasureInput,
        ErasurePlan,
        ErasureProgress,
        ErasureRecordInput,
        ErasureReport,
        StoreReport,
    )
    from faceloop.workflows.erasure_activities import ErasureActivities

# An erasure must finish: transient failures (a platform outage, a busy database, a dead
# worker) retry with backoff for about ten minutes; a step still failing then fails the
# workflow loudly, and running the erasure again resumes it (every step is idempotent).
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=15,
)
QUICK = timedelta(minutes=2)
LONG = timedelta(minutes=30)
HEARTBEAT = timedelta(seconds=30)


@workflow.defn
class ErasureWorkflow:
    def __init__(self) -> None:
        self._progress = ErasureProgress(step="starting")

    @workflow.query
    def progress(self) -> ErasureProgress:
        return self._progress

    async def _step(
        self, step: str, fn: Any, arg: Any, timeout: timedelta, heartbeat: bool = False
    ) -> Any:
        self._progress.step = step
        return await workflow.execute_activity_method(
            fn,
            arg,
            start_to_close_timeout=timeout,
            heartbeat_timeout=HEARTBEAT if heartbeat else None,
            retry_policy=RETRY,
        )

    def _done(self, *reports: StoreReport) -> None:
        self._progress.stores.extend(reports)

    @workflow.run
    async def run(self, inp: ErasureInput) -> ErasureReport:
        started = workflow.now()
        acts = ErasureActivities
        plan: ErasurePlan = await self._step("find", acts.find_erasure_scope, inp, QUICK)
        # (b) ads first: a creative stops being shown before its files disappear
        ads = await self._step("take down ads", acts.take_down_ads, plan, LONG, heartbeat=True)
        self._done(*ads.stores)
        self._done(
            await self._step(
                "delete asset files", acts.delete_asset_files, plan, LONG, heartbeat=True
            )
        )
        self._done(
            await self._step(
                "delete exported copies", acts.delete_exported_copies, plan, LONG, heartbeat=True
            )
        )
        self._done(await self._step("tombstone catalog", acts.tombstone_catalog_rows, plan, QUICK))
        # no patch marker needed: asset erasures still skip this step and persona erasures
        # still run it, so recorded histories replay; only the new campaign kind joins them
        if plan.kind in ("persona", "campaign"):
            shred = await self._step(
                "crypto-shred", acts.shred_subject_keys, plan, QUICK, heartbeat=True
            )
            self._done(*shred.stores)
        self._done(await self._step("compact catalog", acts.compact_catalog, plan, LONG))
        finished = workflow.now()
        seq: int = await self._step(
            "audit",
            acts.record_erasure,
            ErasureRecordInput(
                plan=plan,
                stores=self._progress.stores,
                requested_by=inp.requested_by,
                ticket=inp.ticket,
                started_at=started,
                finished_at=finished,
            ),
            QUICK,
        )
        self._progress.step = "done"
        return ErasureReport(
            workflow_id=workflow.info().workflow_id,
            kind=plan.kind,
            target=plan.target,
            campaign_ids=plan.campaign_ids,
            stores=self._progress.stores,
            started_at=started,
            finished_at=finished,
            duration_s=round((finished - started).total_seconds(), 3),
            audit_seq=seq,
        )
