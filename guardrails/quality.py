"""Face quality: is there exactly one clearly detectable face at a usable resolution?"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from faceloop.models import CheckResult, Verdict

from .base import GuardContext, Guardrail, require_rgb
from .vision import Face, FaceDetector, default_detector

# Faces below this score are still reported in the evidence, so a reviewer can see a
# near miss, but they do not count as faces.
_REPORT_FLOOR = 0.3


class FaceQualityGuardrail(Guardrail):
    """Blocks images without a face or below the minimum resolution; escalates crowds.

    The score is the best face detection score, so a near miss reads as such.
    """

    name: ClassVar[str] = "quality"

    def __init__(
        self,
        min_score: float = 0.6,
        max_faces: int = 1,
        detector: FaceDetector | None = None,
    ) -> None:
        if not 0.0 < min_score <= 1.0:
            raise ValueError(f"min_score must lie in (0, 1], got {min_score}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {max_faces}")
        self.min_score = min_score
        self.max_faces = max_faces
        self._detector = detector

    @property
    def detector(self) -> FaceDetector:
        return self._detector or default_detector()

    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        require_rgb(rgb, ctx)
        height, width = rgb.shape[:2]
        found = self.detector.detect(rgb, min_score=min(_REPORT_FLOOR, self.min_score))
        faces = [f for f in found if f.score >= self.min_score]
        best = found[0].score if found else 0.0

        reasons: list[str] = []
        verdict = Verdict.passed
        if min(width, height) < ctx.min_resolution:
            reasons.append(
                f"resolution {width}x{height} is below the minimum {ctx.min_resolution} px "
                "on the shorter side"
            )
            verdict = Verdict.block
        if not faces:
            reasons.append(f"no face with detection score >= {self.min_score} (best {best:.2f})")
            verdict = Verdict.block
        elif len(faces) > self.max_faces:
            # A second face may be a person who never consented: a human decides.
            reasons.append(f"{len(faces)} faces found, at most {self.max_faces} expected")
            if verdict is Verdict.passed:
                verdict = Verdict.escalate

        evidence: dict[str, object] = {
            "faces": [f.to_json() for f in faces],
            "near_misses": [f.to_json() for f in found if f.score < self.min_score],
            "face_count": len(faces),
            "width": width,
            "height": height,
            "face_share": round(_face_share(faces[0], width, height), 4) if faces else 0.0,
            "min_score": self.min_score,
            "min_resolution": ctx.min_resolution,
            "reasons": reasons,
        }
        return self.result(verdict, best, evidence)


def _face_share(face: Face, width: int, height: int) -> float:
    """Area of the face box inside the frame over the frame's area."""
    x, y, w, h = face.box
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    return inside_w * inside_h / (width * height)
