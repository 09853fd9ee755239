"""Guardrail paths and secrets, derived from the one Settings declaration.

The settings themselves (FACELOOP_IDENTITY_KEY, FACELOOP_C2PA_CERT, ...) are declared in
faceloop/settings.py with everything else; this view adds the derived paths in the data dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from pydantic import SecretStr

from faceloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from faceloop.guardrails.watermark import Method


class GuardrailSettings:
    def __init__(self, settings: Settings | None = None) -> None:
        # explicit settings (a worker's, a test's) win over the environment
        self.settings = settings or get_settings()

    @property
    def identity_key(self) -> SecretStr | None:
        return self.settings.identity_key

    @property
    def identity_gallery(self) -> Path | None:
        return self.settings.identity_gallery

    @property
    def c2pa_cert(self) -> Path | None:
        return self.settings.c2pa_cert

    @property
    def c2pa_key(self) -> Path | None:
        return self.settings.c2pa_key

    @property
    def c2pa_trust_anchors(self) -> Path | None:
        return self.settings.c2pa_trust_anchors

    @property
    def watermark_method(self) -> Method:
        # checked against the known methods where it is used (ProvenanceGate, Signer)
        return cast("Method", self.settings.watermark_method)

    @property
    def home(self) -> Path:
        return self.settings.resolved_home

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def gallery_path(self) -> Path:
        return self.identity_gallery or self.home / "identity" / "gallery.enc"

    @property
    def cert_path(self) -> Path:
        return self.c2pa_cert or self.keys_dir / "signer-chain.pem"

    @property
    def key_path(self) -> Path:
        return self.c2pa_key or self.keys_dir / "signer.key"

    @property
    def anchors_path(self) -> Path:
        return self.c2pa_trust_anchors or self.keys_dir / "ca.pem"

    @property
    def ledger_path(self) -> Path:
        return self.home / "provenance" / "ledger.jsonl"

    def identity_key_value(self) -> str | None:
        return self.identity_key.get_secret_value() if self.identity_key else None
