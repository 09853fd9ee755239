"""C2PA provenance and the sign stage: created manifest, transform chain, trust, tamper."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceloop.guardrails.provenance import (
    ASSET_LABEL,
    TRAINED,
    Provenance,
    ProvenanceGuardrail,
    asset_id_in,
    init_keys,
)
from faceloop.models import Verdict


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def prov(tmp_path_factory: pytest.TempPathFactory) -> Provenance:
    keys = init_keys(tmp_path_factory.mktemp("keys"))
    return Provenance(keys.chain, keys.key, keys.ca)


AID = "ab" * 32


def test_created_manifest_is_trusted_and_says_ai(prov: Provenance, astronaut: np.ndarray) -> None:
    signed = prov.sign_created(_png(astronaut), AID, "dcgan", "v1", "AI-generated person")
    report = prov.read(signed)
    assert report["state"] == "Trusted", report["failures"]
    assert asset_id_in(report) == AID
    (m,) = report["manifests"].values()
    labels = {a["label"]: a["data"] for a in m["assertions"]}
    (created,) = labels["c2pa.actions.v2"]["actions"]
    assert created["action"] == "c2pa.created" and created["digitalSourceType"] == TRAINED
    assert created["softwareAgent"] == {"name": "dcgan", "version": "v1"}
    assert labels["org.faceloop.ai_disclosure"]["ai_generated"] is True
    assert labels[ASSET_LABEL]["asset_id"] == AID
    # the pixels are untouched by signing
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(signed)).convert("RGB")), astronaut)


def test_a_transform_keeps_the_chain(prov: Provenance, astronaut: np.ndarray) -> None:
    signed = prov.sign_created(_png(astronaut), AID, "dcgan", "v1")
    small = _png(np.ascontiguousarray(astronaut[::2, ::2]))
    resized = prov.sign_transform(signed, small, "c2pa.resized", {"width": 256, "height": 256})
    report = prov.read(resized)
    assert report["state"] == "Trusted", report["failures"]
    assert len(report["manifests"]) == 2  # the parent's manifest travels as the ingredient's
    assert asset_id_in(report) == AID
    active = report["manifests"][report["active_manifest"]]
    assert active["ingredients"][0]["relationship"] == "parentOf"


def test_tampered_unsigned_and_untrusted(
    prov: Provenance, astronaut: np.ndarray, tmp_path: Path
) -> None:
    signed = prov.sign_created(_png(astronaut), AID, "dcgan", "v1")
    tampered = bytearray(signed)
    tampered[-500] ^= 0xFF  # a pixel-data byte
    bad = prov.read(bytes(tampered))
    assert bad["state"] == "Invalid" and bad["failures"]
    assert prov.read(_png(astronaut))["state"] == "absent"
    stranger = init_keys(tmp_path / "other")
    other = Provenance(None, None, stranger.ca)  # trusts another CA only
    assert other.read(signed)["state"] == "Valid"  # signature fine, signer not trusted
    g = ProvenanceGuardrail(prov)
    assert g.check_bytes(bytes(tampered), "image/png").verdict is Verdict.block
    assert g.check_bytes(signed, "image/png").verdict is Verdict.passed


def test_keys_are_not_overwritten_silently(tmp_path: Path) -> None:
    from faceloop.errors import FaceloopError

    init_keys(tmp_path)
    assert (tmp_path / "signer.key").stat().st_mode & 0o077 == 0
    with pytest.raises(FaceloopError, match="--force"):
        init_keys(tmp_path)
