from __future__ import annotations

from pathlib import Path

import pytest

from faceloop.errors import InputError
from faceloop.models import CheckResult, Decision, GuardrailReport, Verdict
from faceloop.playbooks import load_playbook


def _report(*verdicts: Verdict) -> GuardrailReport:
    return GuardrailReport(
        asset_id="a",
        checks=[
            CheckResult(name=f"c{i}", verdict=v, score=0.5, evidence={"reason": f"r{i}"})
            for i, v in enumerate(verdicts)
        ],
    )


def test_default_playbook_decisions() -> None:
    pb = load_playbook()
    assert pb.decide(_report(Verdict.passed))[0] == Decision.deploy
    d, why = pb.decide(_report(Verdict.passed, Verdict.block))
    assert d == Decision.block and "c1 blocked: r1" in why
    assert pb.decide(_report(Verdict.escalate))[0] == Decision.escalate


def test_bad_playbook_names_paths(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "name: x\nquality: {min_face_score: 3, colour: red}\nescalation: {sla_seconds: 0}\n"
    )
    with pytest.raises(InputError) as exc:
        load_playbook(f)
    for path in ["quality.min_face_score", "quality.colour", "escalation.sla_seconds"]:
        assert path in str(exc.value)
