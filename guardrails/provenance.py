"""C2PA provenance (c2pa-python): local ES256 keys, signing, transform chains, verification.

`init_keys` makes a local CA and a signing certificate (cryptography) for the embedded
default; production points FACELOOP_C2PA_CERT / _KEY / _TRUST_ANCHORS at real ones.
Every generated asset gets a manifest with a `c2pa.created` action (digitalSourceType
trainedAlgorithmicMedia, the generator and model version, the asset id) and an AI-disclosure
assertion; every later transform signs a new manifest whose parent ingredient is the previous
file, so the chain never breaks. A ledger (JSON lines) maps watermark payloads to asset ids.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from faceloop.errors import FaceloopError
from faceloop.models import CheckResult, Verdict
from faceloop.storage.files import private_dir

from .base import GuardContext, Guardrail

if TYPE_CHECKING:  # the watermark module imports OpenCV: only where an image is read
    from .watermark import Method

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
DISCLOSURE_LABEL = "org.faceloop.ai_disclosure"
ASSET_LABEL = "org.faceloop.asset"
_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class KeyPaths:
    ca: Path
    chain: Path
    key: Path


def init_keys(folder: Path, force: bool = False, days: int = 825) -> KeyPaths:
    """A local ES256 CA (ca.pem) and a signing cert issued by it (signer-chain.pem, signer.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    paths = KeyPaths(folder / "ca.pem", folder / "signer-chain.pem", folder / "signer.key")
    if paths.key.exists() and not force:
        raise FaceloopError(
            f"signing keys already exist in {folder}; pass --force to replace them (assets "
            "signed with the old keys then verify only with the old ca.pem as a trust anchor)"
        )
    private_dir(folder)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "faceloop (local)"),
            ]
        )

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("faceloop local CA"))
        .issuer_name(name("faceloop local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days * 2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("faceloop signer"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        # C2PA requires an EKU on signing certs; emailProtection is on its allowed list
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths.ca.write_bytes(ca.public_bytes(pem))
    paths.chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_bytes = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(paths.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    # the CA key is not needed after issuing: not keeping it means it cannot leak
    return paths


# --------------------------------------------------------------------------- sign / read


class Provenance:
    """Signs and reads C2PA manifests with one signing identity and one trust list."""

    def __init__(self, chain: Path | None, key: Path | None, anchors: Path | None = None) -> None:
        """chain and key may be None for a reader that never signs."""
        self._chain = self._key = b""
        if chain is not None and key is not None:
            for what, p in (("signing certificate chain", chain), ("signing key", key)):
                if not p.is_file():
                    raise FaceloopError(
                        f"C2PA {what} {p} is missing; run `faceloop keys init` for local keys "
                        "or set FACELOOP_C2PA_CERT / FACELOOP_C2PA_KEY to production ones"
                    )
            self._chain = chain.read_bytes()
            self._key = key.read_bytes()
        self._anchors = anchors.read_text() if anchors and anchors.is_file() else None
        self._local = threading.local()

    def _context(self) -> Any:
        import c2pa

        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            conf: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
            if self._anchors:
                conf["verify"] = {"verify_trust": True}
                conf["trust"] = {"trust_anchors": self._anchors}
            ctx = c2pa.Context(c2pa.Settings.from_dict(conf))
            self._local.ctx = ctx
        return ctx

    def _signer(self) -> Any:
        import c2pa

        if not self._key:
            raise FaceloopError(
                "this provenance reader has no signing key; run `faceloop keys init` or set "
                "FACELOOP_C2PA_CERT and FACELOOP_C2PA_KEY"
            )
        return c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, self._chain, self._key, None)
        )

    def _sign(
        self,
        manifest: dict[str, Any],
        png: bytes,
        parent: bytes | None,
        media_type: str = "image/png",
        parent_media_type: str = "image/png",
    ) -> bytes:
        import c2pa

        builder = c2pa.Builder.from_json(manifest, self._context())
        if parent is not None:
            builder.add_ingredient(
                {
                    "title": "parent" + _EXT.get(parent_media_type, ""),
                    "relationship": "parentOf",
                    "label": "parent",
                },
                parent_media_type,
                io.BytesIO(parent),
            )
        out = io.BytesIO()
        try:
            builder.sign(self._signer(), media_type, io.BytesIO(png), out)
        except c2pa.C2paError as exc:
            raise FaceloopError(f"C2PA signing failed: {exc}") from exc
        return out.getvalue()

    def sign_created(
        self,
        png: bytes,
        asset_id: str,
        generator: str,
        model_version: str,
        disclosure: str = "AI-generated image",
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        """The PNG with a manifest saying it was made by a trained model (c2pa.created)."""
        manifest = {
            "claim_generator_info": [{"name": "faceloop", "version": _version()}],
            "title": f"{asset_id}.png",
            "assertions": [
                {
                    "label": "c2pa.actions.v2",
                    "data": {
                        "actions": [
                            {
                                "action": "c2pa.created",
                                "digitalSourceType": TRAINED,
                                "softwareAgent": {"name": generator, "version": model_version},
                                "parameters": {"asset_id": asset_id},
                            }
                        ]
                    },
                },
                {
                    "label": DISCLOSURE_LABEL,
                    "data": {"ai_generated": True, "text": disclosure},
                },
                {"label": ASSET_LABEL, "data": {"asset_id": asset_id, **(extra or {})}},
            ],
        }
        return self._sign(manifest, png, None)

    def sign_transform(
        self,
        parent: bytes,
        png: bytes,
        action: str,
        parameters: dict[str, Any],
        *,
        more_actions: list[dict[str, Any]] | None = None,
        media_type: str = "image/png",
        parent_media_type: str = "image/png",
        asset: dict[str, Any] | None = None,
    ) -> bytes:
        """A transformed copy (resize, channel export ...) signed with the parent as ingredient.

        `png` is the transformed file in `media_type` (PNG, JPEG or WebP: C2PA embeds the
        manifest without re-encoding the pixels). `more_actions` follow `action` in the
        actions assertion; `asset` (the faceloop asset assertion: asset and variant ids) lets
        the deploy gate tie the copy to the creative it was made from.
        """
        actions: list[dict[str, Any]] = [
            {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
            {"action": action, "parameters": parameters},
            *(more_actions or []),
        ]
        assertions: list[dict[str, Any]] = [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": DISCLOSURE_LABEL, "data": {"ai_generated": True}},
        ]
        if asset is not None:
            assertions.append({"label": ASSET_LABEL, "data": asset})
        manifest = {
            "claim_generator_info": [{"name": "faceloop", "version": _version()}],
            "title": "transformed" + _EXT.get(media_type, ""),
            "assertions": assertions,
        }
        return self._sign(manifest, png, parent, media_type, parent_media_type)

    def read(self, data: bytes, media_type: str = "image/png") -> dict[str, Any]:
        """{"state": Trusted|Valid|Invalid|absent, "manifests": ..., "failures": [...]}."""
        import c2pa

        try:
            reader = c2pa.Reader(media_type, io.BytesIO(data), context=self._context())
            report = json.loads(reader.json())
        except c2pa.C2paError as exc:
            text = str(exc)
            if (
                "ManifestNotFound" in type(exc).__name__
                or "no JUMBF" in text
                or "not found" in text.lower()
            ):
                return {"state": "absent", "manifests": {}, "failures": []}
            return {"state": "Invalid", "manifests": {}, "failures": [text]}
        results = report.get("validation_results") or {}
        failures = [
            f"{f.get('code')}: {f.get('explanation', '')}"
            for f in (results.get("activeManifest") or {}).get("failure", [])
        ]
        return {
            "state": report.get("validation_state", "Invalid"),
            "active_manifest": report.get("active_manifest"),
            "manifests": report.get("manifests", {}),
            "failures": failures,
        }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("faceloop")
    except PackageNotFoundError:
        return "0"


def asset_id_in(report: dict[str, Any]) -> str | None:
    """The faceloop asset id recorded in the active manifest or any of its ancestors."""
    for m in report.get("manifests", {}).values():
        for a in m.get("assertions", []):
            if a.get("label") == ASSET_LABEL:
                return str(a.get("data", {}).get("asset_id"))
    return None


# --------------------------------------------------------------------------- serve check


@dataclass(frozen=True)
class CreativeCheck:
    """What the deploy boundary found in one creative: `failures` empty means it may ship."""

    failures: list[str]
    evidence: dict[str, Any]

    @property
    def servable(self) -> bool:
        return not self.failures


def check_creative(
    data: bytes,
    asset_id: str,
    variant_id: str,
    reader: Provenance,
    method: Method,
    media_type: str = "image/png",
    parent_asset_id: str | None = None,
) -> CreativeCheck:
    """Whether these bytes are the signed creative of `variant_id` as the sign stage wrote it.

    With `parent_asset_id`, the bytes are a placement export (guardrails/export.py) and its
    manifest must also be a transform of that signed file: a parentOf ingredient, and the
    faceloop asset assertion naming it as the parent.

    Four things must hold: the bytes hash to `asset_id` (the store is content-addressed, so
    anything else was changed after signing); the C2PA manifest is Trusted by the reader's
    anchors (C2PA also checks its hash binding to the pixels); the manifest was signed for
    this variant; and the invisible watermark decodes within MATCH_BITS of the payload of the
    asset id the manifest names (the image as generated, before marking). Without a trusted
    manifest there is no payload to expect, and the C2PA failure already refuses the file.
    """
    import hashlib

    from .imageio import BadImageError, decode_image
    from .watermark import MATCH_BITS, MIN_PIXELS, bit_errors, decode, payload_for

    failures: list[str] = []
    evidence: dict[str, Any] = {}
    digest = hashlib.sha256(data).hexdigest()
    if digest != asset_id:
        failures.append(
            f"the stored bytes hash to {digest}, not to the asset id: changed after signing"
        )
    report = reader.read(data, media_type)
    state = report["state"]
    evidence["c2pa"] = state
    signed_for: dict[str, Any] = {}
    if state == "Trusted":
        active = report["manifests"].get(report.get("active_manifest"), {})
        for a in active.get("assertions", []):
            if a.get("label") == ASSET_LABEL:
                signed_for = a.get("data", {})
        if not signed_for.get("asset_id"):
            failures.append("the C2PA manifest names no faceloop asset (not from the sign stage)")
        if signed_for.get("variant_id") not in (None, variant_id):
            failures.append(
                f"the C2PA manifest was signed for variant {signed_for['variant_id']}, "
                f"not {variant_id}"
            )
        if parent_asset_id is not None:
            parents = [
                i for i in active.get("ingredients", []) if i.get("relationship") == "parentOf"
            ]
            if not parents or signed_for.get("parent_asset_id") != parent_asset_id:
                failures.append(
                    f"the C2PA manifest is not a transform of the signed creative "
                    f"{parent_asset_id} (parent named: {signed_for.get('parent_asset_id')})"
                )
    elif state == "absent":
        failures.append("no C2PA manifest (stripped, or never signed)")
    elif state == "Valid":
        failures.append("the C2PA manifest is not signed by a trusted signer (trust anchors)")
    else:
        failures.append("the C2PA manifest does not verify: " + "; ".join(report["failures"][:3]))
    try:
        rgb = decode_image(data, f"asset {asset_id} of {variant_id}")
    except BadImageError as exc:
        failures.append(f"not a decodable image: {exc.problem}")
        return CreativeCheck(failures, evidence)
    if rgb.shape[0] * rgb.shape[1] < MIN_PIXELS:
        failures.append(f"{rgb.shape[1]}x{rgb.shape[0]} is too small to carry a watermark")
        return CreativeCheck(failures, evidence)
    decoded = decode(rgb, method)
    evidence["watermark"] = decoded
    generated = signed_for.get("asset_id")
    if generated:
        expected = payload_for(str(generated))
        errors = bit_errors(decoded, expected)
        evidence |= {"watermark_expected": expected, "watermark_bit_errors": errors}
        if errors > MATCH_BITS:
            failures.append(
                f"the watermark decodes to {decoded}, {errors} bits from the {expected} "
                f"signed for asset {generated} (at most {MATCH_BITS}): removed or destroyed"
            )
    return CreativeCheck(failures, evidence)


# --------------------------------------------------------------------------- ledger


class Ledger:
    """Watermark payload -> the asset ids it stands for (JSON lines, append-only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def lookup(self, payload: str, max_errors: int = 3) -> list[dict[str, Any]]:
        from .watermark import bit_errors

        seen: dict[str, dict[str, Any]] = {}
        for e in self.entries():
            errors = bit_errors(payload, e["payload"])
            if errors <= max_errors:
                seen[e["signed_asset_id"]] = {**e, "bit_errors": errors}
        return sorted(seen.values(), key=lambda e: e["bit_errors"])


class ProvenanceGuardrail(Guardrail):
    """Reads the file's C2PA manifest: absent passes (signing comes later), a broken or
    tampered one blocks. Needs the encoded bytes, so it judges via `check_bytes`."""

    name: ClassVar[str] = "provenance"

    def __init__(self, provenance: Provenance | None) -> None:
        self.provenance = provenance

    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        return self.result(Verdict.passed, 0.0, {"state": "absent", "note": "pixels only"})

    def check_bytes(self, data: bytes, media_type: str) -> CheckResult:
        if self.provenance is None:
            return self.result(
                Verdict.passed, 0.0, {"state": "unchecked", "note": "no trust configuration"}
            )
        report = self.provenance.read(data, media_type)
        state = report["state"]
        evidence: dict[str, object] = {
            "state": state,
            "asset_id": asset_id_in(report),
            "failures": report["failures"],
            "manifests": len(report["manifests"]),
        }
        if state == "Invalid":
            evidence["reason"] = (
                "C2PA manifest does not validate (tampered or broken): "
                + "; ".join(report["failures"][:3])
            )
            return self.result(Verdict.block, 0.0, evidence)
        return self.result(Verdict.passed, {"Trusted": 1.0, "Valid": 0.5}.get(state, 0.0), evidence)
