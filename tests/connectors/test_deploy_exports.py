"""Placement exports from the export activity to the ad platform: stored in the asset store
and the catalog, verified one by one at the deploy gate, handed to the connector in the
AdSpec, and recorded by the sandbox platform. A stripped export is refused and left out.

Real parts: local ES256 keys, the sign stage's Signer, the export activity, the deploy gate
and an in-process sandbox platform.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from sandbox_helpers import ConnectorFactory
from temporalio.testing import ActivityEnvironment

from faceloop.connectors.activities import ConnectorActivities, ProvenanceGate
from faceloop.connectors.sandbox_platform.scenario import Scenario
from faceloop.errors import FaceloopError
from faceloop.guardrails.activities import GuardrailActivities, Signer
from faceloop.guardrails.provenance import Ledger, Provenance, init_keys
from faceloop.messages import (
    DecideInput,
    DecideOutput,
    DeployInput,
    ExportInput,
    GuardShipInput,
)
from faceloop.models import (
    Asset,
    AudienceSegment,
    Brief,
    CampaignConfig,
    Decision,
    ExportConfig,
    FaceParams,
    Variant,
)
from faceloop.playbooks.schema import load_playbook
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog

CID = "exports"
BRIEF = Brief(
    product="Lumen",
    message="Light that follows you",
    audience=[AudienceSegment(name="all")],
    markets=["DE"],
    budget_impressions=10_000,
)
CONFIG = CampaignConfig(variants_per_round=3, incumbents=1)


@dataclass
class Setup:
    store: AssetStore
    catalog: Catalog
    guard: GuardrailActivities
    gate: ProvenanceGate
    signer: Signer


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    keys = init_keys(tmp_path / "keys")
    store = AssetStore(tmp_path / "assets")
    catalog = Catalog(f"sqlite:///{tmp_path / 'faceloop.db'}")
    catalog.upsert_campaign(CID, BRIEF, CONFIG, "running")
    signer = Signer(
        Provenance(keys.chain, keys.key, keys.ca), Ledger(tmp_path / "ledger.jsonl"), "dwtDctSvd"
    )
    guard = GuardrailActivities(lambda pb: [], store, catalog, signer=lambda: signer)
    yield Setup(store, catalog, guard, ProvenanceGate(store, keys.ca, "dwtDctSvd"), signer)
    catalog.close()


def _generated(s: Setup, rgb: np.ndarray, n: int, decision: Decision | None) -> Variant:
    """Variant v<n> of the round with a generated 256 px image, catalogued."""
    aid, uri = s.store.put_image(rgb)
    v = Variant(
        variant_id=f"v{n}",
        campaign_id=CID,
        round=0,
        params=FaceParams(),
        seed=n,
        disclosure="AI-generated image",
        decision=decision,
        asset=Asset(
            asset_id=aid, uri=uri, width=256, height=256, generator="t", model_version="1", seed=n
        ),
    )
    s.catalog.upsert_variant(v)
    return v


def _approved(s: Setup) -> Variant:
    """A generated 256 px portrait, approved by the playbook."""
    import skimage.data

    rgb = cv2.resize(np.ascontiguousarray(skimage.data.astronaut()), (256, 256))
    return _generated(s, rgb, 0, Decision.deploy)


async def _export(s: Setup, v: Variant, export: ExportConfig) -> Variant:
    env = ActivityEnvironment()
    from faceloop.messages import VariantsPayload

    signed = await env.run(s.guard.sign, VariantsPayload(campaign_id=CID, round=0, variants=[v]))
    out = await env.run(
        s.guard.export,
        ExportInput(
            campaign_id=CID, round=0, variants=signed.variants, export=export, channels=["meta"]
        ),
    )
    (exported,) = out.variants
    s.catalog.upsert_variant(exported)
    return exported


async def test_exports_are_stored_catalogued_and_handed_to_the_connector(
    setup: Setup, connect: ConnectorFactory, smooth: Scenario
) -> None:
    v = await _export(setup, _approved(setup), ExportConfig())
    # meta's placements, JPEG by default, each stored under its own content hash
    assert [(e.placement, e.media_type) for e in v.exports] == [
        ("1:1", "image/jpeg"),
        ("4:5", "image/jpeg"),
        ("9:16", "image/jpeg"),
    ]
    for e in v.exports:
        assert not e.refused and e.manifest_ok and e.watermark_recall >= 29 / 32
        data = setup.store.get_bytes(e.uri)
        assert hashlib.sha256(data).hexdigest() == e.asset_id and e.uri.endswith(".jpg")
    stored = setup.catalog.get_variant("v0")
    assert stored is not None and stored.exports == v.exports
    assert v.asset is not None
    assert {e.asset_id for e in v.exports} <= set(setup.catalog.asset_ids_of_variants(["v0"]))
    (made,) = [e for e in setup.catalog.audit_entries(CID) if e.kind == "creative.exported"]
    assert made.payload["parent_asset_id"] == v.asset.asset_id
    # erasure finds the variant from any of its exports
    assert setup.catalog.variant_ids_for_assets([v.exports[2].asset_id]) == ["v0"]

    conn = connect(smooth)
    acts = ConnectorActivities(lambda name: conn, setup.catalog, setup.gate)
    out = await ActivityEnvironment().run(
        acts.deploy,
        DeployInput(
            campaign_id=CID, round=0, brief=BRIEF, config=CONFIG, live=[v], impressions=1_000
        ),
    )
    (live,) = out.live
    assert live.ad_id
    # the sandbox platform recorded the exports it received with the ad
    (ad,) = await conn.list_ads(CID)
    assert ad.placements == ["1:1 image/jpeg", "4:5 image/jpeg", "9:16 image/jpeg"]
    (deployed,) = [e for e in setup.catalog.audit_entries(CID) if e.kind == "ad.deployed"]
    assert deployed.payload["exports"] == ad.placements

    # the erasure tombstone blanks the exports' store paths with the variant's
    assert setup.catalog.tombstone_variants(["v0"]) == ["v0"]
    erased = setup.catalog.get_variant("v0")
    assert erased is not None and [e.uri for e in erased.exports] == ["", "", ""]


async def test_a_stripped_export_is_refused_by_the_gate_and_left_out(
    setup: Setup, connect: ConnectorFactory, smooth: Scenario
) -> None:
    v = await _export(setup, _approved(setup), ExportConfig(placements=["1:1", "9:16"]))
    story = next(e for e in v.exports if e.placement == "9:16")
    # the 9:16 file replaced by its own pixels re-encoded without the C2PA manifest (the
    # watermark survives: only the provenance check can tell)
    pixels = Image.open(io.BytesIO(setup.store.get_bytes(story.uri))).convert("RGB")
    buf = io.BytesIO()
    pixels.save(buf, format="JPEG", quality=95)
    setup.store.path_of(story.uri).write_bytes(buf.getvalue())
    assert v.asset is not None
    check = setup.gate.check_export("v0", v.asset, story)
    assert not check.servable
    assert "no C2PA manifest (stripped, or never signed)" in check.failures

    conn = connect(smooth)
    acts = ConnectorActivities(lambda name: conn, setup.catalog, setup.gate)
    await ActivityEnvironment().run(
        acts.deploy,
        DeployInput(
            campaign_id=CID, round=0, brief=BRIEF, config=CONFIG, live=[v], impressions=1_000
        ),
    )
    (ad,) = await conn.list_ads(CID)
    assert ad.placements == ["1:1 image/jpeg"]  # the creative and its intact export ship
    (refused,) = [e for e in setup.catalog.audit_entries(CID) if e.kind == "export.refused"]
    assert refused.payload["placement"] == "9:16" and "stripped" in refused.payload["reason"]


async def test_an_export_of_another_creative_is_refused(setup: Setup) -> None:
    """A valid, trusted export handed over as the export of a different signed file."""
    v = await _export(setup, _approved(setup), ExportConfig(placements=["1:1"]))
    (square,) = v.exports
    assert v.asset is not None
    other = v.asset.model_copy(update={"asset_id": "f" * 64})
    check = setup.gate.check_export("v0", other, square)
    assert any("not a transform of the signed creative" in f for f in check.failures)
    assert setup.gate.check_export("v0", v.asset, square).servable


async def test_a_refused_export_is_recorded_but_never_stored_or_sent(
    setup: Setup, connect: ConnectorFactory, smooth: Scenario
) -> None:
    v = await _export(setup, _approved(setup), ExportConfig(placements=["1:1"], jpeg_quality=15))
    (square,) = v.exports
    assert "watermark is lost" in square.refused and square.uri == ""
    stored = setup.catalog.get_variant("v0")
    assert stored is not None and stored.exports[0].refused == square.refused
    conn = connect(smooth)
    acts = ConnectorActivities(lambda name: conn, setup.catalog, setup.gate)
    await ActivityEnvironment().run(
        acts.deploy,
        DeployInput(
            campaign_id=CID, round=0, brief=BRIEF, config=CONFIG, live=[v], impressions=1_000
        ),
    )
    (ad,) = await conn.list_ads(CID)
    assert ad.placements == []


async def test_sign_and_export_in_one_activity(setup: Setup) -> None:
    """What a round runs since `sign-and-export-in-one`: the signed creative and its
    placement exports, stored and catalogued, each admitted by the deploy gate, as the sign
    and export activities one after the other make them."""
    v = _approved(setup)
    assert v.asset is not None
    out = await ActivityEnvironment().run(
        setup.guard.sign_and_export,
        ExportInput(campaign_id=CID, round=0, variants=[v], channels=["meta"]),
    )
    (shipped,) = out.variants
    assert shipped.asset is not None and shipped.asset.asset_id != v.asset.asset_id
    assert setup.gate.check("v0", shipped.asset).servable
    assert [e.placement for e in shipped.exports] == ["1:1", "4:5", "9:16"]
    for e in shipped.exports:
        assert not e.refused
        assert setup.gate.check_export("v0", shipped.asset, e).servable
    stored = setup.catalog.get_variant("v0")
    assert stored is not None and stored.exports == shipped.exports
    apart = await _export(setup, v, ExportConfig())
    assert [(e.placement, e.media_type) for e in apart.exports] == [
        (e.placement, e.media_type) for e in shipped.exports
    ]


def _second(s: Setup) -> Variant:
    """Another generated image of the round (flat grey), not decided yet."""
    return _generated(s, np.full((256, 256, 3), 128, np.uint8), 1, None)


def _escalates_v1(inp: DecideInput) -> DecideOutput:
    """FAKE decision: deploys every variant but v1, which it escalates."""
    decided = [
        v.model_copy(
            update={"decision": Decision.escalate if v.variant_id == "v1" else Decision.deploy}
        )
        for v in inp.variants
    ]
    return DecideOutput(campaign_id=inp.campaign_id, round=inp.round, variants=decided)


async def test_guard_decide_and_ship_signs_only_what_the_playbook_deploys(setup: Setup) -> None:
    """What a round runs since `guard-decide-and-ship-in-one`: the decided batch, and the
    deployed variants signed and exported as `sign_and_export` makes them; an escalated
    variant is left unsigned for the workflow to sign once a reviewer approves it."""
    v0 = _approved(setup).model_copy(update={"decision": None})
    v1 = _second(setup)
    guard = GuardrailActivities(
        lambda pb: [], setup.store, setup.catalog, signer=lambda: setup.signer, decide=_escalates_v1
    )
    out = await ActivityEnvironment().run(
        guard.guard_decide_and_ship,
        GuardShipInput(
            decide=DecideInput(
                campaign_id=CID, round=0, playbook=load_playbook(), variants=[v0, v1]
            ),
            export=ExportInput(campaign_id=CID, round=0, variants=[], channels=["meta"]),
        ),
    )
    assert [(v.variant_id, v.decision) for v in out.decided.variants] == [
        ("v0", Decision.deploy),
        ("v1", Decision.escalate),
    ]
    (shipped,) = out.shipped.variants
    assert shipped.variant_id == "v0" and shipped.asset is not None and v0.asset is not None
    assert shipped.asset.asset_id != v0.asset.asset_id
    assert setup.gate.check("v0", shipped.asset).servable
    assert [e.placement for e in shipped.exports] == ["1:1", "4:5", "9:16"]
    assert all(setup.gate.check_export("v0", shipped.asset, e).servable for e in shipped.exports)
    # the escalated one: still its generated file, which the gate does not serve
    (escalated,) = [v for v in out.decided.variants if v.variant_id == "v1"]
    assert escalated.asset == v1.asset and not escalated.exports
    assert v1.asset is not None and not setup.gate.check("v1", v1.asset).servable

    # nothing deployed: nothing signed
    everything_escalated = GuardrailActivities(
        lambda pb: [],
        setup.store,
        setup.catalog,
        signer=lambda: setup.signer,
        decide=lambda inp: _escalates_v1(inp.model_copy(update={"variants": [v1]})),
    )
    out = await ActivityEnvironment().run(
        everything_escalated.guard_decide_and_ship,
        GuardShipInput(
            decide=DecideInput(campaign_id=CID, round=0, playbook=load_playbook(), variants=[v1]),
            export=ExportInput(campaign_id=CID, round=0, variants=[]),
        ),
    )
    assert out.shipped.variants == [] and [v.variant_id for v in out.decided.variants] == ["v1"]


async def test_guard_decide_and_ship_needs_the_decision(setup: Setup) -> None:
    """A worker whose guardrail activities were built without `decide` cannot serve it: a
    retryable deployment error, not a batch shipped undecided."""
    with pytest.raises(FaceloopError, match="without decide"):
        await ActivityEnvironment().run(
            setup.guard.guard_decide_and_ship,
            GuardShipInput(
                decide=DecideInput(
                    campaign_id=CID, round=0, playbook=load_playbook(), variants=[_second(setup)]
                ),
                export=ExportInput(campaign_id=CID, round=0, variants=[]),
            ),
        )
