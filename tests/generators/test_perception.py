"""The perception module on images whose answer is known: rules on synthetic colour patches,
a real public-domain portrait edited in known ways, and a few renders of the CPU default."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from faceloop.generators.base import Generator
from faceloop.generators.perception import (
    MEASURABLE,
    FidelityTolerance,
    Perception,
    _background_family,
    _expression,
    _framing,
    compare,
    perceive,
)
from faceloop.guardrails.skin import ita, ita_group, ita_to_monk, monk_band
from faceloop.models import FaceParams
from faceloop.testing.generators import request


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    """Grace Hopper, public domain, shipped with matplotlib: light skin, blue backdrop,
    head-and-shoulders framing, a slight smile."""
    bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _lab_patch(lum: float, a: float, b: float) -> np.ndarray:
    return np.tile(np.array([[lum, a, b]], np.float32), (50, 1))


def test_measurable_and_not() -> None:
    assert "age_band" not in MEASURABLE and "style" not in MEASURABLE
    assert set(FaceParams.model_fields) >= MEASURABLE


@pytest.mark.parametrize(
    ("lab", "tone"),
    [((78, 5, 10), 1), ((68, 6, 18), 3), ((60, 10, 22), 6), ((40, 12, 18), 7), ((25, 8, 9), 10)],
)
def test_ita_to_monk_follows_chardon_edges(lab: tuple[float, float, float], tone: int) -> None:
    angle = ita(_lab_patch(*lab))
    assert ita_to_monk(angle) == tone
    # the bands are Chardon groups: light = very_light + light, dark = dark
    band = monk_band(tone)
    group = ita_group(angle)
    assert (band == "light") == (group in ("very_light", "light"))
    assert (band == "dark") == (group == "dark")


@pytest.mark.parametrize(
    ("lab", "family"),
    [
        ((95, 0, 1), "white"),
        ((59, 0, -2), "grey"),
        ((15, 1, 1), "black"),
        ((44, 13, -51), "blue"),
        ((81, 8, 29), "warm"),
        ((58, -34, 23), "green"),
        ((50, 40, -20), "other"),  # magenta
    ],
)
def test_background_family_from_cie_hue(lab: tuple[float, float, float], family: str) -> None:
    assert _background_family(_lab_patch(*lab)) == family


def test_expression_and_framing_edges() -> None:
    assert _expression(0.8) == "neutral" and _expression(0.95) == "smile"
    assert _expression(1.1) == "laugh"
    assert _framing(0.6) == "close_up" and _framing(0.34) == "head_shoulders"
    assert _framing(0.2) == "half_body"


def test_a_real_portrait(hopper: np.ndarray) -> None:
    p = perceive(hopper)
    assert p.found and p.skin_band in ("light", "medium") and p.skin_tone is not None
    assert p.skin_tone <= 5
    assert p.background == "blue" and p.framing == "head_shoulders"
    assert p.lighting == "even" and p.gender_presentation == "feminine"
    assert p.age_band is None and p.value("age_band") is None and p.value("style") is None
    js = p.to_json()
    assert js["skin_tone"] == p.skin_tone and js["raw"]["found"] is True


def test_darker_skin_measures_darker(hopper: np.ndarray) -> None:
    # darken and neutralise the whole picture the way deeper skin reflects: the probe must
    # follow what a viewer sees, with no knowledge of how the image was made
    lab = cv2.cvtColor(hopper.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    lab[..., 0] *= 0.42
    lab[..., 2] *= 0.6
    dark = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)
    p = perceive(dark, gender=False)
    assert p.found and p.skin_band == "dark", p.to_json()


def test_one_sided_light_is_low_key(hopper: np.ndarray) -> None:
    # a side key: the shadow side of the face 3 stops below the lit side, the falloff soft
    # around the middle of the face as a real light's terminator is
    box = perceive(hopper, gender=False).box
    assert box is not None
    xs = np.arange(hopper.shape[1], dtype=np.float32)
    centre = box[0] + box[2] / 2
    ramp = np.exp2(-3.0 / (1 + np.exp(-(xs - centre) / (0.08 * box[2]))))[None, :, None]
    lin = (hopper.astype(np.float32) / 255) ** 2.2 * ramp
    lit = np.clip(lin ** (1 / 2.2) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert perceive(lit, gender=False).lighting == "low_key"
    assert perceive(hopper, gender=False).lighting == "even"


def test_framing_follows_the_face_size(hopper: np.ndarray) -> None:
    h, w = hopper.shape[:2]
    wide = cv2.copyMakeBorder(hopper, h // 2, h // 2, w // 2, w // 2, cv2.BORDER_REPLICATE)
    assert perceive(wide, gender=False).framing == "half_body"
    fp = perceive(hopper, gender=False)
    assert fp.box is not None
    x, y, bw, bh = (int(v) for v in fp.box)
    assert fp.framing == "head_shoulders"
    cy = y + bh // 2
    crop = hopper[max(0, cy - bh) : cy + bh, max(0, x + bw // 2 - bh) : x + bw // 2 + bh]
    assert perceive(np.ascontiguousarray(crop), gender=False).framing == "close_up"


def test_no_face_is_not_a_verdict() -> None:
    p = perceive(np.full((128, 128, 3), 200, np.uint8))
    assert not p.found
    assert all(f.ok is None for f in compare(FaceParams(), p).values())


def _seen(**kw: object) -> Perception:
    base = perceive(np.full((64, 64, 3), 0, np.uint8), gender=False)
    fields = {f: kw.get(f) for f in ("skin_tone", "expression", "background", "framing")}
    return Perception(
        found=True,
        skin_tone=fields["skin_tone"],  # type: ignore[arg-type]
        skin_band=None,
        expression=fields["expression"],  # type: ignore[arg-type]
        background=fields["background"],  # type: ignore[arg-type]
        framing=fields["framing"],  # type: ignore[arg-type]
        lighting=kw.get("lighting"),  # type: ignore[arg-type]
        gender_presentation=kw.get("gender_presentation"),  # type: ignore[arg-type]
        age_band=None,
        raw=base.raw,
    )


def test_compare_with_tolerance() -> None:
    asked = FaceParams(skin_tone=2, expression="serious", background="office", lighting="dramatic")
    seen = _seen(skin_tone=4, expression="neutral", background="white", lighting="even")
    got = compare(asked, seen, FidelityTolerance())
    assert got["skin_tone"].ok is True and got["skin_tone"].measured == 4
    assert got["expression"].ok is True  # serious ~ neutral by the default groups
    assert got["background"].ok is None  # a scene, not a colour family
    assert got["lighting"].ok is False  # dramatic should measure low key
    assert got["age_band"].ok is None and got["style"].ok is None
    strict = FidelityTolerance(skin_tone=1, expression_equivalent=[])
    got = compare(asked, seen, strict)
    assert got["skin_tone"].ok is False and got["expression"].ok is False
    with pytest.raises(ValueError, match="unknown expression"):
        FidelityTolerance(expression_equivalent=[["smile", "grin"]])


def test_dcgan_renders_are_perceived(dcgan: Generator) -> None:
    imgs = dcgan.generate([request(seed=s, size=256, skin_tone=t) for s in (7, 8) for t in (1, 10)])
    seen = [perceive(img, gender=False) for img in imgs]
    assert all(p.found for p in seen)
    tones = [p.skin_tone for p in seen]
    assert all(t is not None for t in tones)
    assert tones[0] < tones[1] and tones[2] < tones[3]  # type: ignore[operator]


def test_bench_fidelity_table(dcgan: Generator) -> None:
    from faceloop.generators.fidelity import bench_fidelity, requests_for, total_images

    seen: list[int] = []
    out = bench_fidelity(
        dcgan, 1, ["tuning"], size=128, params=["framing"], on_image=lambda: seen.append(1)
    )
    assert len(seen) == total_images(1, ["tuning"], ["framing"]) == 3
    rows = out["seed_sets"]["tuning"]["framing"]["values"]
    assert set(rows) == {"close_up", "head_shoulders", "half_body"}
    assert all(sum(r["measured"].values()) == 1 for r in rows.values())
    assert out["target"] == {"judged_on": None, "met": None}  # skin tone was not run
    # the other parameters are drawn, the asked one is fixed, seeds are the tuning range
    reqs = requests_for("skin_tone", 9, 4, 100_000, 64)
    assert all(r.params.skin_tone == 9 for r in reqs)
    assert len({r.params.key() for r in reqs}) > 1
