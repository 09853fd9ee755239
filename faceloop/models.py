"""Domain models: every payload that crosses a workflow or activity boundary is one of these.

Images and weights never travel inside a model: they are asset-store URIs.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from faceloop.generation import GenerationConfig

# C0 and C1 control characters, DEL, and NUL among them: none has a place in a brief, and
# NUL truncates strings in C libraries and PostgreSQL refuses it in text columns. Tab and
# newline are kept where a field may hold more than one line.
_CONTROL = {c for c in range(0x20) if chr(c) not in "\t\n\r"} | {0x7F, *range(0x80, 0xA0)}
_CONTROL_ONE_LINE = _CONTROL | {ord("\n"), ord("\r")}


def _no_control(text: str, banned: set[int], allowed: str) -> str:
    bad = next((i for i, ch in enumerate(text) if ord(ch) in banned), None)
    if bad is not None:
        raise ValueError(
            f"control character U+{ord(text[bad]):04X} at position {bad}: remove it ({allowed})"
        )
    return text


def _text(text: str) -> str:
    return _no_control(text, _CONTROL, "only tab and line breaks are allowed in free text")


def _line(text: str) -> str:
    return _no_control(text, _CONTROL_ONE_LINE, "a name or id is one line without controls")


# user-written text: multi-line free text, and one-line names and ids
Text = Annotated[str, AfterValidator(_text)]
Line = Annotated[str, AfterValidator(_line)]


class Model(BaseModel):
    """Base for all faceloop models: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------- face parameters

AgeBand = Literal["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
Expression = Literal["neutral", "smile", "laugh", "serious", "surprised"]
GenderPresentation = Literal["feminine", "masculine", "androgynous"]
Lighting = Literal["soft", "studio", "natural", "golden_hour", "dramatic"]
Background = Literal["white", "grey", "blue", "warm", "green", "outdoor", "office"]
Framing = Literal["close_up", "head_shoulders", "half_body"]
Style = Literal["photo", "editorial", "illustration"]
MonkTone = Annotated[
    int, Field(ge=1, le=10, description="Monk Skin Tone scale, 1 (lightest) to 10")
]

AGE_BANDS: tuple[AgeBand, ...] = get_args(AgeBand)
EXPRESSIONS: tuple[Expression, ...] = get_args(Expression)
GENDER_PRESENTATIONS: tuple[GenderPresentation, ...] = get_args(GenderPresentation)
LIGHTINGS: tuple[Lighting, ...] = get_args(Lighting)
BACKGROUNDS: tuple[Background, ...] = get_args(Background)
FRAMINGS: tuple[Framing, ...] = get_args(Framing)
STYLES: tuple[Style, ...] = get_args(Style)

CATEGORICAL_FIELDS: dict[str, tuple[str, ...]] = {
    "age_band": AGE_BANDS,
    "expression": EXPRESSIONS,
    "gender_presentation": GENDER_PRESENTATIONS,
    "lighting": LIGHTINGS,
    "background": BACKGROUNDS,
    "framing": FRAMINGS,
    "style": STYLES,
}


class FaceParams(Model):
    """The parameters of one face creative; the optimizer searches over these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    age_band: AgeBand = "25-34"
    expression: Expression = "smile"
    skin_tone: MonkTone = 5
    gender_presentation: GenderPresentation = "feminine"
    lighting: Lighting = "soft"
    background: Background = "white"
    framing: Framing = "head_shoulders"
    style: Style = "photo"

    def key(self) -> str:
        """A stable text key, used to recognise the same parameters across rounds."""
        return "|".join(f"{k}={v}" for k, v in sorted(self.model_dump().items()))


class IntRange(Model):
    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        return self


class SearchSpace(Model):
    """Which values the optimizer may try. Unset fields take every allowed value."""

    age_band: list[AgeBand] = Field(default_factory=lambda: list(AGE_BANDS))
    expression: list[Expression] = Field(default_factory=lambda: list(EXPRESSIONS))
    skin_tone: IntRange = Field(default_factory=lambda: IntRange(low=1, high=10))
    gender_presentation: list[GenderPresentation] = Field(
        default_factory=lambda: list(GENDER_PRESENTATIONS)
    )
    lighting: list[Lighting] = Field(default_factory=lambda: list(LIGHTINGS))
    background: list[Background] = Field(default_factory=lambda: list(BACKGROUNDS))
    framing: list[Framing] = Field(default_factory=lambda: list(FRAMINGS))
    style: list[Style] = Field(default_factory=lambda: list(STYLES))

    @field_validator(
        "age_band",
        "expression",
        "gender_presentation",
        "lighting",
        "background",
        "framing",
        "style",
    )
    @classmethod
    def _non_empty_unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one value")
        if len(set(v)) != len(v):
            raise ValueError("values must be unique")
        return v

    @field_validator("skin_tone")
    @classmethod
    def _monk_range(cls, v: IntRange) -> IntRange:
        if v.low < 1 or v.high > 10:
            raise ValueError("skin_tone range must lie within the Monk scale 1-10")
        return v

    def contains(self, p: FaceParams) -> bool:
        for name in CATEGORICAL_FIELDS:
            if getattr(p, name) not in getattr(self, name):
                return False
        return self.skin_tone.low <= p.skin_tone <= self.skin_tone.high


# --------------------------------------------------------------------------- brief


class KpiGoal(StrEnum):
    ctr = "ctr"
    conversions = "conversions"


class Channel(StrEnum):
    meta = "meta"
    google_ads = "google_ads"
    tiktok = "tiktok"
    sandbox = "sandbox"


class AudienceSegment(Model):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")
    description: Text = Field(default="", max_length=500)
    share: float = Field(default=1.0, gt=0, le=1, description="share of the impression budget")


class Persona(Model):
    persona_id: Line = Field(min_length=1, max_length=128)
    consent_ref: Line = Field(
        min_length=1, max_length=256, description="id of the signed consent record for this person"
    )
    adapter: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="asset id of the persona's LoRA adapter (`faceloop persona train` prints "
        "it); unset: the persona's only adapter, or the one trained under consent_ref",
    )


def _iso_market(m: str) -> str:
    if len(m) != 2 or not m.isascii() or not m.isalpha() or not m.isupper():
        raise ValueError(
            f"market {m!r} is not an ISO 3166-1 alpha-2 code (two capital letters, e.g. DE)"
        )
    return m


# validated per item, so an error names the index (markets.2) a person has to fix
MarketCode = Annotated[str, AfterValidator(_iso_market)]


class SpendCap(Model):
    """Most a campaign (or a schedule of its rounds) may cost; reached, it stops
    (docs/cost.md). The currency must be the deployment's FACELOOP_COST_CURRENCY, the one
    compute prices and the platform's spend are counted in: no rate is guessed."""

    amount: float = Field(gt=0, le=1e12, description="the cap, in `currency`")
    currency: str = Field(
        pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR: the deployment's currency"
    )
    include_compute: bool = Field(
        default=True,
        description="count measured compute, storage, API and review cost with the platform's "
        "ad spend; false: ad spend alone",
    )


class Brief(Model):
    """What a marketer submits. Text fields are data for the planner, never instructions."""

    product: Text = Field(min_length=1, max_length=200)
    message: Text = Field(min_length=1, max_length=1000)
    audience: list[AudienceSegment] = Field(min_length=1, max_length=20)
    markets: list[MarketCode] = Field(
        min_length=1, max_length=250, description="ISO 3166-1 alpha-2 country codes"
    )
    channels: list[Channel] = Field(default_factory=lambda: [Channel.sandbox], min_length=1)
    tone: Text = Field(default="friendly", max_length=200)
    budget_impressions: int = Field(
        gt=0, le=1_000_000_000, description="total impressions over the whole campaign"
    )
    kpi_goal: KpiGoal = KpiGoal.ctr
    # each item is bounded too, so a brief stays far below Temporal's 2 MB payload warning
    constraints: list[Annotated[str, Field(max_length=500), AfterValidator(_text)]] = Field(
        default_factory=list, max_length=50
    )
    persona: Persona | None = None
    spend_cap: SpendCap | None = Field(
        default=None,
        description="stop the campaign once its spend reaches this (checked before each "
        "round; from the second round on, a round the rest cannot pay for is sized down)",
    )
    search_space: SearchSpace = Field(default_factory=SearchSpace)
    submitted_by: Line = Field(default="marketer", min_length=1, max_length=128)

    @model_validator(mode="after")
    def _segment_shares(self) -> Brief:
        names = [s.name for s in self.audience]
        if len(set(names)) != len(names):
            raise ValueError("audience segment names must be unique")
        total = sum(s.share for s in self.audience)
        if len(self.audience) > 1 and abs(total - 1.0) > 1e-6:
            raise ValueError(f"audience shares must sum to 1.0 (they sum to {total:.3f})")
        return self


# --------------------------------------------------------------------------- plan and variants


class VariantPrompt(Model):
    variant_id: str
    params: FaceParams
    prompt: str
    negative_prompt: str
    disclosure: str
    written_by: Literal["llm", "deterministic"] = "deterministic"


class PromptPlan(Model):
    status: Literal["planned", "blocked", "escalated"] = "planned"
    reason: str = ""
    variants: list[VariantPrompt] = Field(default_factory=list)


class Asset(Model):
    """A stored image. asset_id is the content hash (sha256 hex) of the stored bytes."""

    asset_id: str
    uri: str
    width: int
    height: int
    media_type: str = "image/png"
    generator: str
    model_version: str
    seed: int


ShownFrom = Literal["measured", "requested"]


class ParamShown(Model):
    """One face parameter of one image: what was asked, what its pixels show, and whether
    the two agree within the playbook's tolerance (ok None: it could not be measured)."""

    requested: str | int
    measured: str | int | None = None
    ok: bool | None = None


class Fidelity(Model):
    """What a generated image shows against what was asked for it, measured from its pixels
    (faceloop.generators.perception) by the generate stage."""

    found: bool = Field(description="a face was found; without one nothing was measured")
    params: dict[str, ParamShown] = Field(
        default_factory=dict, description="every FaceParams field: requested, measured, ok"
    )
    tries: int = Field(default=1, ge=1, description="images made for this variant (re-seeds + 1)")
    enforced: bool = Field(
        default=False, description="the playbook's fidelity.enforce re-seeded on a mismatch"
    )
    not_rendered: list[str] = Field(
        default_factory=list,
        description="parameters still off the request after the last try: the image does not "
        "show them, and the optimizer learns what it shows instead",
    )
    perception: dict[str, object] = Field(
        default_factory=dict, description="the perception module's full reading of the image"
    )

    def shown(self, requested: FaceParams) -> tuple[FaceParams, dict[str, ShownFrom]]:
        """The face the image shows, and for each parameter whether that value was measured
        or is the request.

        skin_tone is measured on the request's own scale (Monk steps), so its measurement
        stands whenever there is one. A categorical reading is coarser than the request
        (smile and laugh read alike; lighting reads only as even or low key), so it replaces
        the request only when it is off the request (ok False) and names a value the
        parameter has (a black backdrop does not): within tolerance the request counts as
        shown; where nothing was measured the request stands too.
        """
        values: dict[str, object] = requested.model_dump()
        source: dict[str, ShownFrom] = dict.fromkeys(values, "requested")
        for name, p in self.params.items():
            if name not in values or p.measured is None:
                continue
            if name != "skin_tone" and p.ok is not False:
                continue
            candidate = {**values, name: p.measured}
            try:
                FaceParams.model_validate(candidate)
            except ValueError:
                continue
            values, source[name] = candidate, "measured"
        return FaceParams.model_validate(values), source


def shown_params(variant: Variant) -> tuple[FaceParams, dict[str, ShownFrom]]:
    """What a variant's image shows (its request where it was never measured)."""
    if variant.fidelity is None:
        return variant.params, dict.fromkeys(FaceParams.model_fields, "requested")
    return variant.fidelity.shown(variant.params)


class Verdict(StrEnum):
    passed = "pass"
    block = "block"
    escalate = "escalate"


class CheckResult(Model):
    name: str
    verdict: Verdict
    score: float
    evidence: dict[str, object] = Field(default_factory=dict)


class GuardrailReport(Model):
    asset_id: str
    checks: list[CheckResult]

    @property
    def verdict(self) -> Verdict:
        verdicts = {c.verdict for c in self.checks}
        if Verdict.block in verdicts:
            return Verdict.block
        if Verdict.escalate in verdicts:
            return Verdict.escalate
        return Verdict.passed


# --------------------------------------------------------------------------- placement exports

# The ad placements a creative is exported for, named by aspect ratio (width:height).
# guardrails/export.py holds their pixel sizes and safe areas (docs/export.md).
Placement = Literal["1:1", "4:5", "9:16", "1.91:1"]
PLACEMENTS: tuple[Placement, ...] = get_args(Placement)
ExportFormat = Literal["jpeg", "webp"]


class ExportConfig(Model):
    """How approved creatives are exported per ad placement (the brief's `campaign.export`)."""

    placements: list[Placement] | None = Field(
        default=None,
        description="placements to export; None: the ones the brief's channels use "
        "(meta 1:1 4:5 9:16, google_ads 1.91:1 1:1, tiktok 9:16, sandbox all four)",
    )
    formats: list[ExportFormat] = Field(
        default_factory=lambda: list[ExportFormat](["jpeg"]),
        min_length=1,
        description="encodings per placement; JPEG is the one every ad platform accepts",
    )
    # 95: near-lossless; the platforms compress again. The watermark, aimed through the
    # encoding, survives down to JPEG 75 in `faceloop bench export` (docs/export.md)
    jpeg_quality: int = Field(default=95, ge=1, le=100)
    webp_quality: int = Field(default=95, ge=1, le=100)
    scale: float | None = Field(
        default=None,
        gt=0,
        le=2,
        description="multiplies each placement's recommended pixel size (1.0: e.g. 1080x1920 "
        "for 9:16); None: no larger than the source holds (upscaled pixels add no detail), "
        "and never smaller than the watermark needs (256x256 pixels' worth)",
    )

    @field_validator("placements", "formats")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"{v}: list each entry once")
        return v


class PlacementExport(Model):
    """One placement's export of a signed creative: a C2PA transform of the signed file.

    `refused` non-empty: the export lost its watermark (or its manifest) and is recorded,
    never stored for delivery (`uri` is empty) nor handed to a connector."""

    placement: Placement
    asset_id: str = Field(description="sha256 of the exported bytes")
    parent_asset_id: str = Field(description="the signed original it was made from")
    uri: str = ""
    media_type: Literal["image/jpeg", "image/webp"]
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    quality: int = Field(ge=1, le=100)
    fit: Literal["crop", "extend"] = Field(
        description="crop: a window inside the source; extend: the canvas was widened with "
        "an edge-aware blurred fill (no generative outpainting)"
    )
    face_in_safe_area: bool | None = Field(
        default=None, description="None: no face was detected in the source"
    )
    manifest_ok: bool
    watermark_bit_errors: int = Field(ge=0, le=32)
    watermark_recall: float = Field(ge=0, le=1, description="share of payload bits read back")
    refused: str = ""


class Decision(StrEnum):
    deploy = "deploy"
    block = "block"
    escalate = "escalate"


class Variant(Model):
    """One face creative in one campaign: parameters, prompt, image, verdicts and its ad."""

    variant_id: str
    campaign_id: str
    round: int
    trial_number: int | None = None
    params: FaceParams
    seed: int
    segment: str | None = Field(
        default=None,
        description="the audience segment it was proposed for and runs in; None: every segment",
    )
    prompt: str = ""
    negative_prompt: str = ""
    disclosure: str = ""
    asset: Asset | None = None
    fidelity: Fidelity | None = Field(
        default=None, description="requested vs measured; None: made before it was measured"
    )
    report: GuardrailReport | None = None
    decision: Decision | None = None
    decision_reason: str = ""
    ad_id: str | None = None
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    live: bool = False
    erased_at: datetime | None = Field(
        default=None,
        description="set by GDPR erasure: the prompts and the image are gone, the ids remain",
    )
    exports: list[PlacementExport] = Field(
        default_factory=list, description="per-placement exports of the signed creative"
    )


class KpiObservation(Model):
    campaign_id: str
    variant_id: str
    ad_id: str
    round: int
    segment: str = "all"
    impressions: int = Field(ge=0)
    clicks: int = Field(ge=0)
    conversions: int = Field(ge=0)
    observed_at: datetime
    # None: the platform does not report the signal (rollback criteria on it cannot fire)
    negative_feedback: int | None = Field(default=None, ge=0, description="hides in the window")
    complaints: int | None = Field(default=None, ge=0, description="reports in the window")


Stage = Literal[
    "starting",
    "propose",
    "plan",
    "generate",
    "guard",
    "decide",
    "sign",
    "export",
    "deploy",
    "observe",
    "learn",
    "done",
    "blocked",
    "stopped",
]


class CampaignConfig(Model):
    """How a campaign runs; chosen at submit time, fixed for the campaign's life."""

    rounds: int = Field(default=3, ge=1, le=1000)
    variants_per_round: int = Field(
        default=12,
        ge=2,
        le=64,
        description="variants live in a round: the incumbents plus new proposals",
    )
    incumbents: int = Field(
        default=2,
        ge=0,
        description="best variants always kept live into the next round; more are kept "
        "while they beat a new creative (docs/optimization.md)",
    )
    kpi_window_seconds: float = Field(default=3600.0, gt=0)
    impressions_per_round: int | None = Field(
        default=None, gt=0, description="default: the brief's budget split evenly over rounds"
    )
    exploration_floor: float = Field(
        default=0.02,
        ge=0,
        le=0.5,
        description="least share of a segment's impressions each of its live variants "
        "gets until it is measured (2,000 impressions; docs/optimization.md)",
    )
    image_size: int = Field(default=256, ge=64, le=2048)
    connector: Line = Field(default="sandbox", min_length=1, max_length=64)
    refresh_creatives: bool = Field(
        default=True,
        description="replace a kept variant whose CTR wore out by a fresh image of its face",
    )
    objectives: list[Literal["ctr", "conversions", "cpa"]] = Field(
        default_factory=list,
        description="two or more: a multi-objective study (Pareto front in the report); "
        "empty: the brief's KPI",
    )
    export: ExportConfig = Field(
        default_factory=ExportConfig, description="per-placement exports (docs/export.md)"
    )
    generation: GenerationConfig | None = Field(
        default=None,
        description="the production path (backend, model, LoRAs, ControlNet, aspect ratio); "
        "unset fields take the deployment's settings; submit stores the resolved config",
    )

    @model_validator(mode="after")
    def _incumbents_fit(self) -> CampaignConfig:
        if self.incumbents >= self.variants_per_round:
            raise ValueError(
                f"incumbents ({self.incumbents}) must be fewer than variants_per_round "
                f"({self.variants_per_round}): each round needs a place for a new proposal; "
                "lower incumbents or raise variants_per_round"
            )
        if len(self.objectives) == 1 or len(set(self.objectives)) != len(self.objectives):
            raise ValueError(
                "objectives: name two or more different ones (ctr, conversions, cpa), or none"
            )
        return self


class VariantKpi(Model):
    variant_id: str
    round: int
    impressions: int
    clicks: int
    conversions: int
    rate: float = Field(description="clicks (ctr goal) or conversions per impression")
    params: dict[str, str | int] = Field(default_factory=dict)


class AnalystSummary(Model):
    """A short plain-language summary of a round and the numbers it rests on."""

    campaign_id: str
    round: int
    kpi_goal: KpiGoal
    text: str
    written_by: Literal["llm", "template"] = "template"
    fallback_reason: str = ""
    round_impressions: int = 0
    round_successes: int = 0
    round_rate: float | None = None
    best: VariantKpi | None = None
    worst: VariantKpi | None = None
    variants: list[VariantKpi] = Field(default_factory=list)
    completed_trials: int = 0
    importances: dict[str, float] = Field(
        default_factory=dict, description="Optuna parameter importances (sum 1); empty if too few"
    )
    importance_note: str = ""


class RoundSummary(Model):
    round: int
    variants: list[Variant]
    allocation: dict[str, float] = Field(default_factory=dict)
    analysis: AnalystSummary | None = None


class RollbackRecord(Model):
    """A live ad paused because a playbook rollback criterion fired, and who was told."""

    round: int
    variant_id: str
    ad_id: str
    criteria: list[str]
    reason: str
    notify_role: str


class CampaignState(Model):
    """Everything a campaign carries from one round (and one continue-as-new run) to the next."""

    campaign_id: str
    brief: Brief
    config: CampaignConfig
    round: int = 0
    stage: Stage = "starting"
    history: list[RoundSummary] = Field(default_factory=list)
    live: list[Variant] = Field(default_factory=list, description="variants whose ads run now")
    winner: Variant | None = None
    blocked_reason: str = ""
    rollbacks: list[RollbackRecord] = Field(
        default_factory=list, description="live ads a playbook rollback criterion paused"
    )
