"""The wheel maps every top-level folder to faceloop.<name> and ships the data it needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_the_mapped_packages_and_imports(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("faceloop-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in [
        "faceloop/cli/main.py",
        "faceloop/optimization/simulate.py",
        "faceloop/report/build.py",
        # the report page is a Jinja2 file loaded as package data, not a string in the code
        "faceloop/report/templates/report.html.j2",
        # the console's pages and stylesheet are package data too
        "faceloop/console/app.py",
        "faceloop/console/templates/base.html.j2",
        "faceloop/console/static/console.css",
        "faceloop/agents/planner/deterministic.py",
        "faceloop/agents/planner/graph.py",
        "faceloop/agents/analyst/summary.py",
        "faceloop/workflows/campaign.py",
        "faceloop/workflows/worker.py",
        "faceloop/generators/dcgan.py",
        "faceloop/guardrails/quality.py",
        "faceloop/connectors/sandbox_platform/app.py",
        "faceloop/plugins.py",
        "faceloop/testing/connectors.py",
        "faceloop/playbooks/default.yaml",
        "faceloop/examples/brief.yaml",
        "faceloop/examples/scenarios/smooth.yaml",
    ]:
        assert expected in names, expected
    assert not any(n.startswith(("agents/", "workflows/", "tests/")) for n in names)

    # import from the unpacked wheel, not from the editable checkout
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import faceloop.workflows.campaign as c, faceloop.examples as e, faceloop.playbooks as p;"
        "print(c.__file__); print(e.example_path('brief.yaml').exists());"
        "print(p.load_playbook().name);"
        # the agents' subpackages: the planner graph and the analyst
        "import faceloop.agents.planner.graph as g, faceloop.agents.analyst as a;"
        "print(g.__file__); print(a.__file__);"
        # the report's template loads from the installed package
        "import faceloop.report.html as h;"
        "print(h._environment().get_template(h.TEMPLATE).filename)"
    )
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.split()
    assert out[0].startswith(str(site)), out
    assert out[1:3] == ["True", "default"]
    assert [Path(f).relative_to(site).as_posix() for f in out[3:]] == [
        "faceloop/agents/planner/graph.py",
        "faceloop/agents/analyst/__init__.py",
        "faceloop/report/templates/report.html.j2",
    ]


def test_faceloop_and_its_cli_leave_the_test_contracts_alone() -> None:
    # faceloop.testing imports pytest, a test dependency: a production install has none
    code = (
        "import sys, faceloop, faceloop.cli, faceloop.workflows.worker;"
        "from typer.testing import CliRunner; from faceloop.cli import app;"
        "result = CliRunner().invoke(app, ['--help']); assert result.exit_code == 0, result.output;"
        "from faceloop.generators.registry import generator_names; generator_names();"
        "prefixes = ('faceloop.testing', 'pytest', '_pytest');"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
