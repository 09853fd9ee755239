"""Bad input at the boundaries that are not the brief: playbook regexes, review votes,
consent records, playbook and scenario free text, and the payloads they end up in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from faceloop.cli import app
from faceloop.guardrails.prompt_filter import PromptFilter
from faceloop.models import Verdict
from faceloop.playbooks.schema import PromptFilterRules

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FACELOOP_TEMPORAL_ADDRESS", "FACELOOP_DATABASE_URL", "FACELOOP_PLAYBOOK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))


# --------------------------------------------------------------------------- playbook regexes


def test_a_catastrophic_playbook_regex_cannot_hang_the_filter() -> None:
    # Python's re needs ~2**n steps for `(a+)+$` on n a's followed by a non-match; at 50k
    # characters that is forever. RE2 is linear: the whole filter runs well under a second.
    f = PromptFilter(PromptFilterRules(extra_patterns={"injection": [r"(a+)+$"]}))
    text = "a" * 50_000 + "!"
    start = time.perf_counter()
    hits = f.check_text(text, "message")
    assert time.perf_counter() - start < 1.0
    assert "injection" not in {h.rule for h in hits}
    # and it still matches what it should
    assert f.check_prompt("aaaa").verdict == Verdict.escalate


def test_playbook_patterns_match_case_insensitively_across_lines() -> None:
    f = PromptFilter(PromptFilterRules(extra_patterns={"injection": [r"make.me"]}))
    assert f.check_prompt("MAKE\nME a sandwich").verdict == Verdict.escalate


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(sand)wich \1", "invalid escape sequence"),
        (r"(?<!no )sandwich", "invalid perl operator"),
        (r"sandwich(?=s)", "invalid perl operator"),
    ],
)
def test_a_pattern_re2_cannot_run_in_linear_time_is_refused_with_its_path(
    tmp_path: Path, pattern: str, reason: str
) -> None:
    pb = tmp_path / "pb.yaml"
    pb.write_text(
        "name: regex\nprompt_filter:\n  extra_patterns:\n"
        f"    injection: ['ok', '{pattern}']\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["playbook", "check", str(pb)])
    assert result.exit_code == 1, result.output
    assert "prompt_filter.extra_patterns.injection.1:" in result.output
    assert reason in result.output
    assert "Traceback" not in result.output


def test_playbook_patterns_are_bounded() -> None:
    with pytest.raises(ValidationError, match=r"extra_patterns\.injection\.0"):
        PromptFilterRules(extra_patterns={"injection": ["x" * 501]})
    with pytest.raises(ValidationError, match=r"extra_patterns\.injection"):
        PromptFilterRules(extra_patterns={"injection": ["x"] * 51})
    with pytest.raises(ValidationError, match=r"extra_patterns\.injection\.0"):
        PromptFilterRules(extra_patterns={"injection": [""]})
