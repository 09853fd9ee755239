"""Ad removal (GDPR takedown) on the sandbox platform and the AdConnector base."""

from __future__ import annotations

from pathlib import Path

import pytest
from sandbox_helpers import ConnectorFactory, make_scenario, spec

from faceloop.connectors.base import AdConnector
from faceloop.errors import ConnectorError
from faceloop.models import AudienceSegment

SEGMENTS = [AudienceSegment(name="all")]


async def test_remove_takes_the_ad_down_for_good_and_is_idempotent(
    connect: ConnectorFactory,
) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c", SEGMENTS)
    keep, gone = [await conn.deploy(spec("c", n)) for n in range(2)]
    await conn.set_allocation("c", 0, {keep.ad_id: 1000, gone.ad_id: 1000})
    before = {i.ad_id: i.impressions for i in await conn.insights("c", 0)}
    assert before == {keep.ad_id: 1000, gone.ad_id: 1000}

    removed = await conn.remove("c", gone.ad_id)
    assert removed.status == "removed" and removed.ad_id == gone.ad_id
    assert await conn.remove("c", gone.ad_id) == removed  # a second takedown is a no-op
    assert {a.ad_id: a.status for a in await conn.list_ads("c")} == {
        keep.ad_id: "active",
        gone.ad_id: "removed",
    }
    # it cannot come back: pausing, re-deploying the same asset or allocating to it
    assert (await conn.pause("c", gone.ad_id)).status == "removed"
    assert (await conn.deploy(spec("c", 1))).status == "removed"
    with pytest.raises(ConnectorError, match="not active") as err:
        await conn.set_allocation("c", 1, {keep.ad_id: 500, gone.ad_id: 500})
    assert err.value.status == 409
    # a zero allocation is accepted and delivers nothing, without the deleted parameters
    await conn.set_allocation("c", 1, {keep.ad_id: 500, gone.ad_id: 0})
    after = {i.ad_id: i.impressions for i in await conn.insights("c", 1)}
    assert after == {keep.ad_id: 1500, gone.ad_id: 1000}


async def test_remove_drops_allocations_of_undelivered_windows(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    await conn.ensure_campaign("c", SEGMENTS)
    ad = await conn.deploy(spec("c", 0))
    await conn.set_allocation("c", 0, {ad.ad_id: 800})
    await conn.remove("c", ad.ad_id)
    assert [i.impressions for i in await conn.insights("c", 0)] == []


async def test_remove_of_an_unknown_ad_or_campaign_is_a_404(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    with pytest.raises(ConnectorError, match="returned 404") as err:
        await conn.remove("nope", "ad-1")
    assert err.value.status == 404
    await conn.ensure_campaign("c", SEGMENTS)
    with pytest.raises(ConnectorError, match=r"ad 'ad-x' not found") as err:
        await conn.remove("c", "ad-x")
    assert err.value.status == 404


async def test_removed_creative_is_not_left_in_the_state_file(
    connect: ConnectorFactory, tmp_path: Path
) -> None:
    state = tmp_path / "sandbox.db"
    conn = connect(make_scenario(), state)
    await conn.ensure_campaign("c", SEGMENTS)
    marked = spec("c", 0).model_copy(
        update={"creative_uri": "file:///assets/ab/erase-me-4c1f.png", "headline": "Q7-unique"}
    )
    ad = await conn.deploy(marked)

    def on_disk() -> bytes:
        wal = state.with_name(state.name + "-wal")
        return state.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

    assert b"erase-me-4c1f" in on_disk()  # the scan sees the creative while it is live
    await conn.remove("c", ad.ad_id)
    data = on_disk()
    assert b"erase-me-4c1f" not in data and b"Q7-unique" not in data
    assert ad.asset_id.encode() in data  # the id stays, for the audit trail


async def test_connectors_without_remove_say_so(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario())
    assert conn.can_remove

    class PauseOnly(type(conn)):  # type: ignore[misc]
        remove = AdConnector.remove

    legacy = PauseOnly("http://sandbox.test")
    try:
        assert not legacy.can_remove
        with pytest.raises(ConnectorError, match="cannot remove ads; delete ad 'a1'"):
            await legacy.remove("c", "a1")
    finally:
        await legacy.aclose()
