"""Decode untrusted image files safely: every guardrail entry point reads images through here.

Creatives come from outside faceloop too (`faceloop check`), so a file may be empty,
truncated, not an image at all, or a decompression bomb whose header claims 20000x20000
pixels. The header is read and the dimensions checked before a single pixel is decoded;
anything wrong raises `BadImageError` (an `InputError`) that names the file and the fix.

Animated images (APNG, animated WebP; GIF is not accepted at all) are refused, not checked
frame by frame: an ad creative here is a still, and every guardrail judges one picture.
Checking only the first frame would pass a clean first frame over a later one that is not;
checking every frame would multiply each guardrail's cost by a count the file chooses, and
what a viewer sees is each frame composited over the previous ones (disposal and blend
modes), not the raw frames. So one rule: one frame, or a clear refusal.

16-bit images keep their range: 16-bit greyscale PNG is scaled to 8 bits (65535 -> 255),
never clipped (PIL's own conversion clips it, turning a gradient white from 1/256 up).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from faceloop.errors import InputError

# 40 megapixels covers every ad format (the largest, 8K, is 33 MP); above that a file is a
# mistake or an attack, and decoding it would cost a worker gigabytes of memory.
MAX_PIXELS = 40_000_000
MAX_SIDE = 10_000
MAX_BYTES = 64 * 1024 * 1024
FORMATS = ("PNG", "JPEG", "WEBP")


class BadImageError(InputError):
    """A file that is not a decodable image within the limits; nothing was judged."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(source, [problem])
        self.problem = problem


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """HxWx3 uint8 RGB pixels of an encoded PNG, JPEG or WebP, or BadImageError."""
    if len(data) == 0:
        raise BadImageError(source, "the file is empty (0 bytes); pass a PNG, JPEG or WebP image")
    if len(data) > MAX_BYTES:
        raise BadImageError(
            source, f"the file is {len(data):,} bytes, over the {MAX_BYTES:,} byte limit"
        )
    try:
        # Image.open reads the header only; pixels are decoded by load() below
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except UnidentifiedImageError:
        raise BadImageError(
            source, "not a PNG, JPEG or WebP image (unrecognised header); pass an image file"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(source, f"refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(source, f"unreadable image header: {exc}") from None
    with im:
        width, height = im.size
        if width < 1 or height < 1:
            raise BadImageError(source, f"the header claims an empty image ({width}x{height})")
        if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
            raise BadImageError(
                source,
                f"the header claims {width}x{height} pixels, over the limit of {MAX_SIDE} px "
                f"a side and {MAX_PIXELS:,} pixels; resize the creative before checking it",
            )
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            raise BadImageError(
                source,
                f"an animated image ({frames} frames); faceloop checks still creatives only: "
                "export the frame you mean to ship as a PNG, JPEG or WebP still",
            )
        try:
            im.load()
            rgb = _rgb(im)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # PIL raises OSError("image file is truncated ...") for cut-off files
            raise BadImageError(source, f"corrupt or truncated image data: {exc}") from None
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file; a missing, unreadable or bad file raises BadImageError."""
    p = Path(path)
    if not p.is_file():
        raise BadImageError(str(p), "no such file (or it is a directory); check the path")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BadImageError(str(p), f"cannot be read: {exc.strerror}") from None
    return decode_image(data, str(p))


def _rgb(im: Image.Image) -> np.ndarray:
    """HxWx3 RGB pixels, 16-bit greyscale scaled to 8 bits rather than clipped."""
    # PNG's 16-bit greyscale opens as I;16 (I;16B, or I in older Pillow) holding 0..65535;
    # PIL's convert("RGB") clips it at 255. 16-bit colour PNGs open as RGB/RGBA, already
    # reduced to their high bytes by PIL, which is the correct scaling.
    if im.mode == "I" or im.mode.startswith("I;16"):
        grey = np.asarray(im).astype(np.float64)
        grey8 = np.rint(np.clip(grey, 0, 65535) / 257.0).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    return np.asarray(im.convert("RGB"))
