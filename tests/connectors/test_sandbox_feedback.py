"""Hides and reports (complaints) from the sandbox platform (a fake): reported where the
scenario declares them, None where it does not, and drawn so clicks do not change."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from sandbox_helpers import ConnectorFactory, make_scenario, spec

from faceloop.connectors.base import AdInsight
from faceloop.connectors.sandbox import SandboxConnector
from faceloop.connectors.sandbox_platform.scenario import feedback_rates
from faceloop.models import FaceParams

FEEDBACK = {
    "hide_rate": 0.01,
    "report_rate": 0.001,
    "effects": {"expression": {"serious": 1.0}},
}


async def deliver(conn: SandboxConnector, impressions: int = 100_000) -> list[AdInsight]:
    await conn.ensure_campaign("c1", [])
    ads = [
        await conn.deploy(spec("c1", n, expression=e)) for n, e in enumerate(["smile", "serious"])
    ]
    await conn.set_allocation("c1", 0, {a.ad_id: impressions for a in ads})
    return await conn.insights("c1", 0)


async def test_feedback_is_reported_at_the_scenarios_rates(connect: ConnectorFactory) -> None:
    sc = make_scenario(feedback=FEEDBACK)
    rows = await deliver(connect(sc))
    # rows come in ad id order; the asset ids say which face each ad shows
    faces = {"asset-0000": "smile", "asset-0001": "serious"}
    by_expression = {faces[r.asset_id]: r for r in rows}
    for expression, r in by_expression.items():
        assert r.negative_feedback is not None and r.complaints is not None
        rates = feedback_rates(sc, FaceParams(expression=expression))
        assert rates is not None
        for count, rate in ((r.negative_feedback, rates[0]), (r.complaints, rates[1])):
            sd = math.sqrt(rate * (1 - rate) / r.impressions)
            assert abs(count / r.impressions - rate) < 4 * sd, (expression, count, rate)
    # a serious face is hidden about e^1 times as often (logit shift 1.0 at ~1%)
    smile, serious = by_expression["smile"], by_expression["serious"]
    assert serious.negative_feedback is not None and smile.negative_feedback is not None
    assert serious.negative_feedback / smile.negative_feedback == pytest.approx(2.7, rel=0.15)


async def test_without_a_feedback_section_nothing_is_reported_and_clicks_are_the_same(
    connect: ConnectorFactory,
) -> None:
    plain = await deliver(connect(make_scenario()))
    with_feedback = await deliver(connect(make_scenario(feedback=FEEDBACK)))
    assert all(r.negative_feedback is None and r.complaints is None for r in plain)
    # hides and reports come from a stream of their own: the same clicks and conversions
    assert [(r.impressions, r.clicks, r.conversions) for r in plain] == [
        (r.impressions, r.clicks, r.conversions) for r in with_feedback
    ]


async def test_feedback_is_cumulative_like_the_other_counts(connect: ConnectorFactory) -> None:
    conn = connect(make_scenario(feedback=FEEDBACK))
    first = await deliver(conn, 20_000)
    ads = await conn.list_ads("c1")
    await conn.set_allocation("c1", 1, {a.ad_id: 20_000 for a in ads})
    second = await conn.insights("c1", 1)
    for a, b in zip(first, second, strict=True):
        assert a.negative_feedback is not None and b.negative_feedback is not None
        assert a.complaints is not None and b.complaints is not None
        assert b.negative_feedback > a.negative_feedback and b.complaints >= a.complaints


async def test_state_files_from_before_feedback_get_the_columns(
    connect: ConnectorFactory, tmp_path: Path
) -> None:
    state = tmp_path / "sandbox.db"
    sc = make_scenario(feedback=FEEDBACK)
    before = await deliver(connect(sc, state))
    # what an older sandbox wrote: deliveries without the two columns
    db = sqlite3.connect(state)
    db.execute("ALTER TABLE deliveries DROP COLUMN hides")
    db.execute("ALTER TABLE deliveries DROP COLUMN reports")
    db.commit()
    db.close()
    again = connect(sc, state)
    rows = await again.insights("c1", 0)
    # delivered windows keep their clicks; their hides and reports were not kept: 0
    assert [(r.impressions, r.clicks) for r in rows] == [(r.impressions, r.clicks) for r in before]
    assert all(r.negative_feedback == 0 and r.complaints == 0 for r in rows)
    ads = await again.list_ads("c1")
    await again.set_allocation("c1", 1, {a.ad_id: 20_000 for a in ads})
    assert all((r.negative_feedback or 0) > 0 for r in await again.insights("c1", 1))
