"""Owner-only files and folders for what the data dir holds: signing keys, the catalog (with
every subject's key), the identity gallery and the Temporal server's database (which holds
workflow payloads, briefs among them)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) and make it owner-only. An existing folder is
    tightened too: keys must not sit in a folder other users can list."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if path.stat().st_uid == os.getuid():
        os.chmod(path, PRIVATE_DIR)
    return path


def private_file(path: Path, *, private_parent: bool = True) -> Path:
    """Create `path` empty with owner-only permissions if it does not exist yet, so a
    program that opens it later (SQLite) never creates it readable by others; an existing
    file of ours is tightened. `private_parent=False` leaves a folder the operator chose
    (a catalog path outside the data dir) as it is, only creating it if missing."""
    if private_parent:
        private_dir(path.parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    if path.stat().st_uid == os.getuid():
        os.chmod(path, PRIVATE_FILE)
    return path


__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "private_dir", "private_file"]
