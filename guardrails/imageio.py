"""Decode untrusted image files safely: every guardrail entry point reads images through here.

Creatives come from outside faceloop too (`faceloop check`), so a file may be empty,
truncated, not an image at all, or a decompression bomb whose header claims 20000x20000
pixels. The header is read and the dimensions checked before a single pixel is decoded;
anything wrong raises `BadImageError` (an `InputError`) that names the file and the fix.
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
        try:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
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
