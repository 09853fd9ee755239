"""The FAKE disk-full fault of the asset store (chaos runs): ENOSPC while the flag file
exists, nothing written, every refusal counted; normal again once the flag is gone."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from faceloop.settings import Settings
from faceloop.storage.assets import AssetStore
from faceloop.storage.faults import DiskFullFault, refused_writes
from faceloop.workflows.worker import Resources


def test_writes_fail_with_enospc_while_the_flag_exists(tmp_path: Path) -> None:
    flag = tmp_path / "disk-full.flag"
    store = DiskFullFault(tmp_path / "assets", flag)
    flag.touch()
    with pytest.raises(OSError) as caught:
        store.put_bytes(b"one image")
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        store.put_bytes(b"another image")
    assert refused_writes(flag) == 2
    # nothing half-written under any id
    assert [p for p in (tmp_path / "assets").rglob("*") if p.is_file()] == []
    flag.unlink()
    _, uri = store.put_bytes(b"one image")
    assert AssetStore(tmp_path / "assets").get_bytes(uri) == b"one image"
    assert refused_writes(flag) == 2


def test_workers_wrap_their_store_only_when_the_setting_is_set(tmp_path: Path) -> None:
    plain = Resources.open(Settings(home=tmp_path / "a"))
    try:
        assert type(plain.store) is AssetStore
    finally:
        plain.catalog.close()
    flag = tmp_path / "flag"
    faulty = Resources.open(Settings(home=tmp_path / "b", fault_disk_full_flag=flag))
    try:
        assert isinstance(faulty.store, DiskFullFault) and faulty.store.flag == flag
    finally:
        faulty.catalog.close()
