"""Invisible watermark (invisible-watermark): a 32-bit payload derived from the asset id.

The payload is the first 32 bits of the asset id of the image as generated (before any
marking), so `faceloop verify` can go from a re-encoded, resized copy back to the catalog.
32 bits because rivaGan carries exactly 32; every method uses the same payload so the
benchmark compares like with like. A decode is accepted as a match when it lies within
MATCH_BITS bit errors of a known payload (false match: about 1.3e-6 per known asset).

Default method: dwtDctSvd (measured in docs/benchmarks.md (Guardrails)): it keeps bit accuracy
1.0 after JPEG 75 and a 0.5x resize at about 0.1 s each way, while rivaGan, which also
survives crops, costs about 4 s each way on 2 cores, sixteen times the whole chain's budget.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, ClassVar, Literal, get_args

import cv2
import numpy as np

from faceloop.errors import FaceloopError
from faceloop.models import CheckResult, Verdict

from .base import GuardContext, Guardrail, require_rgb

Method = Literal["dwtDct", "dwtDctSvd", "rivaGan"]
METHODS: tuple[Method, ...] = get_args(Method)
DEFAULT_METHOD: Method = "dwtDctSvd"
PAYLOAD_BITS = 32
MATCH_BITS = 3
MIN_PIXELS = 256 * 256  # invisible-watermark refuses smaller images

_riva_lock = threading.Lock()
_riva_loaded = False


def payload_for(asset_id: str) -> str:
    """The 8 hex digits (32 bits) an asset's watermark carries."""
    prefix = asset_id.lower()[:8]
    try:
        int(prefix, 16)
    except ValueError:
        raise FaceloopError(
            f"asset id {asset_id!r} is not a sha256 hex digest; watermarks derive from it"
        ) from None
    if len(prefix) != 8:
        raise FaceloopError(f"asset id {asset_id!r} is too short to derive a watermark from")
    return prefix


def _bits(payload: str) -> list[int]:
    return [int(b) for b in f"{int(payload, 16):032b}"]


def _hex(bits: list[int] | np.ndarray) -> str:
    return f"{int(''.join(str(int(b)) for b in bits), 2):08x}"


def bit_errors(a: str, b: str) -> int:
    return int(bin(int(a, 16) ^ int(b, 16)).count("1"))


def _load_riva() -> None:
    global _riva_loaded
    with _riva_lock:
        if not _riva_loaded:
            from imwatermark import WatermarkEncoder

            WatermarkEncoder.loadModel()
            _riva_loaded = True


def _check_size(rgb: np.ndarray) -> None:
    if rgb.shape[0] * rgb.shape[1] < MIN_PIXELS:
        raise FaceloopError(
            f"image {rgb.shape[1]}x{rgb.shape[0]} is too small to watermark "
            f"(at least {MIN_PIXELS:,} pixels, e.g. 256x256)"
        )


def embed(rgb: np.ndarray, payload: str, method: Method = DEFAULT_METHOD) -> np.ndarray:
    """A copy of the RGB image carrying the 32-bit payload."""
    from imwatermark import WatermarkEncoder

    _check_size(rgb)
    if method == "rivaGan":
        _load_riva()
    enc = WatermarkEncoder()
    enc.set_watermark("bits", _bits(payload))
    bgr = enc.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), method)
    return cv2.cvtColor(np.clip(bgr, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB)


def decode(rgb: np.ndarray, method: Method = DEFAULT_METHOD) -> str:
    """The 32-bit payload read from the image (always some bits: match it against ids)."""
    from imwatermark import WatermarkDecoder

    _check_size(rgb)
    if method == "rivaGan":
        _load_riva()
    dec = WatermarkDecoder("bits", PAYLOAD_BITS)
    bits = dec.decode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), method)
    return _hex(bits)


class WatermarkGuardrail(Guardrail):
    """Reads the watermark. Known payloads (from the provenance ledger) name the asset;
    an unmarked image passes here: marking happens at the sign stage, after approval."""

    name: ClassVar[str] = "watermark"

    def __init__(self, method: Method = DEFAULT_METHOD, known: Any = None) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown watermark method {method!r}; use one of {METHODS}")
        self.method = method
        self.known = known  # callable payload -> list of ledger records, or None

    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        require_rgb(rgb, ctx)
        if rgb.shape[0] * rgb.shape[1] < MIN_PIXELS:
            return self.result(
                Verdict.passed, 0.0, {"method": self.method, "decoded": None, "found": False}
            )
        payload = decode(rgb, self.method)
        matches = list(self.known(payload)) if self.known is not None else []
        expected = None
        with contextlib.suppress(FaceloopError):  # a non-hex id (a file checked by path)
            expected = payload_for(ctx.asset_id)
        errors = bit_errors(payload, expected) if expected else None
        found = bool(matches) or (errors is not None and errors <= MATCH_BITS)
        evidence: dict[str, object] = {
            "method": self.method,
            "decoded": payload,
            "found": found,
            "bit_errors_vs_asset_id": errors,
            "matches": matches,
        }
        score = 1.0 - (min(errors, PAYLOAD_BITS) / PAYLOAD_BITS) if errors is not None else 0.0
        return self.result(Verdict.passed, score if found else 0.0, evidence)
