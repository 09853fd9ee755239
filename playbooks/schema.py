"""Governance playbooks: YAML validated by pydantic; a bad playbook is rejected with paths.

This is the first cut used by the loop: guardrail thresholds and what each guardrail verdict
leads to. Rules over markets, channels, spend and approvals build on it.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator

from faceloop.briefs import parse_model, read_document
from faceloop.models import Decision, GuardrailReport, Model, Verdict


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
    block_labels: list[str] = Field(
        default_factory=lambda: [
            "FEMALE_GENITALIA_EXPOSED",
            "MALE_GENITALIA_EXPOSED",
            "FEMALE_BREAST_EXPOSED",
            "BUTTOCKS_EXPOSED",
            "ANUS_EXPOSED",
        ]
    )
    escalate_labels: list[str] = Field(
        default_factory=lambda: ["MALE_BREAST_EXPOSED", "BELLY_EXPOSED", "FEMALE_GENITALIA_COVERED"]
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
    skin_tone_min_share: dict[str, float] = Field(
        default_factory=dict, description="ITA group -> minimum share of measured faces"
    )
    gender_min_share: dict[str, float] = Field(
        default_factory=dict, description="feminine/masculine -> minimum share of measured faces"
    )
    age_band_min_share: dict[str, float] = Field(
        default_factory=dict, description="age band -> minimum share of requested variants"
    )
    on_miss: Verdict = Field(
        default=Verdict.escalate, description="verdict when a target is missed"
    )


class WatermarkSettings(Model):
    method: Literal["dwtDct", "dwtDctSvd", "rivaGan"] = "dwtDctSvd"


class Escalation(Model):
    role: str = Field(default="compliance", min_length=1)
    sla_seconds: float = Field(default=86400.0, gt=0)
    on_expiry: Decision = Field(default=Decision.block, description="block or deploy")


PromptRule = Literal[
    "sexual_explicit",
    "sexual_suggestive",
    "minors",
    "real_people",
    "protected_targeting",
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
        "protected_targeting": "escalate",
        "injection": "escalate",
        "exfiltration": "block",
        "hidden_text": "escalate",
    }


class PromptFilterRules(Model):
    """The brief/prompt text filter (guardrails/prompt_filter.py). A rule can be softened to
    escalate but never switched off: a playbook must not be able to let minors through."""

    actions: dict[PromptRule, Literal["block", "escalate"]] = Field(
        default_factory=_default_prompt_actions,
        description="what a match of each rule leads to; rules left out keep their default",
    )
    real_people: list[str] = Field(
        default_factory=list, description="more names of real people to block, beside built-ins"
    )
    extra_patterns: dict[PromptRule, list[str]] = Field(
        default_factory=dict, description="more regular expressions per rule (case-insensitive)"
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
        for rule, patterns in v.items():
            for i, pattern in enumerate(patterns):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"{rule}[{i}] {pattern!r} is not a valid regex: {exc}"
                    ) from exc
        return v


class Playbook(Model):
    name: str = Field(min_length=1)
    version: str = "1"
    quality: QualityThresholds = Field(default_factory=QualityThresholds)
    safety: SafetyThresholds = Field(default_factory=SafetyThresholds)
    identity: IdentityThresholds = Field(default_factory=IdentityThresholds)
    bias: BiasTargets = Field(default_factory=BiasTargets)
    watermark: WatermarkSettings = Field(default_factory=WatermarkSettings)
    escalation: Escalation = Field(default_factory=Escalation)
    on_escalate: Decision = Field(
        default=Decision.escalate,
        description="what a guardrail 'escalate' verdict becomes: escalate (to a human) or block",
    )
    prompt_filter: PromptFilterRules = Field(default_factory=PromptFilterRules)

    def decide(self, report: GuardrailReport) -> tuple[Decision, str]:
        """The decision for one variant and the reason a person can read."""
        blocked = [c for c in report.checks if c.verdict == Verdict.block]
        if blocked:
            return Decision.block, "; ".join(
                f"{c.name} blocked: {c.evidence.get('reason', f'score {c.score:.2f}')}"
                for c in blocked
            )
        flagged = [c for c in report.checks if c.verdict == Verdict.escalate]
        if flagged:
            why = "; ".join(
                f"{c.name} flagged: {c.evidence.get('reason', f'score {c.score:.2f}')}"
                for c in flagged
            )
            return self.on_escalate, why
        return Decision.deploy, "all checks passed"


def load_playbook(path: Path | None = None) -> Playbook:
    """Load and validate a playbook file; None loads the shipped default."""
    if path is None:
        text = resources.files("faceloop.playbooks").joinpath("default.yaml").read_text()
        import yaml

        return parse_model(Playbook, yaml.safe_load(text), "playbooks/default.yaml")
    return parse_model(Playbook, read_document(path), str(path))
