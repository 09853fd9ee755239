"""The split topology of docs/deploy.md on real parts: a GPU-queue worker and a CPU-queue
worker in processes of their own, each with a private data dir, sharing nothing but the
Temporal server, the PostgreSQL catalog and an S3 bucket (a moto server process). A small
campaign completes; every asset is in the bucket, none is on either worker's disk.

The one thing the processes must be handed is the C2PA key material: the CPU worker signs
with signer-chain.pem + signer.key, the main worker's deploy gate (and the CPU worker's
export stage) verify against ca.pem.
The test makes them once and copies each process its part, as an operator would
(docs/deploy.md, "Split workers")."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from faceloop.briefs import load_brief_and_config
from faceloop.cli.db import upgrade_catalog
from faceloop.guardrails.provenance import init_keys
from faceloop.models import CampaignConfig, Decision
from faceloop.settings import S3Settings, Settings, settings_env
from faceloop.storage.catalog import Catalog
from faceloop.workflows.client import submit
from faceloop.workflows.worker import Resources, build_workers

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "campaign-assets"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def database_url(pg_url: str) -> str:
    """The shared catalog: PostgreSQL (a SQLite file would need a shared folder)."""
    return pg_url


def _home(base: Settings, name: str, root: Path, **update: Any) -> Settings:
    """Settings of one process: its own data dir with its own copy of the playbook."""
    home = root / name
    home.mkdir(parents=True)
    assert base.playbook is not None
    playbook = home / "playbook.yaml"
    shutil.copyfile(base.playbook, playbook)
    return base.model_copy(update={"home": home, "playbook": playbook, **update})


def _worker(settings: Settings, queue: str) -> tuple[subprocess.Popen[bytes], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELOOP_")}
    env.update(settings_env(settings))
    log = settings.resolved_home / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faceloop.cli", "worker", "--queues", queue],
            env=env,
            # the data dir is the process's working folder too: nothing relative lands elsewhere
            cwd=settings.resolved_home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, log


def _file_hashes(folder: Path) -> dict[str, Path]:
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in folder.rglob("*") if p.is_file()}


async def test_gpu_and_cpu_workers_share_only_the_bucket(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    s3_settings: S3Settings,
    s3_bucket: str,
    s3_client: Any,
    tmp_path: Path,
) -> None:
    # the key material, made once and handed to each process as its own copy
    made = init_keys(tmp_path / "operator-keys")
    base = settings.model_copy(
        update={
            "asset_url": f"s3://{s3_bucket}/{PREFIX}",
            "s3": s3_settings,
            # two worker processes on one machine: no shared metrics port
            "metrics_port": 0,
        }
    )
    homes = tmp_path / "machines"
    main = _home(base, "main", homes)
    gpu = _home(base, "gpu", homes)
    cpu = _home(base, "cpu", homes)
    (main.resolved_home / "keys").mkdir()
    (cpu.resolved_home / "keys").mkdir()
    for src, dst in [
        (made.ca, main.resolved_home / "keys" / "ca.pem"),
        (made.chain, cpu.resolved_home / "keys" / "signer-chain.pem"),
        (made.key, cpu.resolved_home / "keys" / "signer.key"),
        # the export stage verifies each placement's transform against the CA too
        (made.ca, cpu.resolved_home / "keys" / "ca.pem"),
    ]:
        shutil.copyfile(src, dst)
    main = main.model_copy(update={"c2pa_trust_anchors": main.resolved_home / "keys" / "ca.pem"})
    cpu = cpu.model_copy(
        update={
            "c2pa_cert": cpu.resolved_home / "keys" / "signer-chain.pem",
            "c2pa_key": cpu.resolved_home / "keys" / "signer.key",
            "c2pa_trust_anchors": cpu.resolved_home / "keys" / "ca.pem",
        }
    )
    shutil.rmtree(tmp_path / "operator-keys")
    # the schema at head before two processes would race to migrate it
    upgrade_catalog(main)

    brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    config = CampaignConfig.model_validate(
        dict(rounds=1, variants_per_round=4, incumbents=1, kpi_window_seconds=1.0)
    )
    procs = [_worker(gpu, "gpu"), _worker(cpu, "cpu")]
    res = Resources.open(main)
    try:
        async with contextlib.AsyncExitStack() as stack:
            # this process runs only the main queue: generation and guardrails must happen
            # in the worker processes
            for w in build_workers(temporal_env.client, res, ["main"]):
                await stack.enter_async_context(w)
            handle = await submit(temporal_env.client, main, brief, config)
            try:
                state = await asyncio.wait_for(handle.result(), timeout=150)
            except (WorkflowFailureError, TimeoutError) as exc:
                logs = "\n".join(f"--- {log}\n{log.read_text()[-2000:]}" for _, log in procs)
                raise AssertionError(f"campaign did not finish: {exc!r}\n{logs}") from exc
    finally:
        await res.aclose()
        for proc, _log in procs:
            proc.terminate()
        for proc, _log in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    assert state.stage == "done"

    # the bucket holds every asset, each under the sha256 of its bytes
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=f"{PREFIX}/")
    objects = {
        o["Key"]: s3_client.get_object(Bucket=s3_bucket, Key=o["Key"])["Body"].read()
        for o in listed.get("Contents", [])
    }
    assert objects, "no asset reached the bucket"
    for key, body in objects.items():
        m = re.fullmatch(rf"{PREFIX}/([0-9a-f]{{2}})/([0-9a-f]{{64}})\.\w+", key)
        assert m and m[2].startswith(m[1]), key
        assert hashlib.sha256(body).hexdigest() == m[2], f"{key} is not its content's hash"

    catalog = Catalog(main.resolved_database_url)
    try:
        variants = catalog.variants(state.campaign_id)
    finally:
        catalog.close()
    uris = {v.asset.uri for v in variants if v.asset is not None}
    uris |= {e.uri for v in variants for e in v.exports if e.uri}
    assert len(variants) == 4 and len(uris) >= 4
    keys = {u.removeprefix(f"s3://{s3_bucket}/") for u in uris}
    assert all(u.startswith(f"s3://{s3_bucket}/{PREFIX}/") for u in uris)
    assert keys <= set(objects), f"catalog URIs not in the bucket: {keys - set(objects)}"
    deployed = [v for v in variants if v.decision == Decision.deploy]
    # the deploy gate (this process) verified what the CPU worker signed, read from S3
    assert deployed and all(v.ad_id for v in deployed)

    # and no machine kept a copy: no file in any data dir has an asset's bytes
    wanted = {hashlib.sha256(b).hexdigest() for b in objects.values()}
    for s in (main, gpu, cpu):
        home = s.resolved_home
        assert not (home / "assets").exists()
        on_disk = _file_hashes(home)
        assert not wanted & set(on_disk), [str(on_disk[h]) for h in wanted & set(on_disk)]
