"""The audit log: append-only and hash-chained.

Each entry stores the sha256 of its own content and of the entry before it, so
`verify_audit` finds an entry that was edited, removed or moved. Appends are serialized
through a single head row (row lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) so that two
processes never fork the chain. The head row (seq 0, GENESIS_HASH) is written once, by the
migration that creates the tables.

`verify_chain` also checks chains outside the database (an exported log file).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, RowMapping

from faceloop.errors import FaceloopError
from faceloop.storage.schema import CatalogBase, Row, audit_head, audit_log, utc

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditLog",
    "ChainCheck",
    "ChainLink",
    "canonical_json",
    "entry_hash",
    "verify_chain",
]

# prev_hash of the first entry: a fixed value, so the first entry is checked like any other
GENESIS_HASH = "0" * 64


class AuditEntry(Row):
    seq: int
    campaign_id: str | None
    kind: str
    subject: str
    actor: str
    ts: datetime
    payload: dict[str, Any]
    prev_hash: str
    hash: str


def canonical_json(payload: dict[str, Any]) -> str:
    """The one text form of a payload that its hash covers: sorted keys, no spaces."""
    try:
        return json.dumps(
            to_jsonable_python(payload),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (ValueError, TypeError) as err:
        raise FaceloopError(
            f"audit payload cannot be written as canonical JSON ({err}); pass only JSON-able "
            "values (str, numbers, bools, lists, dicts, pydantic models), and no NaN or inf"
        ) from err


def entry_hash(
    prev_hash: str,
    seq: int,
    ts: datetime,
    campaign_id: str | None,
    kind: str,
    subject: str,
    actor: str,
    payload_json: str,
) -> str:
    # a JSON array frames the fields, so moving text from one field to another changes the hash
    ts_text = utc(ts).isoformat(timespec="microseconds")
    material = json.dumps(
        [prev_hash, seq, ts_text, campaign_id, kind, subject, actor, payload_json],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class ChainLink(BaseModel):
    """One audit entry as hashed: the payload as its stored canonical JSON text."""

    seq: int
    ts: datetime
    campaign_id: str | None
    kind: str
    subject: str
    actor: str
    payload_json: str
    prev_hash: str
    hash: str

    @classmethod
    def from_entry(cls, entry: AuditEntry) -> ChainLink:
        return cls(
            **entry.model_dump(exclude={"payload"}), payload_json=canonical_json(entry.payload)
        )


class ChainCheck(BaseModel):
    lines: list[str]
    last: tuple[int, str]
    count: int


def verify_chain(links: Iterable[ChainLink], start_seq: int = 1) -> ChainCheck:
    """Walk a chain in order: edited entries, gaps (removed) and broken links (reordered).

    `start_seq` > 1 checks a slice (an export from a later entry on): its first entry's link
    is taken as given, since the entry it points at is not in the slice.
    """
    problems: list[str] = []
    # a file can be reordered or carry an entry twice; the database cannot (seq is its key)
    ordered: list[ChainLink] = []
    seen: set[int] = set()
    for r in links:
        if r.seq in seen:
            problems.append(f"audit entry seq {r.seq} appears twice")
            continue
        if ordered and r.seq < ordered[-1].seq:
            problems.append(
                f"audit entry seq {r.seq} comes after seq {ordered[-1].seq} (reordered)"
            )
        seen.add(r.seq)
        ordered.append(r)
    ordered.sort(key=lambda r: r.seq)
    expected_seq, expected_prev = start_seq, GENESIS_HASH if start_seq == 1 else None
    last_seq, last_hash = start_seq - 1, GENESIS_HASH
    for r in ordered:
        seq = r.seq
        gap = seq != expected_seq
        if gap:
            missing = (
                f"seq {expected_seq}"
                if seq == expected_seq + 1
                else f"seq {expected_seq}..{seq - 1}"
            )
            problems.append(f"audit entry {missing} missing before seq {seq} (removed)")
        recomputed = entry_hash(
            r.prev_hash, seq, r.ts, r.campaign_id, r.kind, r.subject, r.actor, r.payload_json
        )
        if recomputed != r.hash:
            problems.append(
                f"audit entry seq {seq}: content does not match its hash "
                "(edited, or moved from another position)"
            )
        # after a gap the link is broken by construction; the gap is the finding
        if not gap and expected_prev is not None and r.prev_hash != expected_prev:
            problems.append(
                f"audit entry seq {seq}: link to seq {seq - 1} is broken "
                "(an entry was reordered, replaced or removed)"
            )
        expected_seq, expected_prev = seq + 1, r.hash
        last_seq, last_hash = seq, r.hash
    return ChainCheck(lines=problems, last=(last_seq, last_hash), count=len(ordered))


class AuditLog(CatalogBase):
    """The catalog's audit-log methods."""

    def audit(
        self,
        campaign_id: str | None,
        kind: str,
        subject: str,
        actor: str,
        payload: dict[str, Any],
        ts: datetime | None = None,
        key: str | None = None,
    ) -> AuditEntry:
        """Append one entry to the hash chain and return it (with its seq and hash).

        `key` makes the append idempotent: an entry already written under the same key is
        returned as it is. Inside a Temporal activity it defaults to the activity execution
        (workflow run, activity id) plus kind and subject, so a retried activity does not
        record the same fact twice.
        """
        key = key if key is not None else _activity_audit_key(kind, subject)
        with self._write() as conn:
            return self._append_audit(conn, campaign_id, kind, subject, actor, payload, ts, key)

    def _append_audit(
        self,
        conn: Connection,
        campaign_id: str | None,
        kind: str,
        subject: str,
        actor: str,
        payload: dict[str, Any],
        ts: datetime | None,
        key: str | None,
    ) -> AuditEntry:
        """`audit` inside the caller's write transaction, so an entry and the change it
        records commit together or not at all (the KPI import)."""
        payload_json = canonical_json(payload)
        # the database keeps microseconds; hash exactly what will read back
        when = utc(ts or datetime.now(UTC))
        if key is not None:
            existing = (
                conn.execute(select(audit_log).where(audit_log.c.idem_key == key))
                .mappings()
                .first()
            )
            if existing is not None:
                return entry_from_row(existing)
        head_q = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        if self.dialect == "postgresql":
            # SQLite already holds the write lock (BEGIN IMMEDIATE); PostgreSQL needs the
            # row lock, or two appenders would both extend the same head
            head_q = head_q.with_for_update()
        head = conn.execute(head_q).first()
        if head is None:
            raise FaceloopError(
                f"the audit log at {self._safe_url()} has no head row (audit_head id 1): "
                "it was deleted outside faceloop, so the end of the chain cannot be "
                "checked and nothing is appended; `faceloop audit verify` reports it"
            )
        seq = head.seq + 1
        digest = entry_hash(head.hash, seq, when, campaign_id, kind, subject, actor, payload_json)
        entry = AuditEntry(
            seq=seq,
            campaign_id=campaign_id,
            kind=kind,
            subject=subject,
            actor=actor,
            ts=when,
            payload=json.loads(payload_json),
            prev_hash=head.hash,
            hash=digest,
        )
        # the stored payload is the hashed text itself, not a re-serialization of it
        row = {**entry.model_dump(exclude={"payload"}), "payload": payload_json}
        conn.execute(audit_log.insert().values(**row, idem_key=key))
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest))
        return entry

    def audit_entries(
        self, campaign_id: str | None = None, after_seq: int = 0, kind: str | None = None
    ) -> list[AuditEntry]:
        """Entries in chain order; all of them, or those of one campaign, after a seq, of
        one kind."""
        query = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
        if campaign_id is not None:
            query = query.where(audit_log.c.campaign_id == campaign_id)
        if kind is not None:
            query = query.where(audit_log.c.kind == kind)
        with self._read() as conn:
            return [entry_from_row(r) for r in conn.execute(query).mappings()]

    def audit_tip(self) -> tuple[int, str, int]:
        """(seq, hash, count) of the log's last entry, read from the entries themselves, not
        from the head row (which a cut tail may have reset); (0, GENESIS_HASH, 0) if empty."""
        with self._read() as conn:
            count = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
            last = conn.execute(
                select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
            ).first()
        return (last.seq, last.hash, count) if last is not None else (0, GENESIS_HASH, 0)

    def audit_hash(self, seq: int) -> str | None:
        """The stored hash of entry `seq`, or None if there is no such entry."""
        with self._read() as conn:
            found: str | None = conn.execute(
                select(audit_log.c.hash).where(audit_log.c.seq == seq)
            ).scalar_one_or_none()
        return found

    def verify_audit(self) -> list[str]:
        """Check the whole chain; return one line per problem (empty: intact).

        Finds entries whose content no longer matches their hash (edited), gaps in seq
        (removed), broken links to the previous entry (removed or reordered), and a head
        that disagrees with the last entry (entries cut off the end).
        """
        with self._read() as conn:
            head = conn.execute(
                select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            ).first()
            rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings()
            problems = verify_chain(
                ChainLink(
                    seq=r["seq"],
                    ts=r["ts"],
                    campaign_id=r["campaign_id"],
                    kind=r["kind"],
                    subject=r["subject"],
                    actor=r["actor"],
                    payload_json=r["payload"],
                    prev_hash=r["prev_hash"],
                    hash=r["hash"],
                )
                for r in rows
            )
        last_seq, last_hash = problems.last
        out = list(problems.lines)
        if head is None:
            out.append("audit head row is missing (deleted); the chain end cannot be checked")
        elif head.seq != last_seq or head.hash != last_hash:
            if head.seq > last_seq:
                out.append(
                    f"audit entries seq {last_seq + 1}..{head.seq} missing at the end (removed); "
                    f"the head records seq {head.seq}"
                )
            else:
                out.append(
                    f"audit head (seq {head.seq}) does not match the last entry (seq {last_seq})"
                )
        return out


def _activity_audit_key(kind: str, subject: str) -> str | None:
    from temporalio import activity

    if not activity.in_activity():
        return None
    info = activity.info()
    # the activity id is stable across retries of one execution; the run id separates
    # continue-as-new runs that reuse activity ids
    return f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}/{kind}/{subject}"


def entry_from_row(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        campaign_id=row["campaign_id"],
        kind=row["kind"],
        subject=row["subject"],
        actor=row["actor"],
        ts=row["ts"],
        payload=json.loads(row["payload"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
