"""Invisible watermark (invisible-watermark): a 32-bit payload derived from the asset id.

The payload is the first 32 bits of the asset id of the image as generated (before any
marking), so `faceloop verify` can go from a re-encoded, resized copy back to the catalog.
32 bits because rivaGan carries exactly 32; every method uses the same payload so the
benchmark compares like with like. A decode is accepted as a match when it lies within
MATCH_BITS bit errors of a known payload (false match: about 1.3e-6 per known asset).

Default method: dwtDctSvd (measured in docs/benchmarks.md (Guardrails)): it keeps bit accuracy
1.0 after JPEG 75 and a 0.5x resize at about 0.1 s each way, while rivaGan, which also
survives crops, costs about 4 s each way on 2 cores, sixteen times the whole chain's budget.

dwtDctSvd is embedded by `_embed_dwt_dct_svd`, not by invisible-watermark's encoder, and read
by invisible-watermark's decoder. The library's encoder writes the changed chroma plane back
into a uint8 array, which truncates: every block's quantised singular value lands 3-4 units
(of the 9 between a bit's target and the decision boundary) on the wrong side of its target,
and a JPEG at quality 95 of a smooth, soft-lit face then flipped 3-13 of the 32 bits
(docs/export.md). It also swaps the horizontal and vertical detail bands on the way back,
which alters the chroma plane though the decoder never reads those bands. Ours rounds, keeps
the bands, and moves each singular value to the nearest target of its bit (the library
always moves it within its own bin, up to 27 units, where 18 suffice): the same marks the
same decoder reads, with less change to the image.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Literal, get_args

import cv2
import numpy as np
import pywt

from faceloop.errors import FaceloopError
from faceloop.models import CheckResult, Verdict

from .base import GuardContext, Guardrail, require_rgb

Method = Literal["dwtDct", "dwtDctSvd", "rivaGan"]
METHODS: tuple[Method, ...] = get_args(Method)
DEFAULT_METHOD: Method = "dwtDctSvd"
PAYLOAD_BITS = 32
MATCH_BITS = 3
# invisible-watermark's dwtDctSvd parameters, which its decoder assumes: the U plane (YUV
# channel 1), quantisation step 36 of the largest singular value of each 4x4 block's DCT of
# the Haar approximation.
SVD_CHANNEL = 1
SVD_SCALE = 36.0
SVD_BLOCK = 4
# Codec-aimed embedding (`_aimed`): tries, and how far past a target a block may be aimed
# (the decision boundary is scale/4 = 9 away, so the uncompressed image still reads right).
AIM_TRIES = 4
AIM_LIMIT = 6.0
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


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix (what cv2.dct applies along each axis)."""
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


def _svd_blocks(bgr: np.ndarray) -> tuple[np.ndarray, Any, Any, tuple[int, int]]:
    """The U plane's Haar approximation, its other bands, and the 4x4 blocks' DCT's SVD."""
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    rows, cols = yuv.shape[0] // 4 * 4, yuv.shape[1] // 4 * 4
    approx, details = pywt.dwt2(yuv[:rows, :cols, SVD_CHANNEL].astype(np.float64), "haar")
    b = SVD_BLOCK
    bi, bj = approx.shape[0] // b, approx.shape[1] // b
    blocks = approx[: bi * b, : bj * b].reshape(bi, b, bj, b).transpose(0, 2, 1, 3)
    d = _dct_matrix(b)
    return approx, details, np.linalg.svd(d @ blocks.reshape(-1, b, b) @ d.T), (bi, bj)


def _residual(s0: np.ndarray, want: np.ndarray) -> np.ndarray:
    """How far each block's s0 lies from its bit's target, in (-scale/2, scale/2]."""
    target = (0.25 + 0.5 * want) * SVD_SCALE
    return -((target - s0 + SVD_SCALE / 2) % SVD_SCALE - SVD_SCALE / 2)


def _embed_dwt_dct_svd(
    bgr: np.ndarray,
    bits: list[int],
    aim: np.ndarray | None,
    parts: tuple[np.ndarray, Any, Any, tuple[int, int]] | None = None,
) -> np.ndarray:
    """invisible-watermark's dwtDctSvd embedding, rounded instead of truncated (module doc).

    `aim`: per block, how far past its bit's target to put s0 (what a codec will take off).
    `parts`: `_svd_blocks(bgr)`, when the caller embeds the same image more than once."""
    approx, details, (u, s, vt), (bi, bj) = parts or _svd_blocks(bgr)
    approx, s = approx.copy(), s.copy()  # `parts` stay as they were for the next try
    # blocks carry the payload's bits in turn, row by row, as the decoder reads them
    want = np.resize(np.asarray(bits, dtype=np.float64), len(s))
    target = (np.floor(s[:, 0] / SVD_SCALE) + 0.25 + 0.5 * want) * SVD_SCALE
    if aim is not None:
        target += aim
    # the nearest of target - scale, target, target + scale: the decoder reads s0 mod scale
    moved = target + np.round((s[:, 0] - target) / SVD_SCALE) * SVD_SCALE
    s[:, 0] = np.where(moved < 0, moved + SVD_SCALE, moved)  # a singular value is >= 0
    b, d = SVD_BLOCK, _dct_matrix(SVD_BLOCK)
    marked = d.T @ (u * s[:, None, :]) @ vt @ d
    approx[: bi * b, : bj * b] = (
        marked.reshape(bi, bj, b, b).transpose(0, 2, 1, 3).reshape(bi * b, bj * b)
    )
    plane = pywt.idwt2((approx, details), "haar")
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    rows, cols = plane.shape
    yuv[:rows, :cols, SVD_CHANNEL] = np.clip(np.rint(plane), 0, 255).astype(np.uint8)
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)


def _aimed(
    rgb: np.ndarray, bits: list[int], through: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """dwtDctSvd aimed so that the mark survives `through`, a deterministic codec round trip.

    A codec moves each block's s0 by a few units, mostly the same way (JPEG's clipping of
    saturated colours pulls the chroma in), and where the moves pile up on one bit's blocks
    the bit flips. So: embed, send through the codec, and embed again aimed past each
    target by what the codec took off (at most AIM_LIMIT, so the uncompressed image still
    reads right), up to AIM_TRIES times; the try whose round trip reads best is kept."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    parts = _svd_blocks(bgr)
    want = np.resize(np.asarray(bits, dtype=np.float64), len(parts[2][1]))
    aim = np.zeros(len(want))
    best: tuple[int, np.ndarray] | None = None
    for _ in range(AIM_TRIES):
        marked = cv2.cvtColor(_embed_dwt_dct_svd(bgr, bits, aim, parts), cv2.COLOR_BGR2RGB)
        s0 = _svd_blocks(cv2.cvtColor(through(marked), cv2.COLOR_RGB2BGR))[2][1][:, 0]
        wrong = bit_errors(_hex(_read_bits(s0, len(bits))), _hex(bits))
        if best is None or wrong < best[0]:
            best = (wrong, marked)
        if wrong == 0:
            break
        aim = np.clip(aim - _residual(s0, want), -AIM_LIMIT, AIM_LIMIT)
    assert best is not None
    return best[1]


def _read_bits(s0: np.ndarray, n: int) -> list[int]:
    """The bits invisible-watermark's decoder reads from the blocks' s0 (a majority per bit)."""
    votes = (s0 % SVD_SCALE > SVD_SCALE * 0.5).astype(np.float64)
    return [int(votes[i::n].mean() * 255 > 127) for i in range(n)]


def embed(
    rgb: np.ndarray,
    payload: str,
    method: Method = DEFAULT_METHOD,
    through: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """A copy of the RGB image carrying the 32-bit payload.

    `through` (dwtDctSvd only): the codec round trip the copy is bound for (RGB in, RGB out,
    e.g. JPEG at the export's quality); the mark is then aimed to survive it (`_aimed`)."""
    from imwatermark import WatermarkEncoder

    _check_size(rgb)
    if method == "dwtDctSvd":
        if through is not None:
            return _aimed(rgb, _bits(payload), through)
        bgr = _embed_dwt_dct_svd(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), _bits(payload), None)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
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
