"""Skin tone measured from a face's pixels: the one ITA function of the project.

The bias audit (guardrails/bias.py), the generator measurements (generators/measure.py) and
the perception module (generators/perception.py) all read skin tone here, so a face cannot
count as "light" in one report and "dark" in another.

What is measured, and why so:

- Which pixels: the cheeks and nose bridge, the band between the eye line and the mouth line
  from YuNet's five landmarks, i.e. the skin a viewer looks at. It is defined by the face's
  geometry only, never by a colour rule, so a face recoloured by a generator's own mask is
  judged by where a viewer looks, not by that mask. A loose chroma filter then drops pixels
  that are plainly not skin (a blue or grey backdrop showing through).
- The angle: the Individual Typology Angle ITA = atan((L* - 50) / b*) in degrees (CIELAB,
  D65), of the band's median L* and median b*. Medians, not a median of per-pixel angles:
  on dark skin b* is small and per-pixel angles swing wildly with noise.
- Groups: Chardon et al. (1991), from very light (ITA > 55) to dark (ITA <= -30).
- Monk tone and band: see `ita_to_monk` and `SKIN_BANDS`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# (lower bound in degrees, group), from the lightest down (Chardon et al. 1991)
ITA_GROUPS: tuple[tuple[float, str], ...] = (
    (55.0, "very_light"),
    (41.0, "light"),
    (28.0, "intermediate"),
    (10.0, "tan"),
    (-30.0, "brown"),
    (-1e9, "dark"),
)

# Monk tone -> the lowest ITA (exclusive) that still reads as that tone, lightest first.
# The edges are Chardon's group edges wherever one falls between two Monk tones, so the
# three bands below are exactly Chardon groups: Monk 1-3 = very light + light (ITA > 41),
# Monk 4-7 = intermediate + tan + brown, Monk 8-10 = dark (ITA <= -30). Inside a group the
# tones split it evenly: very light in two at 65, intermediate in two at 34.5, dark (down
# to about -90, where black sits) in three at -50 and -70. The Monk swatches themselves
# (skintone.google) are flat colour cards at full exposure, lighter than any skin in a
# photograph (Monk 5's card has ITA 50), so they order the scale but cannot place the edges.
MONK_ITA_EDGES: tuple[tuple[int, float], ...] = (
    (1, 65.0),
    (2, 55.0),
    (3, 41.0),
    (4, 34.5),
    (5, 28.0),
    (6, 10.0),
    (7, -30.0),
    (8, -50.0),
    (9, -70.0),
    (10, -1e9),
)

# Monk tones per band; the band edges are ITA 41 (light above) and -30 (dark at or below).
SKIN_BANDS: dict[str, tuple[int, ...]] = {
    "light": (1, 2, 3),
    "medium": (4, 5, 6, 7),
    "dark": (8, 9, 10),
}

# a skin band needs at least this many pixels before its median is trusted
MIN_SKIN_PIXELS = 50


def ita(lab_pixels: np.ndarray) -> float:
    """ITA in degrees of Nx3 CIELAB pixels (L* 0-100): atan2 keeps it defined at b* ~ 0."""
    lum = float(np.median(lab_pixels[:, 0]))
    yb = float(np.median(lab_pixels[:, 2]))
    return math.degrees(math.atan2(lum - 50.0, max(yb, 1e-3)))


def ita_group(angle: float) -> str:
    for low, name in ITA_GROUPS:
        if angle > low:
            return name
    return ITA_GROUPS[-1][1]


def ita_to_monk(angle: float) -> int:
    """The Monk tone (1-10) whose ITA interval holds `angle` (see MONK_ITA_EDGES)."""
    for tone, low in MONK_ITA_EDGES:
        if angle > low:
            return tone
    return 10


def monk_band(tone: int) -> str:
    """ "light", "medium" or "dark" for a Monk tone 1-10."""
    for band, tones in SKIN_BANDS.items():
        if tone in tones:
            return band
    raise ValueError(f"Monk tone must be 1-10, got {tone}")


def lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 CIELAB with L* in 0-100 and a*, b* in about -128..127."""
    import cv2

    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def skin_pixels(
    lab_img: np.ndarray, box: tuple[float, float, float, float], landmarks: Any
) -> np.ndarray:
    """Lab pixels of the cheeks and nose bridge: between the eye line and the mouth line.

    Eyes, brows, lips and hair lie outside this band. A loose chroma filter drops what is
    plainly not skin (grey or blue backdrop showing through); if it drops nearly all, the
    band is used as is, since a strongly relit face can fail any fixed skin-colour rule.
    """
    h, w = lab_img.shape[:2]
    pts = np.asarray(landmarks, np.float64)
    eye_y = (pts[0, 1] + pts[1, 1]) / 2
    mouth_y = (pts[3, 1] + pts[4, 1]) / 2
    x0 = int(np.clip(min(pts[0, 0], pts[3, 0]), 0, w - 1))
    x1 = int(np.clip(max(pts[1, 0], pts[4, 0]), x0 + 1, w))
    y0 = int(np.clip(eye_y + 0.25 * (mouth_y - eye_y), 0, h - 1))
    y1 = int(np.clip(mouth_y - 0.15 * (mouth_y - eye_y), y0 + 1, h))
    band = lab_img[y0:y1, x0:x1].reshape(-1, 3)
    if band.size == 0:
        x, y, bw, bh = box
        band = lab_img[
            int(y + bh * 0.4) : int(y + bh * 0.7), int(x + bw * 0.25) : int(x + bw * 0.75)
        ]
        band = band.reshape(-1, 3)
    skinlike = band[(band[:, 1] > -2.0) & (band[:, 2] > -2.0) & (band[:, 0] > 3.0)]
    return skinlike if len(skinlike) >= max(8, len(band) // 5) else band


def face_ita(lab_img: np.ndarray, face: Any) -> tuple[float | None, int]:
    """ITA of one detected face (a guardrails.vision.Face); (None, n) on too few pixels."""
    px = skin_pixels(lab_img, face.box, face.landmarks)
    if len(px) < MIN_SKIN_PIXELS:
        return None, len(px)
    return ita(px), len(px)
