"""Pose maps for an OpenPose ControlNet: the named templates of faceloop.generation, drawn in
code, or a pose-map file a person supplies (an OpenPose render of a reference photo).

The drawing follows the OpenPose body format that the lllyasviel/sd-controlnet-openpose
family was trained on: 18 COCO keypoints, coloured limbs on black. Nothing here detects a
pose in a photo (that needs a pose model this project cannot download); a reference photo
is turned into a pose map outside faceloop and passed as `pose_image`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceloop.errors import GenerationError
from faceloop.generation import POSE_TEMPLATES

# keypoint index -> (x, y) as fractions of width and height; the COCO order OpenPose uses:
# 0 nose, 1 neck, 2/5 right/left shoulder, 3/6 elbow, 4/7 wrist, 8/11 hip, 14/15 eye, 16/17 ear
_Points = dict[int, tuple[float, float]]
_TEMPLATES: dict[str, _Points] = {
    "headshot-front": {
        0: (0.50, 0.42), 1: (0.50, 0.70), 2: (0.28, 0.74), 5: (0.72, 0.74),
        14: (0.44, 0.36), 15: (0.56, 0.36), 16: (0.37, 0.39), 17: (0.63, 0.39),
    },
    "headshot-left": {
        0: (0.42, 0.42), 1: (0.50, 0.70), 2: (0.30, 0.74), 5: (0.70, 0.74),
        14: (0.38, 0.36), 15: (0.49, 0.36), 17: (0.60, 0.39),
    },
    "headshot-right": {
        0: (0.58, 0.42), 1: (0.50, 0.70), 2: (0.30, 0.74), 5: (0.70, 0.74),
        14: (0.51, 0.36), 15: (0.62, 0.36), 16: (0.40, 0.39),
    },
    "half-body-front": {
        0: (0.50, 0.22), 1: (0.50, 0.38), 2: (0.33, 0.40), 3: (0.28, 0.62), 4: (0.30, 0.82),
        5: (0.67, 0.40), 6: (0.72, 0.62), 7: (0.70, 0.82), 8: (0.40, 0.90), 11: (0.60, 0.90),
        14: (0.46, 0.19), 15: (0.54, 0.19), 16: (0.42, 0.21), 17: (0.58, 0.21),
    },
}  # fmt: skip
assert set(_TEMPLATES) == set(POSE_TEMPLATES)

# OpenPose's limb list (1-based in its source, 0-based here) and its colours, RGB
_LIMBS = [
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
]  # fmt: skip
_COLOURS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
]  # fmt: skip


def template_pose(name: str, width: int = 512, height: int = 512) -> np.ndarray:
    """The named template as an HxWx3 uint8 OpenPose map."""
    import cv2

    if name not in _TEMPLATES:
        raise GenerationError(
            f"pose template {name!r} is not one of {', '.join(POSE_TEMPLATES)}; use one of them"
        )
    points = {k: (int(x * width), int(y * height)) for k, (x, y) in _TEMPLATES[name].items()}
    canvas = np.zeros((height, width, 3), np.uint8)
    stick = max(2, round(min(width, height) / 128))
    for (a, b), colour in zip(_LIMBS, _COLOURS, strict=False):
        if a in points and b in points:
            cv2.line(canvas, points[a], points[b], [int(c * 0.6) for c in colour], stick * 2)
    for k, p in points.items():
        cv2.circle(canvas, p, stick * 2, _COLOURS[k], -1)
    return canvas


def load_pose_image(path: str | Path) -> np.ndarray:
    """A pose-map file as HxWx3 uint8 RGB; GenerationError naming the path otherwise."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path).expanduser()
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise GenerationError(
            f"controlnet.pose_image {p}: cannot be read as an image ({exc}); give a PNG/JPEG "
            "pose map"
        ) from exc
