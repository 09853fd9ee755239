"""`faceloop playbook check`: every error with its path, then what validation cannot see.

Errors (the playbook is refused, by `check` and by every command that loads it): schema
violations, unknown parameters and ISO codes, duplicate rule ids, escalation chains that
loop, run deeper than five levels or lapse from four eyes into deploy. Warnings (it loads,
but a person should look): rules and criteria that can never fire as written here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from faceloop.errors import FaceloopError, InputError
from faceloop.models import Model
from faceloop.playbooks.rollback import MISSING_SIGNALS
from faceloop.playbooks.schema import (
    Playbook,
    playbook_problems,
    read_playbook_source,
)

__all__ = ["PlaybookCheck", "Problem", "check_playbook", "summarise", "warnings_for"]


class Problem(Model):
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PlaybookCheck(Model):
    source: str
    valid: bool
    errors: list[Problem] = Field(default_factory=list)
    warnings: list[Problem] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)


def _known_guardrails() -> set[str] | None:
    try:
        from faceloop.guardrails.registry import guardrail_names

        return set(guardrail_names())
    except (ImportError, FaceloopError):  # a broken plugin must not hide the playbook's errors
        return None


def warnings_for(pb: Playbook) -> list[Problem]:
    """What loads but will not do what its author probably meant."""
    out: list[Problem] = []
    known = _known_guardrails()
    for i, rule in enumerate(pb.rules):
        for j, g in enumerate(rule.when.guardrail):
            if known is not None and g.check not in known:
                out.append(
                    Problem(
                        path=f"rules.{i}.when.guardrail.{j}.check",
                        message=f"no guardrail {g.check!r} is installed here (known: "
                        f"{', '.join(sorted(known))}); the rule fires only where a plugin "
                        "of that name runs",
                    )
                )
        if rule.then.require_consent is not None and rule.when.persona is not True:
            out.append(
                Problem(
                    path=f"rules.{i}.then.require_consent",
                    message="consent binds only campaigns with a persona; add `persona: true` "
                    "to `when` to say so",
                )
            )
    for i, c in enumerate(pb.rollback):
        if c.metric in MISSING_SIGNALS:
            out.append(
                Problem(
                    path=f"rollback.{i}.metric",
                    message=f"{c.metric} needs {MISSING_SIGNALS[c.metric]}, which no connector "
                    "reports yet; this criterion cannot fire until one does",
                )
            )
    return out


def summarise(pb: Playbook) -> dict[str, Any]:
    markets: set[str] = set()
    for rule in pb.rules:
        markets.update(rule.when.markets_any or [])
        if rule.then.require_disclosure is not None:
            markets.update(rule.then.require_disclosure.texts)
    approvers = [pb.escalation.approvers, *(r.then.approvers() for r in pb.rules)]
    return {
        "name": pb.name,
        "version": pb.version,
        "rules": len(pb.rules),
        "rule_ids": [r.id for r in pb.rules],
        "markets": sorted(markets),
        "max_approvers": max(approvers),
        "four_eyes_rules": [r.id for r in pb.rules if r.then.approvers() >= 2],
        "escalation": pb.escalation.describe(),
        "disclosure_markets": sorted(
            {
                m
                for r in pb.rules
                if r.then.require_disclosure
                for m in r.then.require_disclosure.texts
            }
        ),
        "consent_rules": [r.id for r in pb.rules if r.then.require_consent is not None],
        "rollback": [c.id for c in pb.rollback],
    }


def check_playbook(source: Path | str | None) -> PlaybookCheck:
    """Check a playbook file or shipped name: every error, the warnings, and a summary."""
    try:
        data, name = read_playbook_source(source)
    except InputError as exc:
        problems = [
            Problem(path=p.split(": ", 1)[0], message=p.split(": ", 1)[1])
            if p.startswith("(root): ")
            else Problem(path="(file)", message=p)
            for p in exc.problems
        ]
        return PlaybookCheck(source=exc.source, valid=False, errors=problems)
    pb, found = playbook_problems(data)
    if pb is None:
        return PlaybookCheck(
            source=name,
            valid=False,
            errors=[Problem(path=path, message=msg) for path, msg in found],
        )
    return PlaybookCheck(source=name, valid=True, warnings=warnings_for(pb), summary=summarise(pb))
