"""Seeds that every part of the learn stage derives from the campaign and round (the bottom
of `faceloop.optimization`: no other module here is imported).

A retried activity, a restarted worker and the bench must draw the same numbers for the
same campaign and round, so seeds come from the values themselves, never from hash() (which
differs per process) or a clock.
"""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from any values, identical across processes (unlike hash())."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big")


__all__ = ["stable_seed"]
