"""Signed checkpoints of the audit log: what the hash chain alone cannot show.

A chain proves that no entry was edited *unless every hash after it was recomputed*; it
cannot show entries cut off its end when the head row was reset with them, nor a log that
was deleted and started again. A checkpoint anchors the chain from outside: a small JSON
document naming the catalog, the last entry's seq and hash and the entry count, signed
with ES256 (the C2PA signing key when there is one, else a dedicated audit key made once
in <home>/keys/audit.key) and, when FACELOOP_AUDIT_TSA_URL is set, timestamped by an
RFC 3161 time-stamping authority. `Checkpoints.check` then finds:
- a recomputed chain: entry seq N no longer has the signed hash;
- a cut tail: the log ends before seq N;
- a deleted log: no entries at all where the checkpoint signed N.

The newest checkpoint of each catalog is kept in <home>/audit-checkpoints/. A copy kept
elsewhere (a WORM store, another machine) is what anchors against someone who can also
write the data dir: they could sign a new checkpoint with its keys, never an old one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from faceloop.errors import FaceloopError
from faceloop.storage.audit import AuditLog, canonical_json
from faceloop.storage.files import private_dir, private_file
from faceloop.storage.schema import safe_url

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from faceloop.settings import Settings

__all__ = [
    "CheckpointBody",
    "CheckpointKeys",
    "CheckpointRejected",
    "Checkpoints",
    "SignedCheckpoint",
    "Timestamp",
    "compare",
    "request_timestamp",
]

FORMAT: Literal["faceloop-audit-checkpoint/1"] = "faceloop-audit-checkpoint/1"
_TSA_TIMEOUT_S = 15.0  # a TSA answers in well under a second; a hung one must not hang `up`


class CheckpointRejected(FaceloopError):
    """A checkpoint that anchors nothing: edited after signing, signed by a foreign key, or
    carrying a timestamp of other content. Evidence of tampering, not a usage error."""


class CheckpointBody(BaseModel):
    """What the signature covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["faceloop-audit-checkpoint/1"] = FORMAT
    catalog: str  # the catalog's URL without its password
    seq: int
    hash: str
    entries: int
    created_at: datetime

    def signed_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json")).encode("utf-8")


class Timestamp(BaseModel):
    """An RFC 3161 TimeStampToken (base64 DER) over sha256 of the signed body."""

    tsa_url: str
    token: str


class SignedCheckpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: CheckpointBody
    signer: Literal["c2pa", "audit"]
    public_key: str  # PEM SubjectPublicKeyInfo of the signing key
    certificates: str | None = None  # the C2PA chain (PEM) when that key signed
    signature: str  # base64 DER ECDSA P-256 / SHA-256 over body.signed_bytes()
    timestamp: Timestamp | None = None


@dataclass(frozen=True)
class CheckpointKeys:
    c2pa_key: Path
    c2pa_cert: Path
    audit_key: Path


def compare(cp: CheckpointBody, last_seq: int, hash_at_seq: str | None) -> list[str]:
    """What a log that ends at `last_seq`, and has `hash_at_seq` at the checkpoint's seq,
    no longer shows of what the checkpoint signed; one line per problem."""
    signed = f"the checkpoint of {cp.created_at:%Y-%m-%d %H:%M:%S} UTC signed seq {cp.seq}"
    if cp.seq == 0:
        return []
    if last_seq == 0:
        return [f"the audit log is empty but {signed} (the log was deleted or replaced)"]
    if last_seq < cp.seq:
        return [
            f"the audit log ends at seq {last_seq} but {signed}: entries "
            f"{last_seq + 1}..{cp.seq} were cut off the end"
        ]
    if hash_at_seq is None:
        return [f"audit entry seq {cp.seq} is missing but {signed}"]
    if hash_at_seq != cp.hash:
        return [
            f"audit entry seq {cp.seq} has hash {hash_at_seq[:16]} but {signed} with hash "
            f"{cp.hash[:16]}: the chain up to it was rewritten (hashes recomputed) or replaced"
        ]
    return []


class Checkpoints:
    """Writes, finds and checks the signed checkpoints of one data dir."""

    def __init__(self, folder: Path, keys: CheckpointKeys, tsa_url: str | None = None) -> None:
        self.folder = folder
        self.keys = keys
        self.tsa_url = tsa_url

    @classmethod
    def from_settings(cls, settings: Settings) -> Checkpoints:
        # where the C2PA key lives is the guardrails' to say; their settings view is plain
        # paths with no heavy imports
        from faceloop.guardrails.settings import GuardrailSettings

        gs = GuardrailSettings(settings)
        return cls(
            settings.resolved_home / "audit-checkpoints",
            CheckpointKeys(gs.key_path, gs.cert_path, gs.keys_dir / "audit.key"),
            settings.audit_tsa_url,
        )

    # ---------------------------------------------------------------- writing

    def write(self, catalog: AuditLog, out: Path | None = None) -> tuple[SignedCheckpoint, Path]:
        """Sign the log's current end and keep it in the folder (and at `out`).

        Refused when the chain is broken or no longer extends the newest checkpoint: a
        checkpoint must never bless a tampered log.
        """
        problems = catalog.verify_audit()
        newest = self.newest(catalog)
        if newest is not None:
            last_seq, _, _ = catalog.audit_tip()
            problems += compare(newest[1].body, last_seq, catalog.audit_hash(newest[1].body.seq))
        if problems:
            raise FaceloopError(
                "no audit checkpoint written: the log does not extend what was signed before ("
                + "; ".join(problems)
                + "). Run `faceloop audit verify` and investigate; to accept the log as it is "
                f"now as a new baseline, move the checkpoints in {self.folder} elsewhere "
                "(keep them: they are the evidence)"
            )
        seq, digest, count = catalog.audit_tip()
        body = CheckpointBody(
            catalog=safe_url(catalog.url),
            seq=seq,
            hash=digest,
            entries=count,
            created_at=datetime.now(UTC),
        )
        signed = self._sign(body)
        text = signed.model_dump_json(indent=2) + "\n"
        private_dir(self.folder)
        path = self.folder / f"{seq:012d}-{body.created_at:%Y%m%dT%H%M%S%fZ}.json"
        path.write_text(text, encoding="utf-8")
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        return signed, path

    def write_if_moved(self, catalog: AuditLog) -> Path | None:
        """A checkpoint when the log grew since the newest one (none for an empty log)."""
        seq, digest, _ = catalog.audit_tip()
        newest = self.newest(catalog)
        if seq == 0 and newest is None:
            return None
        if newest is not None and (newest[1].body.seq, newest[1].body.hash) == (seq, digest):
            return None
        return self.write(catalog)[1]

    def _sign(self, body: CheckpointBody) -> SignedCheckpoint:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        signer: Literal["c2pa", "audit"]
        if self.keys.c2pa_key.exists():
            key = _load_private_key(self.keys.c2pa_key)
            signer = "c2pa"
            chain = (
                self.keys.c2pa_cert.read_text(encoding="utf-8")
                if self.keys.c2pa_cert.exists()
                else None
            )
        else:
            key = self._audit_key()
            signer, chain = "audit", None
        data = body.signed_bytes()
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return SignedCheckpoint(
            body=body,
            signer=signer,
            public_key=public.decode("ascii"),
            certificates=chain,
            signature=base64.b64encode(signature).decode("ascii"),
            timestamp=(
                Timestamp(tsa_url=self.tsa_url, token=request_timestamp(self.tsa_url, data))
                if self.tsa_url
                else None
            ),
        )

    def _audit_key(self) -> EllipticCurvePrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        path = self.keys.audit_key
        if path.exists():
            return _load_private_key(path)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = private_file(path.with_name(f".{path.name}.{secrets.token_hex(4)}"))
        tmp.write_bytes(pem)
        try:
            # a link never replaces: of two processes making the key at once, one key wins
            os.link(tmp, path)
        except FileExistsError:
            return _load_private_key(path)
        finally:
            tmp.unlink()
        return key

    # ---------------------------------------------------------------- reading

    def newest(self, catalog: AuditLog) -> tuple[Path, SignedCheckpoint] | None:
        """The newest checkpoint of this catalog in the folder, signature checked."""
        if not self.folder.is_dir():
            return None
        url = safe_url(catalog.url)
        found: list[tuple[datetime, Path, SignedCheckpoint]] = []
        for path in self.folder.glob("*.json"):
            cp = self.load(path)
            if cp.body.catalog == url:
                found.append((cp.body.created_at, path, cp))
        if not found:
            return None
        _, path, cp = max(found, key=lambda f: f[0])
        return path, cp

    def load(self, path: Path) -> SignedCheckpoint:
        """Read a checkpoint and check its signature, its key and its timestamp's imprint."""
        try:
            cp = SignedCheckpoint.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise FaceloopError(f"cannot read audit checkpoint {path}: {exc.strerror}") from exc
        except ValidationError as exc:
            raise FaceloopError(
                f"{path} is not an audit checkpoint written by `faceloop audit checkpoint` "
                f"({exc.error_count()} error(s), first: {exc.errors()[0]['msg']})"
            ) from exc
        self._check_signature(path, cp)
        if cp.timestamp is not None:
            check_timestamp(str(path), cp.timestamp, cp.body.signed_bytes())
        return cp

    def _check_signature(self, path: Path, cp: SignedCheckpoint) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            public = serialization.load_pem_public_key(cp.public_key.encode("ascii"))
            signature = base64.b64decode(cp.signature, validate=True)
        except ValueError as exc:
            raise FaceloopError(f"audit checkpoint {path}: unreadable key or signature") from exc
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise FaceloopError(f"audit checkpoint {path}: not an ES256 (P-256) key")
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if der not in self.trusted_keys():
            raise CheckpointRejected(
                f"audit checkpoint {path} is signed by a key that is neither this data dir's "
                f"C2PA signing key ({self.keys.c2pa_key}) nor its audit key "
                f"({self.keys.audit_key}); it was made elsewhere or the keys were replaced "
                "since: verify it where it was made, or restore the key that signed it"
            )
        try:
            public.verify(signature, cp.body.signed_bytes(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise CheckpointRejected(
                f"audit checkpoint {path}: the signature does not match its content (it was "
                "edited after signing); it anchors nothing"
            ) from exc

    def trusted_keys(self) -> set[bytes]:
        """DER public keys of this data dir's signing keys (those that exist)."""
        from cryptography.hazmat.primitives import serialization

        keys = set()
        for path in (self.keys.c2pa_key, self.keys.audit_key):
            if path.exists():
                keys.add(
                    _load_private_key(path)
                    .public_key()
                    .public_bytes(
                        serialization.Encoding.DER,
                        serialization.PublicFormat.SubjectPublicKeyInfo,
                    )
                )
        return keys

    def check(self, catalog: AuditLog, cp: SignedCheckpoint) -> list[str]:
        last_seq, _, _ = catalog.audit_tip()
        return compare(cp.body, last_seq, catalog.audit_hash(cp.body.seq))


def _load_private_key(path: Path) -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise FaceloopError(
            f"cannot load the signing key {path} ({exc}); `faceloop keys init --force` makes "
            "new C2PA keys, or delete an unreadable audit.key to have a new one made"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FaceloopError(f"{path} is not an EC (ES256) private key")
    return key


# ------------------------------------------------------------------- RFC 3161
# A TimeStampReq is four DER fields; writing them by hand spares a dependency (cryptography
# has no TSP support, asn1crypto is not installed).

_SHA256_OID = bytes.fromhex("0609608648016503040201")  # 2.16.840.1.101.3.4.2.1


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + value


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def message_imprint(data: bytes) -> bytes:
    """DER MessageImprint: SEQUENCE { AlgorithmIdentifier sha256, OCTET STRING digest }."""
    algorithm = _tlv(0x30, _SHA256_OID + b"\x05\x00")
    return _tlv(0x30, algorithm + _tlv(0x04, hashlib.sha256(data).digest()))


def timestamp_request(data: bytes, nonce: int) -> bytes:
    """DER TimeStampReq v1 over sha256(data), with a nonce and certReq TRUE."""
    return _tlv(0x30, _integer(1) + message_imprint(data) + _integer(nonce) + b"\x01\x01\xff")


def read_tlv(der: bytes, at: int = 0) -> tuple[int, bytes, int]:
    """(tag, value, end) of the DER element at `at`."""
    if at + 2 > len(der):
        raise ValueError("truncated DER")
    tag, first = der[at], der[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        width = first & 0x7F
        if width == 0 or width > 4 or at + width > len(der):
            raise ValueError("bad DER length")
        length = int.from_bytes(der[at : at + width], "big")
        at += width
    if at + length > len(der):
        raise ValueError("truncated DER")
    return tag, der[at : at + length], at + length


def request_timestamp(tsa_url: str, data: bytes) -> str:
    """Ask the TSA at `tsa_url` for a token over sha256(data); the token, base64 DER.

    The token is checked to carry this request's imprint and nonce; its CMS signature is the
    TSA's, verified with the TSA's certificate (`openssl ts -verify`), not here.
    """
    import httpx

    nonce = secrets.randbits(63)
    try:
        reply = httpx.post(
            tsa_url,
            content=timestamp_request(data, nonce),
            headers={"Content-Type": "application/timestamp-query"},
            timeout=_TSA_TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        raise FaceloopError(
            f"the time-stamping authority FACELOOP_AUDIT_TSA_URL={tsa_url} did not answer "
            f"({exc}); check the URL, or unset it to checkpoint without a timestamp"
        ) from exc
    if reply.status_code != 200:
        raise FaceloopError(
            f"the time-stamping authority {tsa_url} answered HTTP {reply.status_code}; check "
            "FACELOOP_AUDIT_TSA_URL (an RFC 3161 endpoint takes application/timestamp-query)"
        )
    try:
        _, resp, _ = read_tlv(reply.content)
        _, status_info, token_at = read_tlv(resp)
        _, status, _ = read_tlv(status_info)
        code = int.from_bytes(status, "big", signed=True)
        if code not in (0, 1):  # granted, grantedWithMods
            raise FaceloopError(
                f"the time-stamping authority {tsa_url} refused the request (PKIStatus "
                f"{code}); see its documentation for the accepted requests"
            )
        if token_at >= len(resp):
            raise ValueError("granted without a token")
        _, _, token_end = read_tlv(resp, token_at)
        token = resp[token_at:token_end]
    except ValueError as exc:
        raise FaceloopError(
            f"the time-stamping authority {tsa_url} sent no RFC 3161 TimeStampResp ({exc})"
        ) from exc
    if _integer(nonce) not in token:
        raise FaceloopError(
            f"the timestamp from {tsa_url} does not carry this request's nonce (a replayed or "
            "foreign token); nothing was written"
        )
    stamp = Timestamp(tsa_url=tsa_url, token=base64.b64encode(token).decode("ascii"))
    check_timestamp(tsa_url, stamp, data)
    return stamp.token


def check_timestamp(where: str, stamp: Timestamp, data: bytes) -> None:
    """The token's TSTInfo carries the imprint of exactly these bytes (it is DER inside the
    token, so the imprint appears there byte for byte)."""
    try:
        token = base64.b64decode(stamp.token, validate=True)
    except ValueError as exc:
        raise FaceloopError(f"{where}: the RFC 3161 token is not base64") from exc
    if message_imprint(data) not in token:
        raise CheckpointRejected(
            f"{where}: the RFC 3161 timestamp from {stamp.tsa_url} is not over this "
            "checkpoint's content (the content was edited, or the token belongs elsewhere)"
        )
