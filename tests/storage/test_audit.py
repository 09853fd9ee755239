"""Audit log: hash chain, tamper detection and concurrent appends, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from faceloop.errors import FaceloopError
from faceloop.models import FaceParams
from faceloop.storage.catalog import (
    GENESIS_HASH,
    Catalog,
    ChainLink,
    entry_hash,
    verify_chain,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def fill(catalog: Catalog, n: int = 5) -> None:
    for i in range(1, n + 1):
        catalog.audit(
            "cmp-1",
            "decision",
            f"v{i}",
            "workflow",
            {"decision": "deploy", "i": i},
            ts=T0 + timedelta(minutes=i),
        )


def test_appended_entries_form_a_verifiable_chain(catalog: Catalog) -> None:
    first = catalog.audit(
        "cmp-1",
        "submit",
        "cmp-1",
        "maria@x",
        {"params": FaceParams(), "when": T0, "note": "größer ✓"},
        ts=T0,
    )
    second = catalog.audit(None, "config", "settings", "ops", {"b": 1, "a": [1.5, None]})

    assert first.seq == 1 and first.prev_hash == GENESIS_HASH
    assert second.seq == 2 and second.prev_hash == first.hash
    assert first.ts == T0
    assert first.payload["params"] == FaceParams().model_dump(mode="json")
    assert first.payload["when"] == "2025-03-01T12:00:00Z"
    assert first.hash == entry_hash(
        GENESIS_HASH,
        1,
        T0,
        "cmp-1",
        "submit",
        "cmp-1",
        "maria@x",
        '{"note":"größer ✓","params":{"age_band":"25-34","background":"white",'
        '"expression":"smile","framing":"head_shoulders","gender_presentation":"feminine",'
        '"lighting":"soft","skin_tone":5,"style":"photo"},"when":"2025-03-01T12:00:00Z"}',
    )
    assert second.ts.tzinfo is not None

    assert catalog.audit_entries() == [first, second]
    assert catalog.audit_entries("cmp-1") == [first]
    assert catalog.verify_audit() == []


def test_timestamps_in_other_zones_are_stored_as_utc(catalog: Catalog) -> None:
    cet = timezone(timedelta(hours=1))
    entry = catalog.audit("c", "k", "s", "a", {}, ts=datetime(2025, 3, 1, 13, 0, 0, 123456, cet))
    assert entry.ts == datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert catalog.audit_entries() == [entry]
    assert catalog.verify_audit() == []


def test_payload_that_is_not_json_is_refused(catalog: Catalog) -> None:
    with pytest.raises(FaceloopError, match="no NaN"):
        catalog.audit("c", "k", "s", "a", {"score": float("nan")})
    assert catalog.audit_entries() == []


def test_empty_log_verifies(catalog: Catalog) -> None:
    assert catalog.verify_audit() == []


def test_edited_payload_is_found(catalog: Catalog, execute_sql: Callable[..., None]) -> None:
    fill(catalog)
    execute_sql("""UPDATE audit_log SET payload = '{"decision":"block","i":3}' WHERE seq = 3""")
    assert catalog.verify_audit() == [
        "audit entry seq 3: content does not match its hash "
        "(edited, or moved from another position)"
    ]


def test_edited_actor_and_rehashed_entry_is_found(
    catalog: Catalog, execute_sql: Callable[..., None]
) -> None:
    fill(catalog)
    # a forger who recomputes the edited entry's own hash still breaks the next link
    e = catalog.audit_entries()[1]
    forged = entry_hash(e.prev_hash, 2, e.ts, "cmp-1", "decision", "v2", "mallory", '{"i":2}')
    execute_sql(
        f"UPDATE audit_log SET actor = 'mallory', payload = '{{\"i\":2}}', hash = '{forged}' "
        "WHERE seq = 2"
    )
    problems = catalog.verify_audit()
    assert len(problems) == 1
    assert problems[0].startswith("audit entry seq 3: link to seq 2 is broken")


def test_deleted_entry_is_found(catalog: Catalog, execute_sql: Callable[..., None]) -> None:
    fill(catalog)
    execute_sql("DELETE FROM audit_log WHERE seq = 3")
    assert catalog.verify_audit() == ["audit entry seq 3 missing before seq 4 (removed)"]


def test_deleted_last_entries_are_found(catalog: Catalog, execute_sql: Callable[..., None]) -> None:
    fill(catalog)
    execute_sql("DELETE FROM audit_log WHERE seq >= 4")
    problems = catalog.verify_audit()
    assert len(problems) == 1
    assert problems[0].startswith("audit entries seq 4..5 missing at the end")


def test_a_deleted_head_row_stays_missing_and_stops_appends(
    catalog_url: str, execute_sql: Callable[..., None]
) -> None:
    with Catalog(catalog_url) as catalog:
        fill(catalog, 2)
    execute_sql("DELETE FROM audit_head")
    # opening the catalog again must not write a fresh head (seq 0) over the evidence
    with Catalog(catalog_url) as catalog:
        assert catalog.verify_audit() == [
            "audit head row is missing (deleted); the chain end cannot be checked"
        ]
        with pytest.raises(FaceloopError, match=r"has no head row .* nothing is appended"):
            catalog.audit("cmp-1", "late", "v3", "ops", {})
        assert len(catalog.audit_entries()) == 2


def test_swapped_pair_is_found(catalog: Catalog, execute_sql: Callable[..., None]) -> None:
    fill(catalog)
    execute_sql(
        "UPDATE audit_log SET seq = -1 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = -1",
    )
    problems = catalog.verify_audit()
    assert any(p.startswith("audit entry seq 2: content does not match") for p in problems)
    assert any(p.startswith("audit entry seq 3: content does not match") for p in problems)
    assert any(p.startswith("audit entry seq 2: link to seq 1 is broken") for p in problems)


def test_appends_after_verification_still_chain(catalog: Catalog) -> None:
    fill(catalog, 2)
    assert catalog.verify_audit() == []
    fill(catalog, 2)
    assert [e.seq for e in catalog.audit_entries()] == [1, 2, 3, 4]
    assert catalog.verify_audit() == []


def test_concurrent_appenders_keep_the_chain_valid(catalog_url: str) -> None:
    """Separate Catalog objects (own engines, own connections) act like separate processes."""
    writers, per_writer = 2, 40
    catalogs = [Catalog(catalog_url) for _ in range(writers)]
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def append(idx: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                catalogs[idx].audit("cmp-1", "tick", f"w{idx}", f"writer-{idx}", {"i": i})
        except BaseException as err:  # surfaced in the main thread below
            errors.append(err)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert not errors, errors
        entries = catalogs[0].audit_entries()
        assert [e.seq for e in entries] == list(range(1, writers * per_writer + 1))
        for idx in range(writers):
            mine = [e.payload["i"] for e in entries if e.actor == f"writer-{idx}"]
            assert mine == list(range(per_writer))
        assert catalogs[0].verify_audit() == []
    finally:
        for c in catalogs:
            c.close()


def test_a_retried_activity_writes_its_entry_once(catalog: Catalog) -> None:
    from temporalio.testing import ActivityEnvironment

    def record(note: str) -> int:
        return catalog.audit("cmp-1", "decision.deploy", "v1", "playbook:default", {"n": note}).seq

    env = ActivityEnvironment()
    first = env.run(record, "first attempt")
    retry = env.run(record, "second attempt")  # same workflow run and activity id: a retry
    other = ActivityEnvironment()
    other.info = dataclasses.replace(other.info, activity_id="another-activity")
    third = other.run(record, "another activity")
    outside = catalog.audit("cmp-1", "decision.deploy", "v1", "cli", {"n": "no activity"})

    assert first == retry
    entries = catalog.audit_entries()
    assert [e.payload["n"] for e in entries] == ["first attempt", "another activity", "no activity"]
    assert third == 2 and outside.seq == 3
    assert catalog.verify_audit() == []


def test_explicit_keys_make_appends_idempotent(catalog: Catalog) -> None:
    a = catalog.audit(None, "erase", "persona-1", "ops", {"files": 3}, key="erase-persona-1")
    b = catalog.audit(None, "erase", "persona-1", "ops", {"files": 0}, key="erase-persona-1")
    assert a == b and len(catalog.audit_entries()) == 1


def test_exported_entries_verify_on_their_own(catalog: Catalog) -> None:
    fill(catalog, 4)
    links = [ChainLink.from_entry(e) for e in catalog.audit_entries()]
    assert verify_chain(links).lines == []
    # an incremental export from seq 3 on verifies as a slice
    assert verify_chain(links[2:], start_seq=3).lines == []
    assert verify_chain(links[2:]).lines[0] == "audit entry seq 1..2 missing before seq 3 (removed)"
    swapped = [links[0], links[2], links[1], links[3]]
    assert verify_chain(swapped).lines == ["audit entry seq 2 comes after seq 3 (reordered)"]
    doubled = [*links, links[3]]
    assert verify_chain(doubled).lines == ["audit entry seq 4 appears twice"]


def test_a_forged_payload_in_an_export_is_found(catalog: Catalog) -> None:
    fill(catalog, 2)
    links = [ChainLink.from_entry(e) for e in catalog.audit_entries()]
    forged = links[1].model_copy(update={"payload_json": '{"decision":"block","i":2}'})
    assert verify_chain([links[0], forged]).lines == [
        "audit entry seq 2: content does not match its hash (edited, or moved from another "
        "position)"
    ]
