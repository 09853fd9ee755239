"""FAKE disk-full fault of the asset store, for chaos runs (`faceloop bench loop --chaos`).

`DiskFullFault` wraps a store: while its flag file exists, every write raises the error a
full disk raises (OSError ENOSPC) before any byte is written, and one line per refused
write is appended to `<flag>.refused` (beside the flag, not in the store), so a bench can
tell that the window was hit. Reads go through. Workers wrap their store with it only when
FACELOOP_FAULT_DISK_FULL_FLAG is set; the chaos driver creates and removes the flag file
across processes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from faceloop.storage.assets import AssetStore


def refused_log(flag: Path) -> Path:
    return flag.with_name(flag.name + ".refused")


class DiskFullFault(AssetStore):
    """An AssetStore whose writes fail with ENOSPC while `flag` exists (FAKE fault)."""

    def __init__(self, location: str | Path, flag: Path) -> None:
        super().__init__(location)
        self.flag = flag

    @classmethod
    def around(cls, store: AssetStore, flag: Path) -> DiskFullFault:
        """The same store (local or S3, with its client) behind the fault."""
        fault = cls.__new__(cls)
        fault.__dict__.update(store.__dict__)
        fault.flag = flag
        return fault

    def _write(self, key: str, data: bytes, overwrite: bool) -> None:
        # every write (assets and sidecars) passes here, so the window refuses them all
        if self.flag.exists():
            with refused_log(self.flag).open("a") as log:
                log.write(f"{os.getpid()} {len(data)}\n")
            raise OSError(
                errno.ENOSPC,
                f"{os.strerror(errno.ENOSPC)} (FAKE: disk-full fault injected while "
                f"{self.flag} exists)",
                self.url,
            )
        super()._write(key, data, overwrite)


def refused_writes(flag: Path) -> int:
    """How many writes the fault refused so far, over every process."""
    try:
        return len(refused_log(flag).read_text().splitlines())
    except FileNotFoundError:
        return 0


__all__ = ["DiskFullFault", "refused_log", "refused_writes"]
