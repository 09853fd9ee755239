"""`--queues workflows` / `--queues main-activities`: the main task queue's two kinds of task
in separate worker processes; `main` still serves both (the embedded default)."""

from __future__ import annotations

import pytest
import typer
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from faceloop.cli.campaigns import _parse_queues
from faceloop.settings import Settings
from faceloop.workflows.worker import Resources, build_workers


def test_parse_queues() -> None:
    assert _parse_queues("workflows") == ["workflows"]
    assert _parse_queues("main-activities,gpu") == ["gpu", "main-activities"]
    with pytest.raises(typer.BadParameter, match="main-activities"):
        _parse_queues("orchestration")


async def test_split_main_queue(temporal_env: WorkflowEnvironment, settings: Settings) -> None:
    res = Resources.open(settings)
    try:
        client = temporal_env.client
        # Temporal core refuses two workers of one client with overlapping task types on one
        # queue: these two are accepted together, so neither polls the other's tasks
        [wf] = build_workers(client, res, ["workflows"])
        [acts] = build_workers(client, res, ["main-activities"])
        for w in (wf, acts):
            assert w.task_queue == settings.task_queue
        assert wf.config().get("workflows") and not wf.config().get("activities")
        assert acts.config().get("activities") and not acts.config().get("workflows")
        names = {getattr(a, "__name__", "") for a in acts.config()["activities"]}
        assert {"propose", "deploy", "learn"} <= names
        # `main` is both in one worker (the embedded default), here on a client of its own
        other = await Client.connect(
            client.service_client.config.target_host,
            namespace=client.namespace,
            data_converter=client.data_converter,
        )
        [both] = build_workers(other, res, ["main"])
        assert both.config().get("activities") and both.config().get("workflows")
        # and so is workflows + main-activities named together: one worker, not two
        third = await Client.connect(
            client.service_client.config.target_host,
            namespace=client.namespace,
            data_converter=client.data_converter,
        )
        assert len(build_workers(third, res, ["workflows", "main-activities"])) == 1
    finally:
        await res.aclose()
