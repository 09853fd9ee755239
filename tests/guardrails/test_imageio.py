"""Bad input never crashes a worker: every kind of broken file gets a clear, named error."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceloop.guardrails.imageio import BadImageError, decode_image, read_image


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height; the pixel data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


IMG = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(IMG).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


BAD: dict[str, tuple[bytes, str]] = {
    "zero-size": (b"", "empty"),
    "text": (b"hello, I am not an image\n", "not a PNG, JPEG or WebP"),
    "pdf": (b"%PDF-1.4\n%...", "not a PNG, JPEG or WebP"),
    "truncated-png": (_png(IMG)[:200], "truncated|unreadable|corrupt"),
    "truncated-jpeg": (_jpeg()[: len(_jpeg()) // 2], "truncated|corrupt"),
    "corrupt-png": (
        _png(IMG)[:60] + b"\x00" * 400 + _png(IMG)[460:],
        "corrupt|truncated|unreadable",
    ),
    "huge-20000x20000": (_png_header_only(20000, 20000), "decompression bomb|over the limit"),
    "wide-12000x100": (_png_header_only(12000, 100), "over the limit"),
    "gif": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "not a PNG, JPEG or WebP"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_files_are_rejected_with_a_clear_error(name: str) -> None:
    data, pattern = BAD[name]
    with pytest.raises(BadImageError, match=pattern) as info:
        decode_image(data, f"upload/{name}")
    assert f"upload/{name}" in str(info.value)  # says which file


def test_huge_header_is_refused_before_decoding() -> None:
    # 20000x20000x3 would be 1.2 GB decoded; the refusal must come from the header alone
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(BadImageError):
        decode_image(_png_header_only(20000, 20000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50_000_000


def test_good_images_decode_to_rgb() -> None:
    rgba = np.dstack([IMG, np.full(IMG.shape[:2], 255, np.uint8)])
    for data in (_png(IMG), _jpeg(), _png(rgba)):
        rgb = decode_image(data)
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(BadImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(BadImageError, match="no such file"):
        read_image(tmp_path)


def _animated(fmt: str) -> bytes:
    """Two frames: a clean grey first frame and a different (here: red) second one."""
    clean = Image.new("RGB", (64, 64), (128, 128, 128))
    later = Image.new("RGB", (64, 64), (255, 0, 0))
    buf = io.BytesIO()
    clean.save(buf, format=fmt, save_all=True, append_images=[later], duration=100, loop=0)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_are_refused_not_judged_by_their_first_frame(fmt: str) -> None:
    data = _animated(fmt)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2  # really animated
    with pytest.raises(BadImageError, match="an animated image \\(2 frames\\)"):
        decode_image(data, f"ad.{fmt.lower()}")


def test_animated_gif_is_refused() -> None:
    with pytest.raises(BadImageError, match="not a PNG, JPEG or WebP"):
        decode_image(_animated("GIF"), "ad.gif")


def test_single_frame_apng_is_a_still() -> None:
    buf = io.BytesIO()
    Image.fromarray(IMG).save(buf, format="PNG", save_all=True, append_images=[])
    assert np.array_equal(decode_image(buf.getvalue()), IMG)


def test_16_bit_greyscale_keeps_its_range() -> None:
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)
    grey16 = np.tile(ramp, (4, 1))
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I;16")
    rgb = decode_image(buf.getvalue())
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 256, 3)
    # a full gradient, not one clipped to white from 1/256 of the way up
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.array_equal(rgb[0, :, 0], expected)
    assert np.array_equal(rgb[..., 0], rgb[..., 2])
    assert rgb[0, 128, 0] in (127, 128)


def test_16_bit_colour_keeps_its_range() -> None:
    import cv2

    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)
    rgb16 = np.stack(
        [np.tile(ramp, (4, 1)), np.tile(ramp[::-1], (4, 1)), np.zeros((4, 256), np.uint16)], -1
    )
    ok, enc = cv2.imencode(".png", rgb16[..., ::-1])  # OpenCV writes BGR, 16-bit
    assert ok
    rgb = decode_image(enc.tobytes())
    assert abs(int(rgb[0, 255, 0]) - 255) <= 1 and abs(int(rgb[0, 128, 0]) - 128) <= 1
    assert abs(int(rgb[0, 0, 1]) - 255) <= 1
