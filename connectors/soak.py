"""Soak bench of the platform connectors: many operations through a fake platform that
injects faults, with duplicates and lost updates counted on the fake's side.

`faceloop bench connectors --json [--connector meta] [--ops 1000] [--fault-rate 0.2]`

A connector takes part by registering a `SoakRig` builder in `SOAK_TARGETS`
(name -> "module:function"): the builder gets the fault plan, a shared virtual clock and a
seed, and returns the connector wired to its fake through `fakes.faults.FaultyTransport`.
The fake implements `SoakFake`: its ledger (committed creates per external id), and what
it holds for an ad's status and a window's allocation, read from its own state.

The operations go through the `AdConnector` contract only (deploy, set_allocation, pause,
insights, list_ads), so every platform is soaked the same way:

- duplicates: the fake's ledger, creates beyond the first per external id;
- lost updates: every operation the connector acknowledged (an ad it returned, an
  allocation or pause it did not raise on) that the fake does not hold at the end;
- failed: operations that raised after the retry budget (reported, not hidden).

Waiting (backoff, pacing) runs on a virtual clock, so 1,000 operations take seconds; the
result reports the waiting a real run would have done.
"""

from __future__ import annotations

import importlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, Field

from faceloop.connectors.base import AdConnector, AdSpec
from faceloop.connectors.fakes.faults import FakePlatform, FaultPlan
from faceloop.connectors.http_base import CallStats, HttpConnector, VirtualClock
from faceloop.errors import ConnectorError, FaceloopError
from faceloop.models import AudienceSegment, FaceParams, Placement, PlacementExport


class SoakFake(FakePlatform, Protocol):
    """A fake platform as the soak bench reads it (its own state, not the connector's)."""

    def ad_status(self, ad_id: str) -> str | None:
        """active / paused / removed as the fake holds it; None: no such ad."""
        ...

    def allocation(self, campaign_id: str, window: int) -> dict[str, int]:
        """Impressions per ad id the fake would serve (or served) in the window."""
        ...


@dataclass
class SoakRig:
    connector: AdConnector
    fake: SoakFake
    clock: VirtualClock
    # the campaign's audience as the fake platform was set up for (segment names it knows)
    segments: list[AudienceSegment]
    # whether the platform serves each ad the impressions it was given (per-ad budgets, as
    # Meta's ad sets); when False (Google Ads, TikTok: the platform splits a campaign or ad
    # group budget over the serving ads) an allocation is held when every ad it names is
    # served and the total served is the total bought (budget granularity aside)
    exact_allocation: bool = True


SoakBuilder = Callable[[FaultPlan, VirtualClock, int], SoakRig]

# name -> "module:function" returning a SoakRig; imported on use
SOAK_TARGETS: dict[str, str] = {
    "meta": "faceloop.connectors.fakes.meta:soak_rig",
    "google_ads": "faceloop.connectors.fakes.google_ads:soak_rig",
    "tiktok": "faceloop.connectors.fakes.tiktok:soak_rig",
}


def soak_builder(name: str) -> SoakBuilder:
    try:
        path = SOAK_TARGETS[name]
    except KeyError:
        raise FaceloopError(
            f"no soak target {name!r}; use one of {', '.join(sorted(SOAK_TARGETS))}"
        ) from None
    module, _, attr = path.partition(":")
    builder: SoakBuilder = getattr(importlib.import_module(module), attr)
    return builder


class SoakResult(BaseModel):
    connector: str
    ops: int
    fault_rate: float
    seed: int
    ops_by_kind: dict[str, int]
    faults_injected: dict[str, int]
    duplicates: int = Field(description="committed creates beyond the first per external id")
    lost_updates: int = Field(description="acknowledged writes the fake does not hold")
    failed_ops: int = Field(description="operations that raised after the retry budget")
    failures: list[str] = Field(default_factory=list, description="first few failure messages")
    requests: int = Field(description="HTTP requests the connector sent, retries included")
    server_requests: int = Field(description="requests the fake answered itself")
    retries: int
    throttled: int
    virtual_wait_s: float = Field(description="backoff and pacing a real run would have waited")
    backoff_s: float = Field(description="of which backoff after failures")
    paced_s: float = Field(description="of which pacing from the usage readings")
    wall_s: float


# the placements a campaign exports by default for the channels the soak targets serve
SOAK_PLACEMENTS: tuple[Placement, ...] = ("1:1", "4:5", "9:16", "1.91:1")


def _spec(campaign_id: str, n: int) -> AdSpec:
    """A creative with an admitted JPEG export per placement, as a campaign deploys it (so
    each connector uploads what it uploads in a campaign); the fakes read any URI."""
    asset_id = f"soak-asset-{campaign_id}-{n:04d}"
    exports = [
        PlacementExport(
            placement=p,
            asset_id=f"{asset_id}-{p}",
            parent_asset_id=asset_id,
            uri=f"file:///soak/{campaign_id}/{n:04d}-{p.replace(':', 'x')}.jpg",
            media_type="image/jpeg",
            width=1080,
            height=1080,
            quality=95,
            fit="crop",
            manifest_ok=True,
            watermark_bit_errors=0,
            watermark_recall=1.0,
        )
        for p in SOAK_PLACEMENTS
    ]
    return AdSpec(
        campaign_id=campaign_id,
        variant_id=f"v{n}",
        asset_id=asset_id,
        creative_uri=f"file:///soak/{campaign_id}/{n:04d}.png",
        params=FaceParams(),
        headline="Soak test",
        disclosure="AI-generated image",
        exports=exports,
    )


OP_WEIGHTS = {"deploy": 0.4, "allocate": 0.25, "pause": 0.15, "insights": 0.2}


async def soak(
    name: str,
    ops: int = 1000,
    fault_rate: float = 0.2,
    seed: int = 0,
    builder: SoakBuilder | None = None,
) -> SoakResult:
    """Run `ops` operations of a seeded mix on connector `name` against its fake (built by
    `builder`, default: the registered SOAK_TARGETS entry)."""
    rng = random.Random(seed)
    clock = VirtualClock()
    build = builder or soak_builder(name)
    rig = build(FaultPlan(rate=fault_rate, seed=seed + 1), clock, seed)
    conn, fake = rig.connector, rig.fake
    campaigns = [f"soak{seed}-{i}" for i in range(max(1, ops // 100))]
    assets: dict[str, int] = dict.fromkeys(campaigns, 0)
    window: dict[str, int] = dict.fromkeys(campaigns, 0)
    ads: dict[str, dict[str, str]] = {c: {} for c in campaigns}  # asset id -> ad id
    paused: set[str] = set()
    allocations: dict[tuple[str, int], dict[str, int]] = {}
    counts: Counter[str] = Counter()
    failures: list[str] = []
    client_dupes = 0
    started = time.perf_counter()
    try:
        for c in campaigns:
            await conn.ensure_campaign(c, rig.segments)
        kinds, weights = list(OP_WEIGHTS), list(OP_WEIGHTS.values())
        for _ in range(ops):
            c = rng.choice(campaigns)
            kind = rng.choices(kinds, weights)[0]
            if kind != "deploy" and not ads[c]:
                kind = "deploy"
            counts[kind] += 1
            try:
                if kind == "deploy":
                    # a third of deploys repeat an asset: a Temporal retry of the activity
                    n = rng.randrange(assets[c]) if assets[c] and rng.random() < 0.33 else None
                    if n is None:
                        n, assets[c] = assets[c], assets[c] + 1
                    dep = await conn.deploy(_spec(c, n))
                    known = ads[c].setdefault(dep.asset_id, dep.ad_id)
                    client_dupes += known != dep.ad_id
                elif kind == "allocate":
                    live = [a for a in ads[c].values() if a not in paused]
                    chosen = rng.sample(live, k=min(len(live), rng.randint(1, 3))) if live else []
                    alloc = {a: rng.randrange(1, 50) * 100 for a in chosen}
                    await conn.set_allocation(c, window[c], alloc)
                    allocations[(c, window[c])] = alloc
                elif kind == "pause":
                    ad = rng.choice(sorted(ads[c].values()))
                    await conn.pause(c, ad)
                    paused.add(ad)
                else:
                    await conn.insights(c, window[c])
                    window[c] += 1
            except ConnectorError as err:
                failures.append(f"{kind} {c}: {err}")
        lost = 0
        for by_asset in ads.values():
            for ad in by_asset.values():
                status = fake.ad_status(ad)
                if status is None or (ad in paused and status != "paused"):
                    lost += 1
        for (c, w), alloc in allocations.items():
            full = {a: n for a, n in fake.allocation(c, w).items() if n}
            want = {a: n for a, n in alloc.items() if n and a not in paused}
            held = {a: n for a, n in full.items() if a not in paused}
            if rig.exact_allocation:
                lost += held != want
            else:
                # the budget bought the allocation's total; the platform spends it on every
                # ad enabled when the window ran (one deployed after the allocation or
                # paused later too), and on none when none was
                bought, served = sum(alloc.values()), sum(full.values())
                off = served > 0 and abs(served - bought) > 0.01 * bought + 5
                lost += not set(want) <= set(held) or off
    finally:
        await conn.aclose()
    stats = conn.stats if isinstance(conn, HttpConnector) else CallStats()
    return SoakResult(
        connector=name,
        ops=ops,
        fault_rate=fault_rate,
        seed=seed,
        ops_by_kind=dict(counts),
        faults_injected=dict(fake.ledger.injected),
        duplicates=fake.ledger.duplicates() + client_dupes,
        lost_updates=lost,
        failed_ops=len(failures),
        failures=failures[:5],
        requests=stats.requests,
        server_requests=fake.ledger.requests,
        retries=stats.retries,
        throttled=stats.throttled,
        virtual_wait_s=round(clock.slept, 1),
        backoff_s=round(stats.backoff_s, 1),
        paced_s=round(conn.pacer.paced_s if isinstance(conn, HttpConnector) else 0.0, 1),
        wall_s=round(time.perf_counter() - started, 2),
    )


__all__ = ["OP_WEIGHTS", "SOAK_TARGETS", "SoakBuilder", "SoakFake", "SoakResult", "SoakRig", "soak"]
