"""Every user document (brief, playbook, scenario, consent record, --params) is parsed by one
strict reader: a key given twice is an error with its line, and a file that is missing, a
directory or not UTF-8 is a one-line error, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceloop.briefs import load_brief, parse_face_params, read_document
from faceloop.cli import app
from faceloop.connectors.sandbox_platform.scenario import load_scenario
from faceloop.errors import InputError
from faceloop.examples import example_path
from faceloop.playbooks.schema import load_playbook

DUP_YAML = """product: Lumen
message: hello
markets: [DE]
markets: [US]
"""


def test_duplicate_yaml_key_is_refused_with_its_lines(tmp_path: Path) -> None:
    f = tmp_path / "brief.yaml"
    f.write_text(DUP_YAML)
    with pytest.raises(InputError, match=r"duplicate key 'markets' \(first at line 3\)"):
        read_document(f)


def test_duplicate_nested_yaml_key_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "brief.yaml"
    f.write_text("campaign:\n  rounds: 2\n  rounds: 9\n")
    with pytest.raises(InputError, match="duplicate key 'rounds'"):
        read_document(f)


def test_duplicate_json_key_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "brief.json"
    f.write_text('{"product": "a", "markets": ["DE"], "markets": ["US"]}')
    with pytest.raises(InputError, match="duplicate key 'markets'"):
        load_brief(f)
    with pytest.raises(InputError, match="duplicate key 'age_band'"):
        parse_face_params('{"age_band": "25-34", "age_band": "55-64"}')


def test_the_same_key_in_sibling_mappings_is_fine(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("audience:\n  - {name: a, share: 0.5}\n  - {name: b, share: 0.5}\n")
    assert read_document(f)["audience"][1]["name"] == "b"


def test_duplicate_keys_in_playbooks_and_scenarios_are_refused(tmp_path: Path) -> None:
    shipped = example_path("scenarios", "smooth.yaml").read_text()
    scenario = tmp_path / "scenario.yaml"
    assert "\nname:" in shipped
    scenario.write_text(shipped + "\nname: twice\n")
    with pytest.raises(InputError, match="duplicate key"):
        load_scenario(scenario)
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("name: x\nversion: '1'\nname: y\n")
    with pytest.raises(InputError, match="duplicate key 'name'"):
        load_playbook(playbook)


def test_non_utf8_and_directories_are_one_line_errors(tmp_path: Path) -> None:
    latin = tmp_path / "brief.yaml"
    latin.write_bytes("product: Gr\xfc\xdfe\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_document(latin)
    with pytest.raises(InputError, match="is a directory"):
        read_document(tmp_path)
    runner = CliRunner()
    for arg in (str(latin), str(tmp_path)):
        res = runner.invoke(app, ["plan", arg, "--json"])
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.output
        res = runner.invoke(app, ["playbook", "check", arg])
        assert res.exit_code != 0 and "Traceback" not in res.output, res.output
