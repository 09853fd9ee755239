"""SandboxConnector: the connector contract on an in-process sandbox, then against a real
sandbox server (uvicorn on a free 127.0.0.1 port, and the
`python -m faceloop.connectors.sandbox_platform` entry point as a subprocess)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sandbox_helpers import SCENARIOS, ConnectorFactory, spec

from faceloop.connectors.base import AdConnector
from faceloop.connectors.sandbox import SandboxConnector
from faceloop.connectors.sandbox_platform.app import create_app
from faceloop.connectors.sandbox_platform.scenario import Scenario
from faceloop.errors import ConnectorError
from faceloop.models import AudienceSegment
from faceloop.testing import ConnectorContract


class TestSandboxContract(ConnectorContract):
    @pytest.fixture
    def connector(self, connect: ConnectorFactory, smooth: Scenario) -> SandboxConnector:
        return connect(smooth)


@pytest.fixture
def server(smooth: Scenario, tmp_path: Path) -> Iterator[str]:
    """A sandbox served by uvicorn in a thread; yields its base URL."""
    app = create_app(smooth, tmp_path / "sandbox.db")
    # Bind first and hand the socket over: no window in which another process takes the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()


async def test_connector_against_a_real_server(server: str) -> None:
    segments = [
        AudienceSegment(name="young", share=0.5),
        AudienceSegment(name="old", share=0.5),
    ]
    async with SandboxConnector(server) as conn:
        assert isinstance(conn, AdConnector) and conn.name == "sandbox"
        assert (await conn.health())["status"] == "ok"
        await conn.ensure_campaign("cmp-1", segments)
        await conn.ensure_campaign("cmp-1", segments)
        deployed = [
            await conn.deploy(spec("cmp-1", n, expression=e))
            for n, e in enumerate(["smile", "serious"])
        ]
        assert [await conn.deploy(spec("cmp-1", n)) for n in range(2)] == deployed
        assert await conn.list_ads("cmp-1") == deployed
        await conn.set_allocation("cmp-1", 0, {d.ad_id: 100_000 for d in deployed})
        rows = await conn.insights("cmp-1", 0)
        assert await conn.insights("cmp-1", 0) == rows
        assert {(r.ad_id, r.segment) for r in rows} == {
            (d.ad_id, s.name) for d in deployed for s in segments
        }
        assert all(r.impressions == 50_000 for r in rows)
        clicks = {d.asset_id: sum(r.clicks for r in rows if r.ad_id == d.ad_id) for d in deployed}
        # smooth.yaml: a smile out-clicks a serious face by ~30% at 200k impressions
        assert clicks["asset-0000"] > 1.15 * clicks["asset-0001"]
        assert 0.01 < clicks["asset-0001"] / 100_000 < 0.04
        paused = await conn.pause("cmp-1", deployed[1].ad_id)
        assert paused.status == "paused"
        with pytest.raises(ConnectorError, match=r"PUT /campaigns/cmp-1/windows/0/allocation"):
            await conn.set_allocation("cmp-1", 0, {})


async def test_concurrent_deploys_over_real_http(server: str) -> None:
    import asyncio

    async with SandboxConnector(server) as conn:
        await conn.ensure_campaign("race", [])
        results = await asyncio.gather(*(conn.deploy(spec("race", 7)) for _ in range(25)))
        assert len({r.ad_id for r in results}) == 1
        assert len(await conn.list_ads("race")) == 1


async def test_unreachable_platform_is_a_connector_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with SandboxConnector(f"http://127.0.0.1:{port}", timeout=2) as conn:
        with pytest.raises(ConnectorError, match=r"GET /campaigns/x/ads: cannot reach .* start it"):
            await conn.list_ads("x")


async def test_bad_campaign_id_and_non_sandbox_answers() -> None:
    def not_the_sandbox(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>hello</html>")

    async with SandboxConnector("http://x", transport=httpx.MockTransport(not_the_sandbox)) as conn:
        with pytest.raises(ConnectorError, match="without '/'"):
            await conn.list_ads("a/b")
        with pytest.raises(ConnectorError, match="not JSON; is http://x really the sandbox"):
            await conn.list_ads("a")


def test_entry_point_serves_and_keeps_state(tmp_path: Path) -> None:
    state = tmp_path / "state.db"

    def start() -> tuple[subprocess.Popen[bytes], str]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faceloop.connectors.sandbox_platform",
                "--scenario",
                str(SCENARIOS / "smooth.yaml"),
                "--port",
                str(port),
                "--state",
                str(state),
            ],
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "sandbox subprocess did not start"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                time.sleep(0.05)

    proc, url = start()
    try:
        assert httpx.put(f"{url}/campaigns/c1", json={"segments": []}).status_code == 200
        body = spec("c1", 3).model_dump(mode="json")
        first = httpx.post(f"{url}/campaigns/c1/ads", json=body)
        assert first.status_code == 201
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM: -15 is a clean exit here
        assert proc.wait(10) in (0, -15)
    proc, url = start()
    try:
        second = httpx.post(f"{url}/campaigns/c1/ads", json=body)
        assert second.status_code == 200 and second.json() == first.json()
    finally:
        proc.terminate()
        proc.wait(10)


def test_entry_point_reports_a_bad_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseed: 1\nbase_ctr: 3\nbase_cvr: 0.1\n")
    done = subprocess.run(
        [sys.executable, "-m", "faceloop.connectors.sandbox_platform", "--scenario", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "base_ctr: Input should be less than 1" in done.stderr
    assert "Traceback" not in done.stderr
