"""Content-addressed asset store: an asset's id is the sha256 of its bytes.

The embedded default is a local folder; URIs are `file://` URLs so that workers on other
machines (with a shared or object-store path) resolve the same asset the same way.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
from PIL import Image

from faceloop.errors import FaceloopError


class AssetStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, asset_id: str, suffix: str) -> Path:
        return self.root / asset_id[:2] / f"{asset_id}{suffix}"

    def put_bytes(self, data: bytes, suffix: str = ".png") -> tuple[str, str]:
        """Store bytes; return (asset_id, uri). Writing the same bytes twice is a no-op."""
        asset_id = hashlib.sha256(data).hexdigest()
        path = self._path(asset_id, suffix)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # write-then-rename so a crash never leaves a half-written asset under its id
            tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return asset_id, path.as_uri()

    def put_image(self, rgb: np.ndarray) -> tuple[str, str]:
        """Store an HxWx3 uint8 RGB array as PNG."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise FaceloopError(
                f"put_image wants an HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}"
            )
        buf = io.BytesIO()
        # PNG without timestamps: identical pixels give identical bytes, so identical ids
        Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=False)
        return self.put_bytes(buf.getvalue(), ".png")

    def path_of(self, uri: str) -> Path:
        """The file behind a `file://` URI of this store, refused unless it lies inside the
        store once `..` and symlinks are resolved (a URI comes from payloads and the catalog,
        so it is input, not trusted)."""
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise FaceloopError(
                f"asset URI {uri!r}: only local file:// URIs are supported by this store"
            )
        # percent-decoded: a store under a folder with spaces or non-ASCII letters has its
        # path quoted in the URI (Path.as_uri)
        raw = Path(url2pathname(parsed.path))
        if not raw.is_absolute():
            raise FaceloopError(f"asset URI {uri!r} has no absolute path")
        path = raw.resolve()
        if not path.is_relative_to(self.root):
            raise FaceloopError(f"asset URI {uri!r} lies outside the asset store {self.root}")
        return path

    def get_bytes(self, uri: str) -> bytes:
        path = self.path_of(uri)
        if not path.exists():
            raise FaceloopError(f"asset {uri} is missing from the store at {self.root}")
        return path.read_bytes()

    def get_image(self, uri: str) -> np.ndarray:
        with Image.open(io.BytesIO(self.get_bytes(uri))) as im:
            return np.asarray(im.convert("RGB"))

    def exists(self, uri: str) -> bool:
        return self.path_of(uri).exists()

    def files_of(self, asset_id: str) -> list[Path]:
        """Every file stored under the id: the asset, its sidecars, a crashed write's temp."""
        if len(asset_id) < 3 or not all(c in "0123456789abcdef" for c in asset_id):
            raise FaceloopError(
                f"asset id {asset_id!r} is not a sha256 hex digest; asset ids are the sha256 of "
                "the stored bytes (64 lower-case hex characters)"
            )
        folder = self.root / asset_id[:2]
        return sorted(p for p in folder.glob(f"{asset_id}.*") if p.is_file())

    def delete(self, asset_id: str) -> list[Path]:
        """Scrub and remove every file of the asset; returns what was removed (none when run
        again)."""
        gone = []
        for path in self.files_of(asset_id):
            scrub_file(path)
            gone.append(path)
        return gone


def scrub_file(path: Path) -> bool:
    """Overwrite a file with zeros, sync, then unlink it; False if it was not there.

    Unlinking alone leaves the bytes in the freed blocks, readable with a raw disk read
    until reused. Overwriting first removes them on filesystems that write in place (ext4,
    xfs); copy-on-write filesystems, snapshots and SSD wear levelling can still keep old
    blocks (docs/privacy.md).
    """
    try:
        size = path.stat().st_size
        with path.open("r+b") as f:
            for start in range(0, size, 1 << 20):
                f.write(b"\0" * min(1 << 20, size - start))
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
    except FileNotFoundError:
        return False  # removed by an earlier attempt (erasure retries) or never there
    return True
