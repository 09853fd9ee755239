"""What a generated image shows, measured from its pixels, never read from its request.

The generator tests and `scripts/fit_directions.py` judge every face parameter with these
numbers, so a backend that ignores a parameter fails instead of being trusted:

| parameter   | measurement                                                                    |
| ----------- | ------------------------------------------------------------------------------ |
| skin_tone   | ITA (individual typology angle, degrees) of the cheek band (guardrails/skin.py) |
| lighting    | mean L* and L* spread (contrast) inside the face box                           |
| expression  | mouth width / eye distance from YuNet's five landmarks                         |
| background  | hue, brightness and Lab b* (blue-yellow) outside the head and shoulders       |
| framing     | face box area / frame area                                                     |

Plus the one-sided rank test (Mann-Whitney U, normal approximation with tie correction)
that the tests use; numpy only, so no scipy dependency for a few lines of statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from faceloop.guardrails.skin import face_ita, lab, skin_pixels

__all__ = [
    "FaceMeasurement",
    "background_mask",
    "mann_whitney_greater",
    "measure",
    "measure_face",
    "skin_pixels",
]

NAN = float("nan")


@dataclass(frozen=True)
class FaceMeasurement:
    """One image's measured attributes; NaN where no face was found (framing: 0 share)."""

    found: bool
    face_share: float  # face box area / image area
    ita: float  # degrees; higher is lighter skin (> 55 very light, < -30 dark)
    face_l: float  # mean L* (0-100) in the inner face box
    face_contrast: float  # standard deviation of L* there
    mouth_ratio: float  # mouth corner distance / eye distance
    mouth_drop: float  # mouth centre below the eye line / eye distance
    bg_l: float  # mean L* of the background
    bg_b: float  # mean Lab b* of the background: negative is blue, positive yellow
    bg_hue: float  # circular mean hue of the background, degrees 0-360

    def to_json(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def background_mask(
    shape: tuple[int, ...], box: tuple[float, float, float, float], eye_y: float
) -> np.ndarray:
    """Pixels that are background in any framing: outside the head (the box widened 10% and
    raised 25%) and above the eye line, so neck, shoulders and clothes are left out. A face
    that fills the frame leaves too little of that: then the top corners (an eighth of each
    side) stand in, where hair at worst is all that can intrude."""
    h, w = shape[:2]
    x, y, bw, bh = box
    yy, xx = np.mgrid[0:h, 0:w]
    head = (xx > x - 0.1 * bw) & (xx < x + 1.1 * bw) & (yy > y - 0.25 * bh)
    mask = (yy < eye_y) & ~head
    if mask.sum() < 0.02 * h * w:
        k = max(1, min(h, w) // 8)
        mask = np.zeros((h, w), bool)
        mask[:k, :k] = mask[:k, -k:] = True
    return mask


def measure(rgb: np.ndarray, min_score: float = 0.5) -> FaceMeasurement:
    """Measure one HxWx3 uint8 RGB image with the project's YuNet detector."""
    from faceloop.guardrails.vision import detect_faces

    faces = detect_faces(rgb, min_score=min_score)
    if not faces:
        return FaceMeasurement(False, 0.0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN)
    return measure_face(rgb, lab(rgb), faces[0])


def measure_face(rgb: np.ndarray, lab_img: np.ndarray, face: Any) -> FaceMeasurement:
    """The measurements of one detected face (guardrails.vision.Face); lab_img is `lab(rgb)`."""
    h, w = rgb.shape[:2]
    x, y, bw, bh = face.box
    pts = np.asarray(face.landmarks, np.float64)
    eye_d = max(float(np.linalg.norm(pts[1] - pts[0])), 1e-3)
    mouth_w = float(np.linalg.norm(pts[4] - pts[3]))
    drop = float(((pts[3] + pts[4]) / 2 - (pts[0] + pts[1]) / 2)[1])
    inner = lab_img[
        int(np.clip(y + 0.15 * bh, 0, h - 1)) : int(np.clip(y + 0.9 * bh, 1, h)),
        int(np.clip(x + 0.15 * bw, 0, w - 1)) : int(np.clip(x + 0.85 * bw, 1, w)),
    ].reshape(-1, 3)
    skin_ita, _ = face_ita(lab_img, face)
    bg = background_mask(rgb.shape, face.box, float((pts[0, 1] + pts[1, 1]) / 2))
    bg_lab = lab_img[bg]
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    hue = hsv[..., 0][bg].astype(np.float64) * 2 * np.pi / 256
    bg_hue = math.degrees(math.atan2(float(np.sin(hue).mean()), float(np.cos(hue).mean()))) % 360
    return FaceMeasurement(
        found=True,
        face_share=float(face.area / (h * w)),
        ita=NAN if skin_ita is None else skin_ita,
        face_l=float(inner[:, 0].mean()),
        face_contrast=float(inner[:, 0].std()),
        mouth_ratio=mouth_w / eye_d,
        mouth_drop=drop / eye_d,
        bg_l=float(bg_lab[:, 0].mean()),
        bg_b=float(bg_lab[:, 2].mean()),
        bg_hue=bg_hue,
    )


def measure_many(images: Sequence[np.ndarray]) -> list[FaceMeasurement]:
    return [measure(img) for img in images]


# --------------------------------------------------------------------------- statistics


def mann_whitney_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value that values in `a` tend to exceed those in `b` (NaNs dropped).

    Mann-Whitney U with the normal approximation and the tie correction; exact enough for
    the 32+ samples per group the tests use (the approximation is good from about 20).
    """
    x = np.asarray([v for v in a if not math.isnan(v)], np.float64)
    y = np.asarray([v for v in b if not math.isnan(v)], np.float64)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return 1.0
    both = np.concatenate([x, y])
    ranks = _rankdata(both)
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    _, counts = np.unique(both, return_counts=True)
    n = n1 + n2
    tie = float((counts**3 - counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie)
    if var <= 0:
        return 1.0 if u <= n1 * n2 / 2 else 0.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(var)  # continuity correction
    return 0.5 * math.erfc(z / math.sqrt(2))


def _rankdata(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), np.float64)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks
