from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from faceloop.briefs import load_brief_and_config, parse_face_params
from faceloop.errors import InputError
from faceloop.models import Brief, FaceParams, SearchSpace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE = {
    "product": "Lumen",
    "message": "Sun care",
    "audience": [{"name": "all"}],
    "markets": ["DE"],
    "budget_impressions": 1000,
}


@pytest.mark.parametrize("name", ["brief.yaml", "brief_fintech.json", "brief_fitness.yaml"])
def test_example_briefs_load(name: str) -> None:
    brief, config = load_brief_and_config(EXAMPLES / name)
    assert brief.product
    assert config.rounds >= 1
    assert config.incumbents < config.variants_per_round


def test_bad_brief_reports_every_field_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        """
product: ""
message: "ok"
audience:
  - name: "Not Valid!"
    share: 0.5
markets: [germany]
budget_impressions: -5
kpi_goal: likes
search_space:
  skin_tone: {low: 8, high: 3}
  expression: []
campaign:
  rounds: 0
  surprise: 1
"""
    )
    with pytest.raises(InputError) as exc:
        load_brief_and_config(bad)
    text = str(exc.value)
    for path in [
        "product",
        "audience.0.name",
        "markets.0",
        "budget_impressions",
        "kpi_goal",
        "search_space.skin_tone",
        "search_space.expression",
        "campaign.rounds",
        "campaign.surprise",
    ]:
        assert f"{path}:" in text, f"{path} missing from:\n{text}"
    assert "nothing was started" in text


def test_unknown_field_is_an_error_not_dropped(tmp_path: Path) -> None:
    f = tmp_path / "b.json"
    f.write_text(
        '{"product": "p", "message": "m", "audience": [{"name": "a"}], "markets": ["DE"],'
        ' "budget_impressions": 10, "budjet": 5}'
    )
    with pytest.raises(InputError, match="budjet"):
        load_brief_and_config(f)


def test_segment_shares_must_sum_to_one(tmp_path: Path) -> None:
    f = tmp_path / "b.yaml"
    f.write_text(
        "product: p\nmessage: m\nmarkets: [DE]\nbudget_impressions: 10\n"
        "audience: [{name: a, share: 0.5}, {name: b, share: 0.2}]\n"
    )
    with pytest.raises(InputError, match=r"sum to 1\.0"):
        load_brief_and_config(f)


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_brief_and_config(tmp_path / "nope.yaml")
    f = tmp_path / "broken.yaml"
    f.write_text("product: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_brief_and_config(f)


def test_face_params_json_defaults_and_errors() -> None:
    p = parse_face_params('{"skin_tone": 8}')
    assert p.skin_tone == 8 and p.expression == FaceParams().expression
    with pytest.raises(InputError, match="skin_tone"):
        parse_face_params('{"skin_tone": 11}')
    with pytest.raises(InputError, match="not valid JSON"):
        parse_face_params("{skin")


def test_search_space_contains() -> None:
    space = SearchSpace(expression=["smile"], skin_tone={"low": 3, "high": 6})  # type: ignore[arg-type]
    assert space.contains(FaceParams(expression="smile", skin_tone=4))
    assert not space.contains(FaceParams(expression="serious", skin_tone=4))
    assert not space.contains(FaceParams(expression="smile", skin_tone=9))


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("product", "Lumen\x00 SPF", "product"),
        ("message", "Hi \x1b[31mred", "message"),
        ("tone", "warm\x7f", "tone"),
        ("submitted_by", "maria\nschmidt", "submitted_by"),
        ("constraints", ["fine", "bad\x85"], "constraints.1"),
    ],
)
def test_control_characters_are_refused_at_the_field(field: str, value: object, named: str) -> None:
    data = {**BASE, field: value}
    with pytest.raises(ValidationError) as err:
        Brief.model_validate(data)
    assert named in {".".join(map(str, e["loc"])) for e in err.value.errors()}
    assert "control character" in str(err.value)


def test_free_text_keeps_tabs_and_line_breaks() -> None:
    brief = Brief.model_validate({**BASE, "message": "line one\nline two\tend"})
    assert brief.message == "line one\nline two\tend"


def test_a_brief_at_every_limit_stays_far_below_temporals_payload_warning() -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter

    big = {
        **BASE,
        "product": "p" * 200,
        "message": "m" * 1000,
        "tone": "t" * 200,
        "audience": [{"name": f"s{i}", "description": "d" * 500, "share": 0.05} for i in range(20)],
        "markets": ["DE"] * 250,
        "constraints": ["c" * 500] * 50,
        "submitted_by": "u" * 128,
    }
    brief = Brief.model_validate(big)
    payloads = pydantic_data_converter.payload_converter.to_payloads([brief])
    assert sum(len(p.data) for p in payloads) < 200_000  # Temporal warns at 2 MB
    with pytest.raises(ValidationError, match=r"constraints\.0"):
        Brief.model_validate({**big, "constraints": ["c" * 501]})
    with pytest.raises(ValidationError, match="markets"):
        Brief.model_validate({**big, "markets": ["DE"] * 251})
