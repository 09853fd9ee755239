"""What the campaign observed, as counts the learn stage reads: the observe step's
KpiObservations (one per variant, segment and window) turned into per-segment arm counts,
delay-adjusted for a conversions KPI and weighed by age, plus the per-window clicks the
fatigue check reads.

It sits just above `seeds` and below everything else in `faceloop.optimization`: the KPI
model (`facemodel`) is fitted on these counts, allocation and the learn rule rank them.
Nothing here is random or does I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from faceloop.models import (
    Brief,
    FaceParams,
    KpiGoal,
    KpiObservation,
    ShownFrom,
    Variant,
    shown_params,
)

ALL = "all"  # the segment name of a campaign without segments (as the sandbox names it)
# What the campaign assumes about conversion delays, in windows (the sandbox's default): a
# setting of the campaign, not a measured truth.
MEAN_DELAY_WINDOWS = 0.5


@dataclass(frozen=True)
class ArmStats:
    variant_id: str
    impressions: float  # may be fractional: delay-adjusted exposure for conversions
    successes: float  # clicks for a CTR goal, conversions for a conversions goal (weighted)
    params: FaceParams | None = None  # the face behind the counts, for the KPI model


@dataclass(frozen=True)
class Evidence:
    """What one creative delivered in one segment (successes: clicks or conversions): the
    unit the KPI model (`facemodel.FaceModel`) is fitted on."""

    params: FaceParams
    impressions: float
    successes: float


@dataclass(frozen=True)
class ShownFaces:
    """What the optimizer learns from, per variant: the face its image shows (measured
    parameters as measured, the rest as requested), the request where it differs, and for
    every parameter which of the two the face holds."""

    faces: dict[str, FaceParams]
    requested: dict[str, FaceParams]
    shown_from: dict[str, dict[str, ShownFrom]]


def shown_faces(variants: Iterable[Variant]) -> ShownFaces:
    """`ShownFaces` of the variants (a later copy of one variant replaces an earlier)."""
    faces: dict[str, FaceParams] = {}
    requested: dict[str, FaceParams] = {}
    shown_from: dict[str, dict[str, ShownFrom]] = {}
    for v in variants:
        face, source = shown_params(v)
        faces[v.variant_id] = face
        shown_from[v.variant_id] = source
        if face != v.params:
            requested[v.variant_id] = v.params
        else:
            requested.pop(v.variant_id, None)
    return ShownFaces(faces, requested, shown_from)


def successes(goal: KpiGoal, clicks: int, conversions: int) -> int:
    return clicks if goal == KpiGoal.ctr else conversions


def segment_shares(brief: Brief) -> dict[str, float]:
    """Impression share per audience segment (one segment gets everything)."""
    shares = {s.name: s.share for s in brief.audience}
    return dict.fromkeys(shares, 1.0) if len(shares) == 1 else shares


def delay_cdf(delay: int, mean_delay: float) -> float:
    """P(a conversion is reported at most `delay` windows after its click) under the
    geometric delay the sandbox documents (P(d) = p (1-p)^d, p = 1 / (1 + mean))."""
    if delay < 0:
        return 0.0
    p = 1.0 / (1.0 + mean_delay)
    return 1.0 - (1.0 - p) ** (delay + 1)


def delayed_exposure(
    impressions_by_window: Mapping[int, float], now: int, mean_delay: float
) -> float:
    """Impressions that have had time to convert, for a conversions KPI read in window `now`.

    A platform reports each conversion when it arrives, up to several windows after the
    click. Dividing the conversions reported so far by all impressions would make every
    young variant look worse than an old one with the same true rate. Each window's
    impressions count with the share of their conversions expected to be reported by now,
    so conversions are attributed to the window (round) of their click in expectation.
    """
    return sum(n * delay_cdf(now - w, mean_delay) for w, n in impressions_by_window.items())


def windowed_stats(
    variant_id: str,
    impressions: Mapping[int, float],
    successes: Mapping[int, float],
    now: int,
    half_life_windows: float | None,
    params: FaceParams | None = None,
) -> ArmStats:
    """An arm's counts with older windows weighted down (half weight after
    `half_life_windows`; None: all windows count fully).

    `impressions` are keyed by the window they were served in, `successes` by the window
    they were reported in (pass delay-adjusted impressions for a conversions KPI).
    """

    def weight(w: int) -> float:
        return 1.0 if half_life_windows is None else 0.5 ** ((now - w) / half_life_windows)

    n = sum(v * weight(w) for w, v in impressions.items())
    s = sum(v * weight(w) for w, v in successes.items())
    return ArmStats(variant_id, n, s, params)


def arms_from_observations(
    observations: Iterable[KpiObservation],
    variant_ids: Sequence[str],
    segments: Sequence[str],
    goal: KpiGoal,
    now: int,
    mean_delay_windows: float = MEAN_DELAY_WINDOWS,
    memory_windows: float | None = None,
    params: Mapping[str, FaceParams] | None = None,
    targets: Mapping[str, str | None] | None = None,
) -> dict[str, list[ArmStats]]:
    """Per-segment ArmStats of the given variants from the observe step's KpiObservations
    (one per variant, segment and window, counts *of that window*; a window's conversions
    are those reported in it).

    `now` is the last observed window. For a conversions goal each window's impressions
    count with the share of their conversions expected to be reported by now
    (`delayed_exposure`). `memory_windows` weighs older windows down (None: all count).
    `params` attaches each variant's face (for the KPI model); `targets` maps a variant to
    the one segment it runs in (None or absent: every segment), and a segment lists only
    the variants that run in it.
    """
    imps: dict[tuple[str, str], dict[int, float]] = {}
    succ: dict[tuple[str, str], dict[int, float]] = {}
    wanted = set(variant_ids)
    for o in observations:
        if o.variant_id not in wanted:
            continue
        key = (o.segment, o.variant_id)
        n = float(o.impressions)
        if goal == KpiGoal.conversions:
            n = delayed_exposure({o.round: n}, now, mean_delay_windows)
        imps.setdefault(key, {})[o.round] = imps.get(key, {}).get(o.round, 0.0) + n
        k = o.clicks if goal == KpiGoal.ctr else o.conversions
        succ.setdefault(key, {})[o.round] = succ.get(key, {}).get(o.round, 0.0) + k
    faces = params or {}
    where = targets or {}
    return {
        seg: [
            windowed_stats(
                vid,
                imps.get((seg, vid), {}),
                succ.get((seg, vid), {}),
                now,
                memory_windows,
                faces.get(vid),
            )
            for vid in variant_ids
            if where.get(vid) in (None, seg)
        ]
        for seg in segments
    }


def pooled_arms(arms_by_segment: Mapping[str, Sequence[ArmStats]]) -> list[ArmStats]:
    """One ArmStats per arm summed over segments, in first-seen order."""
    imps: dict[str, float] = {}
    succ: dict[str, float] = {}
    faces: dict[str, FaceParams | None] = {}
    for arms in arms_by_segment.values():
        for a in arms:
            imps[a.variant_id] = imps.get(a.variant_id, 0.0) + a.impressions
            succ[a.variant_id] = succ.get(a.variant_id, 0) + a.successes
            faces.setdefault(a.variant_id, a.params)
    return [ArmStats(v, imps[v], succ[v], faces[v]) for v in imps]


def window_clicks(
    observations: Iterable[KpiObservation], variant_ids: Collection[str]
) -> dict[str, dict[int, tuple[float, float]]]:
    """Impressions and clicks per variant and window, summed over segments: what the
    fatigue check reads (a creative wears out for every segment at once)."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for o in observations:
        if o.variant_id not in variant_ids:
            continue
        by_window = out.setdefault(o.variant_id, {})
        n, c = by_window.get(o.round, (0.0, 0.0))
        by_window[o.round] = (n + o.impressions, c + o.clicks)
    return out


__all__ = [
    "ALL",
    "MEAN_DELAY_WINDOWS",
    "ArmStats",
    "Evidence",
    "ShownFaces",
    "arms_from_observations",
    "delay_cdf",
    "delayed_exposure",
    "pooled_arms",
    "segment_shares",
    "shown_faces",
    "successes",
    "window_clicks",
    "windowed_stats",
]
