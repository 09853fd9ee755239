"""The connector soak (faceloop.connectors.soak): Meta through its FAKE platform with
injected faults keeps zero duplicates and zero lost updates, and the fake's counters do see
duplicates when a connector retries creates blindly (so the zero means something)."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from faceloop.connectors.fakes.faults import FaultPlan, FaultyTransport
from faceloop.connectors.fakes.meta import TEST_SEGMENT_AGES, MetaFake
from faceloop.connectors.http_base import VirtualClock
from faceloop.connectors.meta import MetaConnector
from faceloop.connectors.soak import SoakRig, soak
from faceloop.models import AudienceSegment


async def test_meta_soak_has_no_duplicates_and_no_lost_updates() -> None:
    result = await soak("meta", ops=150, fault_rate=0.2, seed=7)
    assert set(result.faults_injected) == {"timeout_after_commit", "server_error", "throttle"}
    assert sum(result.faults_injected.values()) > 0.1 * result.requests
    assert (result.duplicates, result.lost_updates, result.failed_ops) == (0, 0, 0)
    assert result.ops == sum(result.ops_by_kind.values()) == 150
    assert result.retries > 0 and result.virtual_wait_s > 0


class BlindRetries(MetaConnector):
    """A connector that resends a create after a timeout without looking first."""

    async def _ensure(self, edge: str, name: str, fields: Any) -> str:
        found = await self._find(edge, name, "id,name")
        if found is not None:
            return str(found["id"])
        body = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        data = await self.call("POST", f"/{self.account}/{edge}", data={"name": name, **body})
        return str(data["id"])


def blind_rig(plan: FaultPlan, clock: VirtualClock, seed: int) -> SoakRig:
    fake = MetaFake(clock=clock)
    transport = FaultyTransport(httpx.ASGITransport(app=fake.app), fake, plan)
    conn = BlindRetries(
        base_url="http://meta.fake",
        api_version="v23.0",
        ad_account_id=fake.account,
        page_id="1",
        access_token=fake.token,
        link_url="https://example.com",
        read_creative=lambda uri: uri.encode(),
        segment_ages=TEST_SEGMENT_AGES,
        transport=transport,
        clock=clock,
        rng=random.Random(seed),
    )
    segments = [AudienceSegment(name=s, share=0.5) for s in TEST_SEGMENT_AGES]
    return SoakRig(connector=conn, fake=fake, clock=clock, segments=segments)


async def test_the_fake_counts_duplicates_of_blind_retries() -> None:
    result = await soak("meta-blind", ops=80, fault_rate=0.3, seed=1, builder=blind_rig)
    assert result.duplicates > 0


@pytest.mark.parametrize("ops", [40])
def test_bench_connectors_cli_prints_json(ops: int) -> None:
    from faceloop.cli.main import app

    out = CliRunner().invoke(
        app, ["bench", "connectors", "--connector", "meta", "--ops", str(ops), "--json"]
    )
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)
    assert row["connector"] == "meta" and row["ops"] == ops and row["duplicates"] == 0
