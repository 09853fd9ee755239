"""The asset store is a boundary: URIs come from payloads and the catalog, so a URI that
points outside the store (by `..`, an absolute path elsewhere, or a symlink) is refused,
and a store whose path has spaces or non-ASCII letters works."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from faceloop.errors import FaceloopError
from faceloop.storage.assets import AssetStore


def _image() -> np.ndarray:
    return np.full((8, 8, 3), 127, dtype=np.uint8)


@pytest.mark.parametrize("folder", ["plain", "with space", "Grüße ünd ß", "日本"])
def test_round_trip_in_a_folder_with_spaces_or_non_ascii(tmp_path: Path, folder: str) -> None:
    store = AssetStore(tmp_path / folder / "assets")
    asset_id, uri = store.put_image(_image())
    assert store.exists(uri)
    assert store.path_of(uri).parent.parent == store.root
    assert (store.get_image(uri) == _image()).all()
    assert store.files_of(asset_id) == [store.path_of(uri)]


def test_dot_dot_out_of_the_store_is_refused(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    secret = tmp_path / "secret.txt"
    secret.write_text("not an asset")
    uri = (store.root / "ab" / ".." / ".." / "secret.txt").as_posix()
    with pytest.raises(FaceloopError, match="outside the asset store"):
        store.get_bytes(f"file://{uri}")
    with pytest.raises(FaceloopError, match="outside the asset store"):
        store.get_bytes("file:///etc/passwd")


def test_symlink_out_of_the_store_is_refused(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"elsewhere")
    link = store.root / "ab" / ("ab" + "0" * 62 + ".png")
    link.parent.mkdir(parents=True)
    os.symlink(outside, link)
    with pytest.raises(FaceloopError, match="outside the asset store"):
        store.get_bytes(link.as_uri())


@pytest.mark.parametrize(
    "uri",
    ["http://example.invalid/a.png", "file://otherhost/tmp/a.png", "s3://bucket/a.png", "a.png"],
)
def test_other_schemes_and_hosts_are_refused(tmp_path: Path, uri: str) -> None:
    store = AssetStore(tmp_path / "assets")
    with pytest.raises(FaceloopError, match="only local file://"):
        store.path_of(uri)


def test_a_failed_local_write_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails halfway (a full disk) leaves neither the asset nor its temporary
    file: the next attempt writes the whole asset, and no stray file fills the store."""
    store = AssetStore(tmp_path / "assets")
    real_write = Path.write_bytes

    def half_then_full(self: Path, data: bytes) -> int:
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        store.put_image(_image())
    assert [p for p in store.root.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    _, uri = store.put_image(_image())  # the retry stores it whole
    assert (store.get_image(uri) == _image()).all()
