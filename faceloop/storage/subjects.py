"""What the catalog keeps about data subjects, and what erasure reaches through it.

- Consent records of personas (faceloop/consent.py decides what they allow): immutable once
  recorded, except for revocation and, at erasure, blanking the subject's name.
- One random key per subject (faceloop/storage/keys.py seals the subject's biometric data
  under it): destroying it crypto-shreds every copy of that data at once.
- Copies written outside the asset store (report thumbnails, reports), so erasure finds them.
- Erasure: the lookups from a persona to its campaigns, variants and assets, the tombstones
  that blank what may describe a person, and compaction so deleted rows leave the disk.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, text, update
from sqlalchemy.engine import RowMapping, make_url

from faceloop.consent import (
    ConsentRecord,
    ConsentStatus,
    RegisteredConsent,
    check_revocation_reason,
    evaluate_consents,
)
from faceloop.errors import FaceloopError, InputError, SubjectErasedError
from faceloop.storage.audit import AuditLog
from faceloop.storage.schema import (
    Row,
    asset_writes,
    campaigns,
    consents,
    exports,
    guardrail_checks,
    placement_exports,
    subject_keys,
    utc,
    variants,
)

__all__ = ["ExportRow", "SubjectKeyRow", "SubjectRecords"]


class SubjectKeyRow(Row):
    """A subject key's bookkeeping, without the key."""

    subject_id: str
    created_at: datetime
    destroyed_at: datetime | None


class ExportRow(Row):
    path: str
    kind: str
    campaign_id: str
    asset_id: str | None
    written_at: datetime


class SubjectRecords(AuditLog):
    """The catalog's consent, subject-key, export and erasure methods (consent changes are
    audited, hence the audit log underneath)."""

    # ------------------------------------------------------------------ consents

    def record_consent(self, record: ConsentRecord, actor: str) -> RegisteredConsent:
        """Keep a consent record; recording the same record again changes nothing.

        A kept record is immutable: the same consent id with other content is refused (give
        the new consent a new id), and so is a record for an erased persona, whose id must
        not come back to life. The `consent.recorded` audit entry holds ids and the evidence
        hash only, since the audit chain outlives any erasure.
        """
        source = f"consent {record.consent_id}"
        with self._write() as conn:
            erased = conn.execute(
                select(subject_keys.c.destroyed_at).where(
                    subject_keys.c.subject_id == record.persona_id,
                    subject_keys.c.destroyed_at.is_not(None),
                )
            ).first()
            if erased is not None:
                raise InputError(
                    source,
                    [
                        f"persona_id: persona {record.persona_id!r} was erased on "
                        f"{erased.destroyed_at:%Y-%m-%d}; an erased id is not reused: give "
                        "the new consent a new persona_id"
                    ],
                )
            row = (
                conn.execute(select(consents).where(consents.c.consent_id == record.consent_id))
                .mappings()
                .first()
            )
            if row is not None:
                kept = _consent(row)
                differ = [
                    k for k in ConsentRecord.model_fields if getattr(kept, k) != getattr(record, k)
                ]
                if differ:
                    raise InputError(
                        source,
                        [
                            f"{k}: consent {record.consent_id!r} is already recorded with "
                            "another value; consent records cannot change: record the new "
                            "consent under a new consent_id"
                            for k in differ
                        ],
                    )
            else:
                conn.execute(
                    consents.insert().values(
                        consent_id=record.consent_id,
                        persona_id=record.persona_id,
                        subject=record.subject_name,
                        scope=record.scope,
                        markets=record.markets,
                        expires=record.expires,
                        evidence_sha256=record.evidence_sha256,
                        recorded_at=datetime.now(UTC),
                    )
                )
        # keyed: a crash between the insert and this append is healed by recording again
        self.audit(
            None,
            "consent.recorded",
            record.consent_id,
            actor,
            {
                "consent_id": record.consent_id,
                "persona_id": record.persona_id,
                "evidence_sha256": record.evidence_sha256,
            },
            key=f"consent.recorded:{record.consent_id}",
        )
        got = self.get_consent(record.consent_id)
        assert got is not None
        return got

    def get_consent(self, consent_id: str) -> RegisteredConsent | None:
        with self._read() as conn:
            row = (
                conn.execute(select(consents).where(consents.c.consent_id == consent_id))
                .mappings()
                .first()
            )
        return None if row is None else _consent(row)

    def consents(self, persona_id: str | None = None) -> list[RegisteredConsent]:
        """Consent records in the order they were recorded; all, or one persona's."""
        query = select(consents).order_by(consents.c.recorded_at, consents.c.consent_id)
        if persona_id is not None:
            query = query.where(consents.c.persona_id == persona_id)
        with self._read() as conn:
            return [_consent(r) for r in conn.execute(query).mappings()]

    def revoke_consent(self, consent_id: str, reason: str, actor: str) -> RegisteredConsent:
        """Mark a consent revoked from now on; revoking it again changes nothing.

        The reason is kept with the record; the audit entry carries only its sha256.
        """
        reason = check_revocation_reason(reason)
        with self._write() as conn:
            row = (
                conn.execute(select(consents).where(consents.c.consent_id == consent_id))
                .mappings()
                .first()
            )
            if row is None:
                raise FaceloopError(
                    f"consent {consent_id!r} is not in the consent registry at "
                    f"{self._safe_url()}; `faceloop consent list` shows the recorded ones"
                )
            if row["revoked_at"] is None:
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id == consent_id)
                    .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
                )
        got = self.get_consent(consent_id)
        assert got is not None and got.revoked_at is not None
        self.audit(
            None,
            "consent.revoked",
            consent_id,
            actor,
            {
                "consent_id": consent_id,
                "persona_id": got.persona_id,
                "reason_sha256": hashlib.sha256((got.revoked_reason or "").encode()).hexdigest(),
            },
            key=f"consent.revoked:{consent_id}",
        )
        return got

    def consent_status(
        self,
        persona_id: str,
        markets: Sequence[str] = (),
        at: datetime | None = None,
        *,
        scope: str = "ads",
        consent_ref: str | None = None,
    ) -> ConsentStatus:
        """May the persona be used for `scope` in `markets` (empty: any) at `at` (default
        now)? See faceloop.consent.evaluate_consents for the rule."""
        records = self.consents(persona_id)
        if consent_ref is not None and all(r.consent_id != consent_ref for r in records):
            ref = self.get_consent(consent_ref)
            records += [ref] if ref is not None else []
        return evaluate_consents(
            records,
            persona_id,
            markets,
            utc(at or datetime.now(UTC)),
            scope=scope,
            consent_ref=consent_ref,
        )

    def erase_consents(self, persona_id: str) -> list[str]:
        """Blank the subject's name on the persona's consent records and revoke the live
        ones; returns the ids erased now (none when run again)."""
        now = datetime.now(UTC)
        with self._write() as conn:
            ids = list(
                conn.execute(
                    select(consents.c.consent_id).where(
                        consents.c.persona_id == persona_id, consents.c.erased_at.is_(None)
                    )
                ).scalars()
            )
            if ids:
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id.in_(ids), consents.c.revoked_at.is_(None))
                    .values(revoked_at=now, revoked_reason="erased (GDPR Art. 17)")
                )
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id.in_(ids))
                    .values(subject="", erased_at=now)
                )
        return ids

    # ------------------------------------------------------------------ subject keys

    def subject_key(self, subject_id: str) -> bytes | None:
        """The subject's key; None if it never had one. SubjectErasedError once destroyed."""
        with self._read() as conn:
            row = conn.execute(
                select(subject_keys).where(subject_keys.c.subject_id == subject_id)
            ).first()
        if row is None:
            return None
        if row.destroyed_at is not None or row.key is None:
            raise _erased(subject_id, row.destroyed_at)
        return bytes(row.key)

    def create_subject_key(self, subject_id: str, key: bytes) -> bytes:
        """Keep `key` as the subject's key unless it has one; returns the key kept (so two
        racing creators agree). SubjectErasedError for an erased subject."""
        with self._write() as conn:
            conn.execute(
                self._insert(subject_keys)
                .values(subject_id=subject_id, key=key, created_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=["subject_id"])
            )
            row = conn.execute(
                select(subject_keys).where(subject_keys.c.subject_id == subject_id)
            ).one()
        if row.destroyed_at is not None or row.key is None:
            raise _erased(subject_id, row.destroyed_at)
        return bytes(row.key)

    def destroy_subject_key(self, subject_id: str) -> bool:
        """Crypto-shred: overwrite the subject's key with NULL and mark it destroyed; a subject
        without a key gets a destroyed marker, so its id cannot be reused either. True when
        a live key was destroyed now; False when there was none (or it already was)."""
        now = datetime.now(UTC)
        with self._write() as conn:
            done = conn.execute(
                update(subject_keys)
                .where(
                    subject_keys.c.subject_id == subject_id,
                    subject_keys.c.destroyed_at.is_(None),
                )
                .values(key=None, destroyed_at=now)
                .returning(subject_keys.c.subject_id)
            ).first()
            conn.execute(
                self._insert(subject_keys)
                .values(subject_id=subject_id, key=None, created_at=now, destroyed_at=now)
                .on_conflict_do_nothing(index_elements=["subject_id"])
            )
        return done is not None

    def subject_key_info(self, subject_id: str) -> SubjectKeyRow | None:
        with self._read() as conn:
            row = conn.execute(
                select(
                    subject_keys.c.subject_id,
                    subject_keys.c.created_at,
                    subject_keys.c.destroyed_at,
                ).where(subject_keys.c.subject_id == subject_id)
            ).first()
        return None if row is None else SubjectKeyRow(**row._asdict())

    # ------------------------------------------------------------------ exported copies

    def record_export(
        self, path: str | Path, kind: str, campaign_id: str, asset_id: str | None = None
    ) -> None:
        """Remember a copy written outside the asset store (a report thumbnail, a report)."""
        row = {
            "path": str(Path(path).resolve()),
            "kind": kind,
            "campaign_id": campaign_id,
            "asset_id": asset_id,
            "written_at": datetime.now(UTC),
        }
        with self._write() as conn:
            self._upsert(conn, exports, [row], ["path"])

    def exports(
        self, asset_ids: Sequence[str] = (), campaign_ids: Sequence[str] = ()
    ) -> list[ExportRow]:
        """Copies of these assets, and the reports (kind "report") of these campaigns."""
        where = exports.c.asset_id.in_(list(asset_ids)) | (
            (exports.c.kind == "report") & exports.c.campaign_id.in_(list(campaign_ids))
        )
        with self._read() as conn:
            rows = conn.execute(select(exports).where(where).order_by(exports.c.path)).mappings()
            return [ExportRow(**r) for r in rows]

    def forget_exports(self, paths: Sequence[str]) -> int:
        if not paths:
            return 0
        with self._write() as conn:
            gone = conn.execute(exports.delete().where(exports.c.path.in_(list(paths))))
            return int(gone.rowcount)

    # ------------------------------------------------------------------ erasure

    def campaigns_with_persona(self, persona_id: str) -> list[str]:
        """Campaigns whose brief uses the persona."""
        with self._read() as conn:
            rows = conn.execute(
                select(campaigns.c.campaign_id, campaigns.c.brief).order_by(campaigns.c.campaign_id)
            )
            return [
                r.campaign_id
                for r in rows
                if ((r.brief or {}).get("persona") or {}).get("persona_id") == persona_id
            ]

    def record_asset_write(
        self, asset_id: str, campaign_id: str, variant_id: str, kind: str
    ) -> None:
        """Note that `asset_id` is about to be stored for the variant (`kind`: generated,
        signed or export). Called before the bytes are written, so a file no later row names
        (a retry's replaced export, an activity killed before its record) is still found by
        erasure. Idempotent. SubjectErasedError if the variant was erased: its images are
        not written again."""
        now = datetime.now(UTC)
        with self._write() as conn:
            erased = conn.execute(
                select(variants.c.erased_at).where(
                    variants.c.variant_id == variant_id, variants.c.erased_at.is_not(None)
                )
            ).scalar()
            if erased is not None:
                raise SubjectErasedError(
                    f"variant {variant_id} of campaign {campaign_id} was erased on "
                    f"{utc(erased):%Y-%m-%d} (GDPR erasure); no image of it is written again"
                )
            conn.execute(
                self._insert(asset_writes)
                .values(
                    asset_id=asset_id,
                    variant_id=variant_id,
                    campaign_id=campaign_id,
                    kind=kind,
                    written_at=now,
                )
                .on_conflict_do_nothing(index_elements=["asset_id", "variant_id"])
            )

    def asset_ids_of_campaigns(self, campaign_ids: Sequence[str]) -> list[str]:
        """Every asset file recorded as written for the campaigns' variants
        (`record_asset_write`), including variants the catalog has no row for yet."""
        with self._read() as conn:
            return sorted(
                set(
                    conn.execute(
                        select(asset_writes.c.asset_id).where(
                            asset_writes.c.campaign_id.in_(list(campaign_ids))
                        )
                    ).scalars()
                )
            )

    def variant_ids_for_assets(self, asset_ids: Sequence[str]) -> list[str]:
        """Variants that carry one of the assets now, were judged on it before signing,
        were exported to it (a per-placement export), or had it written for them."""
        ids = list(asset_ids)
        with self._read() as conn:
            now = conn.execute(
                select(variants.c.variant_id).where(variants.c.asset_id.in_(ids))
            ).scalars()
            judged = conn.execute(
                select(guardrail_checks.c.variant_id).where(guardrail_checks.c.asset_id.in_(ids))
            ).scalars()
            exported = conn.execute(
                select(placement_exports.c.variant_id).where(placement_exports.c.asset_id.in_(ids))
            ).scalars()
            written = conn.execute(
                select(asset_writes.c.variant_id).where(asset_writes.c.asset_id.in_(ids))
            ).scalars()
            return sorted({*now, *judged, *exported, *written})

    def asset_ids_of_variants(self, variant_ids: Sequence[str]) -> list[str]:
        """Every asset the variants carried: the generated one (judged by the guardrails),
        the signed copy the sign stage wrote and its per-placement exports, and every file
        written for them that no other row names any more (`record_asset_write`)."""
        ids = list(variant_ids)
        with self._read() as conn:
            now = conn.execute(
                select(variants.c.asset_id).where(
                    variants.c.variant_id.in_(ids), variants.c.asset_id.is_not(None)
                )
            ).scalars()
            judged = conn.execute(
                select(guardrail_checks.c.asset_id).where(guardrail_checks.c.variant_id.in_(ids))
            ).scalars()
            exported = conn.execute(
                select(placement_exports.c.asset_id).where(placement_exports.c.variant_id.in_(ids))
            ).scalars()
            written = conn.execute(
                select(asset_writes.c.asset_id).where(asset_writes.c.variant_id.in_(ids))
            ).scalars()
            return sorted({*now, *judged, *exported, *written})

    def campaigns_of_variants(self, variant_ids: Sequence[str]) -> list[str]:
        with self._read() as conn:
            return sorted(
                set(
                    conn.execute(
                        select(variants.c.campaign_id).where(
                            variants.c.variant_id.in_(list(variant_ids))
                        )
                    ).scalars()
                )
            )

    def tombstone_variants(self, variant_ids: Sequence[str]) -> list[str]:
        """Blank what may describe a person (prompts, decision reasons, the asset URI, the
        guardrail evidence) and mark the variants erased. Ids, asset hashes, parameters,
        verdicts and KPI counts stay for the audit trail. Returns the ids erased now."""
        now = datetime.now(UTC)
        with self._write() as conn:
            ids = list(
                conn.execute(
                    select(variants.c.variant_id).where(
                        variants.c.variant_id.in_(list(variant_ids)),
                        variants.c.erased_at.is_(None),
                    )
                ).scalars()
            )
            if ids:
                conn.execute(
                    update(variants)
                    .where(variants.c.variant_id.in_(ids))
                    .values(
                        prompt="",
                        negative_prompt="",
                        decision_reason="",
                        asset_uri=None,
                        # the perception reading of the face, like guardrail evidence
                        measured=None,
                        live=False,
                        erased_at=now,
                        updated_at=now,
                    )
                )
                conn.execute(
                    update(guardrail_checks)
                    .where(guardrail_checks.c.variant_id.in_(ids))
                    .values(evidence={})
                )
                conn.execute(
                    update(placement_exports)
                    .where(placement_exports.c.variant_id.in_(ids))
                    .values(uri=None)
                )
        return ids

    def compact_after_erasure(self) -> str:
        """Make deleted rows unreadable on disk as far as the database allows; says what ran.

        SQLite: secure_delete (on for every connection) already zeroed the deleted content
        in the file; a TRUNCATE checkpoint copies the WAL into it and cuts the WAL to zero
        bytes, since old page images in the WAL would still hold it. PostgreSQL: deleted
        row versions stay in the table files until VACUUM; VACUUM FULL rewrites the small
        key and consent tables into new files, plain VACUUM frees the erased variants' and
        briefs' old versions without locking the tables the campaigns write. VACUUM cannot
        run inside a transaction, hence the autocommit connection.
        """
        if self.dialect == "sqlite":
            if make_url(self.url).database in (None, "", ":memory:"):
                return "in-memory catalog: nothing on disk"
            raw = self._engine.raw_connection()
            try:
                for _ in range(50):
                    cur = raw.cursor()
                    busy = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                    cur.close()
                    if not busy:
                        return "WAL checkpointed into the database file and truncated to 0 bytes"
                    time.sleep(0.1)  # a reader holds an old snapshot; it ends soon
            finally:
                raw.close()
            raise FaceloopError(
                f"the catalog's WAL at {self._safe_url()} could not be truncated: readers kept "
                "it busy for 5 s; the erasure retries this step"
            )
        done = []
        with self._engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table, full in (
                ("subject_keys", True),
                ("consents", True),
                ("variants", False),
                ("guardrail_checks", False),
                ("campaigns", False),
                ("exports", False),
                ("placement_exports", False),
            ):
                auto.execute(text(f"VACUUM {'FULL ' if full else ''}{table}"))
                done.append(f"VACUUM {'FULL ' if full else ''}{table}")
        return "; ".join(done)


def _erased(subject_id: str, when: datetime | None) -> SubjectErasedError:
    day = f" on {when:%Y-%m-%d}" if when else ""
    return SubjectErasedError(
        f"subject erased: the key of {subject_id!r} was destroyed{day} (GDPR erasure), so "
        "nothing sealed under it can be read again; this is final"
    )


def _consent(row: RowMapping) -> RegisteredConsent:
    return RegisteredConsent(
        consent_id=row["consent_id"],
        persona_id=row["persona_id"],
        subject_name=row["subject"],
        scope=list(row["scope"]),
        markets=list(row["markets"]),
        expires=row["expires"],
        evidence_sha256=row["evidence_sha256"],
        recorded_at=row["recorded_at"],
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
        erased_at=row["erased_at"],
    )
