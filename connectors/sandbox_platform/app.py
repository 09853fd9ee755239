"""The sandbox ad platform: a fake of an ad platform's HTTP API over a simulated audience.

It exists so that the whole loop (deploy, allocate, observe, learn) runs offline and
reproducibly, and so that `faceloop bench` can score optimizers against a known truth.
The truth (the scenario's rates) stays in this process: no endpoint returns rates, effects,
noise or the seed; responses carry only what a real platform reports, i.e. counts.

State (campaigns, ads, allocations, delivered counts, pending delayed conversions) lives in
SQLite so it survives a restart; with `state_path=None` it lives in memory.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Response
from fastapi import Path as PathParam
from pydantic import Field, model_validator

from faceloop.connectors.base import AdDeployment, AdInsight, AdSpec, per_variant
from faceloop.connectors.sandbox_platform.scenario import (
    Scenario,
    feedback_rates,
    load_scenario,
    seed_words,
    true_rates,
)
from faceloop.errors import FaceloopError, InputError
from faceloop.models import AudienceSegment, FaceParams, Fidelity, Model
from faceloop.storage.assets import AssetStore

if TYPE_CHECKING:
    from faceloop.generators.enforce import Perceive

PLATFORM = "sandbox"
MAX_WINDOW = 1_000_000
MAX_IMPRESSIONS = 1_000_000_000
SCHEMA_VERSION = "1"

CampaignId = Annotated[
    str, PathParam(min_length=1, max_length=256, description="campaign id (no slashes)")
]
Window = Annotated[int, PathParam(ge=0, le=MAX_WINDOW, description="delivery window, from 0")]


class CampaignBody(Model):
    segments: list[AudienceSegment] = Field(
        default_factory=list,
        max_length=50,
        description="audience segments and their impression shares; empty: the scenario's",
    )


class CampaignOut(Model):
    campaign_id: str
    segments: list[AudienceSegment]
    delivered_through: int | None = Field(description="last delivered window; null: none yet")


Impressions = Annotated[int, Field(ge=0, le=MAX_IMPRESSIONS)]


class AllocationBody(Model):
    """One of the two: `impressions` per ad (the platform splits each ad's impressions over
    the campaign's segments by share), or `segments`: impressions per segment and ad, served
    exactly as given (an ad left out of a segment is not shown there)."""

    impressions: dict[str, Impressions] | None = Field(
        default=None, description="impressions per ad_id for this window"
    )
    segments: dict[str, dict[str, Impressions]] | None = Field(
        default=None, description="impressions per segment name and ad_id for this window"
    )

    @model_validator(mode="after")
    def _one_form(self) -> AllocationBody:
        if (self.impressions is None) == (self.segments is None):
            raise ValueError(
                "give either impressions {ad_id: n} or segments {segment: {ad_id: n}}, not "
                "both or neither"
            )
        return self


class AllocationOut(Model):
    campaign_id: str
    window: int
    impressions: dict[str, int] = Field(description="impressions per ad_id (all segments)")
    segments: dict[str, dict[str, int]] | None = Field(
        default=None, description="per segment and ad_id, when the allocation was set so"
    )


class InsightsOut(Model):
    campaign_id: str
    window: int
    delivered_through: int
    insights: list[AdInsight]


class Health(Model):
    status: str
    platform: str
    scenario: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY,
    segments TEXT NOT NULL,
    scenario_name TEXT NOT NULL,
    scenario_fingerprint TEXT NOT NULL,
    delivered_through INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS ads (
    ad_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns (campaign_id),
    asset_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    UNIQUE (campaign_id, asset_id)
);
-- measured mode: the face parameters the perception module reads in an ad's image, which
-- the simulated audience reacts to instead of the declared ones
CREATE TABLE IF NOT EXISTS seen (
    ad_id TEXT PRIMARY KEY REFERENCES ads (ad_id),
    params TEXT NOT NULL,
    fidelity TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS allocations (
    campaign_id TEXT NOT NULL,
    win INTEGER NOT NULL,
    ad_id TEXT NOT NULL,
    impressions INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, win, ad_id)
);
CREATE TABLE IF NOT EXISTS segment_allocations (
    campaign_id TEXT NOT NULL,
    win INTEGER NOT NULL,
    ad_id TEXT NOT NULL,
    segment TEXT NOT NULL,
    impressions INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, win, ad_id, segment)
);
CREATE TABLE IF NOT EXISTS deliveries (
    campaign_id TEXT NOT NULL,
    win INTEGER NOT NULL,
    ad_id TEXT NOT NULL,
    segment TEXT NOT NULL,
    impressions INTEGER NOT NULL,
    clicks INTEGER NOT NULL,
    hides INTEGER NOT NULL DEFAULT 0,
    reports INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, win, ad_id, segment)
);
CREATE TABLE IF NOT EXISTS conversions (
    campaign_id TEXT NOT NULL,
    ad_id TEXT NOT NULL,
    segment TEXT NOT NULL,
    click_win INTEGER NOT NULL,
    due_win INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, ad_id, segment, click_win, due_win)
);
"""


def _ad_id(campaign_id: str, asset_id: str) -> str:
    # Derived, not random: the same campaign and asset give the same id on every run, so
    # seeded runs are reproducible end to end (delivery draws are keyed by ad id).
    digest = hashlib.sha256(f"{campaign_id}\x1f{asset_id}".encode()).hexdigest()
    return f"ad-{digest[:20]}"


def _split(total: int, shares: list[float]) -> list[int]:
    """Split impressions by share, exactly (largest remainder), so counts add up."""
    raw = np.asarray(shares, dtype=float) / sum(shares) * total
    base = np.floor(raw).astype(np.int64)
    rest = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return [int(x) for x in base]


class _Store:
    """Campaign state in SQLite. One connection behind a lock serves this process; write
    transactions are BEGIN IMMEDIATE, so two processes on one file also stay consistent."""

    def __init__(
        self,
        scenario: Scenario,
        state_path: Path | None,
        assets: AssetStore | None = None,
        perceive: Perceive | None = None,
    ) -> None:
        if scenario.audience_sees == "measured" and assets is None:
            raise InputError(
                "audience_sees",
                [
                    "measured mode reads each ad's image from the asset store: pass the "
                    "store's folder (--assets, or `assets=` to create_app)"
                ],
            )
        self.scenario = scenario
        self.assets = assets
        self._perceive = perceive
        self.fingerprint = scenario.fingerprint()
        self.lock = threading.Lock()
        target = ":memory:" if state_path is None else str(state_path)
        if state_path is not None:
            state_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(
                target, check_same_thread=False, isolation_level=None, timeout=30
            )
        except sqlite3.Error as err:
            raise InputError(target, [f"cannot open the state file: {err}"]) from None
        self.db.row_factory = sqlite3.Row
        self.on_disk = state_path is not None
        try:
            # a removed ad's creative is zeroed in the file, not left in a free page
            self.db.execute("PRAGMA secure_delete=ON")
            if state_path is not None:
                self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
            with self.tx() as cur:
                self._check_schema(cur, target)
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise InputError(
                target, [f"not a sandbox state file ({err}); pass a new path or remove it"]
            ) from None
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            cur = self.db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _check_schema(self, cur: sqlite3.Cursor, target: str) -> None:
        row = cur.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            cur.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row["value"] != SCHEMA_VERSION:
            raise InputError(
                target,
                [
                    f"state file schema {row['value']!r}, this sandbox reads {SCHEMA_VERSION!r}; "
                    "use a new state file"
                ],
            )
        # state files from before hides and reports were delivered: the columns are added
        # in place (earlier windows count 0, as a scenario without feedback delivers)
        have = {r["name"] for r in cur.execute("PRAGMA table_info(deliveries)")}
        for column in ("hides", "reports"):
            if column not in have:
                cur.execute(
                    f"ALTER TABLE deliveries ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                )

    # ------------------------------------------------------------------ campaigns

    def _campaign(
        self, cur: sqlite3.Cursor, campaign_id: str, *, write: bool = True
    ) -> sqlite3.Row:
        row = cur.execute(
            "SELECT * FROM campaigns WHERE campaign_id = ?", (campaign_id,)
        ).fetchone()
        if row is None:
            raise HTTPException(
                404,
                f"campaign {campaign_id!r} not found; create it first with "
                f"PUT /campaigns/{campaign_id} (ensure_campaign)",
            )
        if write:
            self._same_scenario(row)
        return row

    def _same_scenario(self, row: sqlite3.Row) -> None:
        # A campaign's draws were made under one audience; continuing it under another would
        # mix two truths in one campaign and make it impossible to reproduce. What was
        # already delivered can still be read; other campaigns in the file are unaffected.
        if row["scenario_fingerprint"] != self.fingerprint:
            raise HTTPException(
                409,
                f"campaign {row['campaign_id']!r} was created under scenario "
                f"{row['scenario_name']!r} with other settings than the scenario "
                f"{self.scenario.name!r} this sandbox runs; restart the sandbox with the "
                "scenario file it was made with, or start a new campaign",
            )

    @staticmethod
    def _segments(row: sqlite3.Row) -> list[AudienceSegment]:
        return [AudienceSegment.model_validate(s) for s in json.loads(row["segments"])]

    @staticmethod
    def _campaign_out(row: sqlite3.Row) -> CampaignOut:
        through = int(row["delivered_through"])
        return CampaignOut(
            campaign_id=row["campaign_id"],
            segments=_Store._segments(row),
            delivered_through=None if through < 0 else through,
        )

    def _default_segments(self) -> list[AudienceSegment]:
        if self.scenario.segments:
            return [AudienceSegment(name=s.name, share=s.share) for s in self.scenario.segments]
        return [AudienceSegment(name="all")]

    def ensure_campaign(self, campaign_id: str, segments: list[AudienceSegment]) -> CampaignOut:
        wanted = segments or self._default_segments()
        names = [s.name for s in wanted]
        if len(set(names)) != len(names):
            raise HTTPException(422, f"segment names must be unique, got {names}")
        with self.tx() as cur:
            row = cur.execute(
                "SELECT * FROM campaigns WHERE campaign_id = ?", (campaign_id,)
            ).fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO campaigns "
                    "(campaign_id, segments, scenario_name, scenario_fingerprint) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        campaign_id,
                        json.dumps([s.model_dump() for s in wanted]),
                        self.scenario.name,
                        self.fingerprint,
                    ),
                )
                row = self._campaign(cur, campaign_id)
                return self._campaign_out(row)
        self._same_scenario(row)
        have = [(s.name, s.share) for s in self._segments(row)]
        if have != [(s.name, s.share) for s in wanted]:
            raise HTTPException(
                409,
                f"campaign {campaign_id!r} exists with segments {have}, not "
                f"{[(s.name, s.share) for s in wanted]}; segments cannot change during a "
                "campaign: use a new campaign id",
            )
        return self._campaign_out(row)

    # ------------------------------------------------------------------ ads

    @staticmethod
    def _deployment(row: sqlite3.Row) -> AdDeployment:
        # the placement exports the ad was deployed with, as the stored spec holds them (a
        # removed ad's spec is blanked, and with it this list)
        exports = json.loads(row["spec"] or "{}").get("exports", [])
        return AdDeployment(
            ad_id=row["ad_id"],
            asset_id=row["asset_id"],
            campaign_id=row["campaign_id"],
            platform=PLATFORM,
            status=row["status"],
            placements=[f"{e['placement']} {e['media_type']}" for e in exports],
        )

    def _seen(self, spec: AdSpec) -> tuple[FaceParams, Fidelity]:
        """What the simulated audience sees in the ad's image (measured mode): read from the
        asset store and measured by the perception module, the generate stage's reading."""
        from faceloop.generators.enforce import seen_face
        from faceloop.playbooks.schema import FidelitySettings

        assert self.assets is not None  # checked in __init__
        if self._perceive is None:
            from faceloop.generators.perception import perceive

            self._perceive = perceive
        try:
            rgb = self.assets.get_image(spec.creative_uri)
        except (FaceloopError, OSError) as err:
            raise HTTPException(
                422,
                f"creative_uri: the sandbox sees measured faces and cannot read the image "
                f"({err}); deploy an image from the asset store it was started with",
            ) from None
        return seen_face(spec.params, rgb, self._perceive, FidelitySettings())

    def deploy(self, spec: AdSpec) -> tuple[AdDeployment, bool]:
        """The ad for spec.asset_id, created if new; the bool says whether it was created.
        In measured mode its image is read first (outside the lock: perception is slow)."""
        seen = self._seen(spec) if self.scenario.audience_sees == "measured" else None
        with self.tx() as cur:
            self._campaign(cur, spec.campaign_id)
            # The UNIQUE (campaign_id, asset_id) constraint is the idempotency guarantee
            # (also across processes sharing the file); the lock only orders this process.
            created = cur.execute(
                "INSERT INTO ads (ad_id, campaign_id, asset_id, spec, status) "
                "VALUES (?, ?, ?, ?, 'active') ON CONFLICT DO NOTHING",
                (
                    _ad_id(spec.campaign_id, spec.asset_id),
                    spec.campaign_id,
                    spec.asset_id,
                    spec.model_dump_json(),
                ),
            ).rowcount
            row = cur.execute(
                "SELECT * FROM ads WHERE campaign_id = ? AND asset_id = ?",
                (spec.campaign_id, spec.asset_id),
            ).fetchone()
            if seen is not None:
                face, fidelity = seen
                cur.execute(
                    "INSERT INTO seen (ad_id, params, fidelity) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (
                        row["ad_id"],
                        face.model_dump_json(),
                        fidelity.model_dump_json(exclude={"perception"}),
                    ),
                )
        return self._deployment(row), created == 1

    def list_ads(self, campaign_id: str) -> list[AdDeployment]:
        with self.tx() as cur:
            self._campaign(cur, campaign_id, write=False)
            rows = cur.execute(
                "SELECT * FROM ads WHERE campaign_id = ? ORDER BY rowid", (campaign_id,)
            ).fetchall()
        return [self._deployment(r) for r in rows]

    @staticmethod
    def _ad(cur: sqlite3.Cursor, campaign_id: str, ad_id: str) -> sqlite3.Row:
        """The ad's row, or 404 naming where the campaign's ads are listed."""
        row: sqlite3.Row | None = cur.execute(
            "SELECT * FROM ads WHERE campaign_id = ? AND ad_id = ?", (campaign_id, ad_id)
        ).fetchone()
        if row is None:
            raise HTTPException(
                404,
                f"ad {ad_id!r} not found in campaign {campaign_id!r}; "
                f"GET /campaigns/{campaign_id}/ads lists its ads",
            )
        return row

    def pause(self, campaign_id: str, ad_id: str) -> AdDeployment:
        with self.tx() as cur:
            self._campaign(cur, campaign_id)
            cur.execute(
                "UPDATE ads SET status = 'paused' "
                "WHERE campaign_id = ? AND ad_id = ? AND status = 'active'",
                (campaign_id, ad_id),
            )
            row = self._ad(cur, campaign_id, ad_id)
        return self._deployment(row)

    def remove(self, campaign_id: str, ad_id: str) -> AdDeployment:
        """Take the ad down for good: no more delivery, and its creative (URI, copy,
        disclosure, parameters) deleted; its id, asset hash and delivered counts stay.
        Works whatever scenario the sandbox runs, since a takedown must never be refused."""
        with self.tx() as cur:
            camp = self._campaign(cur, campaign_id, write=False)
            cur.execute(
                "UPDATE ads SET status = 'removed', spec = '{}' "
                "WHERE campaign_id = ? AND ad_id = ? AND status != 'removed'",
                (campaign_id, ad_id),
            )
            cur.execute("DELETE FROM seen WHERE ad_id = ?", (ad_id,))
            # allocations of windows not delivered yet would name an ad that no longer runs
            for table in ("allocations", "segment_allocations"):
                cur.execute(
                    f"DELETE FROM {table} WHERE campaign_id = ? AND ad_id = ? AND win > ?",
                    (campaign_id, ad_id, int(camp["delivered_through"])),
                )
            row = self._ad(cur, campaign_id, ad_id)
        if self.on_disk:
            with self.lock:
                # old page images in the WAL still hold the creative: fold them into the
                # (securely overwritten) database file and cut the WAL to zero bytes
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return self._deployment(row)

    # ------------------------------------------------------------------ allocation, delivery

    def set_allocation(
        self,
        campaign_id: str,
        window: int,
        impressions: dict[str, int] | None,
        segments: dict[str, dict[str, int]] | None = None,
    ) -> AllocationOut:
        """Replace the window's allocation: per ad (split over segments by share at
        delivery) or, with `segments`, per segment and ad (delivered exactly)."""
        if segments is not None:
            impressions = per_variant(segments)
        assert impressions is not None
        with self.tx() as cur:
            camp = self._campaign(cur, campaign_id)
            if segments is not None:
                names = [s.name for s in self._segments(camp)]
                unknown_segments = sorted(set(segments) - set(names))
                if unknown_segments:
                    raise HTTPException(
                        422,
                        f"allocation names segments not in campaign {campaign_id!r}: "
                        f"{unknown_segments}; its segments are {names}",
                    )
            through = int(camp["delivered_through"])
            if window <= through:
                raise HTTPException(
                    409,
                    f"window {window} of campaign {campaign_id!r} was already delivered "
                    f"(windows 0..{through} are); allocate window {through + 1} or later",
                )
            ads = {
                r["ad_id"]: r["status"]
                for r in cur.execute(
                    "SELECT ad_id, status FROM ads WHERE campaign_id = ?", (campaign_id,)
                )
            }
            unknown = sorted(set(impressions) - set(ads))
            if unknown:
                raise HTTPException(
                    404,
                    f"allocation names ads not in campaign {campaign_id!r}: {unknown}; deploy "
                    f"them first or use ids from GET /campaigns/{campaign_id}/ads",
                )
            stopped = sorted(a for a, n in impressions.items() if n > 0 and ads[a] != "active")
            if stopped:
                raise HTTPException(
                    409,
                    f"allocation gives impressions to ads that are not active: {stopped}; "
                    "give them 0 or leave them out",
                )
            for table in ("allocations", "segment_allocations"):
                cur.execute(
                    f"DELETE FROM {table} WHERE campaign_id = ? AND win = ?", (campaign_id, window)
                )
            cur.executemany(
                "INSERT INTO allocations (campaign_id, win, ad_id, impressions) "
                "VALUES (?, ?, ?, ?)",
                [(campaign_id, window, a, n) for a, n in sorted(impressions.items())],
            )
            if segments is not None:
                cur.executemany(
                    "INSERT INTO segment_allocations "
                    "(campaign_id, win, ad_id, segment, impressions) VALUES (?, ?, ?, ?, ?)",
                    [
                        (campaign_id, window, a, seg, n)
                        for seg, by_ad in sorted(segments.items())
                        for a, n in sorted(by_ad.items())
                    ],
                )
        return AllocationOut(
            campaign_id=campaign_id, window=window, impressions=impressions, segments=segments
        )

    def insights(self, campaign_id: str, window: int) -> InsightsOut:
        with self.tx() as cur:
            camp = self._campaign(cur, campaign_id, write=False)
            through = int(camp["delivered_through"])
            if window > through:
                self._same_scenario(camp)
                self._deliver(cur, camp, through, window)
                through = window
            rows = self._cumulative(cur, camp, window)
        return InsightsOut(
            campaign_id=campaign_id, window=window, delivered_through=through, insights=rows
        )

    def _deliver(self, cur: sqlite3.Cursor, camp: sqlite3.Row, after: int, through: int) -> None:
        """Deliver windows after..through in order; windows without allocation are empty
        but still pass, so conversions delayed into them become reportable."""
        campaign_id = camp["campaign_id"]
        windows = [
            int(r["win"])
            for r in cur.execute(
                "SELECT DISTINCT win FROM allocations WHERE campaign_id = ? AND win > ? "
                "AND win <= ? ORDER BY win",
                (campaign_id, after, through),
            )
        ]
        for w in windows:
            self._deliver_window(cur, camp, w)
        cur.execute(
            "UPDATE campaigns SET delivered_through = ? WHERE campaign_id = ?",
            (through, campaign_id),
        )

    def _deliver_window(self, cur: sqlite3.Cursor, camp: sqlite3.Row, window: int) -> None:
        sc = self.scenario
        campaign_id = camp["campaign_id"]
        segments = self._segments(camp)
        shares = [s.share for s in segments]
        # Geometric delay with the given mean: P(d) = p (1-p)^d, mean (1-p)/p.
        p_now = 1.0 / (1.0 + sc.conversion_delay.mean_windows)
        allocs = cur.execute(
            "SELECT al.ad_id, al.impressions, ads.asset_id, ads.spec, ads.status, "
            "seen.params AS seen_params "
            "FROM allocations al JOIN ads ON ads.ad_id = al.ad_id "
            "LEFT JOIN seen ON seen.ad_id = ads.ad_id "
            "WHERE al.campaign_id = ? AND al.win = ? ORDER BY al.ad_id",
            (campaign_id, window),
        ).fetchall()
        # per-segment allocations, where the campaign set them: served as given
        targeted: dict[str, dict[str, int]] = {}
        for r in cur.execute(
            "SELECT ad_id, segment, impressions FROM segment_allocations "
            "WHERE campaign_id = ? AND win = ?",
            (campaign_id, window),
        ):
            targeted.setdefault(r["ad_id"], {})[r["segment"]] = int(r["impressions"])
        for a in allocs:
            if a["status"] == "removed":
                # its creative (and parameters) are gone; it delivers nothing, as when paused
                cur.executemany(
                    "INSERT INTO deliveries (campaign_id, win, ad_id, segment, impressions, clicks)"
                    " VALUES (?, ?, ?, ?, 0, 0)",
                    [(campaign_id, window, a["ad_id"], seg.name) for seg in segments],
                )
                continue
            # An ad paused after its allocation was set gets no impressions, as on a real
            # platform; it still gets (zero) rows so the insight table stays complete.
            total = int(a["impressions"]) if a["status"] == "active" else 0
            # measured mode: the face read from the image; an ad deployed in declared
            # mode (no reading) is seen as declared
            params = (
                FaceParams.model_validate_json(a["seen_params"])
                if a["seen_params"] is not None and sc.audience_sees == "measured"
                else FaceParams.model_validate(json.loads(a["spec"])["params"])
            )
            so_far = cur.execute(
                "SELECT COALESCE(SUM(impressions), 0) FROM deliveries "
                "WHERE campaign_id = ? AND ad_id = ? AND win < ?",
                (campaign_id, a["ad_id"], window),
            ).fetchone()[0]
            # Keyed by ad as well as (seed, campaign, window): an ad's draws do not depend on
            # which other ads run, so comparing two allocations uses common random numbers.
            rng = np.random.default_rng(
                np.random.SeedSequence(
                    seed_words(sc.seed, "delivery", campaign_id, window, a["ad_id"])
                )
            )
            # Fatigue is taken at the middle of the window's impressions.
            mid = int(so_far) + total / 2
            by_segment = targeted.get(a["ad_id"])
            parts = (
                [by_segment.get(seg.name, 0) for seg in segments]
                if by_segment is not None and total > 0
                else _split(total, shares)
            )
            # hides and reports draw from a stream of their own, so a scenario with a
            # feedback section delivers the same clicks and conversions as one without
            fb_rates = feedback_rates(sc, params)
            fb_rng = np.random.default_rng(
                np.random.SeedSequence(
                    seed_words(sc.seed, "feedback", campaign_id, window, a["ad_id"])
                )
            )
            for seg, n in zip(segments, parts, strict=True):
                ctr, cvr = true_rates(sc, params, seg.name, mid, window, asset_id=a["asset_id"])
                clicks = int(rng.binomial(n, ctr))
                conversions = int(rng.binomial(clicks, cvr))
                hides, reports = (
                    (int(fb_rng.binomial(n, fb_rates[0])), int(fb_rng.binomial(n, fb_rates[1])))
                    if fb_rates is not None
                    else (0, 0)
                )
                cur.execute(
                    "INSERT INTO deliveries "
                    "(campaign_id, win, ad_id, segment, impressions, clicks, hides, reports)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (campaign_id, window, a["ad_id"], seg.name, n, clicks, hides, reports),
                )
                if conversions == 0:
                    continue
                delays = rng.geometric(p_now, size=conversions) - 1
                cur.executemany(
                    "INSERT INTO conversions "
                    "(campaign_id, ad_id, segment, click_win, due_win, count) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (campaign_id, a["ad_id"], seg.name, window, window + d, int(c))
                        for d, c in enumerate(np.bincount(delays))
                        if c > 0
                    ],
                )

    def _cumulative(self, cur: sqlite3.Cursor, camp: sqlite3.Row, window: int) -> list[AdInsight]:
        campaign_id = camp["campaign_id"]
        order = {s.name: i for i, s in enumerate(self._segments(camp))}
        reported = self.scenario.feedback is not None
        conv = {
            (r["ad_id"], r["segment"]): int(r["n"])
            for r in cur.execute(
                "SELECT ad_id, segment, SUM(count) AS n FROM conversions "
                "WHERE campaign_id = ? AND due_win <= ? GROUP BY ad_id, segment",
                (campaign_id, window),
            )
        }
        rows = cur.execute(
            "SELECT d.ad_id, ads.asset_id, d.segment, SUM(d.impressions) AS impressions, "
            "SUM(d.clicks) AS clicks, SUM(d.hides) AS hides, SUM(d.reports) AS reports "
            "FROM deliveries d JOIN ads ON ads.ad_id = d.ad_id "
            "WHERE d.campaign_id = ? AND d.win <= ? GROUP BY d.ad_id, d.segment",
            (campaign_id, window),
        ).fetchall()
        out = [
            AdInsight(
                ad_id=r["ad_id"],
                asset_id=r["asset_id"],
                segment=r["segment"],
                impressions=int(r["impressions"]),
                clicks=int(r["clicks"]),
                conversions=conv.get((r["ad_id"], r["segment"]), 0),
                negative_feedback=int(r["hides"]) if reported else None,
                complaints=int(r["reports"]) if reported else None,
                # billed per delivered impression at the scenario's CPM, like a CPM buy
                spend=round(int(r["impressions"]) * self.scenario.cpm / 1000, 6),
            )
            for r in rows
        ]
        out.sort(key=lambda i: (i.ad_id, order.get(i.segment, len(order))))
        return out


def _asset_store(location: str | Path) -> AssetStore:
    if str(location).startswith("s3://"):
        from faceloop.settings import get_settings

        # the endpoint and keys come from FACELOOP_S3__*, as they do for the workers
        return AssetStore(str(location), get_settings().s3.storage_options())
    return AssetStore(location)


def create_app(
    scenario: Scenario,
    state_path: Path | None = None,
    assets: str | Path | None = None,
    perceive: Perceive | None = None,
) -> FastAPI:
    """The sandbox platform as an ASGI app. Raises InputError if `state_path` exists and is
    not a sandbox state file, or if the scenario's audience sees measured faces and no
    asset store (`assets`: a folder, or s3://bucket/prefix with FACELOOP_S3__* for its
    endpoint and keys) is given. `perceive` replaces the perception module (tests)."""
    store = _Store(scenario, state_path, _asset_store(assets) if assets else None, perceive)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title="faceloop sandbox ad platform (a fake)",
        description="A simulated ad platform for offline, reproducible campaigns. "
        "It reports counts only; the simulated audience's true rates never leave it.",
        version="1",
        lifespan=lifespan,
    )
    app.state.store = store

    # Handlers are plain functions: FastAPI runs them in its thread pool, and the store's
    # lock and SQLite transactions make concurrent requests safe.

    @app.get("/health")
    def health() -> Health:
        return Health(status="ok", platform=PLATFORM, scenario=scenario.name)

    @app.put("/campaigns/{campaign_id}")
    def ensure_campaign(campaign_id: CampaignId, body: CampaignBody) -> CampaignOut:
        return store.ensure_campaign(campaign_id, body.segments)

    @app.post("/campaigns/{campaign_id}/ads")
    def deploy(campaign_id: CampaignId, spec: AdSpec, response: Response) -> AdDeployment:
        if spec.campaign_id != campaign_id:
            raise HTTPException(
                422,
                f"body campaign_id {spec.campaign_id!r} differs from the path's {campaign_id!r}",
            )
        deployment, created = store.deploy(spec)
        response.status_code = 201 if created else 200
        return deployment

    @app.get("/campaigns/{campaign_id}/ads")
    def list_ads(campaign_id: CampaignId) -> list[AdDeployment]:
        return store.list_ads(campaign_id)

    @app.post("/campaigns/{campaign_id}/ads/{ad_id}/pause")
    def pause(campaign_id: CampaignId, ad_id: str) -> AdDeployment:
        return store.pause(campaign_id, ad_id)

    @app.delete("/campaigns/{campaign_id}/ads/{ad_id}")
    def remove(campaign_id: CampaignId, ad_id: str) -> AdDeployment:
        """Take an ad down for good and delete its creative (GDPR erasure); idempotent."""
        return store.remove(campaign_id, ad_id)

    @app.put("/campaigns/{campaign_id}/windows/{window}/allocation")
    def set_allocation(
        campaign_id: CampaignId, window: Window, body: AllocationBody
    ) -> AllocationOut:
        return store.set_allocation(campaign_id, window, body.impressions, body.segments)

    @app.get("/campaigns/{campaign_id}/windows/{window}/insights")
    def insights(campaign_id: CampaignId, window: Window) -> InsightsOut:
        return store.insights(campaign_id, window)

    return app


def serve(
    scenario_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    state_path: str | Path | None = None,
    log_level: str = "warning",
    assets: str | Path | None = None,
    audience_sees: Literal["declared", "measured"] | None = None,
    fault_rate: float = 0.0,
    fault_seed: int = 0,
    fault_hold_seconds: float | None = None,
) -> None:
    """Run the sandbox platform with uvicorn until interrupted (blocks). `audience_sees`
    overrides the scenario's; `assets` is the asset store measured mode reads images from;
    `fault_rate` > 0 puts FAKE faults on that share of requests (sandbox_platform/faults.py)."""
    import uvicorn

    scenario = load_scenario(scenario_path)
    if audience_sees is not None:
        scenario = scenario.model_copy(update={"audience_sees": audience_sees})
    app = create_app(
        scenario,
        None if state_path is None else Path(state_path),
        assets,
    )
    if fault_rate > 0:
        from faceloop.connectors.sandbox_platform.faults import DEFAULT_HOLD_SECONDS, FaultInjection

        hold = DEFAULT_HOLD_SECONDS if fault_hold_seconds is None else fault_hold_seconds
        app.add_middleware(FaultInjection, rate=fault_rate, seed=fault_seed, hold_seconds=hold)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


__all__ = ["PLATFORM", "create_app", "serve"]
