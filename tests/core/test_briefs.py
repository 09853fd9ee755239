from __future__ import annotations

from pathlib import Path

import pytest

from faceloop.briefs import load_brief_and_config, parse_face_params
from faceloop.errors import InputError
from faceloop.models import FaceParams, SearchSpace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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
