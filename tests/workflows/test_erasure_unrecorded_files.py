"""Erasure finds every file written for a variant, not only the ones the catalog still names.

A retried `sign_and_export` signs again, so its signed copy and exports are new files under
new ids, and the catalog's export rows are replaced by the retry's; an attempt killed between
writing a file and recording it leaves a file that no row names at all; a retried generation
on a GPU renders other pixels than the killed attempt. Each such file shows the subject's
face. The test makes all three happen with the real activities (signer, watermark, exporter,
catalog, asset store), checks that the store then holds files no other record names, erases
the campaign (or the asset) and counts the files left on disk. A report killed half-way
is erased with its thumbnails too.

Fakes: the generator (`GpuLikeGenerator`: a real backend cannot be made to render other
pixels on cue) and the perception it needs; the "kill" is an exception raised once at the
point a worker could die.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from faceloop.connectors.base import AdConnector
from faceloop.erasure import ErasureInput
from faceloop.generators.activities import GeneratorActivities
from faceloop.generators.base import GenerationRequest, Generator, Progress
from faceloop.guardrails.activities import GuardrailActivities, Signer
from faceloop.guardrails.provenance import Ledger, Provenance, init_keys
from faceloop.messages import ExportInput, GenerateInput
from faceloop.models import (
    AudienceSegment,
    Brief,
    CampaignConfig,
    Decision,
    ExportConfig,
    FaceParams,
    Variant,
)
from faceloop.playbooks.schema import FidelitySettings
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog
from faceloop.workflows.erasure_activities import ErasureActivities

CID = "orphans"
BRIEF = Brief(
    product="Lumen",
    message="Light that follows you",
    audience=[AudienceSegment(name="all")],
    markets=["DE"],
    budget_impressions=10_000,
)


class Killed(Exception):
    """A worker dying at this point (the activity's attempt ends here)."""


class GpuLikeGenerator(Generator):
    """A fake backend whose every call renders other pixels for the same seed, as a GPU's
    non-deterministic kernels can: the retry of a killed generation stores a new file."""

    name = "fake-gpu"
    model_version = "fake-1"

    def __init__(self) -> None:
        self.calls = 0

    def generate(
        self, requests: list[GenerationRequest], progress: Progress | None = None
    ) -> list[np.ndarray]:
        import skimage.data

        self.calls += 1
        face = cv2.resize(np.ascontiguousarray(skimage.data.astronaut()), (256, 256))
        out = []
        for r in requests:
            img = face.copy()
            img[0, 0] = (r.seed % 251, self.calls, 0)  # one pixel per call: another file
            out.append(img)
        return out


@dataclass
class World:
    tmp: Path
    store: AssetStore
    catalog: Catalog
    signer: Signer
    guard: GuardrailActivities
    gen: GeneratorActivities


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    keys = init_keys(tmp_path / "keys")
    store = AssetStore(tmp_path / "assets")
    url = (
        f"sqlite:///{tmp_path / 'faceloop.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    catalog = Catalog(url)
    config = CampaignConfig(variants_per_round=3, incumbents=1)
    catalog.upsert_campaign(CID, BRIEF, config, "running")
    signer = Signer(
        Provenance(keys.chain, keys.key, keys.ca), Ledger(tmp_path / "ledger.jsonl"), "dwtDctSvd"
    )
    guard = GuardrailActivities(lambda pb: [], store, catalog, signer=lambda: signer)
    gen = GeneratorActivities(GpuLikeGenerator(), store, catalog)
    yield World(tmp_path, store, catalog, signer, guard, gen)
    catalog.close()


def _files(w: World) -> set[str]:
    """Every file under the asset store's folder, by name (`<asset id>.<suffix>`)."""
    return {p.name for p in (w.tmp / "assets").rglob("*") if p.is_file()}


def _named(w: World) -> set[str]:
    """The files the catalog's variant and export rows and the signing ledger name."""
    ids = {v.asset.asset_id for v in w.catalog.variants(CID) if v.asset}
    ids |= {e.asset_id for v in w.catalog.variants(CID) for e in v.exports}
    for e in w.signer.ledger.entries():
        ids |= {str(e.get("asset_id")), str(e.get("signed_asset_id"))}
    return {f for f in _files(w) if f.split(".", 1)[0] in ids}


def _once(obj: Any, name: str) -> None:
    """The next call of obj.name dies; later calls run."""
    real = getattr(obj, name)
    state = {"left": 1}

    def dying(*args: Any, **kwargs: Any) -> Any:
        if state["left"]:
            state["left"] -= 1
            raise Killed(f"worker killed in {name}")
        return real(*args, **kwargs)

    setattr(obj, name, dying)


async def _campaign_round(w: World) -> list[Variant]:
    """Generate two variants (the first attempt killed before the catalog records the
    second image) and sign and export them (the first attempt killed before the signing
    ledger records a copy, the second before the catalog records the exports)."""
    env = ActivityEnvironment()
    variants = [
        Variant(variant_id=f"v{i}", campaign_id=CID, round=0, params=FaceParams(), seed=i)
        for i in range(2)
    ]
    inp = GenerateInput(
        campaign_id=CID,
        round=0,
        size=256,
        variants=variants,
        fidelity=FidelitySettings(enforce=False),
    )
    upsert = w.catalog.upsert_variant
    calls = {"n": 0}

    def upsert_dies_on_second(v: Variant) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed("worker killed before the second variant's row")
        upsert(v)

    w.catalog.upsert_variant = upsert_dies_on_second  # type: ignore[method-assign]
    with pytest.raises(Killed):
        await env.run(w.gen.generate, inp)
    generated = await env.run(w.gen.generate, inp)
    approved = [v.model_copy(update={"decision": Decision.deploy}) for v in generated.variants]
    export = ExportInput(
        campaign_id=CID, round=0, variants=approved, export=ExportConfig(), channels=["meta"]
    )
    _once(w.signer.ledger, "record")
    with pytest.raises(Killed):
        await env.run(w.guard.sign_and_export, export)
    _once(w.catalog, "record_placement_exports")
    with pytest.raises(Killed):
        await env.run(w.guard.sign_and_export, export)
    shipped = await env.run(w.guard.sign_and_export, export)
    for v in shipped.variants:
        w.catalog.upsert_variant(v)
    return shipped.variants


def _never_called(name: str) -> AdConnector:
    raise AssertionError(f"no ads in this test, connector {name!r} asked for")


@pytest.mark.parametrize("kind", ["campaign", "asset"])
async def test_files_of_killed_and_retried_attempts_are_erased(world: World, kind: str) -> None:
    shipped = await _campaign_round(world)
    files = _files(world)
    unnamed = files - _named(world)
    # the attempts left files no catalog row or ledger entry names: both images of the
    # killed generation (the retry rendered other pixels), the signed copy the killed sign
    # never recorded, and v0's three exports, replaced by the retry's
    assert len(unnamed) == 2 + 1 + 3, sorted(unnamed)
    # each attempt's files were recorded before they were written
    written = set(world.catalog.asset_ids_of_campaigns([CID]))
    assert {f.split(".", 1)[0] for f in files} <= written

    erasure = ErasureActivities(
        world.catalog, world.store, _never_called, ledger=world.signer.ledger.entries
    )
    ledger = world.signer.ledger.entries()
    generated = next(e["asset_id"] for e in ledger if e["variant_id"] == "v0")
    target = CID if kind == "campaign" else generated
    plan = erasure._find(ErasureInput(kind=kind, target=target))  # type: ignore[arg-type]
    await ActivityEnvironment().run(erasure.delete_asset_files, plan)
    left = _files(world)
    if kind == "campaign":
        assert left == set(), f"{len(left)} of {len(files)} files survived: {sorted(left)}"
    else:
        # v0's every file is gone; v1's stay
        v1 = {a for a in written if "v1" in world.catalog.variant_ids_for_assets([a])}
        v0 = {f for f in files if f.split(".", 1)[0] not in v1}
        assert v0 and not (left & v0), sorted(left & v0)
        assert {f for f in files if f.split(".", 1)[0] in v1} <= left
    assert shipped  # the retried round shipped


async def test_an_erased_variant_gets_no_new_file(world: World) -> None:
    shipped = await _campaign_round(world)
    world.catalog.tombstone_variants(["v0"])
    before = _files(world)
    env = ActivityEnvironment()
    export = ExportInput(
        campaign_id=CID, round=0, variants=shipped[:1], export=ExportConfig(), channels=["meta"]
    )
    with pytest.raises(ApplicationError, match=r"variant v0 of campaign orphans was erased") as err:
        await env.run(world.guard.sign_and_export, export)
    assert err.value.non_retryable
    assert _files(world) == before


async def test_a_report_killed_half_way_is_erased_with_its_thumbnails(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faceloop.report.build as build

    await _campaign_round(world)

    def killed(*args: Any, **kwargs: Any) -> str:
        raise Killed("report killed after report.json, before report.html")

    monkeypatch.setattr(build, "render_html", killed)
    out = world.tmp / "report"
    with pytest.raises(Killed):
        build.build_report(world.catalog, world.store, CID, out)
    written = {p for p in out.rglob("*") if p.is_file() and p.suffix in (".png", ".json")}
    assert out / "report.json" in written and len(written) >= 3  # report.json, 2 thumbnails
    erasure = ErasureActivities(
        world.catalog, world.store, _never_called, ledger=world.signer.ledger.entries
    )
    plan = erasure._find(ErasureInput(kind="campaign", target=CID))
    await ActivityEnvironment().run(erasure.delete_exported_copies, plan)
    assert not [p for p in written if p.exists()]


def test_a_bad_image_is_refused_before_anything_is_recorded_or_written(world: World) -> None:
    from faceloop.errors import FaceloopError
    from faceloop.storage.assets import png_bytes, put_for_variant

    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32)):
        with pytest.raises(FaceloopError, match=r"must be an HxWx3 uint8 array, got"):
            put_for_variant(
                world.store,
                world.catalog,
                png_bytes(bad),
                ".png",
                campaign_id=CID,
                variant_id="v0",
                kind="generated",
            )
    assert world.catalog.asset_ids_of_campaigns([CID]) == []
    assert _files(world) == set()
