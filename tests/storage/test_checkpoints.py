"""Signed audit checkpoints: what the chain alone misses (a recomputed chain, a cut tail, a
deleted log) is found against one; a checkpoint that was edited or signed elsewhere is
refused. On SQLite and PostgreSQL; the RFC 3161 path against a fake TSA on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from faceloop.errors import FaceloopError
from faceloop.storage.catalog import GENESIS_HASH, Catalog, canonical_json, entry_hash
from faceloop.storage.checkpoints import (
    CheckpointKeys,
    Checkpoints,
    message_imprint,
    read_tlv,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def fill(catalog: Catalog, n: int) -> None:
    for i in range(1, n + 1):
        catalog.audit(
            "cmp-1",
            "decision",
            f"v{i}",
            "workflow",
            {"decision": "deploy"},
            ts=T0 + timedelta(minutes=i),
        )


@pytest.fixture
def checkpoints(tmp_path: Path) -> Checkpoints:
    keys = tmp_path / "keys"
    return Checkpoints(
        tmp_path / "audit-checkpoints",
        CheckpointKeys(keys / "signer.key", keys / "signer-chain.pem", keys / "audit.key"),
    )


def rehash_everything(catalog_url: str, execute_sql: Callable[..., None]) -> None:
    """Edit entry 2 and recompute every hash after it, head row included: the chain is
    consistent again, so only a checkpoint can tell."""
    with Catalog(catalog_url) as catalog:
        entries = catalog.audit_entries()
    prev = GENESIS_HASH
    statements = []
    for e in entries:
        payload = {**e.payload, "decision": "block"} if e.seq == 2 else e.payload
        text = canonical_json(payload)
        digest = entry_hash(prev, e.seq, e.ts, e.campaign_id, e.kind, e.subject, e.actor, text)
        quoted = text.replace("'", "''")
        statements.append(
            f"UPDATE audit_log SET payload = '{quoted}', prev_hash = '{prev}', "
            f"hash = '{digest}' WHERE seq = {e.seq}"
        )
        prev = digest
    statements.append(f"UPDATE audit_head SET hash = '{prev}' WHERE id = 1")
    execute_sql(*statements)


def test_an_intact_log_matches_its_checkpoint(catalog: Catalog, checkpoints: Checkpoints) -> None:
    fill(catalog, 3)
    signed, path = checkpoints.write(catalog)
    assert (signed.body.seq, signed.body.entries, signed.signer) == (3, 3, "audit")
    assert signed.body.hash == catalog.audit_entries()[-1].hash
    # the dedicated key is made once, owner-only, and then reused
    assert stat.S_IMODE(os.stat(checkpoints.keys.audit_key).st_mode) == 0o600
    assert checkpoints.newest(catalog) == (path, signed)
    assert checkpoints.check(catalog, checkpoints.load(path)) == []


def test_a_recomputed_chain_is_found(
    catalog_url: str, checkpoints: Checkpoints, execute_sql: Callable[..., None]
) -> None:
    with Catalog(catalog_url) as catalog:
        fill(catalog, 4)
        _, path = checkpoints.write(catalog)
    rehash_everything(catalog_url, execute_sql)
    with Catalog(catalog_url) as catalog:
        assert catalog.verify_audit() == []  # the chain alone cannot tell
        problems = checkpoints.check(catalog, checkpoints.load(path))
    assert len(problems) == 1
    assert problems[0].startswith("audit entry seq 4 has hash")
    assert "the chain up to it was rewritten" in problems[0]


def test_a_cut_tail_with_a_reset_head_is_found(
    catalog_url: str, checkpoints: Checkpoints, execute_sql: Callable[..., None]
) -> None:
    with Catalog(catalog_url) as catalog:
        fill(catalog, 5)
        _, path = checkpoints.write(catalog)
        third = catalog.audit_entries()[2]
    execute_sql(
        "DELETE FROM audit_log WHERE seq > 3",
        f"UPDATE audit_head SET seq = 3, hash = '{third.hash}' WHERE id = 1",
    )
    with Catalog(catalog_url) as catalog:
        assert catalog.verify_audit() == []
        problems = checkpoints.check(catalog, checkpoints.load(path))
    assert len(problems) == 1
    assert problems[0].startswith("the audit log ends at seq 3 but the checkpoint of")
    assert problems[0].endswith("entries 4..5 were cut off the end")


def test_an_emptied_log_is_found(
    catalog_url: str, checkpoints: Checkpoints, execute_sql: Callable[..., None]
) -> None:
    with Catalog(catalog_url) as catalog:
        fill(catalog, 2)
        _, path = checkpoints.write(catalog)
    execute_sql("DELETE FROM audit_log", f"UPDATE audit_head SET seq = 0, hash = '{GENESIS_HASH}'")
    with Catalog(catalog_url) as catalog:
        assert catalog.verify_audit() == []
        problems = checkpoints.check(catalog, checkpoints.load(path))
        assert problems[0].startswith("the audit log is empty but the checkpoint")
        # and no new checkpoint blesses the emptied log
        with pytest.raises(FaceloopError, match="no audit checkpoint written"):
            checkpoints.write(catalog)


def test_a_deleted_catalog_file_is_found(tmp_path: Path, checkpoints: Checkpoints) -> None:
    db = tmp_path / "catalog.db"
    with Catalog(f"sqlite:///{db}") as catalog:
        fill(catalog, 2)
        checkpoints.write(catalog)
    for f in tmp_path.glob("catalog.db*"):
        f.unlink()
    # the next open makes a fresh, empty catalog under the same URL: the newest
    # checkpoint of that URL still names what was there
    with Catalog(f"sqlite:///{db}") as catalog:
        newest = checkpoints.newest(catalog)
        assert newest is not None
        assert checkpoints.check(catalog, newest[1])[0].startswith("the audit log is empty")


def test_write_if_moved_refuses_a_deleted_log_and_skips_an_unchanged_one(
    tmp_path: Path, checkpoints: Checkpoints
) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog(url) as catalog:
        assert checkpoints.write_if_moved(catalog) is None  # nothing to anchor yet
        fill(catalog, 2)
        first = checkpoints.write_if_moved(catalog)
        assert first is not None
        assert checkpoints.write_if_moved(catalog) is None  # nothing new
        catalog.audit("cmp-1", "late", "v9", "ops", {}, ts=T0 + timedelta(hours=1))
        second = checkpoints.write_if_moved(catalog)
        assert second is not None and second != first
    for f in tmp_path.glob("catalog.db*"):
        f.unlink()
    with Catalog(url) as catalog, pytest.raises(FaceloopError, match="log was deleted"):
        checkpoints.write_if_moved(catalog)


def test_an_edited_checkpoint_is_refused(catalog: Catalog, checkpoints: Checkpoints) -> None:
    fill(catalog, 3)
    _, path = checkpoints.write(catalog)
    doc = json.loads(path.read_text())
    # lowering the signed seq would let a cut tail pass, if the signature did not cover it
    doc["body"]["seq"] = 1
    doc["body"]["hash"] = catalog.audit_entries()[0].hash
    path.write_text(json.dumps(doc))
    with pytest.raises(FaceloopError, match="signature does not match its content"):
        checkpoints.load(path)


def test_a_checkpoint_signed_by_another_key_is_refused(
    catalog: Catalog, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    fill(catalog, 2)
    # someone with their own key signs a checkpoint of the log as they left it
    forger = Checkpoints(
        tmp_path / "elsewhere",
        CheckpointKeys(
            tmp_path / "x" / "none.key", tmp_path / "x" / "none.pem", tmp_path / "x" / "a.key"
        ),
    )
    _, path = forger.write(catalog)
    checkpoints.write(catalog)  # this data dir's own key now exists
    with pytest.raises(FaceloopError, match="signed by a key that is neither"):
        checkpoints.load(path)


def test_the_c2pa_key_signs_when_there_is_one(catalog: Catalog, checkpoints: Checkpoints) -> None:
    from faceloop.guardrails.provenance import init_keys

    init_keys(checkpoints.keys.c2pa_key.parent)
    fill(catalog, 1)
    signed, path = checkpoints.write(catalog)
    assert signed.signer == "c2pa"
    assert signed.certificates and "BEGIN CERTIFICATE" in signed.certificates
    assert not checkpoints.keys.audit_key.exists()
    assert checkpoints.load(path) == signed


# --------------------------------------------------------------------- RFC 3161


class FakeTsa(BaseHTTPRequestHandler):
    """A fake time-stamping authority: it answers a TimeStampReq with status `granted` and
    a token that is not a signed CMS structure, only a SEQUENCE that carries the request's
    imprint and nonce the way a real TSTInfo does. Enough to test what faceloop checks."""

    status = 0
    echo_nonce = True

    def do_POST(self) -> None:
        req = self.rfile.read(int(self.headers["Content-Length"]))
        _, body, _ = read_tlv(req)
        _, _, at = read_tlv(body)  # version
        _, _, imprint_end = read_tlv(body, at)
        imprint = body[at:imprint_end]
        _, _, nonce_end = read_tlv(body, imprint_end)
        nonce = body[imprint_end:nonce_end] if self.echo_nonce else b"\x02\x01\x07"
        token = b"\x30" + bytes([len(imprint) + len(nonce)]) + imprint + nonce
        status = b"\x30\x03\x02\x01" + bytes([self.status])
        resp = status + (token if self.status == 0 else b"")
        reply = b"\x30" + bytes([len(resp)]) + resp
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_tsa() -> Iterator[tuple[str, type[FakeTsa]]]:
    handler = type("Tsa", (FakeTsa,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_tsa_timestamps_the_checkpoint(
    tmp_path: Path, checkpoints: Checkpoints, fake_tsa: tuple[str, type[FakeTsa]]
) -> None:
    url, _ = fake_tsa
    checkpoints.tsa_url = url
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        fill(catalog, 2)
        signed, path = checkpoints.write(catalog)
    assert signed.timestamp is not None and signed.timestamp.tsa_url == url
    token = base64.b64decode(signed.timestamp.token)
    assert message_imprint(signed.body.signed_bytes()) in token
    assert checkpoints.load(path) == signed


def test_a_timestamp_of_other_content_is_refused(
    tmp_path: Path, checkpoints: Checkpoints, fake_tsa: tuple[str, type[FakeTsa]]
) -> None:
    checkpoints.tsa_url = fake_tsa[0]
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        fill(catalog, 2)
        _, path = checkpoints.write(catalog)
        _, other = checkpoints.write(catalog, tmp_path / "other.json")
    doc, donor = json.loads(path.read_text()), json.loads(other.read_text())
    doc["timestamp"] = donor["timestamp"]  # a valid token, over another checkpoint
    path.write_text(json.dumps(doc))
    with pytest.raises(FaceloopError, match=r"timestamp .* is not over this checkpoint"):
        checkpoints.load(path)


@pytest.mark.parametrize(
    ("status", "echo_nonce", "error"),
    [(2, True, r"refused the request \(PKIStatus 2\)"), (0, False, "nonce")],
)
def test_a_refusing_or_replaying_tsa_writes_no_checkpoint(
    tmp_path: Path,
    checkpoints: Checkpoints,
    fake_tsa: tuple[str, type[FakeTsa]],
    status: int,
    echo_nonce: bool,
    error: str,
) -> None:
    url, handler = fake_tsa
    handler.status, handler.echo_nonce = status, echo_nonce
    checkpoints.tsa_url = url
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        fill(catalog, 1)
        with pytest.raises(FaceloopError, match=error):
            checkpoints.write(catalog)
    assert not list(checkpoints.folder.glob("*.json"))


def test_an_unreachable_tsa_says_which_setting(tmp_path: Path, checkpoints: Checkpoints) -> None:
    checkpoints.tsa_url = "http://127.0.0.1:1/tsa"  # nothing listens on port 1
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        fill(catalog, 1)
        with pytest.raises(FaceloopError, match=r"FACELOOP_AUDIT_TSA_URL=.* did not answer"):
            checkpoints.write(catalog)
