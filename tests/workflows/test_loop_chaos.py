"""`faceloop bench loop --chaos`, small: while campaigns run on the embedded stack with one
worker process per queue, workers are SIGKILLed every 20 s, the Temporal server restarts
once, the asset store's disk is full once and the sandbox fails 10% of requests (FAKE
faults). Every campaign still ends with a clear outcome, no ad exists twice on the
platform's side, every asset the catalog keeps has its bytes, the audit chain verifies."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from faceloop.examples import example_path
from faceloop.settings import Settings
from faceloop.storage import migrations
from faceloop.workflows.chaos import ChaosPlan
from faceloop.workflows.loadbench import LoopBenchConfig, run_loop_bench

pytestmark = pytest.mark.slow


async def test_campaigns_survive_chaos(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    migrations.upgrade(settings.resolved_database_url)
    bench = LoopBenchConfig(
        # small: each kill of a worker mid-activity costs that activity's heartbeat timeout
        # (20 s for generate, guard, sign, export; was 60 s) before its retry starts
        campaigns=2,
        rounds=1,
        variants=3,
        timeout_seconds=300,
        seed=1,
        # the restart comes early, so a short run sees it
        chaos=ChaosPlan(kill_every_s=20, restart_temporal_at_s=10, fault_rate=0.10),
    )
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        print(line, file=sys.stderr)

    result = await run_loop_bench(settings, example_path("brief.yaml"), bench, progress)
    log = "\n".join(lines)
    # what the kills cost (docs/benchmarks.md quotes it): recovery vs the rest of the split
    print(f"time split: {result.split.model_dump_json()}", file=sys.stderr)
    print(f"chaos: {result.chaos.model_dump_json() if result.chaos else None}", file=sys.stderr)
    chaos, inv = result.chaos, result.invariants
    assert chaos is not None and inv is not None
    # the chaos happened
    assert sum(chaos.worker_kills.values()) >= 1, log
    assert chaos.temporal_restarts == 1, log
    assert chaos.disk_full_refused_writes >= 1, log
    assert sum(chaos.connector_faults.values()) >= 1, chaos
    # and nothing was lost to it
    for c in result.campaigns:
        assert c.status in ("done", "blocked", "failed"), f"{c}\n{log}"
        assert c.status == "done" or c.reason, c
    assert inv.ads > 0
    assert inv.duplicate_ads_by_asset == 0 and inv.duplicate_ads_by_variant == 0, inv
    assert inv.unknown_ads == [], inv
    assert inv.assets_checked > 0 and inv.lost_assets == [], inv
    assert inv.audit_problems == [] and inv.audit_entries > 0, inv
    assert inv.hold
