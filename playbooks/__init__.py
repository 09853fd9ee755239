"""Governance playbooks (YAML) and their schema, rule evaluation and rollback criteria."""

from faceloop.playbooks.rollback import RollbackHit, RollbackKpis
from faceloop.playbooks.rules import ConsentRequirement, RuleContext, Ruling
from faceloop.playbooks.schema import (
    Action,
    Condition,
    Escalation,
    Playbook,
    QualityThresholds,
    RollbackCriterion,
    Rule,
    load_playbook,
    shipped_playbooks,
)

__all__ = [
    "Action",
    "Condition",
    "ConsentRequirement",
    "Escalation",
    "Playbook",
    "QualityThresholds",
    "RollbackCriterion",
    "RollbackHit",
    "RollbackKpis",
    "Rule",
    "RuleContext",
    "Ruling",
    "load_playbook",
    "shipped_playbooks",
]
