"""Telling people an escalation waits for them: when it opens (or moves to the next level's
role), again before its deadline, and when it is decided; and telling a rollback
criterion's `notify_role` when it paused an ad.

`faceloop up` runs `Notifier.run`: every `interval_s` it reads the escalations waiting (the
same list as the review queue) and compares with what it saw last. It is a watcher beside
the workflows, not part of them: the workflows' history stays as it is, and a notification
that cannot be delivered never holds a campaign up. What it saw is kept in memory, so after
a restart every waiting escalation is announced again (at least once, never silently
dropped). Rollbacks are read from the audit log (`rollback.paused`, written by the
workflow's rollback check) past the last entry seen; the watcher starts at the log's end
when the console starts, so one that happened while no console ran is in the audit log and
the report, not sent.

Channels: a Slack-compatible webhook (`{"text": ...}` POST; Slack, Mattermost, Rocket.Chat
and most chat tools accept it) and e-mail over SMTP to the addresses configured per role.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Literal

import httpx

from faceloop.messages import PendingEscalation
from faceloop.settings import Settings
from faceloop.storage.audit import AuditEntry

__all__ = ["Notice", "Notifier", "Watcher", "rollback_notice", "send_email", "send_webhook"]

log = logging.getLogger(__name__)

Event = Literal["escalated", "reminder", "decided", "rollback"]
# the reminder goes once this share of the time between first sight and deadline is left
REMINDER_LEFT = 0.25


@dataclass(frozen=True)
class Notice:
    event: Event
    role: str
    variant_id: str
    campaign_id: str
    text: str


@dataclass
class _Seen:
    role: str
    level: int
    first_seen: datetime
    deadline: datetime
    campaign_id: str
    reminded: bool = False


@dataclass
class Watcher:
    """The comparison, without I/O or a clock: fed the waiting list and the time, it says
    what to announce. `decided` looks up how a vanished escalation ended."""

    seen: dict[str, _Seen] = field(default_factory=dict)

    def sweep(
        self,
        waiting: list[PendingEscalation],
        now: datetime,
        decided: Callable[[str], str],
    ) -> list[Notice]:
        out: list[Notice] = []
        current = {p.variant_id: p for p in waiting}
        for vid, p in current.items():
            before = self.seen.get(vid)
            if before is None or (before.role, before.level) != (p.role, p.level):
                self.seen[vid] = _Seen(p.role, p.level, now, p.deadline, p.campaign_id)
                moved = before is not None
                out.append(
                    Notice(
                        "escalated",
                        p.role,
                        vid,
                        p.campaign_id,
                        f"[faceloop] {vid} {'moved to' if moved else 'waits for'} role "
                        f"{p.role} (level {p.level}): {p.flagged}. "
                        f"{len(p.approvals)}/{p.approvers_required} approvals; decide by "
                        f"{p.deadline:%Y-%m-%d %H:%M UTC}, else {p.on_expiry}.",
                    )
                )
                continue
            left = (p.deadline - now).total_seconds()
            span = (p.deadline - before.first_seen).total_seconds()
            if not before.reminded and span > 0 and left <= REMINDER_LEFT * span:
                before.reminded = True
                out.append(
                    Notice(
                        "reminder",
                        p.role,
                        vid,
                        p.campaign_id,
                        f"[faceloop] reminder: {vid} still waits for role {p.role}; "
                        f"{max(left, 0) / 60:.0f} min left before {p.on_expiry} "
                        f"({len(p.approvals)}/{p.approvers_required} approvals).",
                    )
                )
        for vid in [v for v in self.seen if v not in current]:
            gone = self.seen.pop(vid)
            out.append(
                Notice(
                    "decided",
                    gone.role,
                    vid,
                    gone.campaign_id,
                    f"[faceloop] {vid} is decided: {decided(vid)}.",
                )
            )
        return out


def rollback_notice(entry: AuditEntry) -> Notice:
    """The notice for one `rollback.paused` audit entry, to its criterion's notify_role."""
    p = entry.payload
    role = str(p.get("notify_role") or "compliance")
    ad = f"ad {p['ad_id']}" if p.get("ad_id") else "its ad"
    return Notice(
        "rollback",
        role,
        entry.subject,
        entry.campaign_id or "",
        f"[faceloop] rollback: {ad} of variant {entry.subject} (campaign "
        f"{entry.campaign_id}, round {p.get('round')}) was paused by "
        f"{', '.join(p.get('criteria') or [])}: {p.get('reason', '')}.",
    )


async def send_webhook(url: str, text: str, timeout: float = 10.0) -> None:
    async with httpx.AsyncClient(timeout=timeout) as client:
        r = await client.post(url, json={"text": text})
        r.raise_for_status()


def send_email(host: str, port: int, sender: str, to: list[str], subject: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), subject
    msg.set_content(body)
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(msg)


class Notifier:
    """Sweeps the waiting escalations and delivers what the `Watcher` says to announce."""

    def __init__(
        self,
        settings: Settings,
        pending: Callable[[], Awaitable[list[PendingEscalation]]],
        decided: Callable[[str], str],
        rollbacks: Callable[[int], list[AuditEntry]] | None = None,
        audit_seq: int = 0,
    ) -> None:
        self.settings = settings
        self.pending = pending
        self.decided = decided
        self.watcher = Watcher()
        # `rollbacks(seq)`: the rollback.paused entries after seq; audit_seq: the last seen
        self.rollbacks = rollbacks
        self.audit_seq = audit_seq

    @property
    def enabled(self) -> bool:
        s = self.settings
        return bool(s.notify_webhook_url or (s.notify_smtp_host and s.notify_emails))

    async def sweep(self, now: datetime | None = None) -> list[Notice]:
        notices = self.watcher.sweep(await self.pending(), now or datetime.now(UTC), self.decided)
        if self.rollbacks is not None:
            entries = await asyncio.to_thread(self.rollbacks, self.audit_seq)
            notices += [rollback_notice(e) for e in entries]
            if entries:
                self.audit_seq = entries[-1].seq
        for n in notices:
            await self.deliver(n)
        return notices

    async def deliver(self, n: Notice) -> None:
        s = self.settings
        # a channel that fails is logged; the others still get it, and campaigns go on
        if s.notify_webhook_url:
            try:
                await send_webhook(s.notify_webhook_url, n.text)
            except httpx.HTTPError as exc:
                log.warning("webhook notification for %s failed: %s", n.variant_id, exc)
        to = s.notify_emails.get(n.role, [])
        if s.notify_smtp_host and to:
            try:
                await asyncio.to_thread(
                    send_email,
                    s.notify_smtp_host,
                    s.notify_smtp_port,
                    s.notify_email_from,
                    to,
                    f"[faceloop] {n.event}: {n.variant_id}",
                    n.text,
                )
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("e-mail notification for %s failed: %s", n.variant_id, exc)

    async def run(self, interval_s: float = 10.0) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # Temporal down for a while: try again next time
                log.warning("escalation sweep failed: %s", exc)
            await asyncio.sleep(interval_s)
