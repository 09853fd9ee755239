"""Governance playbooks: YAML validated by pydantic; a bad playbook is rejected with paths.

This is the first cut used by the loop: guardrail thresholds and what each guardrail verdict
leads to. Rules over markets, channels, spend and approvals build on it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import Field

from faceloop.briefs import parse_model, read_document
from faceloop.models import Decision, GuardrailReport, Model, Verdict


class QualityThresholds(Model):
    min_face_score: float = Field(default=0.6, ge=0, le=1)
    min_resolution: int = Field(default=256, ge=32)
    max_faces: int = Field(default=1, ge=1)


class Escalation(Model):
    role: str = Field(default="compliance", min_length=1)
    sla_seconds: float = Field(default=86400.0, gt=0)
    on_expiry: Decision = Field(default=Decision.block, description="block or deploy")


class Playbook(Model):
    name: str = Field(min_length=1)
    version: str = "1"
    quality: QualityThresholds = Field(default_factory=QualityThresholds)
    escalation: Escalation = Field(default_factory=Escalation)
    on_escalate: Decision = Field(
        default=Decision.escalate,
        description="what a guardrail 'escalate' verdict becomes: escalate (to a human) or block",
    )

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
