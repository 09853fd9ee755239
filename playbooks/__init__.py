"""Governance playbooks (YAML) and their schema."""

from faceloop.playbooks.schema import Escalation, Playbook, QualityThresholds, load_playbook

__all__ = ["Escalation", "Playbook", "QualityThresholds", "load_playbook"]
