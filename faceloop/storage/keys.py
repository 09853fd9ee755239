"""Per-subject keys: crypto-shredding for biometric data (GDPR Art. 17).

Every data subject (a persona) gets one random 256-bit key, kept in the catalog's
`subject_keys` table. A persona's face embeddings in the identity gallery and its LoRA
adapter files are sealed with AES-256-GCM under that key. Erasure destroys the key:
every copy of the sealed data (in the gallery, in the asset store, in a backup of either)
becomes unreadable at once, without finding and rewriting each copy.

A sealed blob is `MAGIC | nonce (12 bytes) | ciphertext + tag`. The associated data binds
it to the subject and to its use ("gallery", "lora"), so a blob cannot be passed off as
another subject's or read in another role. docs/privacy.md says why the keys live in the
catalog and what that asks of its backups.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceloop.errors import FaceloopError, SubjectErasedError
from faceloop.storage.subjects import SubjectRecords

__all__ = ["MAGIC", "SubjectErasedError", "SubjectKeyStore", "is_sealed"]

MAGIC = b"FLSEAL1\x00"
_NONCE = 12
_KEY_BYTES = 32


def is_sealed(blob: bytes) -> bool:
    return blob.startswith(MAGIC)


def _aad(subject_id: str, purpose: str) -> bytes:
    # a length prefix keeps ("a:b", "c") and ("a", "b:c") apart
    return f"faceloop/{len(subject_id)}:{subject_id}/{purpose}".encode()


class SubjectKeyStore:
    """Seals and opens data under the key of one data subject; destroys keys at erasure.

    Keys are read from the catalog on every call and never cached, so a key destroyed by
    the erasure workflow stops every worker from opening the subject's data at once.
    """

    def __init__(self, catalog: SubjectRecords) -> None:
        self.catalog = catalog

    def _key(self, subject_id: str, *, create: bool) -> bytes:
        key = self.catalog.subject_key(subject_id)  # SubjectErasedError once destroyed
        if key is None:
            if not create:
                raise FaceloopError(
                    f"no key for subject {subject_id!r} in the key store (the catalog's "
                    "subject_keys table): the data was sealed under another catalog (point "
                    "FACELOOP_DATABASE_URL at it) or the key store was reset"
                )
            key = self.catalog.create_subject_key(subject_id, os.urandom(_KEY_BYTES))
        if len(key) != _KEY_BYTES:
            raise FaceloopError(f"the key of subject {subject_id!r} is damaged ({len(key)} bytes)")
        return key

    def seal(self, subject_id: str, data: bytes, purpose: str) -> bytes:
        """Encrypt data under the subject's key, making the key on first use."""
        key = self._key(subject_id, create=True)
        nonce = os.urandom(_NONCE)
        return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, _aad(subject_id, purpose))

    def open(self, subject_id: str, blob: bytes, purpose: str) -> bytes:
        """Decrypt a sealed blob; SubjectErasedError once the subject was erased."""
        (clear,) = self.open_all(subject_id, [blob], purpose)
        return clear

    def open_all(self, subject_id: str, blobs: list[bytes], purpose: str) -> list[bytes]:
        """Decrypt several blobs of one subject, reading its key once."""
        bad = [i for i, b in enumerate(blobs) if not is_sealed(b)]
        if bad:
            raise FaceloopError(
                f"data given as sealed for subject {subject_id!r} ({purpose}, item {bad[0]}) is "
                "not a sealed blob; it was not written by faceloop's key store"
            )
        key = self._key(subject_id, create=False)
        return [self._decrypt(key, subject_id, b, purpose) for b in blobs]

    @staticmethod
    def _decrypt(key: bytes, subject_id: str, blob: bytes, purpose: str) -> bytes:
        nonce = blob[len(MAGIC) : len(MAGIC) + _NONCE]
        try:
            return AESGCM(key).decrypt(
                nonce, blob[len(MAGIC) + _NONCE :], _aad(subject_id, purpose)
            )
        except InvalidTag:
            raise FaceloopError(
                f"sealed {purpose} data of subject {subject_id!r} does not open with its key: "
                "it belongs to another subject or use, or it was altered"
            ) from None

    def destroy(self, subject_id: str) -> bool:
        """Crypto-shred the subject; True if a live key was destroyed now."""
        return self.catalog.destroy_subject_key(subject_id)

    def erased(self, subject_id: str) -> bool:
        info = self.catalog.subject_key_info(subject_id)
        return info is not None and info.destroyed_at is not None
