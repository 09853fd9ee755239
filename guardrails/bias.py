"""Bias audit over a batch: measured skin tone (ITA), perceived gender presentation, and the
requested age bands, compared with the playbook's targets.

Per image, `BiasGuardrail.measure` reads each face: the Individual Typology Angle
ITA = atan((L* - 50) / b*) in degrees over the face's cheek band (CIELAB; Chardon et al.
1991 groups; the project's one ITA function, guardrails/skin.py), and NudeNet's
FACE_FEMALE / FACE_MALE label. Age cannot be measured offline with a model we can ship,
so age bands are reported as requested-only, never as measured.
`audit_batch` turns the measurements into the table of counts and shares and the verdict.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import numpy as np

from faceloop.models import CheckResult, Verdict

from .base import GuardContext, Guardrail, require_rgb
from .safety import NudeNetDetector, default_nudenet
from .skin import ITA_GROUPS, face_ita, ita_group, lab
from .vision import Face, FaceDetector, default_detector

UNMEASURED = "unmeasured"


def skin_ita(rgb: np.ndarray, face: Face) -> tuple[float | None, int]:
    """ITA of the face's cheek band, measured the one way the project measures skin
    (guardrails/skin.py); (None, n) if too few skin pixels."""
    return face_ita(lab(rgb), face)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / max(aw * ah + bw * bh - inter, 1e-9)


class BiasGuardrail(Guardrail):
    """Per image: the measurements the batch audit counts. Passes on its own; the verdict
    comes from `audit_batch` over the whole batch."""

    name: ClassVar[str] = "bias"

    def __init__(
        self,
        targets: Any = None,
        detector: FaceDetector | None = None,
        nudenet: NudeNetDetector | None = None,
    ) -> None:
        self.targets = targets
        self._detector = detector
        self._nudenet = nudenet

    def measure(self, rgb: np.ndarray, ctx: GuardContext) -> dict[str, object]:
        require_rgb(rgb, ctx)
        faces = (self._detector or default_detector()).detect(rgb, min_score=0.6)
        labels = [
            d
            for d in (self._nudenet or default_nudenet()).detect(rgb)
            if d.label.startswith("FACE_")
        ]
        rows = []
        for face in faces:
            ita, n = skin_ita(rgb, face)
            match = max(labels, key=lambda d: _iou(d.box, face.box), default=None)
            gender = UNMEASURED
            if match is not None and _iou(match.box, face.box) > 0.2:
                gender = "feminine" if match.label == "FACE_FEMALE" else "masculine"
            rows.append(
                {
                    "box": [round(v, 1) for v in face.box],
                    "ita": None if ita is None else round(ita, 1),
                    "skin_tone": UNMEASURED if ita is None else ita_group(ita),
                    "skin_pixels": n,
                    "gender_presentation": gender,
                }
            )
        return {
            "faces": rows,
            "age_band_requested": ctx.params.age_band if ctx.params else None,
            "skin_tone_requested": ctx.params.skin_tone if ctx.params else None,
            "gender_requested": ctx.params.gender_presentation if ctx.params else None,
        }

    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        return audit_batch([self.measure(rgb, ctx)], self.targets)


def _table(counter: Counter[str], total: int) -> dict[str, dict[str, float]]:
    return {
        k: {"count": c, "share": round(c / total, 4) if total else 0.0}
        for k, c in sorted(counter.items())
    }


def audit_batch(measurements: list[dict[str, Any]], targets: Any = None) -> CheckResult:
    """The batch verdict: counts and shares per group, each target met or missed.

    targets: a playbook `BiasTargets` (or None: report only). A share target is only
    judged on measured faces and only once the batch has `min_batch` of them.
    """
    tone: Counter[str] = Counter()
    gender: Counter[str] = Counter()
    age: Counter[str] = Counter()
    faces = 0
    for m in measurements:
        for f in m["faces"]:
            faces += 1
            tone[f["skin_tone"]] += 1
            gender[f["gender_presentation"]] += 1
        if m.get("age_band_requested"):
            age[m["age_band_requested"]] += 1
    measured_tone = faces - tone[UNMEASURED]
    measured_gender = faces - gender[UNMEASURED]
    misses: list[str] = []
    min_batch = int(getattr(targets, "min_batch", 4)) if targets is not None else 0
    judged = targets is not None and faces >= min_batch

    def judge(what: str, counts: Counter[str], total: int, mins: dict[str, float]) -> None:
        for group, share in sorted(mins.items()):
            got = counts[group] / total if total else 0.0
            if got + 1e-9 < share:
                misses.append(f"{what} {group}: share {got:.2f} below the target {share:.2f}")

    if judged:
        judge("skin tone", tone, measured_tone, dict(targets.skin_tone_min_share))
        judge("gender presentation", gender, measured_gender, dict(targets.gender_min_share))
        judge("age band (requested)", age, sum(age.values()), dict(targets.age_band_min_share))
    verdict = Verdict.passed
    if misses:
        verdict = Verdict(str(getattr(targets, "on_miss", "escalate")))
    evidence: dict[str, object] = {
        "images": len(measurements),
        "faces": faces,
        "skin_tone": {
            "measured": True,
            "method": "ITA of the cheek band (guardrails/skin.py)",
            **_table(tone, faces),
        },
        "gender_presentation": {
            "measured": True,
            "method": "NudeNet FACE_FEMALE/FACE_MALE",
            **_table(gender, faces),
        },
        "age_band": {"measured": False, "requested_only": True, **_table(age, sum(age.values()))},
        "judged": judged,
        "misses": misses,
    }
    if misses:
        evidence["reason"] = "; ".join(misses)
    score = 1.0 - (len(misses) / max(1, len(misses) + 1)) if judged else 1.0
    return CheckResult(name="bias", verdict=verdict, score=score, evidence=evidence)


__all__ = ["ITA_GROUPS", "BiasGuardrail", "audit_batch", "ita_group", "skin_ita"]
