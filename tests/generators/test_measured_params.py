"""Every face parameter the embedded generator claims to honour, measured from its pixels.

Per parameter: 32 seeds at two settings, the project's own measurement
(faceloop.generators.measure: YuNet box and landmarks, Lab colour), and a one-sided
Mann-Whitney test that the measured attribute moves the right way with p < 0.01.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from faceloop.generators.base import Generator
from faceloop.generators.measure import FaceMeasurement, mann_whitney_greater, measure
from faceloop.generators.registry import get_generator
from faceloop.testing.generators import request

SEEDS = range(1000, 1032)  # 32 faces per setting, none used to fit the directions
ALPHA = 0.01


@cache
def _measured(field: str, value: object) -> tuple[FaceMeasurement, ...]:
    gen: Generator = get_generator("dcgan")
    images = gen.generate([request(seed=s, size=256, **{field: value}) for s in SEEDS])
    return tuple(measure(img) for img in images)


def _values(field: str, value: object, attr: str) -> list[float]:
    ms = _measured(field, value)
    found = sum(m.found for m in ms)
    assert found >= 28, f"{field}={value}: YuNet found a face in only {found}/32 images"
    return [getattr(m, attr) for m in ms]


def _assert_greater(field: str, high: object, low: object, attr: str) -> None:
    a, b = _values(field, high, attr), _values(field, low, attr)
    p = mann_whitney_greater(a, b)
    assert p < ALPHA, (
        f"{attr} at {field}={high} (median {np.nanmedian(a):.3f}) is not above {field}={low} "
        f"(median {np.nanmedian(b):.3f}): one-sided p={p:.3g}"
    )


@pytest.mark.slow
def test_skin_tone_moves_the_ita_of_the_face_skin() -> None:
    # Monk 1 is the lightest: a higher individual typology angle
    _assert_greater("skin_tone", 1, 10, "ita")
    _assert_greater("skin_tone", 3, 8, "ita")


@pytest.mark.slow
def test_lighting_moves_face_luminance_and_contrast() -> None:
    _assert_greater("lighting", "soft", "dramatic", "face_l")
    _assert_greater("lighting", "dramatic", "soft", "face_contrast")


@pytest.mark.slow
def test_expression_moves_mouth_width() -> None:
    # the fitted latent direction, judged by YuNet's mouth corners on the final image
    _assert_greater("expression", "smile", "serious", "mouth_ratio")
    _assert_greater("expression", "laugh", "neutral", "mouth_ratio")
    _assert_greater("expression", "neutral", "serious", "mouth_ratio")


@pytest.mark.slow
def test_background_moves_hue_and_brightness_outside_the_face() -> None:
    _assert_greater("background", "white", "blue", "bg_l")
    _assert_greater("background", "white", "blue", "bg_b")  # b* < 0 is blue
    _assert_greater("background", "warm", "blue", "bg_b")
    hues = [h for h in _values("background", "blue", "bg_hue") if not math.isnan(h)]
    assert 180 < float(np.median(hues)) < 260, hues


@pytest.mark.slow
def test_framing_moves_the_face_share_of_the_frame() -> None:
    _assert_greater("framing", "close_up", "head_shoulders", "face_share")
    _assert_greater("framing", "head_shoulders", "half_body", "face_share")


def test_mann_whitney_one_sided() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 40)
    assert mann_whitney_greater(a, b) < 0.01
    assert mann_whitney_greater(b, a) > 0.99
    same = rng.normal(0.0, 1.0, 40)
    assert 0.3 < mann_whitney_greater(same, same) < 0.7
    # complete separation of 32 vs 32: exact p is 1/C(64, 32) ~ 5e-19; the normal
    # approximation is far looser but still far below any threshold used
    assert mann_whitney_greater(np.arange(32) + 100.0, np.arange(32)) < 1e-10
    assert mann_whitney_greater([float("nan"), 1.0], []) == 1.0
