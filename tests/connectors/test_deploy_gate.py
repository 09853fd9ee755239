"""Do-not-serve: the deploy activity refuses a creative whose C2PA manifest does not verify
or whose watermark does not decode, records why, and deploys the rest of the batch.

Real signing throughout: local ES256 keys made in a tmp dir, the sign stage's Signer
(dwtDctSvd watermark + C2PA manifest), and an in-process sandbox platform.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from sandbox_helpers import ConnectorFactory
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from faceloop.connectors.activities import REFUSED, ConnectorActivities, ProvenanceGate
from faceloop.connectors.sandbox_platform.scenario import Scenario
from faceloop.errors import FaceloopError
from faceloop.guardrails.activities import Signer
from faceloop.guardrails.provenance import Ledger, Provenance, check_creative, init_keys
from faceloop.messages import DeployInput
from faceloop.models import (
    Asset,
    AudienceSegment,
    Brief,
    CampaignConfig,
    Decision,
    FaceParams,
    Variant,
)
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog

CID = "gate"
BRIEF = Brief(
    product="Lumen",
    message="Light that follows you",
    audience=[AudienceSegment(name="young", share=0.5), AudienceSegment(name="old", share=0.5)],
    markets=["DE"],
    budget_impressions=10_000,
)
CONFIG = CampaignConfig(variants_per_round=3, incumbents=2)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    """Three 256 px photos (the smallest size a watermark fits in: quick to mark and read)."""
    import skimage.data

    images = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    return [cv2.resize(np.ascontiguousarray(im), (256, 256)) for im in images]


@dataclass
class Setup:
    store: AssetStore
    catalog: Catalog
    signer: Signer
    gate: ProvenanceGate
    keys: Path


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    keys = init_keys(tmp_path / "keys")
    store = AssetStore(tmp_path / "assets")
    catalog = Catalog(f"sqlite:///{tmp_path / 'faceloop.db'}")
    catalog.upsert_campaign(CID, BRIEF, CONFIG, "running")
    signer = Signer(
        Provenance(keys.chain, keys.key, keys.ca), Ledger(tmp_path / "ledger.jsonl"), "dwtDctSvd"
    )
    yield Setup(store, catalog, signer, ProvenanceGate(store, keys.ca, "dwtDctSvd"), tmp_path)
    catalog.close()


def _variant(s: Setup, n: int, data: bytes) -> Variant:
    aid, uri = s.store.put_bytes(data)
    asset = Asset(
        asset_id=aid, uri=uri, width=256, height=256, generator="dcgan", model_version="t", seed=n
    )
    return Variant(
        variant_id=f"v{n}",
        campaign_id=CID,
        round=0,
        params=FaceParams(),
        seed=n,
        asset=asset,
        decision=Decision.deploy,
        disclosure="AI-generated image",
    )


def _generated(s: Setup, n: int, rgb: np.ndarray) -> Asset:
    aid, uri = s.store.put_image(rgb)
    return Asset(
        asset_id=aid, uri=uri, width=256, height=256, generator="dcgan", model_version="t", seed=n
    )


def signed(s: Setup, n: int, rgb: np.ndarray) -> bytes:
    """What the sign stage writes for variant v{n}: watermark, then the C2PA manifest."""
    return s.signer.sign(rgb, _generated(s, n, rgb), "AI-generated image", CID, f"v{n}")


def stripped(s: Setup, n: int, rgb: np.ndarray) -> bytes:
    """The signed creative's pixels re-encoded without its manifest (watermark intact)."""
    return _png(_pixels(signed(s, n, rgb)))


def watermark_destroyed(s: Setup, n: int, rgb: np.ndarray) -> bytes:
    """The signed pixels blurred and noised until the watermark is gone, then signed again
    with the real keys for the same asset and variant: only the watermark can tell."""
    marked = _pixels(signed(s, n, rgb))
    noise = np.random.default_rng(n).normal(0, 25, marked.shape)
    ruined = np.clip(cv2.GaussianBlur(marked, (9, 9), 4) + noise, 0, 255).astype(np.uint8)
    generated = _generated(s, n, rgb)
    return s.signer.provenance.sign_created(
        _png(ruined),
        asset_id=generated.asset_id,
        generator="dcgan",
        model_version="t",
        extra={"campaign_id": CID, "variant_id": f"v{n}"},
    )


def _check(s: Setup, v: Variant) -> list[str]:
    assert v.asset is not None
    data = s.store.get_bytes(v.asset.uri)
    reader = s.gate.reader()
    return check_creative(data, v.asset.asset_id, v.variant_id, reader, "dwtDctSvd").failures


def test_an_intact_signed_creative_passes(setup: Setup, faces: list[np.ndarray]) -> None:
    v = _variant(setup, 0, signed(setup, 0, faces[0]))
    assert _check(setup, v) == []
    assert v.asset is not None
    assert setup.gate.admit(v.variant_id, v.asset).evidence["watermark_bit_errors"] == 0


def test_a_stripped_copy_is_refused(setup: Setup, faces: list[np.ndarray]) -> None:
    v = _variant(setup, 0, stripped(setup, 0, faces[0]))
    assert _check(setup, v) == ["no C2PA manifest (stripped, or never signed)"]
    assert v.asset is not None
    with pytest.raises(ApplicationError) as info:
        setup.gate.admit(v.variant_id, v.asset)
    err = info.value
    assert err.type == REFUSED and err.non_retryable
    assert "v0" in err.message and v.asset.asset_id in err.message


def test_a_destroyed_watermark_is_refused_though_the_manifest_is_trusted(
    setup: Setup, faces: list[np.ndarray]
) -> None:
    v = _variant(setup, 0, watermark_destroyed(setup, 0, faces[0]))
    (failure,) = _check(setup, v)
    assert failure.startswith("the watermark decodes to") and "destroyed" in failure


def test_untrusted_signer_other_variant_and_changed_bytes_are_refused(
    setup: Setup, faces: list[np.ndarray], tmp_path: Path
) -> None:
    stranger = init_keys(tmp_path / "stranger")
    other = Signer(
        Provenance(stranger.chain, stranger.key), Ledger(tmp_path / "l2.jsonl"), "dwtDctSvd"
    )
    rgb = faces[0]
    v = _variant(setup, 0, other.sign(rgb, _generated(setup, 0, rgb), "AI", CID, "v0"))
    assert _check(setup, v) == [
        "the C2PA manifest is not signed by a trusted signer (trust anchors)"
    ]
    # a trusted creative of v1 handed to v0
    swapped = _variant(setup, 1, signed(setup, 1, faces[1])).model_copy(update={"variant_id": "v0"})
    assert _check(setup, swapped) == ["the C2PA manifest was signed for variant v1, not v0"]
    # the file under an asset id replaced in the store after signing
    good = _variant(setup, 2, signed(setup, 2, faces[2]))
    assert good.asset is not None
    setup.store.path_of(good.asset.uri).write_bytes(stripped(setup, 2, faces[2]))
    failures = _check(setup, good)
    assert failures[0].endswith("changed after signing") and len(failures) == 2


def test_no_trust_anchors_is_a_configuration_error_not_a_refusal(
    setup: Setup, faces: list[np.ndarray]
) -> None:
    gate = ProvenanceGate(setup.store, setup.keys / "missing-ca.pem", "dwtDctSvd")
    v = _variant(setup, 0, signed(setup, 0, faces[0]))
    assert v.asset is not None
    with pytest.raises(FaceloopError, match="FACELOOP_C2PA_TRUST_ANCHORS"):
        gate.admit(v.variant_id, v.asset)


async def test_deploy_refuses_the_bad_creatives_and_deploys_the_rest(
    setup: Setup, faces: list[np.ndarray], connect: ConnectorFactory, smooth: Scenario
) -> None:
    conn = connect(smooth)
    acts = ConnectorActivities(lambda name: conn, setup.catalog, setup.gate)
    batch = [
        _variant(setup, 0, stripped(setup, 0, faces[0])),
        _variant(setup, 1, signed(setup, 1, faces[1])),
        _variant(setup, 2, watermark_destroyed(setup, 2, faces[2])),
    ]
    for v in batch:
        setup.catalog.upsert_variant(v)
    inp = DeployInput(
        campaign_id=CID, round=0, brief=BRIEF, config=CONFIG, live=batch, impressions=1_000
    )
    out = await ActivityEnvironment().run(acts.deploy, inp)
    (live,) = out.live
    assert live.variant_id == "v1" and live.live and live.ad_id
    assert set(out.allocation) == {"v1"}
    # what the workflow tells the optimizer as failed
    assert set(out.refused) == {"v0", "v2"}
    ads = await conn.list_ads(CID)
    assert [a.ad_id for a in ads] == [live.ad_id]

    refused = {e.subject: e for e in setup.catalog.audit_entries(CID) if e.kind == "ad.refused"}
    assert set(refused) == {"v0", "v2"}
    assert "no C2PA manifest" in refused["v0"].payload["reason"]
    assert "watermark" in refused["v2"].payload["reason"]
    assert refused["v2"].payload["c2pa"] == "Trusted"
    for vid in ("v0", "v2"):
        stored = setup.catalog.get_variant(vid)
        assert stored is not None
        assert stored.decision is Decision.block and not stored.live and stored.ad_id is None
        assert stored.decision_reason == refused[vid].payload["reason"]

    # a retry of the activity (Temporal retries after a crash) refuses nothing twice and
    # creates no second ad
    again = await ActivityEnvironment().run(acts.deploy, inp)
    assert [v.variant_id for v in again.live] == ["v1"] and again.live[0].ad_id == live.ad_id
    assert again.refused == out.refused  # still told failed after a retry
    kinds = [e.kind for e in setup.catalog.audit_entries(CID)]
    assert kinds.count("ad.refused") == 2 and kinds.count("ad.deployed") == 1
    assert len(await conn.list_ads(CID)) == 1


@pytest.mark.parametrize("platform", ["meta", "google_ads", "tiktok"])
async def test_the_gate_stands_before_every_platform_connector(
    setup: Setup, faces: list[np.ndarray], platform: str
) -> None:
    """The same do-not-serve for Meta, Google Ads and TikTok (each on its FAKE platform) as
    for the sandbox above: the stripped copy never reaches the platform, counted on the
    platform's side; the intact creative ships."""
    from platforms import GOOGLE, TIKTOK

    from faceloop.connectors.fakes.google_ads import GoogleAdsFake
    from faceloop.connectors.fakes.meta import MetaFake, connector_for
    from faceloop.connectors.fakes.tiktok import TikTokFake

    fake: Any
    if platform == "meta":
        fake = MetaFake()
        conn: Any = connector_for(fake)
    elif platform == "google_ads":
        fake = GoogleAdsFake()
        conn = GOOGLE.connect(fake)
    else:
        fake = TikTokFake()
        conn = TIKTOK.connect(fake)
    batch = [
        _variant(setup, 0, stripped(setup, 0, faces[0])),
        _variant(setup, 1, signed(setup, 1, faces[1])),
    ]
    for v in batch:
        setup.catalog.upsert_variant(v)
    acts = ConnectorActivities(lambda name: conn, setup.catalog, setup.gate)
    try:
        out = await ActivityEnvironment().run(
            acts.deploy,
            DeployInput(
                campaign_id=CID, round=0, brief=BRIEF, config=CONFIG, live=batch, impressions=1_000
            ),
        )
    finally:
        await conn.aclose()
    assert set(out.refused) == {"v0"} and [v.variant_id for v in out.live] == ["v1"]
    bad, good = (v.asset.asset_id for v in batch if v.asset is not None)
    created = [name for _, name in fake.ledger.creates]
    assert not [n for n in created if bad in n]  # nothing of the stripped copy was created
    assert [n for n in created if good in n]
