"""Delivery arithmetic the FAKE Google Ads and TikTok platforms share.

The fakes test plumbing (mapping, errors, retries, idempotency), not optimisation, so their
audience is trivial and deterministic; the sandbox platform is the one that simulates an
audience (docs/sandbox.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

# Day 0 of every fake campaign: the fakes run on their own calendar, so reports are
# reproducible whatever today's date is.
EPOCH = dt.date(2026, 1, 5)
# What 1,000 impressions cost on the fakes, in micros of the account currency; the
# connectors' default target CPM is the same, so a budget buys the impressions asked for.
CPM_MICROS = 2_000_000


def day_index(date: str) -> int:
    """Days since EPOCH of a YYYY-MM-DD date."""
    return (dt.date.fromisoformat(date) - EPOCH).days


def day_date(index: int) -> str:
    return (EPOCH + dt.timedelta(days=index)).isoformat()


def clicks_and_conversions(key: str, impressions: int) -> tuple[int, int]:
    """Clicks and conversions of `impressions` for one ad and day: a CTR between 1 % and 4 %
    and 10 % of clicks converting, fixed by the key's hash (no randomness to seed)."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
    clicks = min(impressions, round(impressions * (0.01 + (h % 300) / 10_000)))
    return clicks, round(clicks * 0.1)


def split_evenly(total: int, keys: Sequence[str]) -> dict[str, int]:
    """`total` impressions over `keys`, the remainder to the first ones (deterministic):
    how the fakes spread a budget over the ads that may serve."""
    if not keys:
        return {}
    base, rest = divmod(total, len(keys))
    return {k: base + (1 if i < rest else 0) for i, k in enumerate(keys)}


__all__ = ["CPM_MICROS", "EPOCH", "clicks_and_conversions", "day_date", "day_index", "split_evenly"]
