"""Face quality: one clearly detectable face at a usable resolution, no composite tell
(a face much blurrier than its background), no blown highlights on skin."""

from __future__ import annotations

from typing import ClassVar

import cv2
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
        min_sharpness_ratio: float = 0.15,
        max_skin_clipping: float = 0.10,
    ) -> None:
        if not 0.0 < min_score <= 1.0:
            raise ValueError(f"min_score must lie in (0, 1], got {min_score}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {max_faces}")
        self.min_score = min_score
        self.max_faces = max_faces
        self.min_sharpness_ratio = min_sharpness_ratio
        self.max_skin_clipping = max_skin_clipping
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

        sharp: dict[str, float] = {}
        clipping = 0.0
        if faces:
            sharp = _sharpness(rgb, faces[0])
            clipping = _skin_clipping(rgb, faces[0])
            if sharp and sharp["ratio"] < self.min_sharpness_ratio:
                # a sharp scene around a soft face is the tell of a pasted or swapped face
                reasons.append(
                    f"face is much softer than its background (sharpness ratio "
                    f"{sharp['ratio']:.2f} < {self.min_sharpness_ratio}): possible composite"
                )
                if verdict is Verdict.passed:
                    verdict = Verdict.escalate
            if clipping > self.max_skin_clipping:
                reasons.append(
                    f"{clipping:.0%} of the skin is clipped to white "
                    f"(more than {self.max_skin_clipping:.0%})"
                )
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
            "sharpness": sharp,
            "skin_clipping": round(clipping, 4),
            "min_sharpness_ratio": self.min_sharpness_ratio,
            "max_skin_clipping": self.max_skin_clipping,
            "reasons": reasons,
        }
        if reasons:
            evidence["reason"] = "; ".join(reasons)
        return self.result(verdict, best, evidence)


def _box(face: Face, width: int, height: int) -> tuple[int, int, int, int]:
    x, y, w, h = face.box
    return (
        int(max(0, x)),
        int(max(0, y)),
        int(min(width, x + w)),
        int(min(height, y + h)),
    )


def _sharpness(rgb: np.ndarray, face: Face) -> dict[str, float]:
    """Variance of the Laplacian inside the face box and outside it, and their ratio."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = _box(face, width, height)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return {}
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    inside = np.zeros(grey.shape, bool)
    inside[y0:y1, x0:x1] = True
    if inside.all():
        return {}
    face_var = float(lap[inside].var())
    bg_var = float(lap[~inside].var())
    # a flat studio background has no texture: nothing to compare the face with
    ratio = face_var / bg_var if bg_var > 25.0 else 1.0
    return {"face": round(face_var, 1), "background": round(bg_var, 1), "ratio": round(ratio, 3)}


def _skin_clipping(rgb: np.ndarray, face: Face) -> float:
    """Share of skin-coloured pixels in the face box with a channel at 250 or more."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = _box(face, width, height)
    crop = rgb[y0:y1, x0:x1]
    if crop.size == 0:
        return 0.0
    ycc = cv2.cvtColor(crop, cv2.COLOR_RGB2YCrCb)
    # clipped skin turns white and leaves the skin chroma range, so count bright pixels
    # whose chroma is skin or neutral
    skinish = cv2.inRange(ycc, (0, 128, 70), (255, 185, 135)) > 0
    clipped = crop.max(axis=2) >= 250
    denom = int((skinish | clipped).sum())
    return float((clipped & (skinish | (ycc[..., 0] >= 240))).sum() / denom) if denom else 0.0


def _face_share(face: Face, width: int, height: int) -> float:
    """Area of the face box inside the frame over the frame's area."""
    x, y, w, h = face.box
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    return inside_w * inside_h / (width * height)
