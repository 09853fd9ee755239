"""Fidelity enforced in the generate activity: an image off its request is re-seeded with a
derived seed, tries are recorded, and a parameter still off after max_tries is marked not
rendered. The generator and the perception are fakes (named so): a real backend cannot be
made to miss on cue, and the fake perception reads the skin tone the fake generator painted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceloop.generators.activities import GeneratorActivities
from faceloop.generators.base import GenerationRequest, Generator, Progress
from faceloop.generators.enforce import try_seed
from faceloop.generators.measure import FaceMeasurement
from faceloop.generators.perception import FidelityTolerance, Perception
from faceloop.messages import GenerateInput
from faceloop.models import FaceParams, Variant
from faceloop.playbooks.schema import FidelitySettings
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog

NAN = float("nan")


class FakeToneGenerator(Generator):
    """A fake backend: paints a flat image whose red channel is the Monk tone it renders,
    which is the requested tone only for seeds in `faithful` (every other seed renders 9)."""

    name = "fake-tone"
    model_version = "fake-1"

    def __init__(self, faithful: set[int]) -> None:
        self.faithful = faithful
        self.seeds: list[int] = []

    def generate(
        self, requests: list[GenerationRequest], progress: Progress | None = None
    ) -> list[np.ndarray]:
        out = []
        for r in requests:
            self.seeds.append(r.seed)
            tone = r.params.skin_tone if r.seed in self.faithful else 9
            img = np.zeros((r.size, r.size, 3), np.uint8)
            img[..., 0] = tone
            img[..., 1] = r.seed % 251  # distinct pixels per seed: distinct assets
            out.append(img)
        return out


def fake_perceive(rgb: np.ndarray) -> Perception:
    """A fake perception: reads the tone FakeToneGenerator painted; everything else unseen."""
    raw = FaceMeasurement(True, 0.2, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN)
    tone = int(rgb[0, 0, 0])
    return Perception(
        found=True,
        skin_tone=tone,
        skin_band="dark" if tone >= 8 else "medium" if tone >= 4 else "light",
        expression=None,
        background=None,
        framing=None,
        lighting=None,
        gender_presentation=None,
        age_band=None,
        raw=raw,
    )


def _variant(vid: str, seed: int, tone: int) -> Variant:
    return Variant(
        variant_id=vid,
        campaign_id="cmp",
        round=0,
        params=FaceParams(skin_tone=tone),
        seed=seed,
    )


def _run(
    tmp_path: Path, gen: Generator, variants: list[Variant], settings: FidelitySettings
) -> tuple[list[Variant], Catalog]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    acts = GeneratorActivities(
        gen, AssetStore(tmp_path / "assets"), catalog, perceive=fake_perceive
    )
    inp = GenerateInput(campaign_id="cmp", round=0, size=64, variants=variants, fidelity=settings)
    return acts._generate(inp, lambda done, total: None).variants, catalog


def test_an_image_off_its_request_is_reseeded_until_it_matches(tmp_path: Path) -> None:
    # variant a renders faithfully on its second try; b on its first
    gen = FakeToneGenerator(faithful={try_seed(100, 1), 200})
    out, catalog = _run(
        tmp_path, gen, [_variant("a", 100, 3), _variant("b", 200, 3)], FidelitySettings()
    )
    a, b = out
    assert a.fidelity is not None and b.fidelity is not None
    assert (a.fidelity.tries, a.fidelity.not_rendered) == (2, [])
    assert a.asset is not None and a.asset.seed == try_seed(100, 1) != 100
    assert a.seed == 100  # the variant keeps its own seed; the asset records the kept one
    assert a.fidelity.params["skin_tone"].model_dump() == {
        "requested": 3,
        "measured": 3,
        "ok": True,
    }
    assert (b.fidelity.tries, b.asset and b.asset.seed) == (1, 200)
    # one re-seed round, for a only
    assert gen.seeds == [100, 200, try_seed(100, 1)]
    stored = catalog.get_variant("a")
    assert stored is not None and stored.fidelity == a.fidelity
    assert [e.subject for e in catalog.audit_entries("cmp") if e.kind == "variant.fidelity"] == [
        "a"
    ]


def test_a_parameter_never_shown_is_marked_not_rendered_after_max_tries(tmp_path: Path) -> None:
    gen = FakeToneGenerator(faithful=set())
    settings = FidelitySettings(max_tries=3, tolerance=FidelityTolerance(skin_tone=2))
    (v,), catalog = _run(tmp_path, gen, [_variant("a", 7, 2)], settings)
    assert v.fidelity is not None
    assert (v.fidelity.tries, v.fidelity.not_rendered) == (3, ["skin_tone"])
    assert gen.seeds == [7, try_seed(7, 1), try_seed(7, 2)]
    # the earliest of equally bad tries is kept: a retried activity keeps the same image
    assert v.asset is not None and v.asset.seed == 7
    # the optimizer is told what was shown: Monk 9, measured
    face, source = v.fidelity.shown(v.params)
    assert (face.skin_tone, source["skin_tone"], source["age_band"]) == (9, "measured", "requested")
    (entry,) = [e for e in catalog.audit_entries("cmp") if e.kind == "variant.fidelity"]
    assert entry.payload["not_rendered"] == ["skin_tone"] and entry.payload["tries"] == 3


def test_within_tolerance_is_shown_and_enforce_off_only_measures(tmp_path: Path) -> None:
    gen = FakeToneGenerator(faithful=set())  # always renders 9
    (near,), _ = _run(tmp_path / "near", gen, [_variant("a", 1, 8)], FidelitySettings())
    assert near.fidelity is not None and near.fidelity.tries == 1
    assert near.fidelity.params["skin_tone"].ok is True  # 9 is within 2 steps of 8

    gen = FakeToneGenerator(faithful=set())
    (far,), _ = _run(tmp_path / "far", gen, [_variant("a", 1, 2)], FidelitySettings(enforce=False))
    assert far.fidelity is not None and gen.seeds == [1]
    assert (far.fidelity.tries, far.fidelity.enforced) == (1, False)
    assert far.fidelity.not_rendered == ["skin_tone"]


def test_reseeding_is_deterministic() -> None:
    assert try_seed(5, 0) == 5
    assert try_seed(5, 1) == try_seed(5, 1) != try_seed(5, 2)
    assert try_seed(5, 1) != try_seed(6, 1)
    assert 0 <= try_seed(2**63 - 1, 3) <= 2**63 - 1


@pytest.mark.parametrize("tries", [0, 11])
def test_max_tries_is_bounded(tries: int) -> None:
    with pytest.raises(ValueError, match="max_tries"):
        FidelitySettings(max_tries=tries)


def test_an_image_without_a_face_is_reseeded_and_never_preferred(tmp_path: Path) -> None:
    """A faceless image has nothing judged off; it must not beat an image with a face."""

    def faceless_first(rgb: np.ndarray) -> Perception:
        seen = fake_perceive(rgb)
        if int(rgb[0, 0, 1]) == 7 % 251:  # the first try's seed: no face found
            return Perception(False, None, None, None, None, None, None, None, None, seen.raw)
        return seen

    gen = FakeToneGenerator(faithful=set())  # every face renders Monk 9 (asked 2: off)
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    acts = GeneratorActivities(
        gen, AssetStore(tmp_path / "assets"), catalog, perceive=faceless_first
    )
    inp = GenerateInput(
        campaign_id="cmp",
        round=0,
        size=64,
        variants=[_variant("a", 7, 2)],
        fidelity=FidelitySettings(),
    )
    (v,) = acts._generate(inp, lambda done, total: None).variants
    assert v.fidelity is not None and v.fidelity.found
    assert v.asset is not None and v.asset.seed == try_seed(7, 1)  # the first image with a face
    assert (v.fidelity.tries, v.fidelity.not_rendered) == (3, ["skin_tone"])
