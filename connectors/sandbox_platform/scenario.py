"""Scenarios of the sandbox ad platform (a fake): how a simulated audience responds to faces.

A scenario is a YAML file (schema documented in docs/sandbox.md). It sets a base CTR and a
base conversion rate and shifts both on the logit scale by the declared face parameters,
the audience segment, per-ad noise and drift over windows; CTR also decays with an ad's
cumulative impressions (creative fatigue).

The true rates are the ground truth a benchmark scores optimizers against. They never
leave the sandbox through HTTP; this module's `true_rates`, `best_params` and `worst_params`
are the only way to read them, and they are meant for `faceloop bench` and tests.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from faceloop.briefs import read_document
from faceloop.errors import InputError
from faceloop.models import (
    AGE_BANDS,
    BACKGROUNDS,
    CATEGORICAL_FIELDS,
    EXPRESSIONS,
    FRAMINGS,
    GENDER_PRESENTATIONS,
    LIGHTINGS,
    STYLES,
    AgeBand,
    Background,
    Expression,
    FaceParams,
    Framing,
    GenderPresentation,
    Lighting,
    Line,
    Model,
    MonkTone,
    SearchSpace,
    Style,
    Text,
)

# Order of FaceParams fields; the grid search in best_params/worst_params follows it.
PARAM_FIELDS: tuple[str, ...] = tuple(FaceParams.model_fields)
_SEGMENT_NAME = r"^[a-z0-9_\-]+$"
# Logit shifts beyond +-5 would turn a 2% CTR into 0% or 100%: surely a typo.
_Effect = Annotated[float, Field(ge=-5, le=5)]


class SkinToneBump(Model):
    """A gaussian bump over the Monk scale: `weight` at `center`, fading over `width` tones."""

    center: float = Field(ge=1, le=10)
    width: float = Field(gt=0, le=20)
    weight: float = Field(ge=-5, le=5)

    def at(self, tone: int) -> float:
        return self.weight * math.exp(-0.5 * ((tone - self.center) / self.width) ** 2)


def _skin_tone_kind(value: Any) -> str | None:
    # A callable discriminator keeps error paths short ("skin_tone.bump.width") instead of
    # pydantic's union paths that list every member's complaints.
    if isinstance(value, SkinToneBump):
        return "bump"
    if isinstance(value, dict):
        return "bump" if {"center", "width", "weight"} & set(value) else "map"
    return None


SkinToneEffect = Annotated[
    Annotated[SkinToneBump, Tag("bump")] | Annotated[dict[MonkTone, _Effect], Tag("map")],
    Discriminator(
        _skin_tone_kind,
        custom_error_type="skin_tone_effect",
        custom_error_message=(
            "skin_tone must be a bump {center, width, weight} or a map {tone: effect}"
        ),
    ),
]


class ParamEffects(Model):
    """Logit shifts by face parameter; a value not listed shifts by 0."""

    intercept: _Effect = 0.0
    age_band: dict[AgeBand, _Effect] = Field(default_factory=dict)
    expression: dict[Expression, _Effect] = Field(default_factory=dict)
    skin_tone: SkinToneEffect | None = None
    gender_presentation: dict[GenderPresentation, _Effect] = Field(default_factory=dict)
    lighting: dict[Lighting, _Effect] = Field(default_factory=dict)
    background: dict[Background, _Effect] = Field(default_factory=dict)
    framing: dict[Framing, _Effect] = Field(default_factory=dict)
    style: dict[Style, _Effect] = Field(default_factory=dict)

    def of(self, field: str, value: str | int) -> float:
        """The logit shift that one parameter value gets (without the intercept)."""
        if field == "skin_tone":
            effect = self.skin_tone
            if effect is None:
                return 0.0
            if isinstance(effect, SkinToneBump):
                return effect.at(int(value))
            return effect.get(int(value), 0.0)
        table: dict[Any, float] = getattr(self, field)
        return table.get(value, 0.0)

    def logit(self, params: FaceParams) -> float:
        return self.intercept + sum(self.of(f, getattr(params, f)) for f in PARAM_FIELDS)


class Effects(Model):
    """Logit shifts of the click-through rate and of the conversion rate (per click)."""

    ctr: ParamEffects = Field(default_factory=ParamEffects)
    cvr: ParamEffects = Field(default_factory=ParamEffects)


class ScenarioSegment(Model):
    name: str = Field(min_length=1, max_length=64, pattern=_SEGMENT_NAME)
    description: Text = Field(default="", max_length=500)
    share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="share of impressions when a campaign names no segments",
    )
    effects: Effects = Field(default_factory=Effects)


class Noise(Model):
    ad_sd: float = Field(
        default=0.0,
        ge=0,
        le=2,
        description="sd of a per-ad logit offset (drawn from seed + asset id) on CTR and on CVR",
    )


class ConversionDelay(Model):
    mean_windows: float = Field(
        default=0.0, ge=0, le=100, description="mean of the geometric delay; 0: same window"
    )


class Fatigue(Model):
    half_life_impressions: float | None = Field(
        default=None, gt=0, description="impressions after which the fading part of CTR halves"
    )
    floor: float = Field(default=0.5, ge=0, le=1, description="share of CTR that never fades")


class Feedback(Model):
    """Negative signals the audience sends about an ad, per impression: hides ("not
    interested", "hide ad") and reports (complaints). Without this section the platform
    reports neither, like a platform that does not expose them."""

    hide_rate: float = Field(gt=0, lt=1, description="hides per impression at the baseline face")
    report_rate: float = Field(
        gt=0, lt=1, description="reports (complaints) per impression at the baseline face"
    )
    effects: ParamEffects = Field(
        default_factory=ParamEffects,
        description="logit shifts of both rates by face parameter (e.g. dramatic light hidden "
        "more often)",
    )


class Drift(Model):
    from_window: int = Field(ge=0)
    segment: str | None = Field(
        default=None, pattern=_SEGMENT_NAME, description="only this segment; unset: every segment"
    )
    effects: Effects


class BenchUse(Model):
    """How `faceloop bench optimize` uses a scenario: which set it belongs to and the KPI
    its campaigns optimise. Not part of the audience: the sandbox ignores it."""

    split: Literal["tuning", "heldout"] = Field(
        description="tuning: the optimiser's settings may be chosen on it (tuning seeds); "
        "heldout: only reported, never tuned on (and benched on seeds disjoint from tuning)"
    )
    goal: Literal["ctr", "conversions"] = Field(
        default="ctr", description="the KPI the benched campaigns optimise"
    )


class Scenario(Model):
    """A simulated audience. Everything in it is ground truth and stays inside the sandbox."""

    name: Line = Field(min_length=1, max_length=128)
    description: Text = Field(default="", max_length=4000)
    seed: int = Field(ge=0, lt=2**63)
    base_ctr: float = Field(gt=0, lt=1)
    base_cvr: float = Field(gt=0, lt=1)
    effects: Effects = Field(default_factory=Effects)
    segments: list[ScenarioSegment] = Field(default_factory=list, max_length=50)
    noise: Noise = Field(default_factory=Noise)
    conversion_delay: ConversionDelay = Field(default_factory=ConversionDelay)
    fatigue: Fatigue = Field(default_factory=Fatigue)
    drift: list[Drift] = Field(default_factory=list, max_length=100)
    feedback: Feedback | None = Field(
        default=None, description="hides and reports per ad; unset: not reported"
    )
    audience_sees: Literal["declared", "measured"] = Field(
        default="declared",
        description="what the simulated audience reacts to: the parameters an ad declares "
        "(declared), or those the perception module measures in its image (measured)",
    )
    cpm: float = Field(
        default=2.0,
        gt=0,
        le=10_000,
        description="what 1,000 delivered impressions cost; the platform reports spend at it "
        "(in the account currency, which faceloop takes to be FACELOOP_COST_CURRENCY)",
    )
    bench: BenchUse | None = Field(
        default=None,
        description="how `faceloop bench optimize` uses it (tuning or held-out set, KPI); "
        "every shipped scenario has one",
    )

    @field_validator("segments")
    @classmethod
    def _unique_shares(cls, segments: list[ScenarioSegment]) -> list[ScenarioSegment]:
        names = [s.name for s in segments]
        if len(set(names)) != len(names):
            raise ValueError(f"segment names must be unique, got {names}")
        total = sum(s.share for s in segments)
        if segments and abs(total - 1.0) > 1e-6:
            raise ValueError(f"segment shares must sum to 1.0 (they sum to {total:.3f})")
        return segments

    @model_validator(mode="after")
    def _drift_segments_known(self) -> Scenario:
        names = [s.name for s in self.segments]
        for i, d in enumerate(self.drift):
            if d.segment is not None and d.segment not in names:
                raise ValueError(
                    f"drift.{i}.segment: {d.segment!r} is not a scenario segment (known: {names})"
                )
        return self

    def segment(self, name: str) -> ScenarioSegment | None:
        return next((s for s in self.segments if s.name == name), None)

    def parameters_matter(self) -> bool:
        """Whether any face parameter moves CTR or CVR anywhere (a segment's or a drift's
        effects included): `flat`'s answer is no, so only creatives' own noise differs."""
        blocks = [
            self.effects,
            *(s.effects for s in self.segments),
            *(d.effects for d in self.drift),
        ]
        return any(
            effects.of(f, v) != 0.0
            for block in blocks
            for effects in (block.ctr, block.cvr)
            for f, values in _ALL_VALUES.items()
            for v in values
        )

    def fingerprint(self) -> str:
        """Hash of the audience: a state file remembers which audience it simulated (the
        `bench` section is left out: it does not change what the audience does)."""
        # declared is the behaviour before the option existed: left out of the hash, so
        # state files written then still match their scenario
        # the price (cpm) is no part of the audience either: leaving it out keeps state files
        # written before the sandbox reported spend usable
        exclude = {"bench", "cpm"}
        if self.audience_sees != "measured":
            exclude.add("audience_sees")
        return hashlib.sha256(self.model_dump_json(exclude=exclude).encode()).hexdigest()


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; InputError names the file and field paths."""
    source = str(path)
    data = read_document(Path(path), source)
    if not isinstance(data, dict):
        raise InputError(
            source, [f"(root): must be a mapping of scenario fields, got {type(data).__name__}"]
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise InputError.from_validation(source, err) from None


# --------------------------------------------------------------------------- the audience model


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    # Written for both signs so large |x| never overflows exp().
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def seed_words(*parts: object) -> list[int]:
    """Entropy for numpy's SeedSequence from any labels. Python's hash() is salted per
    process, so a stable digest keeps runs reproducible across processes and restarts."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4)]


def _layers(scenario: Scenario, segment: str, window: int) -> list[Effects]:
    """Every block of effects that applies to this segment in this window."""
    layers = [scenario.effects]
    seg = scenario.segment(segment)
    if seg is not None:
        layers.append(seg.effects)
    layers.extend(
        d.effects
        for d in scenario.drift
        if d.from_window <= window and (d.segment is None or d.segment == segment)
    )
    return layers


def ad_offsets(scenario: Scenario, asset_id: str) -> tuple[float, float]:
    """The per-ad (ctr, cvr) logit offsets: two creatives with the same declared parameters
    still differ a little, as real ones do. Fixed by the seed and the asset id."""
    if scenario.noise.ad_sd == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(np.random.SeedSequence(seed_words(scenario.seed, "ad", asset_id)))
    ctr_off, cvr_off = rng.normal(0.0, scenario.noise.ad_sd, size=2)
    return float(ctr_off), float(cvr_off)


def fatigue_factor(scenario: Scenario, impressions_so_far: float) -> float:
    """Multiplier of CTR after an ad has been shown this many times."""
    half_life = scenario.fatigue.half_life_impressions
    if half_life is None:
        return 1.0
    floor = scenario.fatigue.floor
    return floor + (1.0 - floor) * 0.5 ** (impressions_so_far / half_life)


def true_rates(
    scenario: Scenario,
    params: FaceParams,
    segment: str,
    impressions_so_far: float,
    window: int,
    *,
    asset_id: str | None = None,
) -> tuple[float, float]:
    """The true (ctr, cvr) of a creative: CTR per impression, CVR per click.

    `segment` not in the scenario uses only the global effects. `impressions_so_far` is the
    ad's cumulative impressions (fatigue); `window` selects drift. With `asset_id`, the
    per-ad noise of that creative is included, as the sandbox delivers it; without it,
    the rates are those of the parameters themselves (what an optimizer should find).
    """
    if impressions_so_far < 0:
        raise ValueError(f"impressions_so_far must be >= 0, got {impressions_so_far}")
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    ctr_logit = _logit(scenario.base_ctr)
    cvr_logit = _logit(scenario.base_cvr)
    for layer in _layers(scenario, segment, window):
        ctr_logit += layer.ctr.logit(params)
        cvr_logit += layer.cvr.logit(params)
    if asset_id is not None:
        ctr_off, cvr_off = ad_offsets(scenario, asset_id)
        ctr_logit += ctr_off
        cvr_logit += cvr_off
    ctr = _sigmoid(ctr_logit) * fatigue_factor(scenario, impressions_so_far)
    return ctr, _sigmoid(cvr_logit)


def feedback_rates(scenario: Scenario, params: FaceParams) -> tuple[float, float] | None:
    """The true (hide rate, report rate) per impression of a face; None when the scenario
    has no feedback section (the platform reports none)."""
    fb = scenario.feedback
    if fb is None:
        return None
    shift = fb.effects.logit(params)
    return _sigmoid(_logit(fb.hide_rate) + shift), _sigmoid(_logit(fb.report_rate) + shift)


# --------------------------------------------------------------------------- optimum (for bench)

Kpi = Literal["ctr", "conversions"]

_ALL_VALUES: dict[str, tuple[Any, ...]] = {
    "age_band": AGE_BANDS,
    "expression": EXPRESSIONS,
    "skin_tone": tuple(range(1, 11)),
    "gender_presentation": GENDER_PRESENTATIONS,
    "lighting": LIGHTINGS,
    "background": BACKGROUNDS,
    "framing": FRAMINGS,
    "style": STYLES,
}
assert set(_ALL_VALUES) == set(PARAM_FIELDS) and set(CATEGORICAL_FIELDS) < set(_ALL_VALUES)


def _space_values(space: SearchSpace | None) -> dict[str, tuple[Any, ...]]:
    if space is None:
        return dict(_ALL_VALUES)
    values: dict[str, tuple[Any, ...]] = {
        f: tuple(getattr(space, f)) for f in PARAM_FIELDS if f != "skin_tone"
    }
    values["skin_tone"] = tuple(range(space.skin_tone.low, space.skin_tone.high + 1))
    return values


def _rate_grid(
    scenario: Scenario,
    values: dict[str, tuple[Any, ...]],
    segments: dict[str, float],
    kpi: Kpi,
    window: int,
) -> np.ndarray:
    """Expected KPI per impression for every parameter combination (one axis per field)."""
    total = sum(segments.values())
    grid: np.ndarray | None = None
    for segment, weight in segments.items():
        layers = _layers(scenario, segment, window)
        ctr_logit: np.ndarray = np.asarray(
            _logit(scenario.base_ctr) + sum(la.ctr.intercept for la in layers)
        )
        cvr_logit: np.ndarray = np.asarray(
            _logit(scenario.base_cvr) + sum(la.cvr.intercept for la in layers)
        )
        for axis, field in enumerate(PARAM_FIELDS):
            shape = [1] * len(PARAM_FIELDS)
            shape[axis] = len(values[field])
            ctr_part = [sum(la.ctr.of(field, v) for la in layers) for v in values[field]]
            cvr_part = [sum(la.cvr.of(field, v) for la in layers) for v in values[field]]
            ctr_logit = ctr_logit + np.reshape(ctr_part, shape)
            cvr_logit = cvr_logit + np.reshape(cvr_part, shape)
        rate = 1.0 / (1.0 + np.exp(-ctr_logit))
        if kpi == "conversions":
            rate = rate / (1.0 + np.exp(-cvr_logit))
        part = rate * (weight / total)
        grid = part if grid is None else grid + part
    assert grid is not None
    return grid


def _extreme(
    scenario: Scenario,
    segments: dict[str, float] | None,
    kpi: Kpi,
    window: int,
    space: SearchSpace | None,
    pick_max: bool,
) -> tuple[FaceParams, float]:
    if segments is None:
        segments = {s.name: s.share for s in scenario.segments} or {"all": 1.0}
    if not segments or any(w <= 0 for w in segments.values()):
        raise ValueError(f"segments must map names to positive weights, got {segments}")
    values = _space_values(space)
    grid = _rate_grid(scenario, values, segments, kpi, window)
    flat = int(np.argmax(grid) if pick_max else np.argmin(grid))
    index = np.unravel_index(flat, grid.shape)
    params = FaceParams(**{f: values[f][int(i)] for f, i in zip(PARAM_FIELDS, index, strict=True)})
    return params, float(grid[index])


def best_params(
    scenario: Scenario,
    segments: dict[str, float] | None = None,
    kpi: Kpi = "ctr",
    window: int = 0,
    space: SearchSpace | None = None,
) -> tuple[FaceParams, float]:
    """The parameters with the highest true KPI per impression, and that value.

    kpi "ctr" is clicks per impression, "conversions" conversions per impression
    (ctr * cvr). `segments` maps segment name to weight (e.g. a brief's shares); unset: the
    scenario's own segment shares. Fresh creatives (no fatigue), no per-ad noise.
    """
    return _extreme(scenario, segments, kpi, window, space, pick_max=True)


def worst_params(
    scenario: Scenario,
    segments: dict[str, float] | None = None,
    kpi: Kpi = "ctr",
    window: int = 0,
    space: SearchSpace | None = None,
) -> tuple[FaceParams, float]:
    """Like best_params, for the lowest true KPI: the other end of a regret scale."""
    return _extreme(scenario, segments, kpi, window, space, pick_max=False)


__all__ = [
    "BenchUse",
    "ConversionDelay",
    "Drift",
    "Effects",
    "Fatigue",
    "Feedback",
    "Noise",
    "ParamEffects",
    "Scenario",
    "ScenarioSegment",
    "SkinToneBump",
    "ad_offsets",
    "best_params",
    "fatigue_factor",
    "feedback_rates",
    "load_scenario",
    "seed_words",
    "true_rates",
    "worst_params",
]
