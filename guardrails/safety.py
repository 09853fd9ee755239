"""Image safety: NudeNet's detector (320n.onnx, shipped in the `nudenet` wheel) in onnxruntime.

The detector also labels faces FACE_FEMALE / FACE_MALE; the bias audit reads those labels
from here, so one inference serves both checks.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from faceloop.errors import FaceloopError
from faceloop.models import CheckResult, Verdict

from .base import GuardContext, Guardrail, require_rgb

# NudeNet 3.4 class order (nudenet/nudenet.py)
LABELS: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
DEFAULT_BLOCK = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)
DEFAULT_ESCALATE = ("MALE_BREAST_EXPOSED", "BELLY_EXPOSED", "FEMALE_GENITALIA_COVERED")
_INPUT = 320
_FLOOR = 0.2  # NudeNet's own reporting floor


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x, y, w, h in image pixels

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
        }


def nudenet_model_path() -> Path:
    spec = importlib.util.find_spec("nudenet")
    if spec is None or not spec.submodule_search_locations:
        raise FaceloopError(
            "NSFW detection needs the model shipped in the 'nudenet' package, which is not "
            "installed; install it with `pip install --no-deps nudenet`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "320n.onnx"
    if not path.is_file():
        raise FaceloopError(f"nudenet is installed but {path} is missing; reinstall nudenet")
    return path


class NudeNetDetector:
    """NudeNet 320n in onnxruntime: vectorised post-processing (the package loops in Python)."""

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # one thread per session: the activity runs several images in parallel threads
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model_path or nudenet_model_path()), opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._memo = threading.local()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detections in an RGB image; the safety and bias checks of one chain share them,
        so the last answer per thread is kept for the same array object."""
        last = getattr(self._memo, "last", None)
        if last is not None and last[0] is rgb:
            return list(last[1])
        found = self._detect(rgb)
        self._memo.last = (rgb, found)
        return list(found)

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        side = max(h, w)
        padded = cv2.copyMakeBorder(rgb, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT)
        small = cv2.resize(padded, (_INPUT, _INPUT), interpolation=cv2.INTER_LINEAR)
        blob = (small.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        (out,) = self._session.run(None, {self._input: blob})
        rows = np.squeeze(out).T  # (anchors, 4 + classes)
        scores = rows[:, 4:]
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(cls)), cls]
        keep = best >= _FLOOR
        rows, cls, best = rows[keep], cls[keep], best[keep]
        scale = side / _INPUT
        cx, cy, bw, bh = (rows[:, i] * scale for i in range(4))
        x = np.clip(cx - bw / 2, 0, w)
        y = np.clip(cy - bh / 2, 0, h)
        bw = np.minimum(bw, w - x)
        bh = np.minimum(bh, h - y)
        boxes = np.stack([x, y, bw, bh], axis=1)
        idx = cv2.dnn.NMSBoxes(boxes.tolist(), best.tolist(), 0.25, 0.45) if len(best) else []
        found = [
            Detection(LABELS[int(cls[i])], float(best[i]), tuple(float(v) for v in boxes[i]))  # type: ignore[arg-type]
            for i in np.asarray(idx, dtype=int).reshape(-1)
        ]
        return sorted(found, key=lambda d: d.score, reverse=True)


@cache
def default_nudenet() -> NudeNetDetector:
    return NudeNetDetector()


class SafetyGuardrail(Guardrail):
    """Blocks exposed nudity, escalates borderline exposure; the score is the worst hit.

    Evidence lists every body-part detection with box and score, and the face labels
    (FACE_FEMALE / FACE_MALE) the bias audit uses.
    """

    name: ClassVar[str] = "safety"

    def __init__(
        self,
        block_labels: tuple[str, ...] | list[str] = DEFAULT_BLOCK,
        escalate_labels: tuple[str, ...] | list[str] = DEFAULT_ESCALATE,
        min_score: float = 0.45,
        detector: NudeNetDetector | None = None,
    ) -> None:
        unknown = sorted((set(block_labels) | set(escalate_labels)) - set(LABELS))
        if unknown:
            raise ValueError(f"unknown NudeNet labels {unknown}; known: {', '.join(LABELS)}")
        if not 0.0 < min_score <= 1.0:
            raise ValueError(f"min_score must lie in (0, 1], got {min_score}")
        self.block_labels = frozenset(block_labels)
        self.escalate_labels = frozenset(escalate_labels)
        self.min_score = min_score
        self._detector = detector

    @property
    def detector(self) -> NudeNetDetector:
        return self._detector or default_nudenet()

    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        require_rgb(rgb, ctx)
        found = self.detector.detect(rgb)
        hits = [d for d in found if d.score >= self.min_score]
        blocked = [d for d in hits if d.label in self.block_labels]
        flagged = [d for d in hits if d.label in self.escalate_labels]
        verdict = Verdict.passed
        reason = ""
        if blocked:
            verdict = Verdict.block
            reason = "explicit content: " + ", ".join(sorted({d.label for d in blocked}))
        elif flagged:
            verdict = Verdict.escalate
            reason = "borderline exposure: " + ", ".join(sorted({d.label for d in flagged}))
        worst = max((d.score for d in blocked or flagged), default=0.0)
        faces = [d for d in found if d.label.startswith("FACE_")]
        evidence: dict[str, object] = {
            "detections": [d.to_json() for d in found if not d.label.startswith("FACE_")],
            "face_labels": [d.to_json() for d in faces],
            "min_score": self.min_score,
            "model": "nudenet 320n",
        }
        if reason:
            evidence["reason"] = reason
        return self.result(verdict, worst, evidence)
