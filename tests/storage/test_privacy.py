"""Consent registry, subject keys, tombstones and exported copies, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from faceloop.consent import (
    ConsentCheckInput,
    ConsentRecord,
    ConsentState,
    RegisteredConsent,
    evaluate_consents,
)
from faceloop.errors import FaceloopError, InputError, SubjectErasedError
from faceloop.models import (
    Asset,
    CheckResult,
    Decision,
    FaceParams,
    GuardrailReport,
    Variant,
    Verdict,
)
from faceloop.storage.catalog import Catalog
from faceloop.storage.keys import MAGIC, SubjectKeyStore
from faceloop.workflows.consent_activities import ConsentActivities

TODAY = dt.date(2031, 6, 1)
NOW = dt.datetime(2031, 6, 1, 12, tzinfo=dt.UTC)


def record(**changes: Any) -> ConsentRecord:
    data: dict[str, Any] = {
        "consent_id": "c-1",
        "persona_id": "ada",
        "subject_name": "Ada Example",
        "scope": ["ads", "persona_training"],
        "markets": ["DE", "FR"],
        "expires": TODAY + dt.timedelta(days=30),
        "evidence_sha256": hashlib.sha256(b"signed form").hexdigest(),
    }
    data.update(changes)
    return ConsentRecord.model_validate(data)


# --------------------------------------------------------------------------- status rule


def registered(**changes: Any) -> RegisteredConsent:
    extra = {k: changes.pop(k) for k in ("revoked_at", "erased_at") if k in changes}
    return RegisteredConsent(**record(**changes).model_dump(), recorded_at=NOW, **extra)


@pytest.mark.parametrize(
    ("records", "markets", "kw", "state", "says"),
    [
        ([], ["DE"], {}, ConsentState.missing, "has no consent record"),
        ([registered()], ["DE"], {}, ConsentState.valid, "c-1 covers 'ads' in DE until 2031-07-01"),
        ([registered()], [], {}, ConsentState.valid, "in any market"),
        (
            [registered(expires=TODAY - dt.timedelta(days=1))],
            ["DE"],
            {},
            ConsentState.expired,
            "last valid day 2031-05-31",
        ),
        # the expiry date itself still counts
        ([registered(expires=TODAY)], ["DE"], {}, ConsentState.valid, "until 2031-06-01"),
        ([registered(revoked_at=NOW)], ["DE"], {}, ConsentState.revoked, "revoked on 2031-06-01"),
        (
            [registered()],
            ["DE", "US"],
            {},
            ConsentState.market_not_covered,
            "no live consent for market(s) US (covered: DE, FR)",
        ),
        (
            [registered(scope=["social"])],
            ["DE"],
            {},
            ConsentState.scope_not_covered,
            "includes the use 'ads'",
        ),
        ([registered(scope=["all"])], ["DE"], {}, ConsentState.valid, "covers 'ads'"),
        (
            [registered(), registered(consent_id="c-2", markets=["US"])],
            ["DE", "US"],
            {},
            ConsentState.valid,
            "consent c-1, c-2 covers",
        ),
        (
            [registered(), registered(consent_id="c-2", markets=["US"])],
            ["DE", "US"],
            {"consent_ref": "c-1"},
            ConsentState.market_not_covered,
            "market(s) US",
        ),
        (
            [registered(consent_id="c-9", persona_id="bob")],
            ["DE"],
            {"consent_ref": "c-9"},
            ConsentState.missing,
            "is for persona 'bob', not 'ada'",
        ),
        ([], ["DE"], {"consent_ref": "c-7"}, ConsentState.missing, "'c-7' named by the brief"),
    ],
)
def test_consent_status_names_the_reason(
    records: list[RegisteredConsent],
    markets: list[str],
    kw: dict[str, Any],
    state: ConsentState,
    says: str,
) -> None:
    status = evaluate_consents(records, "ada", markets, NOW, **kw)
    assert status.state is state, status.reason
    assert says in status.reason
    assert status.ok is (state is ConsentState.valid)


def test_a_revoked_record_does_not_hide_a_live_one() -> None:
    both = [registered(revoked_at=NOW), registered(consent_id="c-2")]
    status = evaluate_consents(both, "ada", ["FR"], NOW)
    assert status.ok and status.consent_ids == ["c-2"]


# --------------------------------------------------------------------------- registry


def test_record_get_list_and_audit(catalog: Catalog) -> None:
    kept = catalog.record_consent(record(), "dpo")
    assert kept.consent_id == "c-1" and kept.subject_name == "Ada Example"
    assert kept.revoked_at is None and kept.recorded_at.tzinfo is not None
    # the same record again: nothing changes, no second audit entry
    again = catalog.record_consent(record(), "dpo")
    assert again == kept
    catalog.record_consent(record(consent_id="c-2", persona_id="bob"), "dpo")
    assert [c.consent_id for c in catalog.consents()] == ["c-1", "c-2"]
    assert [c.consent_id for c in catalog.consents("bob")] == ["c-2"]
    assert catalog.get_consent("nope") is None
    entries = [e for e in catalog.audit_entries() if e.kind == "consent.recorded"]
    assert [e.subject for e in entries] == ["c-1", "c-2"]
    assert entries[0].actor == "dpo"
    # ids and hashes only: the audit chain outlives erasure
    assert set(entries[0].payload) == {"consent_id", "persona_id", "evidence_sha256"}
    assert "Ada" not in str([e.payload for e in catalog.audit_entries()])
    assert catalog.verify_audit() == []


def test_a_kept_record_cannot_change(catalog: Catalog) -> None:
    catalog.record_consent(record(), "dpo")
    with pytest.raises(InputError) as err:
        catalog.record_consent(record(markets=["DE", "FR", "US"], scope=["all"]), "dpo")
    text = str(err.value)
    assert "markets: consent 'c-1' is already recorded" in text and "scope:" in text
    assert "new consent_id" in text
    assert catalog.get_consent("c-1").markets == ["DE", "FR"]  # type: ignore[union-attr]


def test_revoke_is_recorded_once_and_changes_the_status(catalog: Catalog) -> None:
    catalog.record_consent(record(expires=dt.date.today() + dt.timedelta(days=5)), "dpo")
    assert catalog.consent_status("ada", ["DE"]).ok
    revoked = catalog.revoke_consent("c-1", "subject withdrew by e-mail", "dpo")
    assert revoked.revoked_at is not None
    assert revoked.revoked_reason == "subject withdrew by e-mail"
    assert catalog.revoke_consent("c-1", "again", "dpo").revoked_at == revoked.revoked_at
    status = catalog.consent_status("ada", ["DE"])
    assert status.state is ConsentState.revoked and "must not be used" in status.reason
    entries = [e for e in catalog.audit_entries() if e.kind == "consent.revoked"]
    assert len(entries) == 1
    assert (
        entries[0].payload["reason_sha256"]
        == hashlib.sha256(b"subject withdrew by e-mail").hexdigest()
    )
    with pytest.raises(FaceloopError, match="'c-404' is not in the consent registry"):
        catalog.revoke_consent("c-404", "x", "dpo")
    with pytest.raises(InputError, match="the reason is empty"):
        catalog.revoke_consent("c-1", "  ", "dpo")


def test_consent_status_at_a_given_time(catalog: Catalog) -> None:
    catalog.record_consent(record(), "dpo")
    assert catalog.consent_status("ada", ["FR"], NOW).ok
    later = NOW + dt.timedelta(days=31)
    assert catalog.consent_status("ada", ["FR"], later).state is ConsentState.expired


def test_erasing_consents_blanks_the_subject_and_burns_the_persona_id(catalog: Catalog) -> None:
    catalog.record_consent(record(), "dpo")
    catalog.record_consent(record(consent_id="c-2", markets=["US"]), "dpo")
    catalog.revoke_consent("c-2", "withdrawn", "dpo")
    assert catalog.erase_consents("ada") == ["c-1", "c-2"]
    assert catalog.erase_consents("ada") == []
    c1, c2 = catalog.consents("ada")
    assert c1.subject_name == c2.subject_name == ""
    assert c1.revoked_reason == "erased (GDPR Art. 17)" and c2.revoked_reason == "withdrawn"
    assert c1.erased_at is not None and c1.evidence_sha256 == record().evidence_sha256
    catalog.destroy_subject_key("ada")
    with pytest.raises(InputError, match=r"persona 'ada' was erased on .*new persona_id"):
        catalog.record_consent(record(consent_id="c-3"), "dpo")


async def test_check_consent_activity_audits_failures_once(catalog: Catalog) -> None:
    acts = ConsentActivities(catalog)
    env = ActivityEnvironment()
    catalog.record_consent(record(expires=dt.date.today() + dt.timedelta(days=5)), "dpo")
    good = ConsentCheckInput(campaign_id="k", persona_id="ada", markets=["DE"])
    ok = await env.run(acts.check_consent, good)
    assert ok.ok and ok.consent_ids == ["c-1"]
    assert not [e for e in catalog.audit_entries() if e.kind == "consent.check_failed"]
    bad = ConsentCheckInput(campaign_id="k", persona_id="ada", markets=["DE", "US"])
    first = await env.run(acts.check_consent, bad)
    await env.run(acts.check_consent, bad)  # a retry of the same activity: one entry
    assert first.state is ConsentState.market_not_covered and first.missing_markets == ["US"]
    (entry,) = [e for e in catalog.audit_entries("k") if e.kind == "consent.check_failed"]
    assert entry.subject == "ada" and entry.payload["state"] == "market-not-covered"
    assert entry.payload["missing_markets"] == ["US"]


# --------------------------------------------------------------------------- subject keys


def test_subject_keys_seal_open_and_shred(catalog: Catalog) -> None:
    keys = SubjectKeyStore(catalog)
    secret = b"\x01\x02 face embedding " * 20
    blob = keys.seal("ada", secret, "gallery")
    assert blob.startswith(MAGIC) and secret not in blob
    assert keys.seal("ada", secret, "gallery") != blob  # fresh nonce every time
    assert keys.open("ada", blob, "gallery") == secret
    key = catalog.subject_key("ada")
    assert key is not None and len(key) == 32
    assert catalog.create_subject_key("ada", b"x" * 32) == key  # the first key stays
    with pytest.raises(FaceloopError, match="another subject or use, or it was altered"):
        keys.open("ada", blob, "lora")
    keys.seal("bob", b"x", "gallery")
    with pytest.raises(FaceloopError, match="another subject or use"):
        keys.open("bob", blob, "gallery")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(FaceloopError, match="altered"):
        keys.open("ada", tampered, "gallery")
    with pytest.raises(FaceloopError, match="no key for subject 'carol'"):
        keys.open("carol", blob, "gallery")

    assert not keys.erased("ada")
    assert keys.destroy("ada") is True
    assert keys.destroy("ada") is False
    assert keys.erased("ada")
    with pytest.raises(SubjectErasedError, match="subject erased: the key of 'ada' was destroyed"):
        keys.open("ada", blob, "gallery")
    with pytest.raises(SubjectErasedError):
        keys.seal("ada", secret, "gallery")  # an erased subject gets no new key
    assert keys.open("bob", keys.seal("bob", b"y", "gallery"), "gallery") == b"y"
    # a subject that never had a key is marked erased too, so its id is not reused
    assert keys.destroy("dan") is False and keys.erased("dan")
    info = catalog.subject_key_info("ada")
    assert info is not None and info.destroyed_at is not None


# --------------------------------------------------------------------------- tombstones


def _variant(vid: str, asset_id: str, prompt: str) -> Variant:
    return Variant(
        variant_id=vid,
        campaign_id="camp",
        round=0,
        params=FaceParams(),
        seed=1,
        prompt=prompt,
        negative_prompt="blurry",
        disclosure="AI-generated image",
        asset=Asset(
            asset_id=asset_id,
            uri=f"file:///store/{asset_id}.png",
            width=64,
            height=64,
            generator="dcgan",
            model_version="v1",
            seed=1,
        ),
        report=GuardrailReport(
            asset_id="0" * 64,
            checks=[
                CheckResult(
                    name="identity",
                    verdict=Verdict.passed,
                    score=0.2,
                    evidence={"persona_id": "ada", "persona_similarity": 0.81},
                )
            ],
        ),
        decision=Decision.deploy,
        decision_reason="approved by reviewer Jo",
        live=True,
    )


def test_tombstones_keep_ids_blank_the_rest_and_are_final(catalog: Catalog) -> None:
    v = _variant("v1", "a" * 64, "portrait of Ada, freckles")
    catalog.upsert_variant(v)
    catalog.upsert_variant(_variant("v2", "b" * 64, "another face"))
    assert catalog.variant_ids_for_assets(["0" * 64]) == ["v1", "v2"]  # via the checks
    assert catalog.asset_ids_of_variants(["v1"]) == ["0" * 64, "a" * 64]
    assert catalog.tombstone_variants(["v1"]) == ["v1"]
    assert catalog.tombstone_variants(["v1"]) == []
    got = catalog.get_variant("v1")
    assert got is not None and got.erased_at is not None
    assert (got.prompt, got.negative_prompt, got.decision_reason) == ("", "", "")
    assert got.asset is not None and got.asset.asset_id == "a" * 64 and got.asset.uri == ""
    assert got.live is False and got.decision is Decision.deploy
    assert got.report is not None and got.report.checks[0].evidence == {}
    assert got.report.checks[0].score == 0.2
    # a late retry of a campaign activity must not bring the prompt or evidence back
    catalog.upsert_variant(v)
    catalog.record_report("v1", v.report)  # type: ignore[arg-type]
    again = catalog.get_variant("v1")
    assert again is not None and again.prompt == "" and again.report.checks[0].evidence == {}  # type: ignore[union-attr]
    assert catalog.trace("a" * 64)["erased_at"] is not None
    other = catalog.get_variant("v2")
    assert other is not None and other.prompt == "another face" and other.erased_at is None


def test_exports_are_found_by_asset_and_by_campaign_report(
    catalog: Catalog, tmp_path: Path
) -> None:
    catalog.record_export(tmp_path / "r" / "images" / "a.png", "thumbnail", "camp", "a" * 64)
    catalog.record_export(tmp_path / "r" / "images" / "b.png", "thumbnail", "camp", "b" * 64)
    catalog.record_export(tmp_path / "r" / "report.json", "report", "camp")
    catalog.record_export(tmp_path / "o" / "report.json", "report", "other")
    found = catalog.exports(["a" * 64], ["camp"])
    assert sorted(Path(r.path).name for r in found) == ["a.png", "report.json"]
    assert {r.campaign_id for r in found} == {"camp"}
    assert catalog.forget_exports([r.path for r in found]) == 2
    assert catalog.exports(["a" * 64], ["camp"]) == []
    assert len(catalog.exports(["b" * 64], ["other"])) == 2


def test_compaction_runs_on_the_backend(catalog: Catalog) -> None:
    SubjectKeyStore(catalog).seal("ada", b"x", "gallery")
    catalog.destroy_subject_key("ada")
    note = catalog.compact_after_erasure()
    if catalog.dialect == "postgresql":
        assert note.startswith("VACUUM FULL subject_keys; VACUUM FULL consents; VACUUM variants")
    else:
        assert "WAL checkpointed" in note and "truncated" in note


# --------------------------------------------------------------------------- SQLite on disk


def test_sqlite_connections_delete_securely(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with Catalog(f"sqlite:///{db}") as catalog:
        with catalog._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        keys = SubjectKeyStore(catalog)
        for n in range(30):  # neighbours on the same page
            keys.seal(f"s{n}", b"x", "gallery")
        keys.seal("ada", b"x", "gallery")
        key = catalog.subject_key("ada")
        assert key is not None

        def on_disk() -> bytes:
            wal = db.with_name(db.name + "-wal")
            return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

        assert key in on_disk()
        keys.destroy("ada")
        catalog.compact_after_erasure()
        assert key not in on_disk()
        assert db.with_name(db.name + "-wal").stat().st_size == 0
