"""Content-addressed asset store: an asset's id is the sha256 of its bytes.

One interface over fsspec, two kinds of place (docs/storage.md):
- a local folder, the embedded default; URIs are `file://` URLs;
- an S3-compatible object store (AWS S3, MinIO, R2, ...), `FACELOOP_ASSET_URL=s3://bucket/prefix`;
  URIs are `s3://bucket/prefix/ab/<id>.png`, so workers on machines that share no file
  system resolve the same asset the same way.

A URI comes from payloads and the catalog, so it is input, not trusted: one that does not
lie inside this store (another bucket or prefix, `..`, a symlink out, another scheme) is
refused before anything is read.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

import fsspec
import numpy as np
from PIL import Image

from faceloop.errors import FaceloopError

if TYPE_CHECKING:
    from faceloop.settings import Settings

# a bucket name as S3 allows it (3-63 lower-case letters, digits, dots, hyphens)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# one segment of a key under the prefix: no `..`, no empty segment, no URL syntax
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class WriteRecorder(Protocol):
    """What `put_for_variant` tells before it writes (the catalog's `record_asset_write`)."""

    def record_asset_write(
        self, asset_id: str, campaign_id: str, variant_id: str, kind: str
    ) -> None: ...


def content_id(data: bytes) -> str:
    """An asset's id: the sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def png_bytes(rgb: np.ndarray) -> bytes:
    """An HxWx3 uint8 RGB array as PNG, without timestamps: identical pixels give identical
    bytes, so identical ids."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise FaceloopError(f"an image must be an HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}")
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def put_for_variant(
    store: AssetStore,
    catalog: WriteRecorder,
    data: bytes,
    suffix: str,
    *,
    campaign_id: str,
    variant_id: str,
    kind: str,
) -> tuple[str, str]:
    """Store a file made for a variant, recording it first (`record_asset_write`): a file
    written and then replaced by a retry, or written by an attempt killed before its own
    record, is still one the variant's erasure finds. Returns (asset_id, uri)."""
    catalog.record_asset_write(content_id(data), campaign_id, variant_id, kind)
    return store.put_bytes(data, suffix)


def _is_sha256_prefix(asset_id: str) -> bool:
    return len(asset_id) >= 3 and all(c in "0123456789abcdef" for c in asset_id)


class AssetStore:
    """The asset store at `location`: a local folder (a path or a `file://` URL) or
    `s3://bucket/prefix`, with `storage_options` passed to s3fs (endpoint, credentials).

    Build it with `open_asset_store(settings)`; the constructor is for tests and tools that
    hold a folder.
    """

    def __init__(
        self, location: str | Path, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        text = str(location)
        scheme = text.split("://", 1)[0] if "://" in text else ""
        self._root: Path | None = None
        if scheme in ("", "file"):
            folder = Path(url2pathname(urlparse(text).path)) if scheme else Path(text)
            self._root = folder.expanduser().resolve()
            self._root.mkdir(parents=True, exist_ok=True)
            self.fs: fsspec.AbstractFileSystem = fsspec.filesystem("file")
            self._base = self._root.as_posix()
            self.url = self._root.as_uri()
        elif scheme == "s3":
            bucket, prefix = parse_s3_url(text)
            # no listing cache: other workers add and erase objects behind this process's back
            options = {"use_listings_cache": False, **(storage_options or {})}
            # skip_instance_cache: two stores with different credentials never share a client
            self.fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
            self._base = f"{bucket}/{prefix}" if prefix else bucket
            self.url = f"s3://{self._base}"
        else:
            raise FaceloopError(
                f"asset store {text!r}: scheme {scheme!r} is not supported; use a local folder "
                "(FACELOOP_ASSET_ROOT) or an S3-compatible store, s3://bucket/prefix "
                "(FACELOOP_ASSET_URL)"
            )

    def __repr__(self) -> str:
        # the URL only: the storage options hold credentials
        return f"AssetStore({self.url!r})"

    @property
    def is_local(self) -> bool:
        return self._root is not None

    @property
    def root(self) -> Path:
        """The folder of a local store; an object store has none."""
        if self._root is None:
            raise FaceloopError(
                f"asset store {self.url} keeps objects, not files: it has no local folder; "
                "read assets with get_bytes(uri)"
            )
        return self._root

    # ------------------------------------------------------------------ names

    def _uri(self, key: str) -> str:
        if self._root is not None:
            return (self._root / key).as_uri()
        return f"{self.url}/{key}"

    def _loc(self, key: str) -> str:
        """The fsspec path of a key under the store."""
        return f"{self._base}/{key}"

    def _key(self, uri: str) -> str:
        """The key under the store of one of its URIs, refused unless it lies inside it."""
        if self._root is not None:
            return self.path_of(uri).relative_to(self._root).as_posix()
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme != "s3":
            raise FaceloopError(
                f"asset URI {uri!r}: this store is {self.url}; only its s3:// URIs are accepted"
            )
        head = self.url + "/"
        if not uri.startswith(head):
            raise FaceloopError(
                f"asset URI {uri!r} lies outside the asset store {self.url} (another bucket or "
                "prefix); an asset is read only from the store this deployment writes to"
            )
        key = uri[len(head) :]
        if not all(_SEGMENT.match(part) for part in key.split("/")):
            raise FaceloopError(
                f"asset URI {uri!r}: key {key!r} is not an asset key of the store (empty, `.`, "
                "`..` or characters outside A-Z a-z 0-9 . _ -)"
            )
        return key

    def path_of(self, uri: str) -> Path:
        """The file behind a `file://` URI of a local store, refused unless it lies inside
        the store once `..` and symlinks are resolved (a URI comes from payloads and the
        catalog, so it is input, not trusted)."""
        if self._root is None:
            raise FaceloopError(
                f"asset URI {uri!r}: asset store {self.url} keeps objects, not files; there is "
                "no local path (read it with get_bytes)"
            )
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
        if not path.is_relative_to(self._root):
            raise FaceloopError(f"asset URI {uri!r} lies outside the asset store {self._root}")
        return path

    # ------------------------------------------------------------------ read / write

    def put_bytes(self, data: bytes, suffix: str = ".png") -> tuple[str, str]:
        """Store bytes; return (asset_id, uri). Writing the same bytes twice is a no-op.
        A file made for a variant goes through `put_for_variant`, which records it first."""
        asset_id = content_id(data)
        key = f"{asset_id[:2]}/{asset_id}{suffix}"
        self._write(key, data, overwrite=False)
        return asset_id, self._uri(key)

    def _write(self, key: str, data: bytes, overwrite: bool) -> None:
        if not all(_SEGMENT.match(part) for part in key.split("/")):
            raise FaceloopError(f"asset key {key!r} has characters outside A-Z a-z 0-9 . _ -")
        if self._root is not None:
            path = self._root / key
            if path.exists() and not overwrite:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            # write-then-rename so a crash never leaves a half-written asset under its id
            tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
            try:
                tmp.write_bytes(data)
                tmp.replace(path)
            except BaseException:
                # a full disk or a kill mid-write: no stray half file stays behind, and
                # the error reaches the activity, whose retry writes the whole asset again
                tmp.unlink(missing_ok=True)
                raise
            return
        loc = self._loc(key)
        if not overwrite and self.fs.exists(loc):
            return
        try:
            # one PUT: S3 makes an object visible whole or not at all, so no temp-and-rename
            self.fs.pipe_file(loc, data)
        except FileNotFoundError:
            raise FaceloopError(
                f"asset store {self.url}: the bucket does not exist at this endpoint; create "
                "it, or fix FACELOOP_ASSET_URL / FACELOOP_S3__ENDPOINT_URL"
            ) from None
        except PermissionError as exc:
            raise FaceloopError(
                f"asset store {self.url} refused the write ({exc}); check FACELOOP_S3__* "
                "credentials and the bucket policy"
            ) from None

    def put_image(self, rgb: np.ndarray) -> tuple[str, str]:
        """Store an HxWx3 uint8 RGB array as PNG (`png_bytes`)."""
        return self.put_bytes(png_bytes(rgb), ".png")

    def get_bytes(self, uri: str) -> bytes:
        key = self._key(uri)
        try:
            data: bytes = self.fs.cat_file(self._loc(key))
        except (FileNotFoundError, IsADirectoryError):
            raise FaceloopError(f"asset {uri} is missing from the store at {self.url}") from None
        except PermissionError as exc:
            raise FaceloopError(
                f"asset store {self.url} refused to read {uri} ({exc}); check FACELOOP_S3__* "
                "credentials and the bucket policy"
            ) from None
        return data

    def get_image(self, uri: str) -> np.ndarray:
        with Image.open(io.BytesIO(self.get_bytes(uri))) as im:
            return np.asarray(im.convert("RGB"))

    def exists(self, uri: str) -> bool:
        return bool(self.fs.isfile(self._loc(self._key(uri))))

    # ------------------------------------------------------------------ sidecars

    def sidecar_uri(self, uri: str, suffix: str) -> str:
        """The URI of the file stored beside an asset (`<asset file><suffix>`), which shares
        its id, so `delete` removes it with the asset."""
        return self._uri(self._key(uri) + suffix)

    def put_sidecar(self, uri: str, suffix: str, data: bytes) -> str:
        """Write (or replace) the sidecar of an asset; returns its URI."""
        key = self._key(uri) + suffix
        self._write(key, data, overwrite=True)
        return self._uri(key)

    def uris_ending(self, suffix: str) -> list[str]:
        """Every stored file or object whose name ends with `suffix` (sidecars, by kind)."""
        if not _SEGMENT.match(suffix.lstrip(".")):
            raise FaceloopError(f"suffix {suffix!r} has characters outside A-Z a-z 0-9 . _ -")
        return self._find("*", f"*{suffix}")

    def _find(self, folder: str, name: str) -> list[str]:
        """URIs of the files `<folder>/<name>` (glob patterns) under the store."""
        if self._root is not None:
            # Path.glob matches the pattern against names below the root only, so a root
            # whose path holds glob characters ([, *) is still read literally
            found = [p for p in self._root.glob(f"{folder}/{name}") if p.is_file()]
            return sorted(p.as_uri() for p in found)
        # the bucket and prefix are checked to hold no glob characters (parse_s3_url)
        hits = self.fs.glob(f"{self._base}/{folder}/{name}", detail=True)
        base = self._base + "/"
        return sorted(
            self._uri(str(p).removeprefix(base))
            for p, info in hits.items()
            if info.get("type") == "file"
        )

    # ------------------------------------------------------------------ erasure

    def uris_of(self, asset_id: str) -> list[str]:
        """Every file or object stored under the id: the asset, its sidecars, a crashed
        write's temp file."""
        if not _is_sha256_prefix(asset_id):
            raise FaceloopError(
                f"asset id {asset_id!r} is not a sha256 hex digest; asset ids are the sha256 of "
                "the stored bytes (64 lower-case hex characters)"
            )
        return self._find(asset_id[:2], f"{asset_id}.*")

    def files_of(self, asset_id: str) -> list[Path]:
        """The files of the id in a local store (`uris_of` for any store)."""
        return [self.path_of(u) for u in self.uris_of(asset_id)]

    def delete(self, asset_id: str) -> list[str]:
        """Remove every file or object of the asset; returns the URIs removed (none when
        run again). A local file is scrubbed first (`scrub_file`); an object store cannot
        overwrite in place, so its objects are deleted (erasure_note, docs/privacy.md)."""
        gone = []
        for uri in self.uris_of(asset_id):
            if self._root is not None:
                if not scrub_file(self.path_of(uri)):
                    continue
            else:
                try:
                    self.fs.rm_file(self._loc(self._key(uri)))
                except FileNotFoundError:
                    continue  # removed by an earlier attempt (erasure retries)
            gone.append(uri)
        return gone

    def erasure_note(self) -> str:
        """What `delete` did to the bytes, for the erasure report."""
        if self._root is not None:
            return f"files under {self._root} overwritten with zeros, removed"
        return (
            f"objects under {self.url} deleted (an object store cannot overwrite in place: "
            "bucket versioning, replication or backups may keep old versions; docs/privacy.md)"
        )


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix`; FaceloopError naming the fix otherwise."""
    parsed = urlparse(url)
    bucket = parsed.netloc
    if parsed.scheme != "s3" or not _BUCKET.match(bucket) or parsed.query or parsed.fragment:
        raise FaceloopError(
            f"asset store URL {url!r} is not s3://bucket/prefix (bucket: 3-63 lower-case "
            "letters, digits, dots or hyphens; no ?query or #fragment)"
        )
    prefix = parsed.path.strip("/")
    if prefix and not all(_SEGMENT.match(p) for p in prefix.split("/")):
        raise FaceloopError(
            f"asset store URL {url!r}: prefix {prefix!r} may hold only A-Z a-z 0-9 . _ - "
            "segments separated by /"
        )
    return bucket, prefix


def open_asset_store(settings: Settings) -> AssetStore:
    """The deployment's asset store: FACELOOP_ASSET_URL (s3://bucket/prefix, with the
    FACELOOP_S3__* endpoint and credentials) or else the local folder FACELOOP_ASSET_ROOT
    (default <home>/assets)."""
    url = settings.resolved_asset_url
    if url.startswith("s3://"):
        return AssetStore(url, settings.s3.storage_options())
    return AssetStore(url)


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
