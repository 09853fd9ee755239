"""Chaos during `faceloop bench loop --chaos`, and the checks that follow it.

While the campaigns run, `chaos_loop`:
- SIGKILLs a random worker process every `kill_every_s` and starts a new one at once;
- restarts the Temporal dev server once (same port, same SQLite file);
- fills the asset store's disk once: from the first stored asset on, every write fails
  with ENOSPC for `disk_full_s` (and until at least one write was refused);
- the sandbox platform answers `fault_rate` of the requests with FAKE faults (timeouts
  after commit, 5xx; connectors/sandbox_platform/faults.py), for the whole run.

Then `check_invariants` reads each part's own records: ads on the sandbox platform's side
(its SQLite state), assets in the store (bytes hashed again), the audit chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import BaseModel, Field

from faceloop.settings import Settings
from faceloop.storage.assets import AssetStore, open_asset_store
from faceloop.storage.catalog import Catalog
from faceloop.storage.faults import refused_writes

if TYPE_CHECKING:
    from faceloop.workflows.loadbench import WorkerPool
    from faceloop.workflows.stack import EmbeddedStack


class ChaosPlan(BaseModel):
    kill_every_s: float = Field(default=20.0, gt=0)
    restart_temporal_at_s: float = Field(default=30.0, ge=0)
    fault_rate: float = Field(default=0.10, ge=0.0, lt=1.0)
    disk_full_s: float = Field(default=10.0, gt=0)
    # the window stays open until a write was refused, but no longer than this
    disk_full_max_s: float = Field(default=90.0, gt=0)


class ChaosEvent(BaseModel):
    at_s: float
    what: str


class ChaosReport(BaseModel):
    events: list[ChaosEvent]
    worker_kills: dict[str, int]
    temporal_restarts: int
    temporal_down_s: float
    disk_full_s: float
    disk_full_refused_writes: int
    connector_requests: int
    connector_faults: dict[str, int]


async def chaos_loop(
    plan: ChaosPlan,
    stack: EmbeddedStack,
    pool: WorkerPool,
    flag: Path,
    rng: random.Random,
    stop: asyncio.Event,
    progress: Callable[[str], None],
) -> ChaosReport:
    t0 = time.monotonic()
    events: list[ChaosEvent] = []
    kills: Counter[str] = Counter()

    def note(what: str) -> None:
        at = time.monotonic() - t0
        events.append(ChaosEvent(at_s=round(at, 1), what=what))
        progress(f"{at:6.1f}s chaos: {what}")

    assets = Path(stack.settings.resolved_asset_root)
    next_kill = plan.kill_every_s
    restarts, down = 0, 0.0
    disk_opened: float | None = None
    disk_closed: float | None = None
    try:
        while not stop.is_set():
            now = time.monotonic() - t0
            if now >= next_kill:
                queue = rng.choice(sorted(pool.workers))
                old, new = pool.kill_and_restart(queue)
                kills[queue] += 1
                note(f"SIGKILL {queue} worker pid {old}; restarted as pid {new}")
                next_kill += plan.kill_every_s
            if restarts == 0 and now >= plan.restart_temporal_at_s:
                note("restarting the Temporal dev server")
                t = time.monotonic()
                await stack.restart_temporal()
                down = time.monotonic() - t
                restarts = 1
                note(f"Temporal dev server back after {down:.1f}s")
            if disk_opened is None and any(assets.glob("*/*.png")):
                flag.touch()
                disk_opened = now
                note("asset store disk full (ENOSPC on every write)")
            elif disk_opened is not None and disk_closed is None:
                held = now - disk_opened
                if (held >= plan.disk_full_s and refused_writes(flag)) or (
                    held >= plan.disk_full_max_s
                ):
                    flag.unlink(missing_ok=True)
                    disk_closed = now
                    note(f"asset store disk has room again ({refused_writes(flag)} writes refused)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        flag.unlink(missing_ok=True)
    end = time.monotonic() - t0
    if disk_opened is not None and disk_closed is None:
        disk_closed = end
    counts: dict[str, object] = {}
    try:
        async with httpx.AsyncClient(base_url=stack.sandbox_url, timeout=10) as http:
            counts = (await http.get("/_faults")).json()
    except (httpx.HTTPError, ValueError) as exc:
        note(f"could not read the sandbox's fault counts: {exc}")
    injected = counts.get("injected")
    return ChaosReport(
        events=events,
        worker_kills=dict(kills),
        temporal_restarts=restarts,
        temporal_down_s=round(down, 2),
        disk_full_s=round((disk_closed or 0.0) - (disk_opened or 0.0), 1),
        disk_full_refused_writes=refused_writes(flag),
        connector_requests=int(str(counts.get("requests", 0))),
        connector_faults=dict(injected) if isinstance(injected, dict) else {},
    )


class Invariants(BaseModel):
    ads: int
    # the platform's own records: ads beyond the first per (campaign, creative asset), and
    # per (campaign, variant)
    duplicate_ads_by_asset: int
    duplicate_ads_by_variant: int
    # ads on the platform that the catalog does not know
    unknown_ads: list[str]
    assets_checked: int
    # kept by the catalog, but missing from the store or with other bytes than their id says
    lost_assets: list[str]
    audit_entries: int
    audit_problems: list[str]

    @property
    def hold(self) -> bool:
        return not (
            self.duplicate_ads_by_asset
            or self.duplicate_ads_by_variant
            or self.unknown_ads
            or self.lost_assets
            or self.audit_problems
        )


def _sha256_ok(store: AssetStore, asset_id: str, uri: str) -> str | None:
    """None when the store holds the asset's bytes; else what is wrong."""
    try:
        data = store.get_bytes(uri)
    except Exception as exc:  # missing, unreadable, outside the store: all a lost asset
        return f"{asset_id}: {exc}"
    digest = hashlib.sha256(data).hexdigest()
    return None if digest == asset_id else f"{asset_id}: stored bytes hash to {digest}"


def check_invariants(settings: Settings, campaign_ids: list[str], sandbox_db: Path) -> Invariants:
    from faceloop.storage.checkpoints import Checkpoints

    wanted = set(campaign_ids)
    # the platform's own file, read-only: what it holds, not what the connector believes
    con = sqlite3.connect(f"file:{sandbox_db}?mode=ro", uri=True)
    try:
        rows = [
            (c, a, ad, json.loads(spec))
            for c, a, ad, spec in con.execute("SELECT campaign_id, asset_id, ad_id, spec FROM ads")
            if c in wanted
        ]
    finally:
        con.close()
    by_asset = Counter((c, a) for c, a, _, _ in rows)
    by_variant = Counter((c, spec.get("variant_id")) for c, _, _, spec in rows)
    store = open_asset_store(settings)
    lost: list[str] = []
    checked = 0
    known_ads: set[str] = set()
    with Catalog(settings.resolved_database_url) as catalog:
        for cid in campaign_ids:
            known_ads |= {d.ad_id for d in catalog.deployments(cid)}
            for v in catalog.variants(cid):
                if v.ad_id:
                    known_ads.add(v.ad_id)
                kept = [(v.asset.asset_id, v.asset.uri)] if v.asset is not None else []
                kept += [(e.asset_id, e.uri) for e in v.exports if e.uri]
                for asset_id, uri in kept:
                    checked += 1
                    problem = _sha256_ok(store, asset_id, uri)
                    if problem is not None:
                        lost.append(f"{v.variant_id} {problem}")
        problems = catalog.verify_audit()
        checkpoints = Checkpoints.from_settings(settings)
        anchor = checkpoints.newest(catalog)
        if anchor is not None:
            problems += checkpoints.check(catalog, anchor[1])
        _, _, entries = catalog.audit_tip()
    return Invariants(
        ads=len(rows),
        duplicate_ads_by_asset=sum(n - 1 for n in by_asset.values()),
        duplicate_ads_by_variant=sum(n - 1 for n in by_variant.values()),
        unknown_ads=sorted(ad for _, _, ad, _ in rows if ad not in known_ads),
        assets_checked=checked,
        lost_assets=lost,
        audit_entries=entries,
        audit_problems=problems,
    )


__all__ = ["ChaosPlan", "ChaosReport", "Invariants", "chaos_loop", "check_invariants"]
