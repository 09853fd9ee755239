"""Governance playbooks: YAML validated by pydantic; a bad playbook is rejected with paths.

A playbook holds the guardrail thresholds and bias targets, what each guardrail verdict leads
to, the escalation chain, rules over guardrail verdicts, markets, channels, face parameters,
persona use and spend (block, escalate, disclose, require consent, require approvers), and
rollback criteria for live ads. Evaluation lives in `rules.py` and `rollback.py`; the checks
a person runs before a campaign in `check.py`. See docs/governance.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import re2
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from faceloop.briefs import parse_yaml, read_document
from faceloop.errors import InputError
from faceloop.generators.perception import FidelityTolerance
from faceloop.models import (
    CATEGORICAL_FIELDS,
    Channel,
    Decision,
    FaceParams,
    GuardrailReport,
    Line,
    Model,
    Text,
    Verdict,
)
from faceloop.playbooks.markets import IsoMarket

if TYPE_CHECKING:
    from faceloop.playbooks.rollback import RollbackHit, RollbackKpis
    from faceloop.playbooks.rules import RuleContext, Ruling


# Names in a playbook (roles, labels, scopes) are one line; free text (reasons, descriptions,
# disclosures) may span lines: neither may carry control characters (faceloop.models).
Label = Annotated[Line, Field(min_length=1, max_length=64)]
Role = Annotated[Line, Field(min_length=1, max_length=64)]
MAX_LABELS = 50
# A playbook travels in every campaign's workflow input and in each guard and decide
# activity's: its JSON is capped far below Temporal's 2 MB payload warning, with room for a
# brief at its limits (< 200 kB) and a round's variants beside it.
MAX_PLAYBOOK_BYTES = 512 * 1024


class QualityThresholds(Model):
    min_face_score: float = Field(default=0.6, ge=0, le=1)
    min_resolution: int = Field(default=256, ge=32)
    max_faces: int = Field(default=1, ge=1)
    min_sharpness_ratio: float = Field(
        default=0.15, ge=0, description="face/background Laplacian variance below this: escalate"
    )
    max_skin_clipping: float = Field(
        default=0.10, ge=0, le=1, description="share of face skin clipped to white above: escalate"
    )


class SafetyThresholds(Model):
    min_score: float = Field(default=0.45, gt=0, le=1, description="NudeNet detection score")
    block_labels: list[Label] = Field(
        max_length=MAX_LABELS,
        default_factory=lambda: [
            "FEMALE_GENITALIA_EXPOSED",
            "MALE_GENITALIA_EXPOSED",
            "FEMALE_BREAST_EXPOSED",
            "BUTTOCKS_EXPOSED",
            "ANUS_EXPOSED",
        ],
    )
    escalate_labels: list[Label] = Field(
        max_length=MAX_LABELS,
        default_factory=lambda: [
            "MALE_BREAST_EXPOSED",
            "BELLY_EXPOSED",
            "FEMALE_GENITALIA_COVERED",
        ],
    )


class IdentityThresholds(Model):
    lookalike_threshold: float = Field(
        default=0.50, gt=0, le=1, description="SFace cosine to an enrolled real person: block"
    )
    persona_threshold: float = Field(
        default=0.40, gt=0, le=1, description="SFace cosine a persona variant must reach"
    )


class BiasTargets(Model):
    min_batch: int = Field(default=4, ge=1, description="fewer measured faces: report only")
    skin_tone_min_share: dict[Label, float] = Field(
        default_factory=dict,
        max_length=MAX_LABELS,
        description="ITA group -> minimum share of measured faces",
    )
    gender_min_share: dict[Label, float] = Field(
        default_factory=dict,
        max_length=MAX_LABELS,
        description="feminine/masculine -> minimum share of measured faces",
    )
    age_band_min_share: dict[Label, float] = Field(
        default_factory=dict,
        max_length=MAX_LABELS,
        description="age band -> minimum share of requested variants",
    )
    on_miss: Verdict = Field(
        default=Verdict.escalate, description="verdict when a target is missed"
    )


class WatermarkSettings(Model):
    method: Literal["dwtDct", "dwtDctSvd", "rivaGan"] = "dwtDctSvd"


# A review deadline is a durable timer and a date reviewers are shown: a month is longer than
# any compliance SLA we know of, and inf/NaN/1e12 s would never fire (or overflow datetime).
MAX_SLA_SECONDS = 30 * 86400.0


class FidelitySettings(Model):
    """What is asked is what is shown: how closely a generated image must match its request
    (measured from its pixels by faceloop.generators.perception) and how often the generate
    stage re-seeds before it marks a parameter as not rendered."""

    enforce: bool = Field(
        default=True,
        description="re-seed an image whose measured parameters are off the request; false: "
        "measure and record only",
    )
    max_tries: int = Field(
        default=3, ge=1, le=10, description="images made per variant at most, the first included"
    )
    tolerance: FidelityTolerance = Field(
        default_factory=FidelityTolerance,
        description="how far a measured value may be from the request and still count as shown",
    )


class Escalation(Model):
    role: Role = "compliance"
    sla_seconds: float = Field(
        default=86400.0,
        gt=0,
        le=MAX_SLA_SECONDS,
        allow_inf_nan=False,
        description=f"how long this level has; at most {MAX_SLA_SECONDS:.0f} s (30 days)",
    )
    approvers: int = Field(
        default=1, ge=1, le=5, description="distinct reviewers who must approve (2: four eyes)"
    )
    on_expiry: Decision = Field(
        default=Decision.block,
        description="at the deadline: block, deploy, or escalate to the level in `then`",
    )
    then: Escalation | None = Field(
        default=None, description="the next level when on_expiry is escalate"
    )

    @model_validator(mode="after")
    def _chain(self) -> Escalation:
        if self.on_expiry == Decision.escalate and self.then is None:
            raise ValueError("on_expiry: escalate needs `then`, the level to escalate to")
        if self.then is not None and self.on_expiry != Decision.escalate:
            raise ValueError(
                f"`then` is only followed when on_expiry is escalate (it is "
                f"{self.on_expiry.value}): set on_expiry: escalate or remove `then`"
            )
        levels = list(self.levels())
        if len(levels) > MAX_ESCALATION_LEVELS:
            raise ValueError(
                f"the escalation chain has {len(levels)} levels; at most "
                f"{MAX_ESCALATION_LEVELS}: a decision nobody takes in that many rounds "
                "should end in block"
            )
        roles = [level.role for level in levels]
        for i, role in enumerate(roles):
            if role in roles[:i]:
                raise ValueError(
                    f"the escalation chain loops: role {role!r} comes back at level {i + 1} "
                    f"({' -> '.join(roles)}); each level must hand over to a new role"
                )
        if levels[-1].on_expiry == Decision.deploy and max(lv.approvers for lv in levels) > 1:
            # Four eyes that lapse into deploy ship with no eyes at all: refuse the combination.
            raise ValueError(
                "a chain that needs more than one approver must not end in on_expiry: deploy "
                "(an expired SLA would ship it with no approval at all); end it in block"
            )
        return self

    def levels(self) -> Iterator[Escalation]:
        """This level and every level it can escalate to, in order."""
        level: Escalation | None = self
        while level is not None:
            yield level
            level = level.then

    def final_expiry(self) -> Decision:
        """What happens when the last level's SLA runs out: block or deploy."""
        return list(self.levels())[-1].on_expiry

    def with_min_approvers(self, n: int) -> Escalation:
        """A copy in which every level needs at least n distinct approvers."""
        then = self.then.with_min_approvers(n) if self.then is not None else None
        return self.model_copy(update={"approvers": max(self.approvers, n), "then": then})

    def describe(self) -> str:
        """compliance (24h, 1 approver) -> legal (48h, 2 approvers) -> block"""
        parts = []
        for lv in self.levels():
            hours = lv.sla_seconds / 3600
            sla = f"{hours:g}h" if hours >= 1 else f"{lv.sla_seconds:g}s"
            who = "approver" if lv.approvers == 1 else "approvers"
            parts.append(f"{lv.role} ({sla}, {lv.approvers} {who})")
        return " -> ".join([*parts, self.final_expiry().value])


# Deeper chains are a modelling mistake (or a YAML alias loop), not an organisation chart.
MAX_ESCALATION_LEVELS = 5


PromptRule = Literal[
    "sexual_explicit",
    "sexual_suggestive",
    "minors",
    "real_people",
    "named_person",
    "protected_targeting",
    "skip_safeguards",
    "hate_symbols",
    "famous_works",
    "code_fragment",
    "injection",
    "exfiltration",
    "hidden_text",
]
PROMPT_RULES: tuple[PromptRule, ...] = get_args(PromptRule)


def _default_prompt_actions() -> dict[PromptRule, Literal["block", "escalate"]]:
    return {
        "sexual_explicit": "block",
        "sexual_suggestive": "escalate",
        "minors": "block",
        "real_people": "block",
        "named_person": "escalate",
        "protected_targeting": "escalate",
        "skip_safeguards": "block",
        "hate_symbols": "block",
        "famous_works": "escalate",
        "code_fragment": "escalate",
        "injection": "escalate",
        "exfiltration": "block",
        "hidden_text": "escalate",
    }


# A playbook's patterns are matched against every brief and prompt: bounded in count and size
# so a playbook stays a small payload and a pattern a readable rule, not a program.
MAX_PATTERNS_PER_RULE = 50
PlaybookPattern = Annotated[str, Field(min_length=1, max_length=500)]
PlaybookPatterns = Annotated[list[PlaybookPattern], Field(max_length=MAX_PATTERNS_PER_RULE)]


class PromptFilterRules(Model):
    """The brief/prompt text filter (guardrails/prompt_filter.py). A rule can be softened to
    escalate but never switched off: a playbook must not be able to let minors through."""

    actions: dict[PromptRule, Literal["block", "escalate"]] = Field(
        default_factory=_default_prompt_actions,
        description="what a match of each rule leads to; rules left out keep their default",
    )
    real_people: list[Annotated[Line, Field(max_length=128)]] = Field(
        default_factory=list,
        max_length=1000,
        description="more names of real people to block, beside built-ins",
    )
    extra_patterns: dict[PromptRule, PlaybookPatterns] = Field(
        default_factory=dict,
        max_length=len(PROMPT_RULES),
        description="more regular expressions per rule (case-insensitive; RE2 syntax: no "
        "backreferences or lookaround, \\w and \\b are ASCII, the text is matched after "
        "accents are folded)",
    )

    @field_validator("actions")
    @classmethod
    def _complete(
        cls, v: dict[PromptRule, Literal["block", "escalate"]]
    ) -> dict[PromptRule, Literal["block", "escalate"]]:
        return {**_default_prompt_actions(), **v}

    @field_validator("extra_patterns")
    @classmethod
    def _compiles(cls, v: dict[PromptRule, list[str]]) -> dict[PromptRule, list[str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for rule, patterns in v.items():
            for i, pattern in enumerate(patterns):
                try:
                    playbook_regex(pattern)
                except ValueError as exc:
                    problems.append(((rule, i), f"{pattern!r} is not a valid regex: {exc}"))
        if problems:
            raise _pydantic_errors(problems)
        return v


def playbook_regex(pattern: str) -> Any:
    """A playbook pattern compiled by RE2, as the prompt filter matches it.

    Playbooks are user input and Python's `re` backtracks: `(a+)+$` against a long brief
    runs for hours. RE2 matches in time linear in the text, and what it cannot match that
    way (backreferences, lookaround) it refuses to compile, so the playbook is refused with
    the reason instead of hanging a worker. Raises ValueError with RE2's reason.
    """
    options = re2.Options()
    options.case_sensitive = False
    options.dot_nl = True
    options.log_errors = False  # the reason reaches the person through the ValueError
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(
            f"{reason} (patterns use RE2 syntax: no backreferences or lookaround)"
        ) from None


# --------------------------------------------------------------------------- rules
#
# A rule is `when` (a condition: every matcher given must hold, absent ones match anything)
# and `then` (one or more actions). The matchers and actions are a small closed set, each a
# pydantic model: a playbook is data, never code, so no rule can run anything.

RuleId = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$",
        description="unique id, lower case: letters, digits, _ . - (e.g. kug-22-persona-de)",
    ),
]


def _pydantic_errors(errors: list[tuple[tuple[str | int, ...], str]]) -> ValidationError:
    """Several errors, each at its own path below the field being validated.

    Raised inside a validator, pydantic prefixes each path with the field's own location, so
    a playbook author reads `rules.2.when.params.skin_tones`, not just `rules.2.when.params`.
    """
    return ValidationError.from_exception_data(
        "Playbook",
        [
            InitErrorDetails(
                type=PydanticCustomError("playbook", msg.replace("{", "{{").replace("}", "}}")),
                loc=loc,
                input=None,
            )
            for loc, msg in errors
        ],
    )


class GuardrailMatch(Model):
    """A guardrail check's verdict and/or score. Scores are the check's own: quality the best
    face detection score, safety the worst NudeNet hit, identity the highest similarity to an
    enrolled real person, bias 1.0 when every target is met and lower per missed target."""

    check: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="check name: quality, safety, identity, bias or an installed plugin's",
    )
    verdict: list[Verdict] | None = Field(
        default=None, min_length=1, description="matches when the check's verdict is one of these"
    )
    score_gte: float | None = Field(default=None, ge=0, le=1, description="score at or above")
    score_lte: float | None = Field(default=None, ge=0, le=1, description="score at or below")

    @model_validator(mode="after")
    def _says_something(self) -> GuardrailMatch:
        if self.verdict is None and self.score_gte is None and self.score_lte is None:
            raise ValueError(f"give verdict, score_gte or score_lte for check {self.check!r}")
        if (
            self.score_gte is not None
            and self.score_lte is not None
            and self.score_gte > self.score_lte
        ):
            raise ValueError(
                f"score_gte ({self.score_gte}) > score_lte ({self.score_lte}) never matches"
            )
        return self

    def matches(self, report: GuardrailReport) -> bool:
        for c in report.checks:
            if c.name != self.check:
                continue
            if self.verdict is not None and c.verdict not in self.verdict:
                continue
            if self.score_gte is not None and c.score < self.score_gte:
                continue
            if self.score_lte is not None and c.score > self.score_lte:
                continue
            return True
        return False


def _or_shorthand(schema: dict[str, Any]) -> None:
    """JSON Schema of ParamMatch: the object, or the value / list shorthand it accepts."""
    obj = dict(schema)
    schema.clear()
    schema["description"] = obj.pop("description", "")
    schema["anyOf"] = [
        {"type": ["string", "integer"]},
        {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 1},
        obj,
    ]


def _one_or_list(schema: dict[str, Any]) -> None:
    """JSON Schema of Condition.guardrail: one matcher or a list of them."""
    items = schema.get("items")
    array = {k: v for k, v in schema.items() if k not in ("description", "title", "default")}
    for k in list(array):
        schema.pop(k)
    schema["anyOf"] = [items, array]


class ParamMatch(Model):
    """One face parameter: a value (`smile`), a list (`[18-24, 25-34]`) or bounds
    (`{gte: 7}`); bounds only for numeric parameters (skin_tone)."""

    model_config = ConfigDict(
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        json_schema_extra=_or_shorthand,
    )

    eq: str | int | None = Field(default=None, description="equal to this value")
    in_: list[str | int] | None = Field(
        default=None, alias="in", min_length=1, description="one of these values"
    )
    gte: int | None = Field(default=None, description="at or above (numeric parameters)")
    lte: int | None = Field(default=None, description="at or below (numeric parameters)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"in": data}
        if isinstance(data, str | int) and not isinstance(data, bool):
            return {"eq": data}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> ParamMatch:
        given = [k for k in ("eq", "in_", "gte", "lte") if getattr(self, k) is not None]
        if not given:
            raise ValueError("give a value, a list of values, or gte/lte")
        if self.eq is not None and self.in_ is not None:
            raise ValueError("give either a value (eq) or a list (in), not both")
        return self

    def matches(self, value: str | int) -> bool:
        if self.eq is not None and value != self.eq:
            return False
        if self.in_ is not None and value not in self.in_:
            return False
        if self.gte is not None and (not isinstance(value, int) or value < self.gte):
            return False
        return self.lte is None or (isinstance(value, int) and value <= self.lte)


PARAM_NAMES: tuple[str, ...] = tuple(FaceParams.model_fields)


def _check_param(name: str, m: ParamMatch) -> list[tuple[tuple[str | int, ...], str]]:
    """Values a FaceParams field can take; numeric bounds only where the field is numeric."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if name in CATEGORICAL_FIELDS:
        allowed: tuple[str | int, ...] = CATEGORICAL_FIELDS[name]
        for key in ("gte", "lte"):
            if getattr(m, key) is not None:
                problems.append(
                    ((name, key), f"{name!r} is categorical: give a value or a list, not {key}")
                )
    else:  # skin_tone, the Monk scale
        allowed = tuple(range(1, 11))
        for key in ("gte", "lte"):
            bound = getattr(m, key)
            if bound is not None and not 1 <= bound <= 10:
                problems.append(((name, key), f"{bound} is outside the Monk scale 1-10"))
    values: list[tuple[tuple[str | int, ...], str | int]] = []
    if m.eq is not None:
        values.append(((name, "eq"), m.eq))
    for i, v in enumerate(m.in_ or []):
        values.append(((name, "in", i), v))
    shown = ", ".join(str(a) for a in allowed)
    for loc, v in values:
        if v not in allowed:
            problems.append((loc, f"{v!r} is not a valid {name}; allowed: {shown}"))
    return problems


class Condition(Model):
    """When a rule applies: every matcher given must hold; an empty condition always holds."""

    guardrail: list[GuardrailMatch] = Field(
        default_factory=list,
        description="guardrail checks that must all match (one mapping or a list)",
        json_schema_extra=_one_or_list,
    )
    markets_any: list[IsoMarket] | None = Field(
        default=None, min_length=1, description="the campaign runs in at least one of these"
    )
    channels_any: list[Channel] | None = Field(
        default=None,
        min_length=1,
        description="the brief names, or the campaign's connector is, one of these channels",
    )
    params: dict[str, ParamMatch] | None = Field(
        default=None, description="FaceParams field -> value, list of values, or gte/lte bounds"
    )
    persona: bool | None = Field(
        default=None, description="true: the brief uses a consented persona; false: it does not"
    )
    spend_gte: float | None = Field(
        default=None,
        ge=0,
        description="the brief's budget at or above this; briefs carry no money field, so "
        "spend is counted in impressions (Brief.budget_impressions)",
    )

    @field_validator("guardrail", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @field_validator("params")
    @classmethod
    def _known_params(cls, v: dict[str, ParamMatch] | None) -> dict[str, ParamMatch] | None:
        if not v:
            return v
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name, m in v.items():
            if name not in PARAM_NAMES:
                close = difflib.get_close_matches(name, PARAM_NAMES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    ((name,), f"unknown parameter {name!r}{hint}; known: {', '.join(PARAM_NAMES)}")
                )
                continue
            problems += _check_param(name, m)
        if problems:
            raise _pydantic_errors(problems)
        return v


class BlockAction(Model):
    reason: Text = Field(min_length=1, max_length=500, description="why it must not ship")


class RequireDisclosure(Model):
    """The label shown with the ad. The planner and sign stage attach it (ad copy, C2PA)."""

    text: Text | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="text for every campaign market without its own entry in `texts`",
    )
    texts: dict[IsoMarket, Annotated[Text, Field(max_length=200)]] = Field(
        default_factory=dict, description="market -> text in the market's language"
    )

    @model_validator(mode="after")
    def _has_text(self) -> RequireDisclosure:
        if self.text is None and not self.texts:
            raise ValueError("give `text` (all markets) and/or `texts` (per market)")
        empty = [m for m, t in self.texts.items() if not t.strip()]
        if empty:
            raise ValueError(f"empty disclosure text for {', '.join(empty)}")
        return self

    def for_market(self, market: str) -> str | None:
        return self.texts.get(market, self.text)


class RequireConsent(Model):
    """A valid, unexpired consent record of the persona's person must exist; its scope and
    markets must cover the campaign. The workflow checks the record (consent registry)."""

    reason: Text = Field(default="", max_length=500, description="the law or policy behind it")
    scope: Label = Field(default="ads", description="purpose the consent must name")
    cover_markets: bool = Field(
        default=True, description="the record's markets must include every campaign market"
    )


class Action(Model):
    """What a matching rule does; several actions may be combined, except block."""

    block: BlockAction | None = Field(default=None, description="the variant does not ship")
    escalate: Escalation | None = Field(
        default=None, description="a person decides: role, SLA, approvers, what expiry does"
    )
    require_disclosure: RequireDisclosure | None = None
    require_consent: RequireConsent | None = None
    require_approvers: int | None = Field(
        default=None,
        ge=1,
        le=5,
        description="distinct approvers anything shipping under this rule needs (2: four eyes)",
    )

    @model_validator(mode="after")
    def _sensible(self) -> Action:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if not given:
            raise ValueError(
                "give at least one action: block, escalate, require_disclosure, "
                "require_consent, require_approvers"
            )
        if self.block is not None and len(given) > 1:
            others = ", ".join(g for g in given if g != "block")
            raise ValueError(f"block cannot be combined with {others}: nothing blocked ships")
        return self

    def approvers(self) -> int:
        """The approvers this action asks for (0: no human approval asked)."""
        n = self.require_approvers or 0
        return max(n, self.escalate.approvers) if self.escalate is not None else n


class Rule(Model):
    id: RuleId
    description: Text = Field(min_length=1, max_length=500, description="why the rule exists")
    when: Condition = Field(default_factory=Condition)
    then: Action


# --------------------------------------------------------------------------- rollback

RollbackMetric = Literal["ctr", "cvr", "complaint_rate", "negative_feedback_rate", "safety_flag"]
# Rates lie in [0, 1]; safety_flag counts flags, so its threshold is a count.
RATE_METRICS: frozenset[str] = frozenset({"ctr", "cvr", "complaint_rate", "negative_feedback_rate"})


class RollbackCriterion(Model):
    """A KPI or safety signal that pauses a live ad, judged per ad over what it delivered."""

    id: RuleId
    description: Text = Field(default="", max_length=500)
    metric: RollbackMetric = Field(
        description="ctr: clicks/impressions; cvr: conversions/clicks; complaint_rate and "
        "negative_feedback_rate: per impression; safety_flag: count of flags"
    )
    op: Literal["lt", "gt"] = Field(description="fires when the metric is below (lt) / above (gt)")
    threshold: float = Field(ge=0)
    min_impressions: int = Field(
        default=1000, ge=0, description="judge an ad only once it has this many impressions"
    )
    action: Literal["pause"] = "pause"
    notify_role: Role = "compliance"

    @model_validator(mode="after")
    def _threshold_fits(self) -> RollbackCriterion:
        if self.metric in RATE_METRICS and self.threshold > 1:
            raise ValueError(f"{self.metric} is a rate in [0, 1]; threshold {self.threshold}")
        if self.op == "lt" and self.threshold == 0:
            raise ValueError("op lt with threshold 0 never fires: no metric is below 0")
        return self


class GenerationPolicy(Model):
    """Which production paths a campaign under this playbook may pick (docs/generators.md,
    "Choosing the production path"); unset lists allow anything the GPU workers can load."""

    backends: list[Annotated[Line, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=20, description="allowed generator backends, e.g. [diffusers]"
    )
    models: list[Annotated[Line, Field(min_length=1, max_length=1000)]] | None = Field(
        default=None,
        max_length=50,
        description="allowed diffusers models (local folders or hub ids, as the brief writes "
        "them); backends with shipped weights have no model and are not affected",
    )

    def problems(self, backend: str | None, model: str | None) -> list[str]:
        """'field: what; fix' lines for a resolved production path; empty: allowed."""
        out = []
        if self.backends is not None and backend not in self.backends:
            out.append(
                f"backend: {backend!r} is not allowed by the playbook (generation.backends: "
                f"{', '.join(self.backends)}); pick one of them or use another playbook"
            )
        if self.models is not None and model is not None and model not in self.models:
            out.append(
                f"model: {model!r} is not allowed by the playbook (generation.models: "
                f"{', '.join(self.models)}); pick one of them or use another playbook"
            )
        return out


class Playbook(Model):
    name: Line = Field(min_length=1, max_length=128)
    version: Line = Field(default="1", min_length=1, max_length=32)
    quality: QualityThresholds = Field(default_factory=QualityThresholds)
    safety: SafetyThresholds = Field(default_factory=SafetyThresholds)
    identity: IdentityThresholds = Field(default_factory=IdentityThresholds)
    bias: BiasTargets = Field(default_factory=BiasTargets)
    watermark: WatermarkSettings = Field(default_factory=WatermarkSettings)
    fidelity: FidelitySettings = Field(default_factory=FidelitySettings)
    escalation: Escalation = Field(default_factory=Escalation)
    on_escalate: Decision = Field(
        default=Decision.escalate,
        description="what a guardrail 'escalate' verdict becomes: escalate (to a human) or block",
    )
    prompt_filter: PromptFilterRules = Field(default_factory=PromptFilterRules)
    rules: list[Rule] = Field(
        default_factory=list,
        max_length=200,
        description="checked in order on every variant; every matching rule applies",
    )
    rollback: list[RollbackCriterion] = Field(
        default_factory=list, max_length=50, description="signals that pause live ads"
    )
    generation: GenerationPolicy = Field(
        default_factory=GenerationPolicy,
        description="the production paths (backends, models) campaigns may pick",
    )

    @field_validator("rules", "rollback")
    @classmethod
    def _unique_ids(
        cls, v: list[Rule] | list[RollbackCriterion]
    ) -> list[Rule] | list[RollbackCriterion]:
        problems = duplicate_ids([item.id for item in v])
        if problems:
            raise _pydantic_errors(problems)
        return v

    @model_validator(mode="after")
    def _fits_in_a_payload(self) -> Playbook:
        size = len(self.model_dump_json().encode())
        if size > MAX_PLAYBOOK_BYTES:
            raise ValueError(
                f"the playbook is {size:,} bytes as JSON, over the {MAX_PLAYBOOK_BYTES:,} byte "
                "limit (it travels with every campaign): shorten texts or merge rules"
            )
        return self

    @model_validator(mode="after")
    def _approvals_never_lapse_into_deploy(self) -> Playbook:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, rule in enumerate(self.rules):
            chain = rule.then.escalate or self.escalation
            need = rule.then.approvers()
            if need > 1 and chain.final_expiry() == Decision.deploy:
                whose = "its own" if rule.then.escalate else "the playbook's"
                problems.append(
                    (
                        ("rules", i, "then"),
                        f"rule {rule.id!r} needs {need} approvers but {whose} escalation chain "
                        "ends in on_expiry: deploy, so an expired SLA would ship it unapproved; "
                        "end the chain in block",
                    )
                )
        if problems:
            raise _pydantic_errors(problems)
        return self

    def rule(self, report: GuardrailReport, ctx: RuleContext | None) -> Ruling:
        """The ruling for one variant: guardrail verdicts and every matching rule.

        Precedence: block > escalate > deploy. ctx None evaluates the guardrail verdicts only
        (no rule can be judged without knowing the campaign).
        """
        from faceloop.playbooks.rules import evaluate

        return evaluate(self, report, ctx)

    def decide(
        self, report: GuardrailReport, ctx: RuleContext | None = None
    ) -> tuple[Decision, str]:
        """The decision for one variant and the reason a person can read (see `rule`)."""
        ruling = self.rule(report, ctx)
        return ruling.decision, ruling.reason

    def disclosures(self, ctx: RuleContext) -> dict[str, str]:
        """Market -> disclosure text from the rules that do not read guardrail verdicts: what
        the planner can attach before any image exists."""
        from faceloop.playbooks.rules import evaluate

        return evaluate(self, GuardrailReport(asset_id="", checks=[]), ctx).disclosures

    def rollback_hits(self, kpis: list[RollbackKpis]) -> list[RollbackHit]:
        """Every (ad, criterion) pair whose criterion fires, in input then playbook order."""
        from faceloop.playbooks.rollback import rollback_hits

        return rollback_hits(self.rollback, kpis)


def duplicate_ids(ids: list[Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """(path, message) for every id that repeats an earlier one."""
    first: dict[str, int] = {}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, rid in enumerate(ids):
        if not isinstance(rid, str):
            continue
        if rid in first:
            problems.append(((i, "id"), f"duplicate id {rid!r} (first used at index {first[rid]})"))
        else:
            first[rid] = i
    return problems


# --------------------------------------------------------------------------- loading

SHIPPED_SUFFIX = ".yaml"


def shipped_playbooks() -> dict[str, str]:
    """Name -> first comment line (what it is for), for every playbook shipped in the package."""
    out: dict[str, str] = {}
    for entry in sorted(resources.files("faceloop.playbooks").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(SHIPPED_SUFFIX) and entry.is_file():
            first = entry.read_text(encoding="utf-8").splitlines()[:1]
            about = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
            out[entry.name.removesuffix(SHIPPED_SUFFIX)] = about
    return out


def read_playbook_source(source: Path | str | None) -> tuple[Any, str]:
    """(parsed document, name for messages) for a file path or a shipped playbook's name.

    An existing file wins over a shipped name, so `./eu` would be read as a file. None is the
    shipped default.
    """
    if source is None:
        source = "default"
    path = Path(source)
    if path.is_file():
        return read_document(path), str(path)
    text = str(source)
    res = resources.files("faceloop.playbooks").joinpath(text + SHIPPED_SUFFIX)
    if not path.suffix and len(path.parts) == 1 and res.is_file():
        name = f"playbooks/{text}{SHIPPED_SUFFIX}"
        return parse_yaml(res.read_text(encoding="utf-8"), name), name
    if path.suffix or len(path.parts) > 1:
        raise InputError(text, ["file not found: check the path"])
    raise InputError(
        text,
        [
            f"not a file and not a shipped playbook; shipped: "
            f"{', '.join(shipped_playbooks())} (or give a path)"
        ],
    )


def playbook_problems(data: Any) -> tuple[Playbook | None, list[tuple[str, str]]]:
    """The playbook, or every problem with it as (path, message), all in one pass."""
    if not isinstance(data, dict):
        return None, [
            ("(root)", f"expected a mapping of playbook fields, got {type(data).__name__}")
        ]
    try:
        return Playbook.model_validate(data), []
    except ValidationError as err:
        problems = [_problem(e) for e in err.errors()]
    # Duplicate rule ids are judged once every rule is valid; report them now as well, so one
    # run shows every error (the same check, run over the raw list).
    for field in ("rules", "rollback"):
        raw = data.get(field)
        if isinstance(raw, list):
            ids = [item.get("id") if isinstance(item, dict) else None for item in raw]
            for loc, msg in duplicate_ids(ids):
                entry = (".".join(str(p) for p in (field, *loc)), msg)
                if entry not in problems:
                    problems.append(entry)
    return None, problems


def _problem(e: Any) -> tuple[str, str]:
    # a bad dict key (texts.EL) is reported by pydantic at texts.EL.[key]: the key is the path
    path = ".".join(str(p) for p in e["loc"] if p != "[key]") or "(root)"
    msg = str(e["msg"]).removeprefix("Value error, ")
    if e["type"] == "string_pattern_mismatch" and e["loc"][-1:] == ("id",):
        msg = (
            f"{e['input']!r} is not a valid id: lower case letters, digits, _ . - "
            "(at most 64, e.g. kug-22-persona-de)"
        )
    elif e["type"] == "recursion_loop":
        msg = "refers back to itself (a YAML alias loop): write each escalation level out"
    elif e["type"] == "extra_forbidden":
        msg = "unknown field: remove it or check its spelling"
    return path, msg


def load_playbook(source: Path | str | None = None) -> Playbook:
    """Load and validate a playbook file or shipped playbook (`default`, `eu`); None loads
    the default. Every problem is reported at once, with its path; nothing is half-applied."""
    data, name = read_playbook_source(source)
    playbook, problems = playbook_problems(data)
    if playbook is None:
        raise InputError(name, [f"{path}: {msg}" for path, msg in problems])
    return playbook


def revalidated(playbook: Playbook) -> Playbook:
    """The playbook validated again from its data: models are mutable and assignments are not
    validated, so code that edits a loaded playbook calls this before using it."""
    pb, problems = playbook_problems(playbook.model_dump(mode="json"))
    if pb is None:
        raise InputError(
            f"playbook {playbook.name!r}", [f"{path}: {msg}" for path, msg in problems]
        )
    return pb
