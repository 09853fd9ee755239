"""The google_ads and tiktok connectors wired to their FAKE platforms in process, for the
tests of each (test_google_ads.py, test_tiktok.py) and the tests they share
(test_segmented_platforms.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, TypeAlias

from faceloop.connectors.fakes.faults import FaultPlan
from faceloop.connectors.fakes.google_ads import GoogleAdsFake
from faceloop.connectors.fakes.tiktok import TikTokFake
from faceloop.connectors.google_ads import GoogleAdsConnector
from faceloop.connectors.http_base import VirtualClock
from faceloop.connectors.segmented import SegmentedConnector
from faceloop.connectors.tiktok import TikTokConnector

PNG = b"\x89PNG\r\n\x1a\n FAKE creative bytes"
Fake: TypeAlias = GoogleAdsFake | TikTokFake


@dataclass(frozen=True)
class Platform:
    """One platform as the shared tests drive it."""

    name: str
    connector: type[SegmentedConnector]
    # the platform's throttle code in CallStats.by_code, and the fake's word for a refusal
    throttle_code: str
    disapproved_word: str

    def fake(self) -> Fake:
        return GoogleAdsFake() if self.name == "google_ads" else TikTokFake()

    def connect(
        self, fake: Fake, plan: FaultPlan | None = None, *, cls: type | None = None, **kw: Any
    ) -> Any:
        """The connector (or `cls`, a subclass) on `fake`; `policy` and `cost_currency` go
        to the connector, the rest to its settings."""
        options = {k: kw.pop(k) for k in ("policy", "cost_currency") if k in kw}
        return (cls or self.connector)(
            fake.settings(**kw),
            lambda uri: PNG,
            transport=fake.transport(plan),
            clock=VirtualClock(),
            rng=random.Random(0),
            **options,
        )


GOOGLE = Platform("google_ads", GoogleAdsConnector, "RESOURCE_EXHAUSTED", "DISAPPROVED")
TIKTOK = Platform("tiktok", TikTokConnector, "40100", "UNAVAILABLE")
PLATFORMS = [GOOGLE, TIKTOK]
