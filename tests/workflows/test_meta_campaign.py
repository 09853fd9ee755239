"""A whole campaign through the Meta connector, on the real Temporal dev server, against the
FAKE Graph API (faceloop.connectors.fakes.meta) served over HTTP: the brief's channel is
meta, each ad shows the placement exports the deploy gate admitted (one ad image each,
placement asset customization), the fake's review disapproves one ad, and faceloop records
it, pauses it, tells the optimizer it failed and raises it to the playbook's escalation
role (compliance). The access token is then looked for in every event of the workflow's
history, in the catalog and in every log record of the run: it is in none."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from optuna.trial import TrialState
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from faceloop.briefs import load_brief_and_config
from faceloop.connectors.fakes.meta import ACCOUNT, PAGE, TOKEN, MetaFake
from faceloop.connectors.meta import image_label
from faceloop.models import CampaignConfig, CampaignState, Channel, SpendCap
from faceloop.optimization import Optimizer
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign import CampaignWorkflow
from faceloop.workflows.client import submit
from faceloop.workflows.worker import Resources, build_workers, optuna_url

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


@contextlib.contextmanager
def serve(fake: MetaFake) -> Iterator[str]:
    """The fake served by uvicorn in a thread on a free port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(fake.app, log_level="warning", lifespan="off"))
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


def assert_secret_absent(secret: str, histories: list[WorkflowHistory], db_url: str) -> None:
    """`secret` is in no event of the histories (payloads are JSON bytes: searched raw and
    as the history's JSON, where payload data is base64) and not in the catalog's file."""
    assert len(secret) >= 8 and histories
    encoded = base64.b64encode(secret.encode()).decode()[:-4]  # a prefix: alignment-safe
    for history in histories:
        raw = b"".join(e.SerializeToString() for e in history.events)
        assert secret.encode() not in raw
        text = history.to_json()
        assert secret not in text and encoded not in text
    db = Path(db_url.removeprefix("sqlite:///"))
    assert db.is_file()
    for f in db.parent.glob(db.name + "*"):  # with the write-ahead log, if any
        assert secret.encode() not in f.read_bytes(), f


def assert_not_logged(secret: str, caplog: pytest.LogCaptureFixture) -> None:
    """No log record (message, arguments or traceback) of the run holds `secret`."""
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for record in caplog.records:
        assert secret not in record.getMessage(), record.name
        if record.exc_info:
            assert secret not in "".join(traceback.format_exception(*record.exc_info))


async def run(client: Client, settings: Settings, cid: str) -> CampaignState:
    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    # a cap far above what two rounds spend: Meta holds it as the campaign's spend_cap
    cap = SpendCap(amount=100_000.0, currency="USD", include_compute=False)
    brief = brief.model_copy(update={"channels": [Channel.meta], "spend_cap": cap})
    config = CampaignConfig(
        rounds=2, variants_per_round=4, incumbents=1, kpi_window_seconds=1.0, connector="meta"
    )
    res = Resources.open(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(client, res):
                await stack.enter_async_context(w)
            handle = await submit(client, settings, brief, config, campaign_id=cid)
            return await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        await res.aclose()


async def test_a_campaign_through_meta_with_a_disapproved_ad(
    temporal_env: WorkflowEnvironment, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every record of the workers, httpx and the fake
    fake = MetaFake()
    fake.disapprove_next(1, "Ads may not use misleading imagery")
    cid = "meta-e2e"
    with serve(fake) as url:
        meta = settings.model_copy(
            update={
                "meta_base_url": url,
                "meta_ad_account_id": ACCOUNT,
                "meta_page_id": PAGE,
                "meta_access_token": SecretStr(TOKEN),
                "meta_link_url": "https://lumen.example/spf50",
                "meta_segment_ages": {
                    "young_urban": ["18-24", "25-34"],
                    "established": ["35-44", "45-54"],
                },
            }
        )
        state = await run(temporal_env.client, meta, cid)
    assert state.stage == "done" and state.round == 1

    # exactly once at the platform, counted by the fake: one ad per deployed asset
    assert fake.ledger.duplicates() == 0
    catalog = Catalog(meta.resolved_database_url)
    try:
        deployments = catalog.deployments(cid)
        ads = {o["id"]: o for o in fake.objects.values() if o["kind"] == "ads"}
        assert len(ads) == len(deployments) >= 2
        for ad in ads.values():
            assert ad["name"].startswith(f"faceloop:{cid}:")
            targeting = fake.objects[ad["adset_id"]]["targeting"]
            assert targeting == {"geo_locations": {"countries": ["DE", "FR", "NL"]}}

        # each ad shows the JPEG exports the deploy gate admitted (the audit's record),
        # one ad image each, by placement asset customization
        admitted = {
            e.payload["ad_id"]: [x.split()[0] for x in e.payload["exports"] if "jpeg" in x]
            for e in catalog.audit_entries(cid)
            if e.kind == "ad.deployed"
        }
        assert set(admitted) == set(ads) and any(admitted.values())
        for ad_id, placements in admitted.items():
            creative = fake.objects[fake.objects[ad_id]["creative"]["id"]]
            feed = creative.get("asset_feed_spec")
            if not placements:
                assert feed is None and "link_data" in creative["object_story_spec"]
                continue
            assert feed is not None
            labels = {i["adlabels"][0]["name"] for i in feed["images"]}
            want = {image_label(p) for p in placements}
            assert labels == (want if "1:1" in placements else want | {image_label(None)})
            assert all(i["hash"] in fake.images for i in feed["images"])

        # the disapproved ad: recorded, paused on Meta, raised to compliance, never live
        (bad,) = [a for a in ads.values() if a["review"] == "DISAPPROVED"]
        assert bad["status"] == "PAUSED"
        (record,) = state.rollbacks
        assert (record.ad_id, record.criteria, record.notify_role) == (
            bad["id"],
            ["platform_review"],
            "compliance",
        )
        assert "DISAPPROVED" in record.reason and "misleading imagery" in record.reason
        assert record.variant_id not in {v.variant_id for v in state.live}
        entries = [e for e in catalog.audit_entries(cid) if e.kind == "ad.disapproved"]
        assert [e.subject for e in entries] == [record.variant_id]
        assert catalog.verify_audit() == []
        variant = catalog.get_variant(record.variant_id)
        assert variant is not None and not variant.live

        # the optimizer heard it failed; the approved ones were told their KPI
        trials = {t.number: t for t in Optimizer(optuna_url(meta)).trials(cid)}
        assert variant.trial_number is not None
        assert trials[variant.trial_number].state == TrialState.FAIL
        assert Counter(t.state for t in trials.values())[TrialState.RUNNING] == 0

        # the brief's spend cap is held by Meta too, set once: 100,000.00 USD in cents
        (camp,) = [o for o in fake.objects.values() if o["kind"] == "campaigns"]
        assert camp["spend_cap"] == "10000000"
        (held,) = [
            e for e in catalog.audit_entries(cid) if e.kind == "campaign.platform_spend_limit"
        ]
        assert held.payload["held"] is True and held.payload["platform"] == "meta"

        # KPIs came from Meta insights, by segment
        obs = catalog.observations(cid)
        assert {o.segment for o in obs} <= {"young_urban", "established"}
        assert sum(o.impressions for o in obs) > 0
    finally:
        catalog.close()

    client = temporal_env.client
    run_ids = [wf.run_id async for wf in client.list_workflows(f"WorkflowId = '{cid}'")]
    replayer = Replayer(workflows=[CampaignWorkflow], data_converter=pydantic_data_converter)
    histories = [await client.get_workflow_handle(cid, run_id=r).fetch_history() for r in run_ids]
    for history in histories:
        await replayer.replay_workflow(history)
    # the token never entered Temporal: no event of any run (inputs, results, failures)
    # holds it, though the worker called Meta with it all along; nor does the catalog
    assert_secret_absent(TOKEN, histories, meta.resolved_database_url)
    assert_not_logged(TOKEN, caplog)
