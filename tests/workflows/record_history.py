"""Record CampaignWorkflow histories for the replay test.

Run after a deliberate, versioned change to the workflow (behind `workflow.patched`):
    .venv/bin/python tests/workflows/record_history.py NAME
It starts the embedded stack in a temporary data dir, runs a 2-round campaign, and writes
one JSON history per run to histories/NAME-run<i>.json (since the `rounds-per-run` patch a
2-round campaign is one run; the files recorded before it hold one run per round). The
histories already there stay: each is a campaign that may still be running somewhere on
older code, and must keep replaying.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import tempfile
from pathlib import Path

from faceloop.briefs import load_brief_and_config
from faceloop.models import CampaignConfig
from faceloop.playbooks.schema import load_playbook
from faceloop.settings import Settings
from faceloop.workflows.client import submit
from faceloop.workflows.stack import embedded_stack
from faceloop.workflows.worker import Resources, build_workers

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).parent / "histories"


async def main(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        async with embedded_stack(settings, fresh_ports=True) as (stack, client):
            res = Resources.open(stack.effective_settings())
            brief, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
            config = CampaignConfig(
                rounds=2, variants_per_round=3, incumbents=1, kpi_window_seconds=1
            )
            async with contextlib.AsyncExitStack() as es:
                for w in build_workers(client, res):
                    await es.enter_async_context(w)
                playbook = load_playbook()
                playbook.escalation.sla_seconds = 3  # no reviewer here
                handle = await submit(
                    client, res.settings, brief, config, playbook, campaign_id="recorded"
                )
                await handle.result()
            await res.aclose()
            OUT.mkdir(exist_ok=True)
            runs = [wf.run_id async for wf in client.list_workflows("WorkflowId = 'recorded'")]
            for i, run_id in enumerate(sorted(runs)):
                history = await client.get_workflow_handle(
                    "recorded", run_id=run_id
                ).fetch_history()
                (OUT / f"{name}-run{i}.json").write_text(history.to_json())
            print(f"wrote {len(runs)} histories to {OUT}")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not re.fullmatch(r"[a-z0-9-]+", sys.argv[1]):
        sys.exit("usage: record_history.py NAME  (a-z, 0-9, -: e.g. the patch it records)")
    asyncio.run(main(sys.argv[1]))
