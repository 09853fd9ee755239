"""The sandbox's FAKE fault injection (chaos runs): its share of requests, what each kind
leaves behind on the platform, and the counts it reports."""

from __future__ import annotations

from collections import Counter

import httpx
from sandbox_helpers import spec

from faceloop.connectors.sandbox_platform.app import create_app
from faceloop.connectors.sandbox_platform.faults import FAULTS_PATH, FaultInjection
from faceloop.connectors.sandbox_platform.scenario import Scenario


async def test_faults_hit_their_share_and_committed_writes_stay_single(smooth: Scenario) -> None:
    app = create_app(smooth)
    faulty = FaultInjection(app, rate=0.1, seed=3, hold_seconds=0.0)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=faulty), base_url="http://sandbox.test"
        ) as http:
            assert (await http.get("/health")).status_code == 200
            answers: Counter[int] = Counter()
            created = 0
            for n in range(40):
                body = spec("c1", n).model_dump(mode="json")
                if n == 0:
                    (await http.put("/campaigns/c1", json={"segments": []})).raise_for_status()
                r = await http.post("/campaigns/c1/ads", json=body)
                answers[r.status_code] += 1
                created += r.status_code == 201
                if r.status_code >= 500:
                    # the caller retries as an activity would: the platform's idempotency
                    # (one ad per campaign and asset) decides whether a second ad appears
                    again = await http.post("/campaigns/c1/ads", json=body)
                    while again.status_code >= 500:
                        again = await http.post("/campaigns/c1/ads", json=body)
                    answers[again.status_code] += 1
            counts = (await http.get(FAULTS_PATH)).json()
            ads = (await http.get("/campaigns/c1/ads")).json()
    finally:
        app.state.store.close()
    # 2 of every 20 requests (the last block may be partial); /health and /_faults never
    injected = sum(counts["injected"].values())
    blocks, rest = divmod(counts["requests"], 20)
    assert 2 * blocks <= injected <= 2 * blocks + min(rest, 2), counts
    assert set(counts["injected"]) <= {
        "timeout_after_commit",
        "server_error_after_commit",
        "server_error",
    }
    assert sum(n for code, n in answers.items() if code >= 500) == injected
    # one ad per asset however the answers got lost
    assert len(ads) == 40
    assert len({a["ad_id"] for a in ads}) == 40
    committed_then_failed = counts["injected"].get("timeout_after_commit", 0) + counts[
        "injected"
    ].get("server_error_after_commit", 0)
    # the retries of writes the platform had committed answer 200 (the existing ad)
    assert answers[200] >= committed_then_failed


def test_rate_must_be_a_share(smooth: Scenario) -> None:
    import pytest

    with pytest.raises(ValueError, match="fault rate"):
        FaultInjection(create_app(smooth), rate=1.0)
