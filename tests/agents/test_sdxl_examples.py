"""docs/agents.md's SDXL examples are what the planner writes today, so the docs cannot drift."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import instant_clip_tokenizer
import pytest
from typer.testing import CliRunner

from faceloop.agents.planner import Planner
from faceloop.briefs import load_brief
from faceloop.cli import app
from faceloop.examples import example_path
from faceloop.models import Brief, FaceParams

DOC = Path(__file__).resolve().parents[2] / "docs" / "agents.md"
SECTION = "## Deterministic prompts for SDXL"


def doc_examples() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"{DOC} lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", section, re.DOTALL)]


EXAMPLES = doc_examples()


def test_the_docs_show_four_to_six_varied_examples() -> None:
    assert 4 <= len(EXAMPLES) <= 6
    for field in ("age_band", "expression", "skin_tone", "lighting", "background", "style"):
        assert len({e["params"][field] for e in EXAMPLES}) >= 3, field
    assert len({e["disclosure"] for e in EXAMPLES}) >= 4


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e["params"]["age_band"])
def test_a_docs_example_is_what_the_planner_writes(example: dict[str, Any]) -> None:
    base = load_brief(example_path("brief.yaml"))
    brief = Brief.model_validate({**base.model_dump(), **example["brief"]})
    params = FaceParams.model_validate(example["params"])
    assert params.model_dump() == example["params"], "list every FaceParams field in the docs"
    result = Planner().plan(brief, [("v1", params)])
    assert result.status == "planned", result.reason
    (v,) = result.variants
    assert v.written_by == "deterministic"
    assert v.prompt == example["prompt"]
    assert v.negative_prompt == example["negative_prompt"]
    assert v.disclosure == example["disclosure"]
    tok = instant_clip_tokenizer.Tokenizer()
    assert example["clip_tokens"] == {
        "prompt": len(tok.encode(v.prompt)) + 2,
        "negative_prompt": len(tok.encode(v.negative_prompt)) + 2,
    }


def test_the_documented_command_prints_the_first_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACELOOP_LLM_MODEL", raising=False)
    text = DOC.read_text(encoding="utf-8").split(SECTION, 1)[1]
    (params,) = re.findall(r"\$ faceloop plan examples/brief\.yaml --json --params '(.*?)'", text)
    first = EXAMPLES[0]
    assert first["brief"] == {} and json.loads(params) == first["params"]
    res = CliRunner().invoke(
        app, ["plan", str(example_path("brief.yaml")), "--json", "--params", params]
    )
    assert res.exit_code == 0, res.output
    (v,) = json.loads(res.stdout)["variants"]
    assert (v["prompt"], v["disclosure"]) == (first["prompt"], first["disclosure"])
