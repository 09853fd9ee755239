"""Ad-placement exports: one JPEG/WebP per placement, each a C2PA transform of the signed file.

For an approved, watermarked and signed creative, each placement (1:1, 4:5, 9:16, 1.91:1)
gets its own file:

1. Framing. A window of the placement's aspect ratio is chosen on the source so that the
   detected face (YuNet, with a margin) lies inside the placement's safe area, the part of
   the frame that the platform's own interface does not cover (`SAFE_AREAS`). The window is
   the largest one of that ratio the source holds ("crop"); where no such window keeps the
   face in the safe area (a face too large for it, or too near an edge), the window grows
   past the source and the canvas is extended with a blurred mirror of the edges ("extend").
   No generative outpainting: that needs a diffusion model, and this runs on CPU workers.
2. The window is resized to the placement's pixel size (times `ExportConfig.scale`).
3. The watermark is embedded again with the original's payload. Cropping and resizing move
   the watermark's block grid, so the original's mark does not survive them (measured:
   9 of 32 bits wrong after a 9:16 crop of a 256 px creative, docs/export.md). It is aimed
   through the export's own encoding (watermark.embed's `through`): embedded, encoded and
   decoded, and embedded again past what the encoding took off, so that what is delivered
   reads right.
4. Encoded as JPEG or WebP with an embedded sRGB ICC profile (the pixels are sRGB; without
   a profile some viewers guess another space and shift the skin tones).
5. Signed with C2PA as a transform whose parent ingredient is the signed original
   (actions c2pa.opened, c2pa.cropped or c2pa.edited, c2pa.resized, c2pa.converted).
6. Read back: the manifest must verify, and the watermark is decoded from the exported bytes;
   its recall (share of the 32 payload bits read correctly) is recorded. An export whose
   watermark is lost (more than MATCH_BITS wrong bits) or whose manifest does not verify
   is refused: recorded with the reason, never stored for delivery.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, ImageCms

from faceloop.errors import FaceloopError
from faceloop.models import (
    PLACEMENTS,
    ExportConfig,
    ExportFormat,
    Placement,
    PlacementExport,
)

from .imageio import decode_image
from .provenance import ASSET_LABEL, Provenance
from .vision import Face
from .watermark import (
    MATCH_BITS,
    MIN_PIXELS,
    PAYLOAD_BITS,
    Method,
    bit_errors,
    decode,
    embed,
    payload_for,
)

Box = tuple[float, float, float, float]  # x, y, width, height


@dataclass(frozen=True)
class SafeArea:
    """Fractions of the frame kept clear of the face on each side (the platform's UI)."""

    top: float
    right: float
    bottom: float
    left: float

    def box(self, width: float, height: float) -> Box:
        x0, y0 = self.left * width, self.top * height
        return x0, y0, width * (1 - self.left - self.right), height * (1 - self.top - self.bottom)


@dataclass(frozen=True)
class PlacementSpec:
    placement: Placement
    width: int
    height: int
    safe: SafeArea
    used_for: str

    @property
    def ratio(self) -> float:
        return self.width / self.height


# Pixel sizes are the platforms' recommended sizes. Safe areas: feed placements keep a 5%
# margin (cropping previews and rounded corners); 9:16 stories/reels keep the top 14% and
# bottom 20% clear (Meta's guidance: profile name at the top, reply bar and call to action
# at the bottom) and 6% at the sides.
SAFE_AREAS: dict[Placement, PlacementSpec] = {
    "1:1": PlacementSpec(
        "1:1", 1080, 1080, SafeArea(0.05, 0.05, 0.05, 0.05), "feed square: Meta, Google display"
    ),
    "4:5": PlacementSpec(
        "4:5", 1080, 1350, SafeArea(0.05, 0.05, 0.05, 0.05), "feed portrait: Meta"
    ),
    "9:16": PlacementSpec(
        "9:16",
        1080,
        1920,
        SafeArea(0.14, 0.06, 0.20, 0.06),
        "stories and reels: Meta, TikTok",
    ),
    "1.91:1": PlacementSpec(
        "1.91:1", 1200, 628, SafeArea(0.05, 0.05, 0.05, 0.05), "landscape: Google display, links"
    ),
}

# Which placements a channel serves when the campaign does not list them (docs/export.md).
CHANNEL_PLACEMENTS: dict[str, tuple[Placement, ...]] = {
    "meta": ("1:1", "4:5", "9:16"),
    "google_ads": ("1.91:1", "1:1"),
    "tiktok": ("9:16",),
    "sandbox": PLACEMENTS,
}

# Margin added around YuNet's box (brows to chin) on every side, as a share of its size:
# hair and ears belong to the face a viewer sees, and a re-detection may shift a little.
FACE_MARGIN = 0.10
MEDIA_TYPES: dict[ExportFormat, Literal["image/jpeg", "image/webp"]] = {
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}
SUFFIXES = {"image/jpeg": ".jpg", "image/webp": ".webp"}


def placements_for(config: ExportConfig, channels: Sequence[str]) -> list[Placement]:
    """The campaign's placements: the configured list, else the union over its channels
    (in the order of PLACEMENTS); an unknown channel (a plugin connector) gets all four."""
    if config.placements is not None:
        return list(config.placements)
    wanted = {p for ch in channels for p in CHANNEL_PLACEMENTS.get(ch, PLACEMENTS)}
    return [p for p in PLACEMENTS if p in wanted]


@cache
def srgb_icc() -> bytes:
    """An sRGB ICC profile (LittleCMS's built-in one) to embed in every export."""
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


# --------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class Window:
    """The part of the source an export shows, in source pixels; it may reach past the
    source's edges, which are then filled (fit "extend")."""

    x: float
    y: float
    w: float
    h: float
    fit: Literal["crop", "extend"]

    def to_output(self, box: Box, out_w: int, out_h: int) -> Box:
        """A source-pixel box in the output's pixel coordinates."""
        sx, sy = out_w / self.w, out_h / self.h
        return (box[0] - self.x) * sx, (box[1] - self.y) * sy, box[2] * sx, box[3] * sy


def with_margin(box: Box, margin: float = FACE_MARGIN) -> Box:
    x, y, w, h = box
    return x - margin * w, y - margin * h, w * (1 + 2 * margin), h * (1 + 2 * margin)


def inside(box: Box, area: Box, tol: float = 1e-6) -> bool:
    return (
        box[0] >= area[0] - tol
        and box[1] >= area[1] - tol
        and box[0] + box[2] <= area[0] + area[2] + tol
        and box[1] + box[3] <= area[1] + area[3] + tol
    )


def _place(lo: float, hi: float, size: float, keep_lo: float, keep_hi: float, src: float) -> float:
    """Start of a window of `size` along one axis that puts the span [lo, hi] inside its
    safe band [keep_lo, 1 - keep_hi]: inside the source where possible, and as near the
    band's centre as that allows."""
    first = hi - (1 - keep_hi) * size  # the smallest start that keeps `hi` in the band
    last = lo - keep_lo * size  # the largest start that keeps `lo` in the band
    centred = (lo + hi) / 2 - (keep_lo + 1 - keep_hi) / 2 * size
    in_lo, in_hi = (0.0, src - size) if size <= src else (src - size, 0.0)
    a, b = max(first, in_lo), min(last, in_hi)
    if a <= b:
        return min(max(centred, a), b)
    # no start keeps both the face in the band and the window in the source: the one of the
    # band's starts nearest to the source, and the rest of the window is extended canvas
    return last if last < in_lo else first


def plan_window(src_w: int, src_h: int, spec: PlacementSpec, face: Box | None) -> Window:
    """The window of the placement's ratio to cut from (or extend around) the source."""
    ratio = spec.ratio
    if src_w / src_h >= ratio:
        w0, h0 = src_h * ratio, float(src_h)
    else:
        w0, h0 = float(src_w), src_w / ratio
    if face is None:
        # nothing to keep in the safe area: the centred cover crop
        return Window((src_w - w0) / 2, (src_h - h0) / 2, w0, h0, "crop")
    fx, fy, fw, fh = face
    s = spec.safe
    grow = max(
        1.0,
        fw / ((1 - s.left - s.right) * w0),
        fh / ((1 - s.top - s.bottom) * h0),
    )
    w, h = w0 * grow, h0 * grow
    x = _place(fx, fx + fw, w, s.left, s.right, src_w)
    y = _place(fy, fy + fh, h, s.top, s.bottom, src_h)
    tol = 1e-6
    crop = x >= -tol and y >= -tol and x + w <= src_w + tol and y + h <= src_h + tol
    return Window(x, y, w, h, "crop" if crop else "extend")


def _extend(rgb: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """The image on a larger canvas: the new margins hold a blurred mirror of the edges,
    feathered into a sharp mirror right at the seam so no hard line shows."""
    h, w = rgb.shape[:2]
    mirror = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_REFLECT_101)
    sigma = 0.04 * max(h, w) + 1.0
    blurred = cv2.GaussianBlur(mirror, (0, 0), sigma)
    # distance (px) from the original rectangle: 0 inside, growing outwards
    yy, xx = np.mgrid[0 : mirror.shape[0], 0 : mirror.shape[1]].astype(np.float32)
    dx = np.maximum(np.maximum(left - xx, xx - (left + w - 1)), 0)
    dy = np.maximum(np.maximum(top - yy, yy - (top + h - 1)), 0)
    feather = max(2.0, 0.02 * max(h, w))
    weight = np.clip(np.hypot(dx, dy) / feather, 0.0, 1.0)[:, :, None]
    out = mirror.astype(np.float32) * (1 - weight) + blurred.astype(np.float32) * weight
    out[top : top + h, left : left + w] = rgb  # the source's own pixels are never touched
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render(rgb: np.ndarray, win: Window, out_w: int, out_h: int) -> np.ndarray:
    """The window's pixels (extended where it reaches past the source) at out_w x out_h."""
    src_h, src_w = rgb.shape[:2]
    x0, y0 = math.floor(win.x), math.floor(win.y)
    x1, y1 = math.ceil(win.x + win.w), math.ceil(win.y + win.h)
    pad = (max(0, -y0), max(0, y1 - src_h), max(0, -x0), max(0, x1 - src_w))
    canvas = _extend(rgb, *pad) if any(pad) else rgb
    cut = canvas[y0 + pad[0] : y1 + pad[0], x0 + pad[2] : x1 + pad[2]]
    shrink = out_w < cut.shape[1]
    resized = cv2.resize(
        np.ascontiguousarray(cut),
        (out_w, out_h),
        interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4,
    )
    return np.clip(resized, 0, 255).astype(np.uint8)


def output_size(
    spec: PlacementSpec, scale: float | None, src_w: int, src_h: int
) -> tuple[int, int]:
    """The export's pixel size: the placement's recommended size times `scale`; with no
    scale, as large as the source's resolution allows (its short side against 1080) but
    never below the watermark's minimum area."""
    if scale is None:
        scale = min(1.0, min(src_w, src_h) / 1080)
    least = math.sqrt(MIN_PIXELS / (spec.width * spec.height))
    scale = max(scale, least)
    w = math.ceil(spec.width * scale)
    h = round(w * spec.height / spec.width)
    while w * h < MIN_PIXELS:  # rounding may fall a row short of the minimum
        h += 1
    return w, h


def encode(rgb: np.ndarray, fmt: ExportFormat, quality: int) -> bytes:
    """JPEG or WebP bytes with the sRGB ICC profile embedded."""
    buf = io.BytesIO()
    im = Image.fromarray(rgb, "RGB")
    if fmt == "jpeg":
        im.save(buf, format="JPEG", quality=quality, optimize=True, icc_profile=srgb_icc())
    else:
        im.save(buf, format="WEBP", quality=quality, method=4, icc_profile=srgb_icc())
    return buf.getvalue()


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportResult:
    """One export: its record, and its bytes (empty when refused: nothing to deliver)."""

    record: PlacementExport
    data: bytes


class Exporter:
    """Makes the placement exports of signed creatives with one signing identity."""

    def __init__(
        self,
        provenance: Provenance,
        method: Method,
        detect: Callable[[np.ndarray], list[Face]] | None = None,
    ) -> None:
        self.provenance = provenance
        self.method = method
        self._detect = detect

    def face(self, rgb: np.ndarray) -> Box | None:
        """The largest detected face's box with FACE_MARGIN, or None."""
        if self._detect is None:
            from .vision import detect_faces

            self._detect = detect_faces
        faces = self._detect(rgb)
        if not faces:
            return None
        return with_margin(max(faces, key=lambda f: f.area).box)

    def export(
        self,
        signed: bytes,
        signed_asset_id: str,
        variant_id: str,
        placements: Sequence[Placement],
        config: ExportConfig,
        media_type: str = "image/png",
    ) -> list[ExportResult]:
        """Every (placement, format) export of one signed creative."""
        parent = self.provenance.read(signed, media_type)
        if parent["state"] not in ("Trusted", "Valid"):
            raise FaceloopError(
                f"variant {variant_id}: the signed creative {signed_asset_id} has no valid C2PA "
                f"manifest ({parent['state']}); it must come from the sign stage"
            )
        active = parent["manifests"].get(parent.get("active_manifest"), {})
        signed_for: dict[str, Any] = next(
            (a.get("data", {}) for a in active.get("assertions", []) if a["label"] == ASSET_LABEL),
            {},
        )
        generated = str(signed_for.get("asset_id") or "")
        if not generated:
            raise FaceloopError(
                f"variant {variant_id}: the signed creative's manifest names no faceloop asset; "
                "exports are made from what the sign stage wrote"
            )
        payload = payload_for(generated)
        rgb = decode_image(signed, f"signed creative {signed_asset_id} of {variant_id}")
        face = self.face(rgb)
        out = []
        for placement in placements:
            spec = SAFE_AREAS[placement]
            w, h = output_size(spec, config.scale, rgb.shape[1], rgb.shape[0])
            win = plan_window(rgb.shape[1], rgb.shape[0], spec, face)
            rendered = render(rgb, win, w, h)
            in_safe = (
                None if face is None else inside(win.to_output(face, w, h), spec.safe.box(w, h))
            )
            for fmt in config.formats:
                quality = config.jpeg_quality if fmt == "jpeg" else config.webp_quality
                framed = embed(
                    rendered, payload, self.method, through=_round_trip(fmt, quality, placement)
                )
                out.append(
                    self._one(
                        signed,
                        media_type,
                        signed_asset_id,
                        signed_for | {"parent_asset_id": signed_asset_id, "placement": placement},
                        framed,
                        fmt,
                        quality,
                        win,
                        (rgb.shape[1], rgb.shape[0]),
                        placement,
                        payload,
                        in_safe,
                    )
                )
        return out

    def _one(
        self,
        parent: bytes,
        parent_media_type: str,
        parent_id: str,
        asset: dict[str, Any],
        framed: np.ndarray,
        fmt: ExportFormat,
        quality: int,
        win: Window,
        src: tuple[int, int],
        placement: Placement,
        payload: str,
        in_safe: bool | None,
    ) -> ExportResult:
        import hashlib

        media_type = MEDIA_TYPES[fmt]
        h, w = framed.shape[:2]
        window = {
            k: round(v, 2) for k, v in (("x", win.x), ("y", win.y), ("w", win.w), ("h", win.h))
        }
        first: tuple[str, dict[str, Any]]
        if win.fit == "crop":
            first = ("c2pa.cropped", {"placement": placement, **window})
        else:
            first = (
                "c2pa.edited",
                {
                    "placement": placement,
                    **window,
                    "description": "canvas extended past the source with a blurred mirror "
                    "of its edges (no generative fill)",
                },
            )
        data = self.provenance.sign_transform(
            parent,
            encode(framed, fmt, quality),
            first[0],
            first[1],
            more_actions=[
                {
                    "action": "c2pa.resized",
                    "parameters": {
                        "from": list(src),
                        "window": [window["w"], window["h"]],
                        "to": [w, h],
                    },
                },
                {
                    "action": "c2pa.edited",
                    "parameters": {
                        "description": "invisible watermark embedded again with the "
                        "original's payload (crops and resizes move its block grid)",
                        "method": self.method,
                    },
                },
                {
                    "action": "c2pa.converted",
                    "parameters": {"to": media_type, "quality": quality, "icc": "sRGB"},
                },
            ],
            media_type=media_type,
            parent_media_type=parent_media_type,
            asset=asset,
        )
        report = self.provenance.read(data, media_type)
        manifest_ok = report["state"] == "Trusted" and _names_parent(report)
        errors = bit_errors(decode(decode_image(data, f"{placement} export"), self.method), payload)
        refused = []
        if not manifest_ok:
            refused.append(
                f"the export's C2PA manifest does not verify ({report['state']}): "
                + "; ".join(report["failures"][:3])
            )
        if errors > MATCH_BITS:
            refused.append(
                f"the watermark is lost after {fmt.upper()} quality {quality}: {errors} of "
                f"{PAYLOAD_BITS} bits wrong (at most {MATCH_BITS}); raise the quality"
            )
        record = PlacementExport(
            placement=placement,
            asset_id=hashlib.sha256(data).hexdigest(),
            parent_asset_id=parent_id,
            media_type=media_type,
            width=w,
            height=h,
            quality=quality,
            fit=win.fit,
            face_in_safe_area=in_safe,
            manifest_ok=manifest_ok,
            watermark_bit_errors=errors,
            watermark_recall=round((PAYLOAD_BITS - errors) / PAYLOAD_BITS, 4),
            refused="; ".join(refused),
        )
        return ExportResult(record, b"" if refused else data)


def _round_trip(
    fmt: ExportFormat, quality: int, placement: Placement
) -> Callable[[np.ndarray], np.ndarray]:
    """The export's encoding and the read-back's decoding, for the watermark to aim through."""
    return lambda rgb: decode_image(encode(rgb, fmt, quality), f"{placement} export")


def _names_parent(report: dict[str, Any]) -> bool:
    """Whether the active manifest has the signed original as its parentOf ingredient."""
    active = report["manifests"].get(report.get("active_manifest"), {})
    return any(i.get("relationship") == "parentOf" for i in active.get("ingredients", []))


__all__ = [
    "CHANNEL_PLACEMENTS",
    "FACE_MARGIN",
    "SAFE_AREAS",
    "ExportResult",
    "Exporter",
    "PlacementSpec",
    "SafeArea",
    "Window",
    "encode",
    "output_size",
    "placements_for",
    "plan_window",
    "render",
    "srgb_icc",
]
