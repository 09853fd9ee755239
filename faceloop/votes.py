"""Signed review votes: who voted is proven to the worker, not typed by the voter.

A review vote is an update to the campaign's workflow; anyone who can reach Temporal can
send one with any `reviewer` name. Once console users exist, a vote only counts when the
console signed it for the user who is logged in (Ed25519 over the campaign, variant,
decision, reviewer, role, reason, the time and a nonce), and the worker checks that
signature in an activity (`ReviewActivities.verify_vote`) before the review board sees the
vote. The workflow never verifies anything itself: that would be I/O in workflow code.

Keys: the console makes `<home>/keys/vote-signing.key` (owner-only) on first use and writes
the public half next to it as `vote-signing.pub`. A worker needs only the `.pub`: copying
just that file to a worker host lets it check votes without being able to sign one.

Without console users (one operator, no logins) there is no identity to prove: votes are
accepted unsigned, and the audit entry says so (`identity: unverified`). Creating the first
console user turns the check on for every vote that arrives after it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from faceloop.errors import FaceloopError
from faceloop.messages import ReviewInput, VoteSignature
from faceloop.storage.audit import canonical_json
from faceloop.storage.files import private_file

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "MAX_AGE",
    "MAX_SKEW",
    "VoteSigner",
    "VoteVerifier",
    "key_paths",
    "signed_bytes",
]

FORMAT = "faceloop-vote/1"
# a signed vote is sent at once; one older than this was held back (or replayed) and is
# refused. The board refuses a second vote by the same reviewer on the same variant anyway,
# so the window only bounds how long a captured vote stays usable at all.
MAX_AGE = timedelta(minutes=10)
# clocks of the console and the worker hosts may differ a little
MAX_SKEW = timedelta(minutes=2)


def key_paths(home: Path) -> tuple[Path, Path]:
    """The private and public vote-signing key files of a data dir."""
    keys = home / "keys"
    return keys / "vote-signing.key", keys / "vote-signing.pub"


def signed_bytes(vote: ReviewInput, sig: VoteSignature) -> bytes:
    """What the signature covers: every field that decides what the vote does."""
    return canonical_json(
        {
            "format": FORMAT,
            "campaign_id": vote.campaign_id,
            "variant_id": vote.variant_id,
            "decision": vote.decision.value,
            "reviewer": vote.reviewer,
            "role": vote.role,
            "reason": vote.reason,
            "issued_at": sig.issued_at.isoformat(),
            "nonce": sig.nonce,
            "key_id": sig.key_id,
        }
    ).encode("utf-8")


def _key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _public_raw(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass
class VoteSigner:
    """The console's signing key; `sign` returns the vote with its signature."""

    key: Ed25519PrivateKey

    @classmethod
    def open(cls, home: Path) -> VoteSigner:
        """Load the data dir's signing key, making it (and its `.pub`) on first use."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private, public = key_paths(home)
        if not private.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            tmp = private_file(private.with_name(f".{private.name}.{secrets.token_hex(4)}"))
            tmp.write_bytes(pem)
            try:
                # a link never replaces: of two processes making the key at once, one wins
                os.link(tmp, private)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        loaded = serialization.load_pem_private_key(private.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise FaceloopError(f"{private} is not an Ed25519 key; move it away to make a new one")
        raw = _public_raw(loaded.public_key())
        if not public.exists() or public.read_bytes().strip() != base64.b64encode(raw):
            # a missing or stale .pub would make every worker refuse every vote
            tmp = public.with_name(f".{public.name}.{secrets.token_hex(4)}")
            tmp.write_bytes(base64.b64encode(raw) + b"\n")
            os.replace(tmp, public)
        return cls(loaded)

    @property
    def key_id(self) -> str:
        return _key_id(_public_raw(self.key.public_key()))

    def sign(self, vote: ReviewInput, now: datetime) -> ReviewInput:
        sig = VoteSignature(
            key_id=self.key_id, issued_at=now, nonce=secrets.token_hex(16), signature=""
        )
        raw = self.key.sign(signed_bytes(vote, sig))
        signed = sig.model_copy(update={"signature": base64.b64encode(raw).decode("ascii")})
        return vote.model_copy(update={"signature": signed})


@dataclass
class VoteVerifier:
    """The worker's side: the public key, or the path where it was expected."""

    path: Path
    key: Ed25519PublicKey | None

    @classmethod
    def open(cls, home: Path) -> VoteVerifier:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        _, public = key_paths(home)
        if not public.exists():
            # read again on each check: the console may make the key after the worker started
            return cls(public, None)
        try:
            raw = base64.b64decode(public.read_bytes().strip(), validate=True)
            return cls(public, Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as exc:
            raise FaceloopError(
                f"{public} is not a vote-signing public key (base64 of 32 bytes): copy it "
                "again from the console's data dir"
            ) from exc

    def problem(self, vote: ReviewInput, now: datetime) -> str | None:
        """Why this vote's signature does not prove who cast it; None when it does."""
        from cryptography.exceptions import InvalidSignature

        sig = vote.signature
        if sig is None:
            return (
                "the vote is not signed by the console: console users exist, so votes count "
                "only when cast by a logged-in user (the console, or `faceloop approve|reject` "
                "with FACELOOP_API_URL and FACELOOP_API_TOKEN)"
            )
        key = self.key if self.key is not None else VoteVerifier.open(self.path.parents[1]).key
        if key is None:
            return (
                f"this worker has no vote-signing public key at {self.path}: start the "
                "console once (`faceloop up`) or copy its keys/vote-signing.pub here"
            )
        self.key = key
        if sig.key_id != _key_id(_public_raw(key)):
            return f"the vote is signed by key {sig.key_id}, not this console's key"
        try:
            key.verify(base64.b64decode(sig.signature, validate=True), signed_bytes(vote, sig))
        except (InvalidSignature, ValueError):
            return "the vote's signature does not match its content (forged or altered)"
        if sig.issued_at > now + MAX_SKEW:
            return f"the vote is signed for {sig.issued_at:%Y-%m-%d %H:%M:%S} UTC, in the future"
        if now - sig.issued_at > MAX_AGE:
            return (
                f"the vote was signed at {sig.issued_at:%Y-%m-%d %H:%M:%S} UTC, more than "
                f"{MAX_AGE.total_seconds() / 60:.0f} min ago: vote again"
            )
        return None
