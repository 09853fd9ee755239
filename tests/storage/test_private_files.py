"""What holds secrets under the data dir is owner-only: the data dir itself, the signing
keys, the identity gallery."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np

from faceloop.storage.files import private_dir, private_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dir_and_file_are_owner_only_even_if_they_existed(tmp_path: Path) -> None:
    loose = tmp_path / "home"
    loose.mkdir(mode=0o755)
    assert _mode(private_dir(loose / "keys")) == 0o700
    assert _mode(private_dir(loose)) == 0o700
    f = loose / "catalog.db"
    f.write_bytes(b"")
    f.chmod(0o644)
    assert _mode(private_file(f)) == 0o600
    assert _mode(private_file(loose / "new.db")) == 0o600


def test_signing_keys_are_owner_only(tmp_path: Path) -> None:
    from faceloop.guardrails.provenance import init_keys

    paths = init_keys(tmp_path / "keys")
    assert _mode(tmp_path / "keys") == 0o700
    assert _mode(paths.key) == 0o600


def test_the_identity_gallery_is_owner_only(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    from faceloop.guardrails.identity import Gallery

    gallery = Gallery(tmp_path / "identity" / "gallery.enc", Fernet.generate_key().decode())
    gallery.enroll("someone", [np.ones(128, dtype=np.float32)])
    assert _mode(tmp_path / "identity") == 0o700
    assert _mode(tmp_path / "identity" / "gallery.enc") == 0o600


def test_the_sqlite_catalog_and_its_journal_are_owner_only(tmp_path: Path) -> None:
    from faceloop.storage.catalog import Catalog

    db = tmp_path / "home" / "faceloop.db"
    with Catalog(f"sqlite:///{db}") as catalog:
        catalog.audit("c", "test.entry", "s", "tester", {"n": 1})
        for f in [db, *db.parent.glob("faceloop.db-*")]:
            assert _mode(f) == 0o600, f
