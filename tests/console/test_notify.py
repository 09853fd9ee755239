"""Escalation notifications: a local SMTP server and a local webhook receive the opening,
the reminder before the deadline and the decision, addressed to the level's role."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import pytest_asyncio
from console_fakes import FakeBackend, small_brief

from faceloop.console import create_app
from faceloop.console.app import notifier_for
from faceloop.models import CampaignConfig, Decision
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog

BRIEF_CID = "cmp-1"


class SmtpSink:
    """A minimal local SMTP server (EHLO/HELO, MAIL, RCPT, DATA, QUIT) keeping each message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rcpt: list[str] = []
        writer.write(b"220 sink ready\r\n")
        while line := await reader.readline():
            cmd = line.decode().strip()
            verb = cmd.split(" ")[0].upper()
            if verb == "DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                body = []
                while (data := (await reader.readline()).decode()) not in (".\r\n", ""):
                    body.append(data)
                self.messages.append((rcpt, "".join(body)))
                rcpt = []
                writer.write(b"250 kept\r\n")
            elif verb == "RCPT":
                rcpt.append(cmd.split(":", 1)[1].strip(" <>"))
                writer.write(b"250 ok\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


@pytest_asyncio.fixture
async def smtp() -> AsyncIterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield sink, port
    finally:
        server.close()


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict[str, str]], str]]:
    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(size)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def notify_settings(
    home: Path,
    smtp: tuple[SmtpSink, int],
    webhook: tuple[list[dict[str, str]], str],
    other_role: str,
) -> Settings:
    """Settings that notify through the test webhook and SMTP sink: compliance and one other
    role, each with its own address."""
    return Settings(
        home=home,
        notify_webhook_url=webhook[1],
        notify_smtp_host="127.0.0.1",
        notify_smtp_port=smtp[1],
        notify_emails={
            "compliance": ["review@lumen.example"],
            other_role: [f"{other_role}@lumen.example"],
        },
    )


async def test_an_escalation_is_announced_reminded_and_its_decision_told(
    tmp_path: Path, smtp: tuple[SmtpSink, int], webhook: tuple[list[dict[str, str]], str]
) -> None:
    sink, _ = smtp
    hooks, _ = webhook
    settings = notify_settings(tmp_path, smtp, webhook, "legal")
    backend = FakeBackend(settings.resolved_database_url)
    app = create_app(settings, backend=backend)
    notifier = notifier_for(app)
    assert notifier.enabled
    brief = small_brief()
    cid = await backend.submit(brief, CampaignConfig(), None)
    variant = backend.escalate(cid, approvers=1)
    t0 = datetime.now(UTC)

    opened = await notifier.sweep(t0)
    assert [(n.event, n.role) for n in opened] == [("escalated", "compliance")]
    assert "waits for role compliance" in hooks[-1]["text"] and variant in hooks[-1]["text"]
    ((to, body),) = sink.messages
    mail = email.message_from_string(body, policy=email.policy.default)
    assert to == ["review@lumen.example"] and mail["Subject"] == f"[faceloop] escalated: {variant}"
    assert "identity: looks like a known person" in mail.get_content()  # type: ignore[attr-defined]

    assert await notifier.sweep(t0 + timedelta(minutes=10)) == []  # nothing new
    late = await notifier.sweep(t0 + timedelta(minutes=50))  # 10 of 60 minutes left
    assert [n.event for n in late] == ["reminder"] and "10 min left" in hooks[-1]["text"]
    assert await notifier.sweep(t0 + timedelta(minutes=55)) == []  # reminded once

    # the campaign records the outcome, and the escalation leaves the waiting list
    board = backend.boards[cid]
    board.items[variant].outcome = Decision.block
    with Catalog(settings.resolved_database_url) as catalog:
        catalog.upsert_variant(
            board.items[variant].variant.model_copy(  # type: ignore[union-attr]
                update={"decision": Decision.block, "decision_reason": "rejected by cora: no"}
            )
        )
    done = await notifier.sweep(t0 + timedelta(minutes=56))
    assert [n.event for n in done] == ["decided"]
    assert "decided: block (rejected by cora: no)" in hooks[-1]["text"]
    assert len(sink.messages) == 3 and len(hooks) == 3


def test_a_level_change_is_announced_to_the_next_role() -> None:
    from faceloop.console.notify import Watcher
    from faceloop.messages import PendingEscalation

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    p = PendingEscalation(
        campaign_id="c",
        variant_id="v",
        round=0,
        asset_id=None,
        flagged="bias",
        submitted_by="mara",
        role="compliance",
        level=0,
        approvers_required=2,
        approvals=[],
        votes=[],
        deadline=t0 + timedelta(hours=1),
        on_expiry="escalate",
    )
    watcher = Watcher()
    assert [n.role for n in watcher.sweep([p], t0, str)] == ["compliance"]
    moved = p.model_copy(update={"role": "legal", "level": 1, "deadline": t0 + timedelta(hours=3)})
    (n,) = watcher.sweep([moved], t0 + timedelta(hours=1), str)
    assert (n.event, n.role) == ("escalated", "legal") and "moved to role legal" in n.text


async def test_a_rollback_tells_its_notify_role(
    tmp_path: Path, smtp: tuple[SmtpSink, int], webhook: tuple[list[dict[str, str]], str]
) -> None:
    from faceloop.models import RollbackRecord

    sink, _ = smtp
    hooks, _ = webhook
    settings = notify_settings(tmp_path, smtp, webhook, "brand")
    with Catalog(settings.resolved_database_url) as catalog:
        # one from before the console started: in the audit log and the report, not sent
        catalog.audit("c0", "rollback.paused", "c0-r0-t0", "playbook:default", {})
    app = create_app(settings, backend=FakeBackend(settings.resolved_database_url))
    notifier = notifier_for(app)
    assert await notifier.sweep() == []
    record = RollbackRecord(
        round=2,
        variant_id="c1-r2-t1",
        ad_id="ad-9",
        criteria=["ctr-floor"],
        reason="ctr 0.004 < 0.01",
        notify_role="brand",
    )
    with Catalog(settings.resolved_database_url) as catalog:
        # the payload as the workflow's rollback check writes it (workflows/campaign_activities)
        catalog.audit(
            "c1",
            "rollback.paused",
            record.variant_id,
            "playbook:default",
            {**record.model_dump(mode="json"), "signals": []},
        )
    (n,) = await notifier.sweep()
    assert (n.event, n.role, n.variant_id) == ("rollback", "brand", "c1-r2-t1")
    assert "ad ad-9" in hooks[-1]["text"] and "ctr-floor: ctr 0.004 < 0.01" in hooks[-1]["text"]
    ((to, body),) = sink.messages
    assert to == ["brand@lumen.example"] and "rollback: c1-r2-t1" in body
    assert await notifier.sweep() == []  # told once
